/* lwsecho: a bare libwebsockets echo server, the ceiling for wsgate's
 * figures. One thread, default per-connection buffer sizes, no subprotocol
 * needed (the first protocol is the vhost default), like lws's
 * minimal-ws-server examples.
 *
 *   lwsecho [--port 7681] [--host 127.0.0.1] */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct msg {
	struct msg *next;
	size_t len;
	int binary;
	unsigned char buf[]; /* LWS_PRE + payload */
};

struct pss {
	struct msg *head, *tail;
	unsigned char *frag;
	size_t flen;
};

static volatile int interrupted;

static int cb_echo(struct lws *wsi, enum lws_callback_reasons reason, void *user,
		   void *in, size_t len)
{
	struct pss *pss = user;
	struct msg *m;

	switch (reason) {
	case LWS_CALLBACK_RECEIVE:
		if (!lws_is_first_fragment(wsi) || !lws_is_final_fragment(wsi) || pss->flen) {
			unsigned char *f = realloc(pss->frag, pss->flen + len + 1);

			if (!f)
				return -1;
			pss->frag = f;
			memcpy(f + pss->flen, in, len);
			pss->flen += len;
			if (!lws_is_final_fragment(wsi))
				return 0;
			in = pss->frag;
			len = pss->flen;
		}
		m = malloc(sizeof(*m) + LWS_PRE + len);
		if (!m)
			return -1;
		m->next = NULL;
		m->len = len;
		m->binary = lws_frame_is_binary(wsi);
		memcpy(m->buf + LWS_PRE, in, len);
		pss->flen = 0;
		if (pss->tail)
			pss->tail->next = m;
		else
			pss->head = m;
		pss->tail = m;
		lws_callback_on_writable(wsi);
		return 0;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		m = pss->head;
		if (!m)
			return 0;
		if (lws_write(wsi, m->buf + LWS_PRE, m->len,
			      m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < (int)m->len)
			return -1;
		pss->head = m->next;
		if (!pss->head)
			pss->tail = NULL;
		free(m);
		if (pss->head)
			lws_callback_on_writable(wsi);
		return 0;

	case LWS_CALLBACK_CLOSED:
		while ((m = pss->head)) {
			pss->head = m->next;
			free(m);
		}
		pss->tail = NULL;
		free(pss->frag);
		pss->frag = NULL;
		return 0;

	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols protocols[] = {
	{ "echo", cb_echo, sizeof(struct pss), 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

int main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	struct lws_context *ctx;
	const char *host = "127.0.0.1";
	int port = 7681;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--host") && i + 1 < argc)
			host = argv[++i];
		else {
			fprintf(stderr, "usage: lwsecho [--port P] [--host H]\n");
			return 2;
		}
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.port = port;
	info.iface = host;
	info.protocols = protocols;
	info.gid = -1;
	info.uid = -1;
	ctx = lws_create_context(&info);
	if (!ctx) {
		fprintf(stderr, "lwsecho: cannot create the context\n");
		return 1;
	}
	fprintf(stderr, "lwsecho: listening on %s:%d\n", host, port);
	while (!interrupted)
		if (lws_service(ctx, 0) < 0)
			break;
	lws_context_destroy(ctx);
	return 0;
}
