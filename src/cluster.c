/* The cluster transport (cluster.h): operations for another node's
 * connections over NATS request/reply.
 *
 * Three kinds of threads meet here, around one mutex: the event loops
 * (forward an operation, reply to one), the NATS client's threads (a
 * reply arrives, an operation arrives) and this module's sender thread,
 * the only one that publishes, which also answers 410 for requests past
 * their deadline. Results reach a loop through its inbox (gw_worker_post),
 * as between the loops of one process. */
#include "cluster.h"
#include "op.h"
#include "cluster_wire.h"
#include "channame.h"
#include "connid.h"
#include "core.h"
#include "httpreq.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* wsgate.<name>.chan.<token>: 7 + 63 + 6 + 3 * GW_CHAN_NAME_MAX */
#define SUBJECT_MAX 512
#define SECRET_MIN 16
#define SECRET_MAX 4096
/* The "is this node ID taken?" probe, at start. */
#define PROBE_TIMEOUT_MS 1000
#define PROBE_TRIES 32
#define OP_PROBE '?'
/* Each node says it is alive this often; one unheard of for PEER_TTL_MS is
 * left out of cluster-wide counts. */
#define HELLO_MS 1000
#define PEER_TTL_MS 3000
/* A sealed message stamped further than this from the receiver's clock is
 * dropped: the nodes' clocks must agree within it (NTP). */
#define CLOCK_WINDOW_MS 30000
/* Each sender's last sequence is not kept across this node's restart:
 * nothing stamped before the start (less this much skew between the
 * nodes' clocks) is taken, or a message captured in the window before it
 * could be replayed to the new process. NATS delivers a message only to
 * the subscribers of its moment, so no genuine one is older. */
#define START_SKEW_MS 1000

/* A message for the sender thread to publish. */
struct out_msg {
	struct out_msg *next;
	char subject[SUBJECT_MAX];
	char reply[SUBJECT_MAX]; /* "" for none */
	uint64_t seq; /* a forwarded operation's (struct waiting) */
	int now_or_never; /* not kept for a reconnect: stale by then */
	int type; /* enum gw_cluster_env_type; 0: sent as it is (a probe's answer) */
	size_t len;
	unsigned char env[GW_CLUSTER_ENV_HEAD]; /* sealed by the sender thread */
	unsigned char data[];
};
/* The head and the payload go out as one run of bytes. */
_Static_assert(offsetof(struct out_msg, data) ==
	       offsetof(struct out_msg, env) + GW_CLUSTER_ENV_HEAD, "env precedes data");

/* A forwarded operation waiting for its owner's reply. Kept in sequence
 * order, which is also deadline order (one timeout for all). */
struct waiting {
	struct waiting *next, *prev;
	uint64_t seq;
	uint64_t deadline;
	gw_op_t *op;
};

/* A channel with members on this node (cluster.h, "Interest"). Under
 * cl.lock, except sub, which only the sender thread touches. */
struct interest {
	struct interest *next;       /* the bucket's chain */
	struct interest *dirty_next; /* cl.dirty, when dirty */
	uint64_t hash;
	uint32_t loops; /* loops with members */
	int dirty;      /* on cl.dirty: the sender thread must look at it */
	int live;       /* subscribed, confirmed, not about to be removed */
	/* the sender thread's own */
	int want;                    /* this round: subscribed or not */
	struct interest *round_next; /* this round's list */
	natsSubscription *sub;
	size_t len;
	char name[];
};

/* A JOIN answered once round `need` has ended (its subscription flushed). */
struct hold {
	struct hold *next;
	uint64_t need;
	gw_op_t *op;
};

static struct {
	int on;       /* started, not stopped */
	int stopping; /* the sender thread is asked to end */
	int leaving;  /* closing NATS on purpose: no "lost NATS" line */
	uint32_t self, epoch;
	char name[64];
	int timeout_ms;
	gw_gateway_t *sh;
	natsConnection *nc;
	natsSubscription *ops_sub, *reply_sub, *fan_sub;
	char inbox[128]; /* replies arrive on inbox.<seq> */
	pthread_t thread;
	int thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct out_msg *out_head, *out_tail;
	struct waiting *w_head, *w_tail;
	uint64_t next_seq;
	natsSubscription *alive_sub;
	uint64_t next_hello;      /* sender thread: when to say "alive" again */
	uint64_t last_seen[256];  /* gw_now_ms() of each node's last "alive" */
	/* channel interest (under the lock) */
	struct interest **buckets;
	size_t n_buckets, n_interests;
	struct interest *dirty;
	struct hold *holds, *holds_tail;
	uint64_t rounds_begun; /* the sender thread's interest rounds */
	/* authentication (cluster_wire.h) */
	gw_cluster_mac_t *mac;   /* from the secret; read-only once loaded */
	uint64_t stamp;          /* the sender thread's last sequence */
	uint64_t last_seq[256];  /* each sender's last sequence accepted */
	uint64_t rejected[GW_CLUSTER_REJECT_KINDS];
} cl = { .lock = PTHREAD_MUTEX_INITIALIZER };

uint32_t gw_cluster_self(void)
{
	return gw_connid_self();
}

uint32_t gw_cluster_epoch(void)
{
	return gw_connid_epoch();
}

int gw_cluster_subject(char *out, size_t len, const char *what)
{
	int n = snprintf(out, len, "wsgate.%s.%s", cl.name, what);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int node_subject(char *out, size_t len, uint32_t node)
{
	char what[32];

	snprintf(what, sizeof(what), "node.%u.op", node);
	return gw_cluster_subject(out, len, what);
}

/* --- the secret --- */

int gw_cluster_load_secret(const char *path, char *err, size_t errlen)
{
	unsigned char buf[SECRET_MAX + 1], digest[SHA256_DIGEST_LENGTH];
	gw_connid_key_t key;
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "--cluster-secret-file %s: %s", path, strerror(errno));
		return -1;
	}
	/* Whoever reads it can forge IDs of every node: say so, as ssh does. */
	if (!fstat(fd, &st) && (st.st_mode & 077))
		fprintf(stderr, "wsgate: warning: --cluster-secret-file %s is readable by "
			"others (mode %03o): chmod 600\n", path, (unsigned)(st.st_mode & 0777));
	while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) > 0)
		len += (size_t)n;
	close(fd);
	/* A trailing newline from an editor or `echo` is not part of it. */
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
		len--;
	if (len < SECRET_MIN || len > SECRET_MAX) {
		snprintf(err, errlen, "--cluster-secret-file %s: expected %d to %d bytes "
			 "(e.g. `openssl rand -hex 32 > FILE`), found %zu", path, SECRET_MIN,
			 SECRET_MAX, len);
		goto done;
	}
	/* Any length in, the ID key's 16 bytes out, the same on every node. */
	SHA256(buf, len, digest);
	memcpy(key.k, digest, sizeof(key.k));
	if (gw_connid_set_process_key(&key)) {
		snprintf(err, errlen, "--cluster-secret-file: the ID key is already in use");
		goto done;
	}
	/* The messages' key, apart from the IDs' (its own label). */
	gw_cluster_mac_free(cl.mac);
	cl.mac = gw_cluster_mac_new(buf, len);
	if (!cl.mac) {
		snprintf(err, errlen, "--cluster-secret-file: OpenSSL has no HMAC-SHA256");
		goto done;
	}
	rc = 0;
done:
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(digest, sizeof(digest));
	OPENSSL_cleanse(&key, sizeof(key));
	return rc;
}

/* --- the sender thread's queue --- */

static struct out_msg *out_new(const char *subject, size_t len)
{
	struct out_msg *m = malloc(sizeof(*m) + len);

	if (!m)
		abort();
	m->next = NULL;
	snprintf(m->subject, sizeof(m->subject), "%s", subject);
	m->reply[0] = '\0';
	m->seq = 0;
	m->now_or_never = 0;
	m->type = 0;
	m->len = len;
	return m;
}

