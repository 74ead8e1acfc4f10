/* The parsers of the channel and cluster features that a peer controls:
 * the first input byte picks one, the rest is its input.
 *   0  a NATS request from another node (gw_cluster_decode_op)
 *   1  a NATS channel publish or broadcast (gw_cluster_decode_fanout)
 *   2  a LIST reply's head from another node (gw_cluster_decode_list_reply)
 *   3  a listing's ?cursor= (mgmt.c's static parse_cursor, both forms)
 *   4  a batch POST /@connections body (mgmt.c's static parse_batch)
 *   5  an X-Wsgate-Subscribe list (gw_chan_list_next)
 *   6  a cluster message as NATS brings it (first byte 0xf0 and up, so
 *      the others keep their seeds): the rest opened as it is
 *      (gw_cluster_open), then sealed (its first byte the type, its second
 *      one a byte to flip) and opened again, the payload going on to the
 *      decoder of its type (0 or 1 above), as cluster.c does
 * mgmt.c is included to reach its statics (as fuzz_mgmt does). */
#include "../../mgmt-api/mgmt.c"

#include "cluster_wire.h"
#include "fuzz_common.h"

#include <ctype.h>

static gw_cluster_mac_t *key;

static void free_key(void)
{
	gw_cluster_mac_free(key);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char secret[] = "a cluster secret that is long enough";

	fz_quiet();
	key = gw_cluster_mac_new((const unsigned char *)secret, strlen(secret));
	if (!key)
		abort();
	atexit(free_key);
	return 0;
}

/* A decoded channel: "" or a valid name, NUL-terminated at its length. */
static void check_channel(const gw_cluster_msg_t *m)
{
	FZ_CHECK(m->chan_len <= GW_CHAN_NAME_MAX);
	FZ_CHECK(m->channel[m->chan_len] == '\0' && strlen(m->channel) == m->chan_len);
	FZ_CHECK(!m->chan_len || gw_chan_name_valid(m->channel, m->chan_len));
}

static void fuzz_op(const uint8_t *d, size_t n)
{
	gw_cluster_msg_t m;

	if (gw_cluster_decode_op(d, n, &m))
		return;
	check_channel(&m);
	FZ_CHECK(n >= 1 && m.kind == d[0]);
	switch (m.kind) {
	case '?':
		break;
	case GW_OP_COUNT:
		FZ_CHECK(m.chan_len > 0 && n == 33 + m.chan_len);
		break;
	case GW_OP_LIST:
		FZ_CHECK(m.limit <= GW_CLUSTER_LIST_MAX && m.loop < 256);
		FZ_CHECK(n == 42 + m.chan_len);
		break;
	case GW_OP_JOIN:
	case GW_OP_LEAVE:
		FZ_CHECK(m.id == (const char *)d + 1 && m.chan_len > 0);
		FZ_CHECK(n == 1 + GW_CONNID_LEN + m.chan_len);
		break;
	case GW_OP_POST:
	case GW_OP_GET:
	case GW_OP_DELETE:
		FZ_CHECK(m.id == (const char *)d + 1);
		FZ_CHECK(m.body == d + 1 + GW_CONNID_LEN && 1 + GW_CONNID_LEN + m.body_len == n);
		break;
	default:
		FZ_CHECK(!"a kind no request has");
	}
}

static void fuzz_fanout(const uint8_t *d, size_t n)
{
	gw_cluster_msg_t m;
	size_t head = 2 + 32 + 1;

	if (gw_cluster_decode_fanout(d, n, &m))
		return;
	check_channel(&m);
	FZ_CHECK(m.binary == 0 || m.binary == 1);
	FZ_CHECK(m.kind == GW_OP_PUBLISH ? m.chan_len > 0 : m.kind == GW_OP_BROADCAST && !m.chan_len);
	/* Every byte accounted for: the head, the name, the message. */
	FZ_CHECK(d[head - 1] == m.chan_len && !memcmp(d + head, m.channel, m.chan_len));
	FZ_CHECK(m.body == d + head + m.chan_len && head + m.chan_len + m.body_len == n);
	for (int w = 0; w < 4; w++)
		for (int b = 0; b < 8; b++)
			FZ_CHECK((uint8_t)(m.apis.bits[w] >> (8 * b)) == d[2 + 8 * w + b]);
}

static void fuzz_list_reply(const uint8_t *d, size_t n)
{
	uint32_t count, cursor;
	int cut, off = gw_cluster_decode_list_reply(d, n, &count, &cursor, &cut);
	char again[17];

	if (off < 0)
		return;
	FZ_CHECK(off == 16 && n >= 16 && count <= GW_CLUSTER_LIST_MAX);
	FZ_CHECK((cut == 0 || cut == 1) && cursor < 0x80000000u);
	snprintf(again, sizeof(again), "%08x%08x", count, cursor | (cut ? 0x80000000u : 0));
	for (int i = 0; i < 16; i++)
		FZ_CHECK(again[i] == tolower(d[i]));
}

