#define _GNU_SOURCE
/* The vhosts of one event loop (vhosts.h). */
#include "vhosts.h"
#include "core.h" /* gw_now_ms */

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SUBPROTOCOLS 64
#define MAX_FIXED 2
/* A vhost's unix socket path: the private folder (under 64) and a number. */
#define IFACE_LEN 96

/* Subprotocol vhosts: a fixed table, each entry counted by the connections
 * that use it; an unused entry is recycled for a new name, so names a
 * client chooses can never exhaust it. */
struct subproto {
	char name[64];
	struct lws_protocols protos[2];
	struct lws_vhost *vh;
	unsigned refs;
	int backend_chosen; /* a $connect answer named it */
	uint64_t last_used;
	char iface[IFACE_LEN]; /* its vhost keeps a pointer to it */
};

/* One allocation that never moves: libwebsockets points into it (socket
 * paths, protocol arrays) until the context is destroyed. */
struct gw_vhosts {
	struct lws_context *ctx;
	uint32_t worker;
	struct subproto subprotos[MAX_SUBPROTOCOLS];
	size_t n_subprotos;
	char sockdir[64]; /* private folder of the vhosts' unix sockets */
	char fixed_iface[MAX_FIXED][IFACE_LEN];
	unsigned n_fixed;
	unsigned vhost_seq; /* makes each vhost's socket path unique */
};

gw_vhosts_t *gw_vhosts_create(struct lws_context *ctx, uint32_t worker)
{
	gw_vhosts_t *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->ctx = ctx;
	v->worker = worker;
	return v;
}

void gw_vhosts_destroy(gw_vhosts_t *v)
{
	if (!v)
		return;
	if (v->sockdir[0])
		rmdir(v->sockdir);
	free(v);
}

/* libwebsockets re-binds an HTTP request to the first vhost sharing its
 * listen port unless the Host header names another: vhosts that only
 * receive adopted sockets would all share one port and steal each other's
 * requests. A vhost listening on a unix socket has port 0, which turns that
 * re-binding off. The socket is created in a private folder (0700) whose
 * entries are removed at once: it exists, but nothing can reach it (an
 * abstract socket was reachable by any process of the namespace). */
static const lws_retry_bo_t no_validity = { .secs_since_valid_ping = 0,
					     .secs_since_valid_hangup = 0 };

static struct lws_vhost *make_vhost(gw_vhosts_t *v, const char *name,
				    const struct lws_protocols *protos,
				    char iface[IFACE_LEN])
{
	struct lws_context_creation_info info;
	struct lws_vhost *vh;

	memset(&info, 0, sizeof(info));
	info.vhost_name = name;
	if (!v->sockdir[0]) {
		snprintf(v->sockdir, sizeof(v->sockdir), "/tmp/wsgate-%d-%u-XXXXXX",
			 (int)getpid(), v->worker);
		if (!mkdtemp(v->sockdir)) {
			v->sockdir[0] = '\0';
			return NULL;
		}
	}
	/* libwebsockets keeps the iface pointer (not a copy) for the life of
	 * the vhost, compares it with its siblings' when one is destroyed
	 * (equal paths on port 0 count as a shared listener, and handing it
	 * over asserts), and unlinks it at the end: so the path lives in the
	 * owner's table and is unique to the vhost. */
	snprintf(iface, IFACE_LEN, "%s/%u", v->sockdir, ++v->vhost_seq);
	info.iface = iface;
	info.port = 0;
	info.protocols = protos;
	/* No libwebsockets validity timers (pings, hang-up after silence): the
	 * gateway keeps its own idle and duration deadlines on its wheel, and
	 * libwebsockets 4.1 kept one timer per connection in a sorted list
	 * walked at every insert, which made each new connection cost
	 * O(open connections) (half the samples at 10k connections). */
	info.retry_and_idle_policy = &no_validity;
	info.options = LWS_SERVER_OPTION_UNIX_SOCK |
		       LWS_SERVER_OPTION_VALIDATE_UTF8;
	vh = lws_create_vhost(v->ctx, &info);
	unlink(iface);
	return vh;
}