/* Under the lock. */
static void out_push(struct out_msg *m)
{
	if (cl.out_tail)
		cl.out_tail->next = m;
	else
		cl.out_head = m;
	cl.out_tail = m;
	pthread_cond_signal(&cl.cond);
}

static void out_enqueue(struct out_msg *m)
{
	pthread_mutex_lock(&cl.lock);
	if (cl.stopping) {
		pthread_mutex_unlock(&cl.lock);
		free(m);
		return;
	}
	out_push(m);
	pthread_mutex_unlock(&cl.lock);
}

static void reply_status(const char *reply, int status, const void *body, size_t len)
{
	struct out_msg *m = out_new(reply, 3 + len);
	char digits[4];

	snprintf(digits, sizeof(digits), "%03d", status);
	memcpy(m->data, digits, 3);
	if (len)
		memcpy(m->data + 3, body, len);
	m->type = GW_ENV_REPLY;
	out_enqueue(m);
}

/* Unsealed: only the answer to a probe. */
static void reply_raw(const char *reply, const char *text)
{
	struct out_msg *m = out_new(reply, strlen(text));

	memcpy(m->data, text, m->len);
	out_enqueue(m);
}

/* Under the lock. */
static void waiting_unlink(struct waiting *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		cl.w_head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		cl.w_tail = w->prev;
	w->next = w->prev = NULL;
}

/* --- results, back to the sender's loop --- */

/* The owner's result crosses as text; the sender's op holds static
 * strings, so the text is matched against those the bus answers with. */
static const char *const known_types[] = {
	"GoneException", "PayloadTooLargeException", "LimitExceededException",
	"BadRequestException", "ForbiddenException", "MethodNotAllowedException",
};
static const char *const known_messages[] = {
	"Message is larger than the maximum message size",
	"The client side buffer is full",
	"The connection is a member of too many channels",
	"Invalid channel name",
	"Forbidden",
	"Method Not Allowed",
};

static const char *intern(const char *const *known, size_t n, const char *s, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(known[i]) == len && !memcmp(known[i], s, len))
			return known[i];
	return NULL;
}

/* An error's body on the wire: "TYPE\nMESSAGE". */
static void set_error(gw_op_t *op, int status, const char *body, size_t len)
{
	const char *nl = memchr(body, '\n', len);
	size_t tlen = nl ? (size_t)(nl - body) : len;

	op->status = status;
	op->error_type = intern(known_types, sizeof(known_types) / sizeof(*known_types),
				body, tlen);
	op->message = nl ? intern(known_messages,
				  sizeof(known_messages) / sizeof(*known_messages), nl + 1,
				  len - tlen - 1)
			 : NULL;
	if (!op->error_type) {
		op->status = 500;
		op->error_type = "InternalServerErrorException";
		op->message = "Internal server error";
	}
}

static void answer(gw_op_t *op, int status, const void *body, size_t len)
{
	gw_buf_reset(&op->data);
	if (status < 300) {
		op->status = status;
		op->error_type = op->message = NULL;
		if (op->kind == GW_OP_LIST) {
			uint32_t count, cursor;
			int cut, off = gw_cluster_decode_list_reply(body, len, &count, &cursor, &cut);

			/* skipped: the page was cut to fit, the loop has more */
			op->count = off < 0 ? 0 : count;
			op->skipped = off < 0 ? 0 : (uint64_t)cut;
			if (off >= 0) {
				op->cursor = cursor;
				gw_buf_append(&op->data, (const char *)body + off, len - (size_t)off);
			}
		} else if (op->kind == GW_OP_COUNT) {
			char num[24];

			snprintf(num, sizeof(num), "%.*s", (int)(len < 23 ? len : 23),
				 (const char *)body);
			op->count = strtoull(num, NULL, 10);
		} else if (len) {
			gw_buf_append(&op->data, body, len);
		}
	} else if (status == 410 && !len) {
		set_error(op, 410, "GoneException", strlen("GoneException"));
	} else {
		set_error(op, status, body, len);
	}
	op->is_reply = 1;
	gw_worker_post(gw_gateway_worker(cl.sh, op->from), &op->list);
}

/* --- the sender thread --- */

static void log_publish_error(natsStatus s)
{
	gw_log_limited(GW_LOG_WARN, 5000, "cluster: cannot publish to NATS: %s",
		       natsStatus_GetText(s));
}

static void answer(gw_op_t *op, int status, const void *body, size_t len);

#define TOO_LARGE "PayloadTooLargeException\nMessage is larger than the maximum message size"

/* The forwarded operation seq, not sent: answered now rather than at its
 * deadline; 413 for a message over NATS's max_payload, else 410. */
static void fail_waiting(uint64_t seq, natsStatus s)
{
	struct waiting *w;

	pthread_mutex_lock(&cl.lock);
	for (w = cl.w_head; w && w->seq != seq; w = w->next)
		;
	if (w)
		waiting_unlink(w);
	pthread_mutex_unlock(&cl.lock);
	if (!w)
		return;
	if (s == NATS_MAX_PAYLOAD)
		answer(w->op, 413, TOO_LARGE, strlen(TOO_LARGE));
	else
		answer(w->op, 410, NULL, 0);
	free(w);
}

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void publish(struct out_msg *m)
{
	natsStatus s;

	/* While NATS is away the client would keep a publish for the
	 * reconnect: an operation its sender has answered 410 by then, or a
	 * channel message long after the ones sent since, must not run late. */
	const unsigned char *out = m->data;
	size_t len = m->len;

	if (m->now_or_never && natsConnection_Status(cl.nc) != NATS_CONN_STATUS_CONNECTED) {
		s = NATS_CONNECTION_DISCONNECTED;
		goto fail;
	}
	/* Stamped here, the only thread that publishes: a sender's sequence
	 * grows in the order its messages go out (and arrive: NATS keeps a
	 * publisher's order, and one thread delivers at the receiver). */
	if (m->type) {
		uint64_t now = wall_ns();

		cl.stamp = now > cl.stamp ? now : cl.stamp + 1;
		if (gw_cluster_seal(cl.mac, m->subject, m->reply, m->type, cl.self, cl.stamp,
				    m->env, m->len)) {
			s = NATS_ERR;
			goto fail;
		}
		out = m->env;
		len += GW_CLUSTER_ENV_HEAD;
	}
	if (m->reply[0])
		s = natsConnection_PublishRequest(cl.nc, m->subject, m->reply, out, (int)len);
	else
		s = natsConnection_Publish(cl.nc, m->subject, out, (int)len);
	if (s == NATS_OK)
		return;
	log_publish_error(s);
fail:
	/* A lost reply times out at its sender. */
	if (m->seq)
		fail_waiting(m->seq, s);
}

static void wait_for_work(void)
{
	struct timespec ts;
	uint64_t wait_ms = 1000, now = gw_now_ms();

	if (cl.w_head)
		wait_ms = cl.w_head->deadline > now ? cl.w_head->deadline - now : 0;
	if (cl.next_hello > now && cl.next_hello - now < wait_ms)
		wait_ms = cl.next_hello - now;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(wait_ms / 1000);
	ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&cl.cond, &cl.lock, &ts);
}

/* Under the lock, on the sender thread: queued like any publish. "alive"
 * is sealed like every message (empty: the head names the node), so a node
 * started with another secret file (whose IDs no node here verifies, nor
 * it ours) is told apart, not counted and listed as if its connections
 * were reachable. */
static void say_alive(void)
{
	char subject[SUBJECT_MAX];
	struct out_msg *m;

	if (gw_cluster_subject(subject, sizeof(subject), "alive"))
		return;
	m = out_new(subject, 0);
	m->type = GW_ENV_ALIVE;
	m->now_or_never = 1;
	out_push(m);
}

/* --- channel interest (cluster.h) --- */

/* A new subscription's confirmation (PING/PONG) waits at most this long:
 * past it the JOIN is answered anyway (NATS is slow or away; the client
 * library sends the subscription again when it reconnects). */