static void fuzz_cursor(const uint8_t *d, size_t n)
{
	char v[64], again[16];
	uint32_t node, loop, slot;

	if (n >= sizeof(v))
		return;
	memcpy(v, d, n);
	v[n] = '\0';
	for (int cluster = 0; cluster < 2; cluster++) {
		if (parse_cursor(v, cluster, &node, &loop, &slot))
			continue;
		FZ_CHECK(loop < 256 && slot < (1u << 24) && (cluster || !node));
		/* The form fan_answer writes, read back the same. */
		if (cluster)
			snprintf(again, sizeof(again), "%02x%02x%06x", node, loop, slot);
		else
			snprintf(again, sizeof(again), "%02x%06x", loop, slot);
		FZ_CHECK(strlen(v) == strlen(again));
		for (size_t i = 0; v[i]; i++)
			FZ_CHECK(again[i] == tolower((unsigned char)v[i]));
	}
}

static void fuzz_batch(const uint8_t *d, size_t n)
{
	json_t *root, *ids, *data, *v;
	size_t i;
	const char *why = parse_batch((const char *)d, n, &root, &ids, &data);

	if (!why) {
		FZ_CHECK(json_is_array(ids) && json_array_size(ids) <= BATCH_MAX_IDS);
		FZ_CHECK(json_is_string(data));
		json_array_foreach(ids, i, v)
			FZ_CHECK(json_is_string(v));
	}
	json_decref(root);
}

static void fuzz_list(const uint8_t *d, size_t n)
{
	char *s = malloc(n + 1);
	const char *list = s, *p;
	size_t len, names = 0, commas = 0;

	if (!s)
		abort();
	memcpy(s, d, n);
	s[n] = '\0';
	for (size_t i = 0; s[i]; i++)
		commas += s[i] == ',';
	while ((p = gw_chan_list_next(&list, &len))) {
		FZ_CHECK(p >= s && p + len <= s + strlen(s) && len > 0);
		FZ_CHECK(!memchr(p, ',', len));
		FZ_CHECK(p[0] != ' ' && p[0] != '\t' && p[len - 1] != ' ' && p[len - 1] != '\t');
		FZ_CHECK(++names <= commas + 1);
	}
	FZ_CHECK(list == NULL);
	free(s);
}

/* What NATS brings, opened; the payload to its decoder. */
static void fuzz_envelope(const uint8_t *d, size_t n)
{
	static const char subject[] = "wsgate.default.node.1.op", reply[] = "_INBOX.x.1";
	gw_cluster_env_t env;
	unsigned char *msg;
	int type, flip;

	/* Unsealed bytes never open (the tag is 16 bytes: no fuzzer finds one). */
	if (!gw_cluster_open(key, subject, reply, d, n, &env))
		FZ_CHECK(env.payload == d + GW_CLUSTER_ENV_HEAD &&
			 env.len + GW_CLUSTER_ENV_HEAD == n);
	if (n < 2)
		return;
	type = d[0] & 1 ? GW_ENV_FANOUT : GW_ENV_OP;
	flip = d[1];
	d += 2;
	n -= 2;
	msg = malloc(GW_CLUSTER_ENV_HEAD + n + 1);
	if (!msg)
		abort();
	memcpy(msg + GW_CLUSTER_ENV_HEAD, d, n);
	FZ_CHECK(!gw_cluster_seal(key, subject, reply, type, 7, 0x1122334455667788ull, msg, n));
	FZ_CHECK(!gw_cluster_open(key, subject, reply, msg, GW_CLUSTER_ENV_HEAD + n, &env));
	FZ_CHECK(env.type == type && env.node == 7 && env.seq == 0x1122334455667788ull);
	FZ_CHECK(env.len == n && !memcmp(env.payload, d, n));
	if (type == GW_ENV_OP)
		fuzz_op(env.payload, env.len);
	else
		fuzz_fanout(env.payload, env.len);
	/* Another subject, another reply, or any byte changed: refused. */
	FZ_CHECK(gw_cluster_open(key, "wsgate.default.fanout", reply, msg,
				 GW_CLUSTER_ENV_HEAD + n, &env));
	FZ_CHECK(gw_cluster_open(key, subject, "", msg, GW_CLUSTER_ENV_HEAD + n, &env));
	msg[flip % (GW_CLUSTER_ENV_HEAD + n)] ^= (unsigned char)(1u << (flip % 8));
	FZ_CHECK(gw_cluster_open(key, subject, reply, msg, GW_CLUSTER_ENV_HEAD + n, &env));
	free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	if (data[0] >= 0xf0) {
		fuzz_envelope(data + 1, size - 1);
		return 0;
	}
	switch (data[0] % 6) {
	case 0: fuzz_op(data + 1, size - 1); break;
	case 1: fuzz_fanout(data + 1, size - 1); break;
	case 2: fuzz_list_reply(data + 1, size - 1); break;
	case 3: fuzz_cursor(data + 1, size - 1); break;
	case 4: fuzz_batch(data + 1, size - 1); break;
	case 5: fuzz_list(data + 1, size - 1); break;
	}
	return 0;
}
