/* cluster.c: a channel's name as one NATS subject token (issue 13,
 * channel interest). Any bytes in, one valid token out, and different
 * names never share a token: the channel grammar (channel.h) is narrower
 * today, but the subject must never depend on it. */
#include "unit.h"

#include <stdlib.h>

#include "channel.h"
#include "cluster.h"
#include "cluster_wire.h"

static int token(const char *name, size_t len, char *out, size_t size)
{
	return gw_cluster_chan_token(name, len, out, size);
}

/* A NATS subject token: not empty, no '.', no wildcard, no blank or
 * control byte, printable ASCII only. */
static int valid_token(const char *t)
{
	if (!*t)
		return 0;
	for (; *t; t++)
		if (*t == '.' || *t == '*' || *t == '>' || (unsigned char)*t <= ' ' ||
		    (unsigned char)*t >= 0x7f)
			return 0;
	return 1;
}

static void test_token_shapes(void)
{
	char out[3 * GW_CHAN_NAME_MAX + 1];

	CHECK_INT_EQ(token("room-1", 6, out, sizeof(out)), 6);
	CHECK_STR_EQ(out, "room-1");
	CHECK_INT_EQ(token("a_b:C9", 6, out, sizeof(out)), 6);
	CHECK_STR_EQ(out, "a_b:C9");
	CHECK(token("a.b", 3, out, sizeof(out)) > 0);
	CHECK_STR_EQ(out, "a%2Eb");
	token("*", 1, out, sizeof(out));
	CHECK_STR_EQ(out, "%2A");
	token(">", 1, out, sizeof(out));
	CHECK_STR_EQ(out, "%3E");
	token("a b", 3, out, sizeof(out));
	CHECK_STR_EQ(out, "a%20b");
	token("%2E", 3, out, sizeof(out));
	CHECK_STR_EQ(out, "%252E"); /* the escape itself is escaped */
	token("caf\xc3\xa9", 5, out, sizeof(out));
	CHECK_STR_EQ(out, "caf%C3%A9");
	token("a\0b", 3, out, sizeof(out));
	CHECK_STR_EQ(out, "a%00b");
	/* Empty, or no room: refused, never cut. */
	CHECK_INT_EQ(token("", 0, out, sizeof(out)), -1);
	CHECK_INT_EQ(token("abc", 3, out, 3), -1);
	CHECK_INT_EQ(token("abc", 3, out, 4), 3);
	CHECK_INT_EQ(token("a.", 2, out, 4), -1);
	CHECK_INT_EQ(token("a.", 2, out, 5), 4);
}

/* The longest name of the worst bytes fits the documented bound. */
static void test_token_bound(void)
{
	char name[GW_CHAN_NAME_MAX], out[3 * GW_CHAN_NAME_MAX + 1];

	memset(name, '.', sizeof(name));
	CHECK_INT_EQ(token(name, sizeof(name), out, sizeof(out)), 3 * GW_CHAN_NAME_MAX);
	CHECK(valid_token(out));
}

/* Every name of up to two bytes (65,793 names): valid tokens, all
 * different; names of the channel grammar among them are accepted. */
static void test_token_injective(void)
{
	static char seen[256 * 256 + 256 + 1][7];
	size_t n = 0, dup = 0, bad = 0;

	for (int len = 1; len <= 2; len++)
		for (int v = 0; v < (len == 1 ? 256 : 65536); v++) {
			char name[2] = { (char)(v & 0xff), (char)(v >> 8) };

			if (token(name, (size_t)len, seen[n], sizeof(seen[n])) < 0 ||
			    !valid_token(seen[n]))
				bad++;
			n++;
		}
	/* Sorted, neighbours differ. */
	qsort(seen, n, sizeof(seen[0]), (int (*)(const void *, const void *))strcmp);
	for (size_t i = 1; i < n; i++)
		dup += !strcmp(seen[i - 1], seen[i]);
	CHECK_INT_EQ(bad, 0);
	CHECK_INT_EQ(dup, 0);
	CHECK_INT_EQ(n, 256 + 65536);
}

/* The seal (cluster_seal.c): opens to what was sealed, and not with
 * another key, on another subject or reply, or with any byte changed. */
static void test_seal(void)
{
	static const char sa[] = "a cluster secret that is long enough";
	static const char sb[] = "another cluster secret, long too";
	gw_cluster_mac_t *a = gw_cluster_mac_new((const unsigned char *)sa, strlen(sa));
	gw_cluster_mac_t *b = gw_cluster_mac_new((const unsigned char *)sb, strlen(sb));
	unsigned char msg[GW_CLUSTER_ENV_HEAD + 5];
	gw_cluster_env_t env;
	int flips = 0;

	CHECK(a && b);
	memcpy(msg + GW_CLUSTER_ENV_HEAD, "hello", 5);
	CHECK_INT_EQ(gw_cluster_seal(a, "wsgate.x.node.1.op", "_INBOX.y.7", GW_ENV_OP, 3,
				     0x0102030405060708ull, msg, 5), 0);
	CHECK_INT_EQ(gw_cluster_open(a, "wsgate.x.node.1.op", "_INBOX.y.7", msg, sizeof(msg),
				     &env), 0);
	CHECK_INT_EQ(env.type, GW_ENV_OP);
	CHECK_INT_EQ(env.node, 3);
	CHECK(env.seq == 0x0102030405060708ull);
	CHECK_MEM_EQ(env.payload, env.len, "hello", 5);
	CHECK_INT_EQ(gw_cluster_open(b, "wsgate.x.node.1.op", "_INBOX.y.7", msg, sizeof(msg), &env), -1);
	CHECK_INT_EQ(gw_cluster_open(a, "wsgate.x.node.2.op", "_INBOX.y.7", msg, sizeof(msg), &env), -1);
	CHECK_INT_EQ(gw_cluster_open(a, "wsgate.x.node.1.op", "_INBOX.y.8", msg, sizeof(msg), &env), -1);
	CHECK_INT_EQ(gw_cluster_open(a, "wsgate.x.node.1.op", NULL, msg, sizeof(msg), &env), -1);
	CHECK_INT_EQ(gw_cluster_open(a, "wsgate.x.node.1.op", "_INBOX.y.7", msg, sizeof(msg) - 1, &env), -1);
	for (size_t i = 0; i < sizeof(msg); i++) {
		msg[i] ^= 0x20;
		flips += gw_cluster_open(a, "wsgate.x.node.1.op", "_INBOX.y.7", msg, sizeof(msg), &env) == -1;
		msg[i] ^= 0x20;
	}
	CHECK_INT_EQ(flips, (int)sizeof(msg));
	gw_cluster_mac_free(a);
	gw_cluster_mac_free(b);
}

int main(void)
{
	RUN(test_seal);
	RUN(test_token_shapes);
	RUN(test_token_bound);
	RUN(test_token_injective);
	UNIT_MAIN_END();
}