#define CONFIRM_MAX_MS 2000
#define BUCKETS_MIN 64

int gw_cluster_chan_token(const char *name, size_t len, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (!len || !size)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '_' || c == '-' || c == ':';

		if (o + (plain ? 1 : 3) >= size)
			return -1;
		if (plain) {
			out[o++] = (char)c;
			continue;
		}
		out[o++] = '%';
		out[o++] = hex[c >> 4];
		out[o++] = hex[c & 15];
	}
	out[o] = '\0';
	return (int)o;
}

/* "wsgate.<name>.chan.<token>"; -1 when it does not fit. */
static int chan_subject(char *out, size_t size, const char *name, size_t len)
{
	char token[3 * GW_CHAN_NAME_MAX + 1], what[sizeof(token) + 8];

	if (len > GW_CHAN_NAME_MAX || gw_cluster_chan_token(name, len, token, sizeof(token)) < 0)
		return -1;
	snprintf(what, sizeof(what), "chan.%s", token);
	return gw_cluster_subject(out, size, what);
}

/* Keyed (channel.h): the names may be clients' choice. */
static uint64_t name_hash(const char *s, size_t len)
{
	return gw_chan_hash(s, len);
}

/* Under the lock. */
static struct interest *interest_find(const char *name, size_t len, uint64_t h)
{
	if (!cl.n_buckets)
		return NULL;
	for (struct interest *it = cl.buckets[h & (cl.n_buckets - 1)]; it; it = it->next)
		if (it->hash == h && it->len == len && !memcmp(it->name, name, len))
			return it;
	return NULL;
}

/* Under the lock. A failed allocation keeps the old table (longer chains). */
static void interest_grow(void)
{
	size_t n = cl.n_buckets ? cl.n_buckets * 2 : BUCKETS_MIN;
	struct interest **b = calloc(n, sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i < cl.n_buckets; i++)
		while (cl.buckets[i]) {
			struct interest *it = cl.buckets[i];

			cl.buckets[i] = it->next;
			it->next = b[it->hash & (n - 1)];
			b[it->hash & (n - 1)] = it;
		}
	free(cl.buckets);
	cl.buckets = b;
	cl.n_buckets = n;
}

/* Under the lock. */
static struct interest *interest_add(const char *name, size_t len, uint64_t h)
{
	struct interest *it;

	if (cl.n_interests >= cl.n_buckets)
		interest_grow();
	if (!cl.n_buckets)
		abort();
	it = calloc(1, sizeof(*it) + len + 1);
	if (!it)
		abort();
	it->hash = h;
	it->len = len;
	memcpy(it->name, name, len);
	it->next = cl.buckets[h & (cl.n_buckets - 1)];
	cl.buckets[h & (cl.n_buckets - 1)] = it;
	cl.n_interests++;
	return it;
}

/* Under the lock, on the sender thread: nobody refers to it any more. */
static void interest_remove(struct interest *it)
{
	struct interest **pp = &cl.buckets[it->hash & (cl.n_buckets - 1)];

	while (*pp != it)
		pp = &(*pp)->next;
	*pp = it->next;
	cl.n_interests--;
	free(it);
}

/* Under the lock: the sender thread looks at it in its next round. */
static void mark_dirty(struct interest *it)
{
	if (it->dirty)
		return;
	it->dirty = 1;
	it->dirty_next = cl.dirty;
	cl.dirty = it;
	pthread_cond_signal(&cl.cond);
}

void gw_cluster_chan_interest(const char *name, size_t len, int delta)
{
	uint64_t h = name_hash(name, len);
	struct interest *it;

	if (!cl.on)
		return;
	pthread_mutex_lock(&cl.lock);
	if (cl.stopping)
		goto out;
	it = interest_find(name, len, h);
	if (!it && delta < 0)
		goto out;
	if (!it)
		it = interest_add(name, len, h);
	if (delta > 0)
		it->loops++;
	else if (it->loops)
		it->loops--;
	/* Only members with a confirmed subscription need nothing more. */
	if (!it->loops || !it->live)
		mark_dirty(it);
out:
	pthread_mutex_unlock(&cl.lock);
}

/* Under the lock: op is answered when the round that begins next has
 * ended (sender_main runs one while a hold waits). From the unlock on, op
 * belongs to the sender thread, which may answer (and another loop
 * destroy) it at once: the caller touches it no more. */
static void hold_add(gw_op_t *op)
{
	struct hold *hd = calloc(1, sizeof(*hd));

	if (!hd)
		abort();
	hd->need = cl.rounds_begun + 1;
	hd->op = op;
	if (cl.holds_tail)
		cl.holds_tail->next = hd;
	else
		cl.holds = hd;
	cl.holds_tail = hd;
	pthread_cond_signal(&cl.cond);
}

int gw_cluster_hold_join(gw_op_t *op)
{
	size_t n = strlen(op->channel);
	uint64_t h = name_hash(op->channel, n);
	struct interest *it;

	if (!cl.on)
		return 0;
	pthread_mutex_lock(&cl.lock);
	it = interest_find(op->channel, n, h);
	if (cl.stopping || !it || it->live) {
		pthread_mutex_unlock(&cl.lock);
		return 0;
	}
	gw_buf_dispose(&op->data);
	/* The next round to begin takes this channel: its end confirms it. */
	mark_dirty(it);
	hold_add(op);
	pthread_mutex_unlock(&cl.lock);
	return 1;
}

int gw_cluster_chan_unconfirmed(const char *name, size_t len)
{
	struct interest *it;
	int r;

	if (!cl.on)
		return 0;
	pthread_mutex_lock(&cl.lock);
	it = interest_find(name, len, name_hash(name, len));
	r = !cl.stopping && it && !it->live;
	pthread_mutex_unlock(&cl.lock);
	return r;
}

int gw_cluster_hold(gw_op_t *op)
{
	if (!cl.on)
		return -1;
	pthread_mutex_lock(&cl.lock);
	if (cl.stopping) {
		pthread_mutex_unlock(&cl.lock);
		return -1;
	}
	/* A channel found unconfirmed is dirty (the next round takes it) or
	 * in the round under way, which ends before the next one does. */
	hold_add(op);
	pthread_mutex_unlock(&cl.lock);
	return 0;
}

/* At stop: subscriptions whose end the shared delivery thread has not
 * yet seen. */
static int subs_closing;

static void on_sub_complete(void *closure)
{
	(void)closure;
	pthread_mutex_lock(&cl.lock);
	subs_closing--;
	pthread_cond_signal(&cl.cond);
	pthread_mutex_unlock(&cl.lock);
}

static void unsubscribe_one(natsSubscription *sub)
{
	if (!sub)
		return;
	pthread_mutex_lock(&cl.lock);
	if (natsSubscription_SetOnCompleteCB(sub, on_sub_complete, NULL) == NATS_OK)
		subs_closing++;
	pthread_mutex_unlock(&cl.lock);
	natsSubscription_Unsubscribe(sub);
}

/* At stop, once the sender thread has ended: every subscription ends, and
 * the shared delivery thread has handled each end before the library
 * closes (libnats 3.4 stops that thread without freeing what it has not
 * handled yet). */
static void unsubscribe_all(void)
{
	struct timespec ts;

	pthread_mutex_lock(&cl.lock);
	subs_closing = 0;
	pthread_mutex_unlock(&cl.lock);
	unsubscribe_one(cl.ops_sub);
	unsubscribe_one(cl.reply_sub);
	unsubscribe_one(cl.fan_sub);
	unsubscribe_one(cl.alive_sub);
	for (size_t i = 0; i < cl.n_buckets; i++)
		for (struct interest *it = cl.buckets[i]; it; it = it->next)
			unsubscribe_one(it->sub);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += 2;
	pthread_mutex_lock(&cl.lock);
	while (subs_closing > 0)
		if (pthread_cond_timedwait(&cl.cond, &cl.lock, &ts))
			break;
	pthread_mutex_unlock(&cl.lock);
	for (size_t i = 0; i < cl.n_buckets; i++)
		for (struct interest *it = cl.buckets[i]; it; it = it->next) {
			natsSubscription_Destroy(it->sub);
			it->sub = NULL;
		}
}