struct lws_vhost *gw_vhosts_add(gw_vhosts_t *v, const char *name,
				const struct lws_protocols *protos)
{
	if (v->n_fixed == MAX_FIXED)
		return NULL;
	return make_vhost(v, name, protos, v->fixed_iface[v->n_fixed++]);
}

static int proto_token(const char *proto)
{
	/* RFC 6455 subprotocol names are tokens. */
	if (!*proto || strlen(proto) > 63)
		return 0;
	for (const char *p = proto; *p; p++)
		if (*p <= 32 || *p >= 127 || strchr("()<>@,;:\\\"/[]?={}", *p))
			return 0;
	return 1;
}

struct lws_vhost *gw_vhosts_subprotocol_get(gw_vhosts_t *v, const char *proto,
					     const struct lws_protocols *tmpl,
					     int client_chosen)
{
	struct subproto *sp = NULL;
	size_t client_held = 0;

	if (!proto_token(proto))
		return NULL;
	for (size_t i = 0; i < v->n_subprotos; i++)
		if (v->subprotos[i].vh && !strcmp(v->subprotos[i].name, proto)) {
			sp = &v->subprotos[i];
			goto found;
		}
	/* Names only a client chose may hold at most half the table, so that
	 * clients holding connections cannot lock out the names backends
	 * choose. */
	for (size_t i = 0; i < v->n_subprotos; i++)
		client_held += v->subprotos[i].refs && !v->subprotos[i].backend_chosen;
	if (client_chosen && client_held >= MAX_SUBPROTOCOLS / 2)
		return NULL;
	if (v->n_subprotos < MAX_SUBPROTOCOLS) {
		sp = &v->subprotos[v->n_subprotos];
	} else {
		/* Recycle the entry unused for longest. */
		for (size_t i = 0; i < v->n_subprotos; i++) {
			struct subproto *c = &v->subprotos[i];

			if (!c->refs && (!sp || c->last_used < sp->last_used))
				sp = c;
		}
		if (!sp)
			return NULL;
		if (sp->vh)
			lws_vhost_destroy(sp->vh);
		sp->vh = NULL;
	}
	snprintf(sp->name, sizeof(sp->name), "%s", proto);
	sp->protos[0] = *tmpl;
	sp->protos[0].name = sp->name;
	memset(&sp->protos[1], 0, sizeof(sp->protos[1]));
	sp->refs = 0;
	sp->backend_chosen = 0;
	sp->vh = make_vhost(v, sp->name, sp->protos, sp->iface);
	if (!sp->vh) {
		/* The entry stays empty (and first to be recycled); entries
		 * never move, since their vhosts point into them. */
		sp->name[0] = '\0';
		sp->last_used = 0;
		if ((size_t)(sp - v->subprotos) == v->n_subprotos)
			v->n_subprotos++;
		return NULL;
	}
	if ((size_t)(sp - v->subprotos) == v->n_subprotos)
		v->n_subprotos++;
found:
	sp->backend_chosen |= !client_chosen;
	sp->refs++;
	sp->last_used = gw_now_ms();
	return sp->vh;
}

void gw_vhosts_subprotocol_put(gw_vhosts_t *v, struct lws_vhost *vh)
{
	for (size_t i = 0; i < v->n_subprotos; i++)
		if (v->subprotos[i].vh == vh && v->subprotos[i].refs) {
			v->subprotos[i].refs--;
			v->subprotos[i].last_used = gw_now_ms();
			return;
		}
}

/* The opaque user data of a connection from the gateway listener. */
static const char from_gateway;

void gw_vhosts_mark_from_gateway(struct lws *wsi)
{
	lws_set_opaque_user_data(wsi, (void *)&from_gateway);
}

int gw_vhosts_from_gateway(struct lws *wsi)
{
	return lws_get_opaque_user_data(wsi) == &from_gateway;
}
