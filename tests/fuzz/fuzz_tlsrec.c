/* The TLS 1.3 record layer (tlsrec.c, included for its static key_update)
 * reading what a client sends after the handshake, in pieces of any size
 * over a socketpair. Two kinds of input:
 *   raw    [0][seed][max piece][bytes...]: bytes as they come, mostly
 *          refused by the header checks or the tag;
 *   sealed [1][seed][max piece] then ops [op][len][content...]: records
 *          sealed by a peer holding the client's keys (so they pass the tag
 *          and reach the inner plaintext: padding, alerts, KeyUpdate,
 *          unknown types), some with a bit flipped.
 * Invariants: the plaintext read is exactly the data records sealed, in
 * order, up to the first refused record; nothing after an error or a
 * close_notify; what is kept inside stays within a record's size. */
#include "../../src/tlsrec.c"
#include "fuzz_common.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

static const uint8_t CS[48] = { 1, 2, 3 }, SS[48] = { 4, 5, 6 };

static gw_tlsrec_loop_t *L;

typedef struct run {
	gw_tlsrec_t us, peer; /* peer: the client's side of the keys */
	int sv[2];
	uint8_t expect[1 << 16], got[1 << 16];
	size_t n_expect, n_got;
	int ended; /* an error or EOF came back */
	int unchecked; /* a record whose outcome is not predicted went out */
	int empty; /* records in a row without data (more than 32 are fatal) */
} run_t;

static run_t R;

static void drain(int fd)
{
	uint8_t b[4096];

	while (recv(fd, b, sizeof(b), MSG_DONTWAIT) > 0)
		;
}

static void read_all(run_t *r)
{
	uint8_t buf[GW_TLSREC_MAX_PLAIN];
	ssize_t k;

	do {
		k = gw_tlsrec_read(L, &r->us, r->sv[1], buf, sizeof(buf));
		FZ_CHECK(k <= (ssize_t)sizeof(buf));
		if (k > 0) {
			FZ_CHECK(!r->ended);
			FZ_CHECK(r->n_got + (size_t)k <= sizeof(r->got));
			memcpy(r->got + r->n_got, buf, (size_t)k);
			r->n_got += (size_t)k;
		} else if (k < 0) {
			r->ended = 1;
		}
		FZ_CHECK(r->us.in_len <= GW_TLSREC_MAX_REC);
		FZ_CHECK(r->us.plain_len <= GW_TLSREC_MAX_PLAIN);
		drain(r->sv[0]);
	} while (k > 0);
}

static void send_pieces(run_t *r, const uint8_t *p, size_t n, fz_split_t *split)
{
	size_t off = 0;

	/* A refusing reader reads no more: the socket would fill. */
	while (off < n && !r->ended) {
		size_t k = fz_split_next(split, n - off);

		FZ_CHECK(send(r->sv[0], p + off, k, 0) == (ssize_t)k);
		off += k;
		read_all(r);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run_t *r = &R;
	fz_split_t split;
	size_t off = 3;

	if (size < 3)
		return 0;
	if (!L) {
		fz_quiet();
		L = gw_tlsrec_loop_create();
	}
	memset(r, 0, offsetof(run_t, expect));
	r->n_expect = r->n_got = 0;
	r->ended = r->unchecked = r->empty = 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, r->sv))
		return 0;
	fz_split_init(&split, data[1], data[2]);
	FZ_CHECK(!gw_tlsrec_init(&r->us, (data[0] >> 1) % 3 + 0x1301, CS, SS,
				 (data[0] >> 1) % 3 == 1 ? 48 : 32, 0));
	gw_tlsrec_init(&r->peer, r->us.suite, SS, CS, r->us.hash_len, 0);
	if (!(data[0] & 1)) {
		send_pieces(r, data + off, size - off, &split);
	} else {
		/* ops: [op][len][content]: op bits 0-1 type (23, 21, 22, other),
		 * bit 2 flip a bit, bit 3 a zero type byte (padding inside),
		 * bits 5-7 the length's high byte. */
		uint8_t rec[GW_TLSREC_MAX_REC];

		while (off + 2 <= size) {
			uint8_t op = data[off], type;
			size_t len = data[off + 1] | (size_t)(op >> 5) << 8, have = size - off - 2;
			const uint8_t *content = data + off + 2;
			ssize_t rl;

			if (len > have)
				len = have;
			off += 2 + len;
			type = (uint8_t[]){ 23, 21, 22, 24 }[op & 3];
			if (op & 8)
				type = 0; /* content's own trailing bytes become type + padding */
			int ku = type == 22 && len == 5 && !memcmp(content, "\x18\0\0\x01", 4) &&
				 content[4] <= 1;

			/* More than MAX_EMPTY_RECORDS in a row without data end
			 * the session: from there on, not predicted. */
			if (type == 23 && len && !(op & 4))
				r->empty = 0;
			else if (((type == 23 && !len) || ku) && ++r->empty > MAX_EMPTY_RECORDS)
				r->unchecked = 1;
			rl = gw_tlsrec_seal(L, &r->peer, type, content, len, rec);
			FZ_CHECK(rl > 0);
			if (op & 4) {
				rec[GW_TLSREC_HDR + data[off - len - 1] % (size_t)(rl - GW_TLSREC_HDR)] ^= 1;
				r->unchecked = 1;
			} else if (type == 23 && !r->unchecked &&
				   r->n_expect + len <= sizeof(r->expect)) {
				memcpy(r->expect + r->n_expect, content, len);
				r->n_expect += len;
			} else if (!ku) {
				r->unchecked = 1; /* what the gateway makes of it is not predicted */
			}
			send_pieces(r, rec, (size_t)rl, &split);
			/* the peer follows its own KeyUpdate, as a client would */
			if (ku && !(op & 4))
				FZ_CHECK(!key_update(suite_of(r->peer.suite, NULL), &r->peer.tx));
		}
		/* Every record sealed before the first unpredicted one reads back
		 * exactly; nothing ends a stream of good records. */
		if (!r->unchecked)
			FZ_CHECK(r->n_got == r->n_expect && !r->ended);
		FZ_CHECK(r->n_got >= r->n_expect && !memcmp(r->got, r->expect, r->n_expect));
	}
	gw_tlsrec_dispose(&r->us);
	gw_tlsrec_dispose(&r->peer);
	close(r->sv[0]);
	close(r->sv[1]);
	return 0;
}