/* At stop, after the loops and the connection: what is left. */
static void interest_free_all(void)
{
	struct hold *hd;

	while ((hd = cl.holds)) {
		cl.holds = hd->next;
		gw_op_destroy(hd->op);
		free(hd);
	}
	cl.holds_tail = NULL;
	for (size_t i = 0; i < cl.n_buckets; i++)
		while (cl.buckets[i]) {
			struct interest *it = cl.buckets[i];

			cl.buckets[i] = it->next;
			natsSubscription_Destroy(it->sub);
			free(it);
		}
	free(cl.buckets);
	cl.buckets = NULL;
	cl.n_buckets = cl.n_interests = 0;
	cl.dirty = NULL;
}

/* Any thread: op's result to its sender, as the bus's finish() does. */
static void release_join(gw_op_t *op)
{
	if (op->remote) {
		gw_cluster_reply(NULL, op);
		return;
	}
	op->is_reply = 1;
	gw_worker_post(gw_gateway_worker(cl.sh, op->from), &op->list);
}

static void on_fanout(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure);

/* The sender thread, outside the lock: one subscription made or ended.
 * 1 when a subscription was made. */
static int interest_apply(struct interest *it)
{
	char subject[SUBJECT_MAX];
	natsStatus s;

	if (!it->want && it->sub) {
		natsSubscription_Unsubscribe(it->sub);
		natsSubscription_Destroy(it->sub);
		it->sub = NULL;
		return 0;
	}
	if (!it->want || it->sub)
		return 0;
	if (chan_subject(subject, sizeof(subject), it->name, it->len))
		return 0;
	s = natsConnection_Subscribe(&it->sub, cl.nc, subject, on_fanout, NULL);
	if (s != NATS_OK) {
		it->sub = NULL;
		gw_log_limited(GW_LOG_WARN, 5000, "cluster: cannot subscribe to a channel: %s",
			       natsStatus_GetText(s));
		return 0;
	}
	return 1;
}

/* Under the lock (released meanwhile), on the sender thread: subscribes to
 * the channels that gained members on this node and unsubscribes from
 * those that lost their last, confirms the new subscriptions with one
 * flush (the server has them before any JOIN waiting for them is
 * answered), then answers those JOINs. */
static void interest_round(void)
{
	struct interest *todo = NULL, *it, *next;
	struct hold *ready, **tail;
	uint64_t round = ++cl.rounds_begun;
	int made = 0;

	/* Decided under the lock: a join from now on sees live == 0 for a
	 * channel about to be left, and waits for the next round. */
	for (it = cl.dirty; it; it = next) {
		next = it->dirty_next;
		it->dirty = 0;
		it->want = it->loops > 0;
		if (!it->want)
			it->live = 0;
		it->round_next = todo;
		todo = it;
	}
	cl.dirty = NULL;
	pthread_mutex_unlock(&cl.lock);
	for (it = todo; it; it = it->round_next)
		made += interest_apply(it);
	if (made && natsConnection_Status(cl.nc) == NATS_CONN_STATUS_CONNECTED) {
		natsStatus s = natsConnection_FlushTimeout(
			cl.nc, cl.timeout_ms < CONFIRM_MAX_MS ? cl.timeout_ms : CONFIRM_MAX_MS);

		if (s != NATS_OK)
			gw_log_limited(GW_LOG_WARN, 5000, "cluster: channel subscriptions not "
				       "confirmed by NATS: %s", natsStatus_GetText(s));
	}
	pthread_mutex_lock(&cl.lock);
	for (it = todo; it; it = next) {
		next = it->round_next;
		it->live = it->sub != NULL;
		if (!it->loops && !it->sub && !it->dirty)
			interest_remove(it);
	}
	ready = cl.holds;
	tail = &ready;
	while (*tail && (*tail)->need <= round)
		tail = &(*tail)->next;
	cl.holds = *tail;
	if (!cl.holds)
		cl.holds_tail = NULL;
	*tail = NULL;
	pthread_mutex_unlock(&cl.lock);
	while (ready) {
		struct hold *hd = ready;

		ready = hd->next;
		release_join(hd->op);
		free(hd);
	}
	pthread_mutex_lock(&cl.lock);
}

static void *sender_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&cl.lock);
	while (!cl.stopping) {
		struct out_msg *batch, *m;
		struct waiting *expired = NULL, *w;
		uint64_t now = gw_now_ms();

		if (now >= cl.next_hello) {
			say_alive();
			cl.next_hello = now + HELLO_MS;
		}
		batch = cl.out_head;
		cl.out_head = cl.out_tail = NULL;
		while (cl.w_head && cl.w_head->deadline <= now) {
			w = cl.w_head;
			waiting_unlink(w);
			w->next = expired;
			expired = w;
		}
		if (!batch && !expired && !cl.dirty && !cl.holds) {
			wait_for_work();
			continue;
		}
		pthread_mutex_unlock(&cl.lock);
		while ((m = batch)) {
			batch = m->next;
			publish(m);
			free(m);
		}
		/* The owner did not answer in time: gone, as far as anyone can tell. */
		while ((w = expired)) {
			expired = w->next;
			answer(w->op, 410, NULL, 0);
			free(w);
		}
		pthread_mutex_lock(&cl.lock);
		if (cl.dirty || cl.holds)
			interest_round();
	}
	pthread_mutex_unlock(&cl.lock);
	return NULL;
}

/* --- member counts across the cluster --- */

static void enqueue_waiting(struct out_msg *m, gw_op_t *op);

/* COUNT for a whole node: kind, the API mask (32 bytes, little-endian
 * words), the channel. */
static int forward_count(gw_op_t *op, const char *subject)
{
	size_t n = strlen(op->channel);
	struct out_msg *m = out_new(subject, 1 + 32 + n);
	unsigned char *p = m->data;

	*p++ = GW_OP_COUNT;
	for (int w = 0; w < 4; w++)
		for (int b = 0; b < 8; b++)
			*p++ = (unsigned char)(op->apis.bits[w] >> (8 * b));
	memcpy(p, op->channel, n);
	gw_buf_dispose(&op->data);
	enqueue_waiting(m, op);
	return 0;
}

/* LIST: kind, loop, cursor and limit (4 bytes each, big-endian), the API
 * mask, the channel (may be empty). The reply's body: count and next
 * cursor (8 hex digits each), then the items. */
#define LIST_HEAD (1 + 1 + 4 + 4 + 32)

/* Fan-out payload: kind, binary, the API mask (32 bytes, little-endian words),
 * the channel's length and name (none for a broadcast), the message. */
#define FAN_HEAD (2 + 32 + 1)

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * (3 - i)));
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int forward_list(gw_op_t *op, const char *subject)
{
	size_t n = strlen(op->channel);
	struct out_msg *m = out_new(subject, LIST_HEAD + n);
	unsigned char *p = m->data;

	p[0] = GW_OP_LIST;
	p[1] = (unsigned char)op->target.loop;
	put32(p + 2, op->cursor);
	put32(p + 6, op->limit);
	for (int w = 0; w < 4; w++)
		for (int b = 0; b < 8; b++)
			p[10 + 8 * w + b] = (unsigned char)(op->apis.bits[w] >> (8 * b));
	memcpy(p + LIST_HEAD, op->channel, n);
	gw_buf_dispose(&op->data);
	enqueue_waiting(m, op);
	return 0;
}

/* --- the wire format, decoded (cluster_wire.h) --- */

static void get_mask(const unsigned char *p, gw_api_mask_t *m)
{
	memset(m, 0, sizeof(*m));
	for (int w = 0; w < 4; w++)
		for (int b = 0; b < 8; b++)
			m->bits[w] |= (uint64_t)p[8 * w + b] << (8 * b);
}

/* n bytes at p as the message's channel: a valid name, or none when
 * allowed. */
static int take_channel(gw_cluster_msg_t *m, const unsigned char *p, size_t n, int none_ok)
{
	if (n ? !gw_chan_name_valid((const char *)p, n) : !none_ok)
		return -1;
	memcpy(m->channel, p, n);
	m->channel[n] = '\0';
	m->chan_len = n;
	return 0;
}

int gw_cluster_decode_op(const unsigned char *d, size_t len, gw_cluster_msg_t *m)
{
	memset(m, 0, sizeof(*m));
	if (!len)
		return -1;
	m->kind = d[0];
	switch (d[0]) {
	case OP_PROBE:
		return 0;
	case GW_OP_COUNT: /* the API mask, the channel */
		if (len < 1 + 32 || take_channel(m, d + 33, len - 33, 0))
			return -1;
		get_mask(d + 1, &m->apis);
		return 0;
	case GW_OP_LIST: /* loop, cursor, limit, the API mask, the channel */
		if (len < LIST_HEAD || take_channel(m, d + LIST_HEAD, len - LIST_HEAD, 1))
			return -1;
		m->loop = d[1];
		m->cursor = get32(d + 2);
		m->limit = get32(d + 6);
		if (m->limit > GW_CLUSTER_LIST_MAX)
			m->limit = GW_CLUSTER_LIST_MAX;
		get_mask(d + 10, &m->apis);
		return 0;
	case GW_OP_JOIN:
	case GW_OP_LEAVE: /* the ID, the channel */
		if (len < 1 + GW_CONNID_LEN ||
		    take_channel(m, d + 1 + GW_CONNID_LEN, len - 1 - GW_CONNID_LEN, 0))
			return -1;
		m->id = (const char *)d + 1;
		return 0;
	case GW_OP_POST:
	case GW_OP_GET:
	case GW_OP_DELETE: /* the ID, the message */
		if (len < 1 + GW_CONNID_LEN)
			return -1;
		m->id = (const char *)d + 1;
		m->body = d + 1 + GW_CONNID_LEN;
		m->body_len = len - 1 - GW_CONNID_LEN;
		return 0;
	default:
		return -1;
	}
}

int gw_cluster_decode_fanout(const unsigned char *d, size_t len, gw_cluster_msg_t *m)
{
	size_t n;

	memset(m, 0, sizeof(*m));
	if (len < FAN_HEAD)
		return -1;
	n = d[FAN_HEAD - 1];
	m->kind = d[0];
	/* A broadcast names no channel: its length byte must say so, or
	 * the name would be copied into a field that cannot hold it. */
	if (n > len - FAN_HEAD || (m->kind != GW_OP_PUBLISH && m->kind != GW_OP_BROADCAST) ||
	    take_channel(m, d + FAN_HEAD, n, m->kind == GW_OP_BROADCAST) ||
	    (m->kind == GW_OP_BROADCAST && n))
		return -1;
	m->binary = d[1] != 0;
	get_mask(d + 2, &m->apis);
	m->body = d + FAN_HEAD + n;
	m->body_len = len - FAN_HEAD - n;
	return 0;
}

static int hex8(const unsigned char *p, uint32_t *out)
{
	uint32_t v = 0;

	for (int i = 0; i < 8; i++) {
		int x = gw_http_hexval(p[i]);

		if (x < 0)
			return -1;
		v = v << 4 | (uint32_t)x;
	}
	*out = v;
	return 0;
}

int gw_cluster_decode_list_reply(const unsigned char *d, size_t len, uint32_t *count,
				 uint32_t *cursor, int *cut)
{
	uint32_t c;

	if (len < 16 || hex8(d, count) || hex8(d + 8, &c) || *count > GW_CLUSTER_LIST_MAX)
		return -1;
	*cut = (int)(c >> 31);
	*cursor = c & 0x7fffffffu;
	return 16;
}

size_t gw_cluster_page_bytes(void)
{
	int64_t max = cl.nc ? natsConnection_GetMaxPayload(cl.nc) : 0;

	/* The reply's status and head, and some room for NATS's own. */
	return max > 4096 ? (size_t)max - 1024 : 3072;
}

/* The owner's side: a page of one loop. 204: no such loop (past the last). */
static void serve_list(const char *reply, const gw_cluster_msg_t *m)
{
	gw_op_t *op;

	if (m->loop >= gw_gateway_workers(cl.sh)) {
		reply_status(reply, 204, NULL, 0);
		return;
	}
	op = gw_op_create_loop(GW_OP_LIST, m->loop);
	op->cursor = m->cursor;
	op->limit = m->limit;
	op->apis = m->apis;
	memcpy(op->channel, m->channel, m->chan_len + 1);
	op->remote = strdup(reply);
	if (!op->remote)
		abort();
	op->from = m->loop;
	op->is_reply = 0;
	gw_worker_post(gw_gateway_worker(cl.sh, m->loop), &op->list);
}

int gw_cluster_peers(uint32_t *out, size_t max)
{
	uint64_t now = gw_now_ms();
	size_t n = 0;

	if (!cl.on)
		return 0;
	for (uint32_t id = 1; id < 256 && n < max; id++) {
		uint64_t seen = __atomic_load_n(&cl.last_seen[id], __ATOMIC_RELAXED);

		if (id != cl.self && seen && now - seen < PEER_TTL_MS)
			out[n++] = id;
	}
	return (int)n;
}

uint32_t gw_cluster_next_node(uint32_t after)
{
	uint32_t peers[256];
	int n = gw_cluster_peers(peers, 256);

	if (!cl.on)
		return 0;
	for (uint32_t id = after + 1; id < 256; id++) {
		if (id == cl.self)
			return id;
		for (int i = 0; i < n; i++)
			if (peers[i] == id)
				return id;
	}
	return 0;
}

/* --- what arrives, checked --- */

static const char *const reject_why[GW_CLUSTER_REJECT_KINDS] = {
	"its MAC does not hold (not sealed with this --cluster-secret-file, or altered)",
	"its time is more than 30 s away from this node's clock (or it is a replay)",
	"a replay (its sequence is not past the sender's last)",
};

void gw_cluster_rejected(uint64_t out[GW_CLUSTER_REJECT_KINDS])
{
	for (int i = 0; i < GW_CLUSTER_REJECT_KINDS; i++)
		out[i] = __atomic_load_n(&cl.rejected[i], __ATOMIC_RELAXED);
}

/* The check before anything of msg is read: sealed with this cluster's key,
 * for this subject and reply and as a message of this type, from another
 * node, stamped within the clock window, and past its sender's last
 * sequence (NATS keeps each publisher's order and one thread delivers
 * here, so a genuine message is never behind). -1 or a reject kind. */
static int check(natsMsg *msg, int type, gw_cluster_env_t *env)
{
	int len = natsMsg_GetDataLength(msg);
	uint64_t now = gw_wall_ms(), at, last;

	if (len < 0 || gw_cluster_open(cl.mac, natsMsg_GetSubject(msg), natsMsg_GetReply(msg),
				       (const unsigned char *)natsMsg_GetData(msg), (size_t)len,
				       env) ||
	    env->type != type || !env->node)
		return GW_CLUSTER_REJECT_MAC;
	at = env->seq / 1000000u;
	if (at + CLOCK_WINDOW_MS < now || at > now + CLOCK_WINDOW_MS)
		return GW_CLUSTER_REJECT_STALE;
	/* NATS never echoes this node's own: one from "us" is a replay. */
	if (env->node == cl.self)
		return GW_CLUSTER_REJECT_REPLAY;
	last = __atomic_load_n(&cl.last_seq[env->node], __ATOMIC_ACQUIRE);
	do {
		if (env->seq <= last)
			return GW_CLUSTER_REJECT_REPLAY;
	} while (!__atomic_compare_exchange_n(&cl.last_seq[env->node], &last, env->seq, 0,
					      __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
	return -1;
}

/* check()'s verdict: 0 to go on; else counted, logged (rate-limited) and 1. */
static int refused(natsMsg *msg, int type, gw_cluster_env_t *env, const char *what)
{
	int r = check(msg, type, env);
	int len = natsMsg_GetDataLength(msg);
	const unsigned char *d = (const unsigned char *)natsMsg_GetData(msg);

	if (r < 0)
		return 0;
	__atomic_add_fetch(&cl.rejected[r], 1, __ATOMIC_RELAXED);
	/* The node a refused message claims to come from: a hint, no more. */
	if (type == GW_ENV_ALIVE && r == GW_CLUSTER_REJECT_MAC && len >= GW_CLUSTER_ENV_HEAD)
		gw_log_limited(GW_LOG_ERROR, 60000, "cluster: node %u runs with another "
			       "--cluster-secret-file: its connections cannot be reached from "
			       "this node, nor ours from it; it is left out of counts and listings",
			       (unsigned)d[2]);
	else
		gw_log_limited(GW_LOG_WARN, 10000, "cluster: %s from NATS (%d bytes, claiming "
			       "node %u) dropped: %s", what, len,
			       len >= GW_CLUSTER_ENV_HEAD ? (unsigned)d[2] : 0u, reject_why[r]);
	return 1;
}

/* A NATS thread: another node's "alive". */
static void on_alive(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	gw_cluster_env_t env;

	(void)nc;
	(void)sub;
	(void)closure;
	if (!refused(msg, GW_ENV_ALIVE, &env, "a heartbeat"))
		__atomic_store_n(&cl.last_seen[env.node], gw_now_ms(), __ATOMIC_RELAXED);
	natsMsg_Destroy(msg);
}

/* The owner's side: one COUNT per loop, summed; the last loop replies. */
struct count_agg {
	char *reply;
	uint32_t left;
	uint64_t total;
};

static void count_part_done(gw_worker_t *gw, gw_op_t *op)
{
	struct count_agg *agg = (struct count_agg *)(uintptr_t)op->token;
	char num[32];

	(void)gw;
	__atomic_add_fetch(&agg->total, op->count, __ATOMIC_RELAXED);
	gw_op_destroy(op);
	if (__atomic_sub_fetch(&agg->left, 1, __ATOMIC_ACQ_REL))
		return;
	snprintf(num, sizeof(num), "%llu",
		 (unsigned long long)__atomic_load_n(&agg->total, __ATOMIC_RELAXED));
	reply_status(agg->reply, 200, num, strlen(num));
	free(agg->reply);
	free(agg);
}

static void serve_count(const char *reply, const gw_cluster_msg_t *m)
{
	struct count_agg *agg;

	agg = calloc(1, sizeof(*agg));
	if (!agg || !(agg->reply = strdup(reply)))
		abort();
	agg->left = gw_gateway_workers(cl.sh);
	for (uint32_t i = 0; i < gw_gateway_workers(cl.sh); i++) {
		gw_op_t *op = gw_op_create_loop(GW_OP_COUNT, i);

		op->apis = m->apis;
		memcpy(op->channel, m->channel, m->chan_len + 1);
		op->token = (uint64_t)(uintptr_t)agg;
		op->done = count_part_done;
		op->from = i;
		op->is_reply = 0;
		gw_worker_post(gw_gateway_worker(cl.sh, i), &op->list);
	}
}

/* --- the sender's side --- */

int gw_cluster_forward(gw_worker_t *gw, gw_op_t *op)
{
	char subject[SUBJECT_MAX];
	struct out_msg *m;

	(void)gw;
	if (!cl.on || node_subject(subject, sizeof(subject), op->target.node))
		return -1;
	/* COUNT and LIST name a node (and a loop), not a connection. */
	if (op->kind == GW_OP_COUNT)
		return forward_count(op, subject);
	if (op->kind == GW_OP_LIST)
		return forward_list(op, subject);
	/* JOIN and LEAVE have no body: the channel's name travels in its place. */
	if (op->kind == GW_OP_JOIN || op->kind == GW_OP_LEAVE) {
		gw_buf_reset(&op->data);
		gw_buf_append_str(&op->data, op->channel);
	}
	m = out_new(subject, 1 + GW_CONNID_LEN + op->data.len);
	m->data[0] = (unsigned char)op->kind;
	memcpy(m->data + 1, op->id, GW_CONNID_LEN);
	if (op->data.len)
		memcpy(m->data + 1 + GW_CONNID_LEN, op->data.data, op->data.len);
	gw_buf_dispose(&op->data);
	enqueue_waiting(m, op);
	return 0;
}

/* Keeps op until its reply or deadline, and queues its request m. */
static void enqueue_waiting(struct out_msg *m, gw_op_t *op)
{
	struct waiting *w = calloc(1, sizeof(*w));

	if (!w)
		abort();
	w->op = op;
	pthread_mutex_lock(&cl.lock);
	if (cl.stopping) {
		/* Only at exit, after the loops: nobody waits for op. */
		pthread_mutex_unlock(&cl.lock);
		free(m);
		free(w);
		gw_op_destroy(op);
		return;
	}
	w->seq = ++cl.next_seq;
	w->deadline = gw_now_ms() + (uint64_t)cl.timeout_ms;
	snprintf(m->reply, sizeof(m->reply), "%s.%llu", cl.inbox, (unsigned long long)w->seq);
	m->seq = w->seq;
	m->type = GW_ENV_OP;
	m->now_or_never = 1;
	w->prev = cl.w_tail;
	if (cl.w_tail)
		cl.w_tail->next = w;
	else
		cl.w_head = w;
	cl.w_tail = w;
	out_push(m);
	pthread_mutex_unlock(&cl.lock);
}

/* A NATS thread: the owner's answer (or NATS's "no responders": the
 * owner has left). A reply after the deadline finds nothing. */
static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	const char *subject = natsMsg_GetSubject(msg), *dot = strrchr(subject, '.');
	const unsigned char *data = NULL;
	int len = 0, status = 410, gone = natsMsg_IsNoResponders(msg);
	unsigned long long seq = dot ? strtoull(dot + 1, NULL, 10) : 0;
	gw_cluster_env_t env;
	struct waiting *w;

	(void)nc;
	(void)sub;
	(void)closure;
	/* NATS's own "no responders" is not sealed (it says 410, as the
	 * timeout would). A reply that fails its check is as if none came. */
	if (!gone) {
		if (refused(msg, GW_ENV_REPLY, &env, "a reply"))
			goto done;
		data = env.payload;
		len = (int)env.len;
	}
	pthread_mutex_lock(&cl.lock);
	for (w = cl.w_head; w && w->seq != seq; w = w->next)
		;
	if (w)
		waiting_unlink(w);
	pthread_mutex_unlock(&cl.lock);
	if (!w)
		goto done;
	if (!gone && len >= 3 && data[0] >= '1' && data[0] <= '9' &&
	    data[1] >= '0' && data[1] <= '9' && data[2] >= '0' && data[2] <= '9') {
		status = (data[0] - '0') * 100 + (data[1] - '0') * 10 + (data[2] - '0');
		answer(w->op, status, data + 3, (size_t)len - 3);
	} else {
		answer(w->op, status, NULL, 0);
	}
	free(w);
done:
	natsMsg_Destroy(msg);
}

/* --- the owner's side --- */

/* A NATS thread: an operation for one of this node's connections, handed
 * to the loop that owns it; its result goes back by gw_cluster_reply. */
static void on_op(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	const char *reply = natsMsg_GetReply(msg);
	gw_cluster_env_t env;
	gw_cluster_msg_t m;
	gw_op_t *op = NULL;

	(void)nc;
	(void)sub;
	(void)closure;
	if (!reply || !reply[0])
		goto done;
	/* "Is this node ID taken?" comes from a node still starting (it sends
	 * it by natsConnection_Request, whose inbox it cannot seal for): it is
	 * answered unsealed, which no node takes for a reply of its own. */
	if (natsMsg_GetDataLength(msg) == 1 && natsMsg_GetData(msg)[0] == OP_PROBE) {
		reply_raw(reply, "200");
		goto done;
	}
	if (refused(msg, GW_ENV_OP, &env, "an operation"))
		goto done;
	if (gw_cluster_decode_op(env.payload, env.len, &m)) {
		reply_status(reply, 410, NULL, 0);
		goto done;
	}
	if (m.kind == OP_PROBE) {
		reply_status(reply, 200, NULL, 0);
		goto done;
	}
	if (m.kind == GW_OP_COUNT) {
		serve_count(reply, &m);
		goto done;
	}
	if (m.kind == GW_OP_LIST) {
		serve_list(reply, &m);
		goto done;
	}
	/* The sender checked the MAC; so does the owner, whoever sent it. */
	op = gw_op_create((enum gw_op_kind)m.kind, m.id, GW_CONNID_LEN);
	if (!op || op->target.node != cl.self || op->target.loop >= gw_gateway_workers(cl.sh)) {
		gw_op_destroy(op);
		reply_status(reply, 410, NULL, 0);
		goto done;
	}
	op->remote = strdup(reply);
	if (!op->remote)
		abort();
	memcpy(op->channel, m.channel, m.chan_len + 1);
	if (m.body_len)
		gw_buf_append(&op->data, m.body, m.body_len);
	op->from = op->target.loop;
	op->is_reply = 0;
	gw_worker_post(gw_gateway_worker(cl.sh, op->target.loop), &op->list);
done:
	natsMsg_Destroy(msg);
}

void gw_cluster_reply(gw_worker_t *gw, gw_op_t *op)
{
	(void)gw;
	if (!cl.on)
		goto done;
	if (op->status < 300 && op->kind == GW_OP_LIST) {
		char head[17];
		gw_buf_t b;

		/* The cursor's top bit: the page was cut to fit (skipped, bus.c). */
		snprintf(head, sizeof(head), "%08x%08x", (unsigned)op->count,
			 (op->cursor & 0x7fffffffu) | (op->skipped ? 0x80000000u : 0));
		gw_buf_init(&b);
		gw_buf_append(&b, head, 16);
		gw_buf_append(&b, op->data.data ? op->data.data : "", op->data.len);
		reply_status(op->remote, op->status, b.data, b.len);
		gw_buf_dispose(&b);
	} else if (op->status < 300) {
		reply_status(op->remote, op->status, op->data.data, op->data.len);
	} else {
		gw_buf_reset(&op->data);
		gw_buf_append_str(&op->data, op->error_type ? op->error_type : "");
		if (op->message) {
			gw_buf_append_char(&op->data, '\n');
			gw_buf_append_str(&op->data, op->message);
		}
		reply_status(op->remote, op->status, op->data.data, op->data.len);
	}
done:
	gw_op_destroy(op);
}

/* --- channel publish and broadcast, to every other node --- */


void gw_cluster_fanout(int kind, const char *channel, size_t chan_len, const void *data,
		       size_t len, int binary, const gw_api_mask_t *apis)
{
	char subject[SUBJECT_MAX];
	struct out_msg *m;
	unsigned char *p;

	/* A publish goes to the channel's own subject: only the nodes with
	 * members subscribe to it. A broadcast reaches every node. */
	if (!cl.on || chan_len > GW_CHAN_NAME_MAX ||
	    (kind == GW_OP_PUBLISH ? chan_subject(subject, sizeof(subject), channel, chan_len)
				   : gw_cluster_subject(subject, sizeof(subject), "fanout")))
		return;
	m = out_new(subject, FAN_HEAD + chan_len + len);
	p = m->data;
	*p++ = (unsigned char)kind;
	*p++ = binary ? 1 : 0;
	for (int w = 0; w < 4; w++)
		for (int b = 0; b < 8; b++)
			*p++ = (unsigned char)(apis->bits[w] >> (8 * b));
	*p++ = (unsigned char)chan_len;
	memcpy(p, channel, chan_len);
	if (len)
		memcpy(p + chan_len, data, len);
	m->type = GW_ENV_FANOUT;
	m->now_or_never = 1;
	out_enqueue(m);
}

/* The loop ran it; nobody waits for the count. */
static void fanout_done(gw_worker_t *gw, gw_op_t *op)
{
	(void)gw;
	gw_op_destroy(op);
}

/* A NATS thread: another node's publish or broadcast, run on each loop of
 * this one. Every subscription shares one delivery thread (make_options),
 * which keeps each publisher's order across channels and the broadcast
 * subject; NATS does not echo a node's own publishes (SetNoEcho). */
static void on_fanout(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	gw_cluster_env_t env;
	gw_cluster_msg_t m;

	(void)nc;
	(void)sub;
	(void)closure;
	if (refused(msg, GW_ENV_FANOUT, &env, "a channel publish or broadcast"))
		goto done;
	if (gw_cluster_decode_fanout(env.payload, env.len, &m)) {
		gw_log_limited(GW_LOG_WARN, 10000, "cluster: a malformed channel publish or "
			       "broadcast from NATS (%zu bytes) was dropped", env.len);
		goto done;
	}
	for (uint32_t i = 0; i < gw_gateway_workers(cl.sh); i++) {
		gw_op_t *op = gw_op_create_loop((enum gw_op_kind)m.kind, i);

		op->binary = m.binary;
		op->apis = m.apis;
		memcpy(op->channel, m.channel, m.chan_len + 1);
		gw_buf_append(&op->data, m.body, m.body_len);
		op->from = i;
		op->is_reply = 0;
		op->done = fanout_done;
		gw_worker_post(gw_gateway_worker(cl.sh, i), &op->list);
	}
done:
	natsMsg_Destroy(msg);
}

/* --- start and stop --- */

static void on_disconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	(void)closure;
	if (__atomic_load_n(&cl.leaving, __ATOMIC_ACQUIRE))
		return;
	gw_log(GW_LOG_WARN, "cluster: lost NATS; reconnecting (operations for other "
	       "nodes answer 410 meanwhile)");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	(void)closure;
	gw_log(GW_LOG_INFO, "cluster: NATS reconnected");
}

static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus s,
			   void *closure)
{
	(void)nc;
	(void)sub;
	(void)closure;
	gw_log_limited(GW_LOG_WARN, 5000, "cluster: NATS: %s", natsStatus_GetText(s));
}

static int valid_name(const char *s)
{
	size_t n = strlen(s);

	if (!n || n >= sizeof(cl.name))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return 0;
	return 1;
}

static natsStatus make_options(natsOptions **out, const gw_cluster_opts_t *o)
{
	natsOptions *no = NULL;
	natsStatus s = natsOptions_Create(&no);

	if (s == NATS_OK)
		s = natsOptions_SetURL(no, o->url);
	if (s == NATS_OK)
		s = natsOptions_SetName(no, "wsgate");
	/* Keep trying for ever: a NATS restart must not need a gateway
	 * restart. Meanwhile publishes wait in the reconnect buffer, and time
	 * out like any other. */
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(no, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(no, 250);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectBufSize(no, 8 << 20);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(no, 2000);
	/* Written at once by the sender thread (its own, so a slow socket
	 * blocks no loop), not left to the client's flusher, which waits a
	 * millisecond to batch: two of those per forwarded operation. */
	if (s == NATS_OK)
		s = natsOptions_SetSendAsap(no, true);
	/* A node's own publishes are delivered by its own loops already. */
	if (s == NATS_OK)
		s = natsOptions_SetNoEcho(no, true);
	/* One delivery thread for all subscriptions (a channel's each, the
	 * operations', the broadcasts'), not one thread per subscription: the
	 * messages of one publisher are handed to the loops in the order they
	 * came, whatever their channel, and a node in 10,000 channels does not
	 * run 10,000 threads. */
	if (s == NATS_OK)
		s = natsOptions_UseGlobalMessageDelivery(no, true);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(no, 2000);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(no, 2);
	if (s == NATS_OK && o->creds)
		s = natsOptions_SetUserCredentialsFromFiles(no, o->creds, NULL);
	if (s == NATS_OK && (o->ca || o->cert))
		s = natsOptions_SetSecure(no, true);
	if (s == NATS_OK && o->ca)
		s = natsOptions_LoadCATrustedCertificates(no, o->ca);
	if (s == NATS_OK && o->cert)
		s = natsOptions_LoadCertificatesChain(no, o->cert, o->key ? o->key : o->cert);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(no, on_disconnected, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(no, on_reconnected, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(no, on_async_error, NULL);
	if (s != NATS_OK)
		natsOptions_Destroy(no);
	else
		*out = no;
	return s;
}

/* 1: another node answers for id; 0: nobody does. */
static int node_taken(uint32_t id)
{
	char subject[SUBJECT_MAX];
	natsMsg *reply = NULL;
	natsStatus s;

	node_subject(subject, sizeof(subject), id);
	s = natsConnection_Request(&reply, cl.nc, subject, "?", 1, PROBE_TIMEOUT_MS);
	natsMsg_Destroy(reply);
	return s != NATS_NO_RESPONDERS;
}

static int pick_node(int wanted, char *err, size_t errlen)
{
	if (wanted) {
		if (node_taken((uint32_t)wanted)) {
			snprintf(err, errlen, "--node-id %d: another node of cluster \"%s\" "
				 "holds it (or does not answer)", wanted, cl.name);
			return -1;
		}
		cl.self = (uint32_t)wanted;
		return 0;
	}
	for (int i = 0; i < PROBE_TRIES; i++) {
		unsigned char r;
		uint32_t id;

		if (RAND_bytes(&r, 1) != 1)
			break;
		id = 1 + r % 255;
		if (!node_taken(id)) {
			cl.self = id;
			return 0;
		}
	}
	snprintf(err, errlen, "no free node ID found in cluster \"%s\" (pass --node-id)",
		 cl.name);
	return -1;
}

static void nats_fail(char *err, size_t errlen, const char *what, natsStatus s)
{
	const char *last = nats_GetLastError(NULL);

	snprintf(err, errlen, "cluster: %s: %s%s%s", what, natsStatus_GetText(s),
		 last && last[0] ? ": " : "", last ? last : "");
}

int gw_cluster_start(gw_gateway_t *g, const gw_cluster_opts_t *o, char *err, size_t errlen)
{
	char subject[SUBJECT_MAX], pattern[SUBJECT_MAX];
	pthread_condattr_t ca;
	natsOptions *no = NULL;
	natsInbox *inbox = NULL;
	natsStatus s;

	if (!valid_name(o->name)) {
		snprintf(err, errlen, "--cluster-name: expected letters, digits, '-' or '_' "
			 "(at most %zu)", sizeof(cl.name) - 1);
		return -1;
	}
	snprintf(cl.name, sizeof(cl.name), "%s", o->name);
	cl.sh = g;
	cl.timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : GW_CLUSTER_DEFAULT_TIMEOUT_MS;
	if (RAND_bytes((unsigned char *)&cl.epoch, sizeof(cl.epoch)) != 1) {
		snprintf(err, errlen, "cluster: no random bytes for the ID epoch");
		return -1;
	}
	for (size_t i = 0; i < sizeof(cl.last_seq) / sizeof(cl.last_seq[0]); i++)
		cl.last_seq[i] = (gw_wall_ms() - START_SKEW_MS) * 1000000u;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cl.cond, &ca);
	pthread_condattr_destroy(&ca);
	s = nats_SetMessageDeliveryPoolSize(1);
	if (s == NATS_OK)
		s = make_options(&no, o);
	if (s != NATS_OK) {
		nats_fail(err, errlen, "NATS options", s);
		return -1;
	}
	s = natsConnection_Connect(&cl.nc, no);
	natsOptions_Destroy(no);
	if (s != NATS_OK) {
		nats_fail(err, errlen, o->url, s);
		goto fail;
	}
	s = natsInbox_Create(&inbox);
	if (s == NATS_OK) {
		snprintf(cl.inbox, sizeof(cl.inbox), "%s", (const char *)inbox);
		natsInbox_Destroy(inbox);
		snprintf(pattern, sizeof(pattern), "%s.*", cl.inbox);
		s = natsConnection_Subscribe(&cl.reply_sub, cl.nc, pattern, on_reply, NULL);
	}
	if (s != NATS_OK) {
		nats_fail(err, errlen, "subscribe", s);
		goto fail;
	}
	if (pick_node(o->node_id, err, errlen))
		goto fail;
	gw_connid_set_node(cl.self, cl.epoch); /* the connection IDs' node */
	node_subject(subject, sizeof(subject), cl.self);
	s = natsConnection_Subscribe(&cl.ops_sub, cl.nc, subject, on_op, NULL);
	if (s == NATS_OK && gw_cluster_subject(subject, sizeof(subject), "fanout"))
		s = NATS_ERR;
	if (s == NATS_OK)
		s = natsConnection_Subscribe(&cl.fan_sub, cl.nc, subject, on_fanout, NULL);
	if (s == NATS_OK && gw_cluster_subject(subject, sizeof(subject), "alive"))
		s = NATS_ERR;
	if (s == NATS_OK)
		s = natsConnection_Subscribe(&cl.alive_sub, cl.nc, subject, on_alive, NULL);
	if (s == NATS_OK)
		s = natsConnection_FlushTimeout(cl.nc, 2000);
	if (s != NATS_OK) {
		nats_fail(err, errlen, "subscribe", s);
		goto fail;
	}
	cl.stopping = 0;
	if (pthread_create(&cl.thread, NULL, sender_main, NULL)) {
		snprintf(err, errlen, "cluster: cannot start a thread");
		goto fail;
	}
	cl.thread_started = 1;
	cl.on = 1;
	return 0;
fail:
	__atomic_store_n(&cl.leaving, 1, __ATOMIC_RELEASE);
	cl.self = 0;
	cl.epoch = 0;
	gw_connid_set_node(0, 0);
	unsubscribe_all();
	natsSubscription_Destroy(cl.ops_sub);
	natsSubscription_Destroy(cl.reply_sub);
	natsSubscription_Destroy(cl.fan_sub);
	natsSubscription_Destroy(cl.alive_sub);
	cl.ops_sub = cl.reply_sub = cl.fan_sub = cl.alive_sub = NULL;
	natsConnection_Destroy(cl.nc);
	cl.nc = NULL;
	nats_CloseAndWait(5000);
	pthread_cond_destroy(&cl.cond);
	return -1;
}

void gw_cluster_stop(void)
{
	struct out_msg *m;
	struct waiting *w;

	if (!cl.on)
		return;
	pthread_mutex_lock(&cl.lock);
	cl.stopping = 1;
	pthread_cond_signal(&cl.cond);
	pthread_mutex_unlock(&cl.lock);
	if (cl.thread_started)
		pthread_join(cl.thread, NULL);
	cl.thread_started = 0;
	/* No callback runs once the library has closed. */
	__atomic_store_n(&cl.leaving, 1, __ATOMIC_RELEASE);
	unsubscribe_all();
	natsConnection_Close(cl.nc);
	natsSubscription_Destroy(cl.ops_sub);
	natsSubscription_Destroy(cl.reply_sub);
	natsSubscription_Destroy(cl.fan_sub);
	natsSubscription_Destroy(cl.alive_sub);
	natsConnection_Destroy(cl.nc);
	cl.ops_sub = cl.reply_sub = cl.fan_sub = cl.alive_sub = NULL;
	cl.nc = NULL;
	nats_CloseAndWait(5000);
	cl.on = 0;
	while ((m = cl.out_head)) {
		cl.out_head = m->next;
		free(m);
	}
	cl.out_tail = NULL;
	while ((w = cl.w_head)) {
		waiting_unlink(w);
		gw_op_destroy(w->op);
		free(w);
	}
	interest_free_all();
	pthread_cond_destroy(&cl.cond);
}
