/* libwsgate: management API calls as one non-blocking state machine per
 * request (resolve, connect, TLS, send, receive), which the synchronous
 * calls drive with poll(). Requests are signed by running them through the
 * gateway's own SigV4 canonicalisation (src/sigv4.c) and answers are read
 * by its http-parser response reader (src/httpresp.c), so client and
 * gateway cannot disagree on either. Never prints; never blocks in a step. */
#define _GNU_SOURCE
#include "wsgate_client.h"

#include "buf.h"
#include "httpresp.h"
#include "sigv4.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef WSGATE_CLIENT_VERSION
#define WSGATE_CLIENT_VERSION "0"
#endif
#define MAX_ANSWER (64u << 20)
#define USER_AGENT "libwsgate/" WSGATE_CLIENT_VERSION

struct wsgate_client {
	int tls;
	char *host;     /* as in the URL, without brackets */
	char *port;
	char *base;     /* the endpoint's path ("/dev"), "" for none */
	char *host_hdr; /* host[:port] as the Host header carries it */
	char *access_key, *secret, *token, *region;
	char *ca_file;
	int verify;
	int timeout_ms;
	SSL_CTX *ssl_ctx;
};

enum state { S_CONNECT, S_TLS, S_SEND, S_RECV, S_DONE, S_FAILED };

struct wsgate_req {
	wsgate_client_t *c;
	enum state state;
	int fd;
	int events;
	struct addrinfo *addrs, *next_addr;
	SSL *ssl;
	gw_buf_t out;
	size_t sent;
	gw_resp_t *resp;
	int last_error;
	char url[512]; /* for messages: the URL this request goes to */
	wsgate_response_t res;
};

const char *wsgate_strerror(int rc)
{
	switch (rc) {
	case WSGATE_OK: return "success";
	case WSGATE_AGAIN: return "in progress";
	case WSGATE_ERR_ARG: return "invalid argument";
	case WSGATE_ERR_RESOLVE: return "host name not resolved";
	case WSGATE_ERR_CONNECT: return "could not connect";
	case WSGATE_ERR_TLS: return "TLS failure";
	case WSGATE_ERR_IO: return "connection lost";
	case WSGATE_ERR_PROTOCOL: return "unreadable answer";
	case WSGATE_ERR_TIMEOUT: return "timed out";
	case WSGATE_ERR_NOMEM: return "out of memory";
	}
	return "unknown error";
}

static void set_error(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!err || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

void wsgate_response_dispose(wsgate_response_t *res)
{
	free(res->error_type);
	free(res->message);
	free(res->request_id);
	free(res->body);
	res->error_type = res->message = res->request_id = res->body = NULL;
	res->body_len = 0;
}

/* --- the client --- */

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static void free_secret(char **s)
{
	if (*s) {
		OPENSSL_cleanse(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

/* http[s]://host[:port][/path]; the path keeps no trailing '/'. */
static int parse_endpoint(wsgate_client_t *c, const char *url, char *err, size_t err_len)
{
	const char *p, *authority, *host, *host_end, *port = NULL, *path;
	size_t port_len = 0, path_len;

	if (!strncasecmp(url, "http://", 7)) {
		p = url + 7;
	} else if (!strncasecmp(url, "https://", 8)) {
		p = url + 8;
		c->tls = 1;
	} else {
		set_error(err, err_len, "Invalid endpoint: %s (http:// or https:// expected)", url);
		return WSGATE_ERR_ARG;
	}
	authority = p;
	if (*p == '[') {
		host = ++p;
		host_end = strchr(p, ']');
		if (!host_end)
			goto bad;
		p = host_end + 1;
	} else {
		host = p;
		p += strcspn(p, ":/?#");
		host_end = p;
	}
	if (*p == ':') {
		port = ++p;
		port_len = strspn(p, "0123456789");
		p += port_len;
		if (!port_len || port_len > 5 || atoi(port) > 65535)
			goto bad;
	}
	if (*p && *p != '/')
		goto bad;
	path = p;
	path_len = strcspn(path, "?#");
	if (path[path_len])
		goto bad;
	while (path_len && path[path_len - 1] == '/')
		path_len--;
	if (host_end == host)
		goto bad;
	c->host = dup_n(host, (size_t)(host_end - host));
	c->port = port ? dup_n(port, port_len) : strdup(c->tls ? "443" : "80");
	c->base = dup_n(path, path_len);
	/* The Host header as written in the URL, port and brackets kept. */
	c->host_hdr = dup_n(authority, (size_t)(path - authority));
	if (!c->host || !c->port || !c->base || !c->host_hdr)
		return WSGATE_ERR_NOMEM;
	return WSGATE_OK;
bad:
	set_error(err, err_len, "Invalid endpoint: %s", url);
	return WSGATE_ERR_ARG;
}

int wsgate_client_create(wsgate_client_t **out, const char *endpoint, char *err,
			 size_t err_len)
{
	wsgate_client_t *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (!c)
		return WSGATE_ERR_NOMEM;
	c->verify = 1;
	c->timeout_ms = 30000;
	if ((rc = parse_endpoint(c, endpoint, err, err_len)))
		goto fail;
	*out = c;
	return WSGATE_OK;
fail:
	wsgate_client_destroy(c);
	return rc;
}

void wsgate_client_destroy(wsgate_client_t *c)
{
	if (!c)
		return;
	free(c->host);
	free(c->port);
	free(c->base);
	free(c->host_hdr);
	free(c->access_key);
	free_secret(&c->secret);
	free_secret(&c->token);
	free(c->region);
	free(c->ca_file);
	if (c->ssl_ctx)
		SSL_CTX_free(c->ssl_ctx);
	free(c);
}

int wsgate_client_set_credentials(wsgate_client_t *c, const char *access_key,
				  const char *secret, const char *session_token,
				  const char *region)
{
	free(c->access_key);
	free_secret(&c->secret);
	free_secret(&c->token);
	free(c->region);
	c->access_key = access_key ? strdup(access_key) : NULL;
	c->secret = access_key ? strdup(secret ? secret : "") : NULL;
	c->token = access_key && session_token ? strdup(session_token) : NULL;
	c->region = strdup(region ? region : "us-east-1");
	if ((access_key && (!c->access_key || !c->secret)) || !c->region ||
	    (access_key && session_token && !c->token))
		return WSGATE_ERR_NOMEM;
	return WSGATE_OK;
}

int wsgate_client_set_tls(wsgate_client_t *c, const char *ca_file, int verify)
{
	free(c->ca_file);
	c->ca_file = ca_file ? strdup(ca_file) : NULL;
	c->verify = verify;
	if (c->ssl_ctx) {
		SSL_CTX_free(c->ssl_ctx);
		c->ssl_ctx = NULL;
	}
	return ca_file && !c->ca_file ? WSGATE_ERR_NOMEM : WSGATE_OK;
}

void wsgate_client_set_timeout(wsgate_client_t *c, int timeout_ms)
{
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
}

/* --- building a request --- */

struct req_parts {
	const char *method;
	gw_buf_t path;  /* decoded, for the signature */
	gw_buf_t wire;  /* encoded, as sent (path and query) */
	gw_str_t query[3]; /* decoded "name=value" */
	size_t n_query;
	char limit[24];
	gw_buf_t cursor, channel;
	const void *body;
	size_t body_len;
	int has_body;
};

static int call_parts(const wsgate_client_t *c, const wsgate_call_t *call, struct req_parts *p)
{
	const char *seg = call->op == WSGATE_PUBLISH ? "/@channels/" : "/@connections/";
	int has_target = call->op != WSGATE_LIST && call->op != WSGATE_BROADCAST;
	int membership = call->op == WSGATE_JOIN || call->op == WSGATE_LEAVE;

	if (has_target && (!call->target || !call->target[0]))
		return WSGATE_ERR_ARG;
	if (membership && (!call->channel || !call->channel[0]))
		return WSGATE_ERR_ARG;
	p->method = call->op == WSGATE_POST || call->op == WSGATE_PUBLISH ||
				    call->op == WSGATE_BROADCAST ? "POST" :
		    call->op == WSGATE_JOIN ? "PUT" :
		    call->op == WSGATE_DELETE || call->op == WSGATE_LEAVE ? "DELETE" : "GET";
	p->has_body = !strcmp(p->method, "POST");
	p->body = call->data;
	p->body_len = p->has_body ? call->len : 0;
	gw_buf_append_str(&p->path, c->base);
	gw_buf_append_str(&p->wire, c->base);
	if (call->op == WSGATE_BROADCAST) {
		gw_buf_append_str(&p->path, "/@broadcast");
		gw_buf_append_str(&p->wire, "/@broadcast");
		return WSGATE_OK;
	}
	if (!has_target) {
		gw_buf_append_str(&p->path, "/@connections");
		gw_buf_append_str(&p->wire, "/@connections");
		if (call->limit) {
			snprintf(p->limit, sizeof(p->limit), "limit=%u", call->limit);
			p->query[p->n_query++] = (gw_str_t){ p->limit, strlen(p->limit) };
		}
		if (call->cursor && call->cursor[0]) {
			gw_buf_append_str(&p->cursor, "cursor=");
			gw_buf_append_str(&p->cursor, call->cursor);
			p->query[p->n_query++] = (gw_str_t){ p->cursor.data, p->cursor.len };
		}
		if (call->channel && call->channel[0]) {
			gw_buf_append_str(&p->channel, "channel=");
			gw_buf_append_str(&p->channel, call->channel);
			p->query[p->n_query++] = (gw_str_t){ p->channel.data, p->channel.len };
		}
		return WSGATE_OK;
	}
	gw_buf_append_str(&p->path, seg);
	gw_buf_append_str(&p->path, call->target);
	gw_buf_append_str(&p->wire, seg);
	gw_sigv4_uri_encode(&p->wire, call->target, strlen(call->target), 1);
	if (membership) {
		gw_buf_append_str(&p->path, "/channels/");
		gw_buf_append_str(&p->path, call->channel);
		gw_buf_append_str(&p->wire, "/channels/");
		gw_sigv4_uri_encode(&p->wire, call->channel, strlen(call->channel), 1);
	}
	return WSGATE_OK;
}

struct sig_headers {
	const char *names[6];
	const char *values[6];
	size_t n;
};

static int sig_header(void *user, const char *name, gw_buf_t *out)
{
	const struct sig_headers *h = user;

	for (size_t i = 0; i < h->n; i++)
		if (!strcmp(h->names[i], name)) {
			gw_buf_append_str(out, h->values[i]);
			return 0;
		}
	return -1;
}

static void add_header(gw_buf_t *b, const char *name, const char *value)
{
	gw_buf_append_str(b, name);
	gw_buf_append_str(b, ": ");
	gw_buf_append_str(b, value);
	gw_buf_append_str(b, "\r\n");
}

/* The Authorization header for this request, or a negative code. The
 * request goes through the verifier's gw_sigv4_begin with a placeholder
 * signature; candidate 0 is the path with pchars literal, as sent. */
static int sign(const wsgate_client_t *c, const struct req_parts *p, long long now_s,
		const char *amz_date, const char *body_hex, gw_buf_t *auth)
{
	struct sig_headers h = { .n = 0 };
	gw_buf_t placeholder;
	gw_sigv4_request_t sr;
	gw_sigv4_t v;
	char why[256], sig[65], scope[200];
	int rc = WSGATE_OK;

	snprintf(scope, sizeof(scope), "%.8s/%.64s/execute-api/aws4_request", amz_date, c->region);
	gw_buf_init(&placeholder);
	gw_buf_append_str(&placeholder, "AWS4-HMAC-SHA256 Credential=");
	gw_buf_append_str(&placeholder, c->access_key);
	gw_buf_append_char(&placeholder, '/');
	gw_buf_append_str(&placeholder, scope);
	gw_buf_append_str(&placeholder, c->token ?
			  ", SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token" :
			  ", SignedHeaders=host;x-amz-content-sha256;x-amz-date");
	gw_buf_append_str(&placeholder, ", Signature=");
	gw_buf_append_str(&placeholder,
			  "0000000000000000000000000000000000000000000000000000000000000000");
	gw_buf_append_char(&placeholder, '\0');
	h.names[h.n] = "authorization";
	h.values[h.n++] = placeholder.data;
	h.names[h.n] = "host";
	h.values[h.n++] = c->host_hdr;
	h.names[h.n] = "x-amz-content-sha256";
	h.values[h.n++] = body_hex;
	h.names[h.n] = "x-amz-date";
	h.values[h.n++] = amz_date;
	if (c->token) {
		h.names[h.n] = "x-amz-security-token";
		h.values[h.n++] = c->token;
	}
	sr = (gw_sigv4_request_t){ .method = p->method, .path = p->path.data,
				   .path_len = p->path.len, .query = p->query,
				   .n_query = p->n_query, .header = sig_header, .user = &h };
	gw_sigv4_init(&v);
	if (gw_sigv4_begin(&v, &sr, "execute-api", now_s, 60, why, sizeof(why))) {
		rc = WSGATE_ERR_ARG;
		goto out;
	}
	gw_sigv4_signature(&v, 0, c->secret, strlen(c->secret), body_hex, sig);
	gw_buf_append(auth, placeholder.data, placeholder.len - 65);
	gw_buf_append_str(auth, sig);
out:
	gw_sigv4_dispose(&v);
	gw_buf_dispose(&placeholder);
	return rc;
}

static int build(const wsgate_client_t *c, const wsgate_call_t *call, long long now_s,
		 gw_buf_t *out)
{
	struct req_parts p = { .n_query = 0 };
	gw_buf_t auth;
	char amz_date[17], body_hex[65], num[24];
	time_t t = (time_t)now_s;
	struct tm tm;
	int rc;

	gw_buf_init(&p.path);
	gw_buf_init(&p.wire);
	gw_buf_init(&p.cursor);
	gw_buf_init(&p.channel);
	gw_buf_init(&auth);
	if ((rc = call_parts(c, call, &p)))
		goto out;
	gw_buf_append_str(out, p.method);
	gw_buf_append_char(out, ' ');
	gw_buf_append(out, p.wire.data, p.wire.len);
	for (size_t i = 0; i < p.n_query; i++) {
		const char *eq = memchr(p.query[i].ptr, '=', p.query[i].len);

		gw_buf_append_char(out, i ? '&' : '?');
		gw_buf_append(out, p.query[i].ptr, (size_t)(eq - p.query[i].ptr) + 1);
		gw_sigv4_uri_encode(out, eq + 1, p.query[i].len - (size_t)(eq - p.query[i].ptr) - 1, 0);
	}
	gw_buf_append_str(out, " HTTP/1.1\r\n");
	add_header(out, "Host", c->host_hdr);
	add_header(out, "User-Agent", USER_AGENT);
	if (p.has_body) {
		snprintf(num, sizeof(num), "%zu", p.body_len);
		add_header(out, "Content-Length", num);
	}
	if (c->access_key) {
		gmtime_r(&t, &tm);
		strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
		gw_sigv4_sha256_hex(p.body_len ? p.body : "", p.body_len, body_hex);
		if ((rc = sign(c, &p, now_s, amz_date, body_hex, &auth)))
			goto out;
		add_header(out, "X-Amz-Date", amz_date);
		add_header(out, "X-Amz-Content-Sha256", body_hex);
		if (c->token)
			add_header(out, "X-Amz-Security-Token", c->token);
		gw_buf_append_str(out, "Authorization: ");
		gw_buf_append(out, auth.data, auth.len);
		gw_buf_append_str(out, "\r\n");
	}
	add_header(out, "Connection", "close");
	gw_buf_append_str(out, "\r\n");
	if (p.body_len)
		gw_buf_append(out, p.body, p.body_len);
out:
	gw_buf_dispose(&p.path);
	gw_buf_dispose(&p.wire);
	gw_buf_dispose(&p.cursor);
	gw_buf_dispose(&p.channel);
	gw_buf_dispose(&auth);
	return rc;
}

static int has_control(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static int valid_call(const wsgate_call_t *call)
{
	if (call->op < WSGATE_POST || call->op > WSGATE_BROADCAST)
		return 0;
	if (call->len && !call->data)
		return 0;
	/* Everything is escaped on the wire anyway; control characters in an
	 * ID, cursor or channel are a caller's mistake. */
	return !has_control(call->target) && !has_control(call->cursor) &&
	       !has_control(call->channel);
}

int wsgate_build_request(const wsgate_client_t *c, const wsgate_call_t *call, long long now_s,
			 char **out, size_t *out_len)
{
	gw_buf_t b;
	int rc;

	*out = NULL;
	*out_len = 0;
	if (!valid_call(call))
		return WSGATE_ERR_ARG;
	gw_buf_init(&b);
	if ((rc = build(c, call, now_s, &b))) {
		gw_buf_dispose(&b);
		return rc;
	}
	gw_buf_append_char(&b, '\0');
	*out = b.data;
	*out_len = b.len - 1;
	return WSGATE_OK;
}

/* --- one request in flight --- */

static int fail(wsgate_req_t *r, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->res.error, sizeof(r->res.error), fmt, ap);
	va_end(ap);
	r->state = S_FAILED;
	r->last_error = rc;
	return rc;
}

static void close_fd(wsgate_req_t *r)
{
	if (r->ssl) {
		SSL_free(r->ssl);
		r->ssl = NULL;
	}
	if (r->fd >= 0) {
		close(r->fd);
		r->fd = -1;
	}
}

/* Starts a connect to the next address; AGAIN, or CONNECT when none is
 * left (saved: why the previous address failed). */
static int connect_next(wsgate_req_t *r, int saved)
{
	close_fd(r);
	while (r->next_addr) {
		struct addrinfo *ai = r->next_addr;

		r->next_addr = ai->ai_next;
		r->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			       ai->ai_protocol);
		if (r->fd < 0) {
			saved = errno;
			continue;
		}
		if (!connect(r->fd, ai->ai_addr, ai->ai_addrlen) || errno == EINPROGRESS) {
			int one = 1;

			setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			r->state = S_CONNECT;
			r->events = POLLOUT;
			return WSGATE_AGAIN;
		}
		saved = errno;
		close_fd(r);
	}
	return fail(r, WSGATE_ERR_CONNECT, "Could not connect to the endpoint URL: \"%s\" (%s)",
		    r->url, strerror(saved ? saved : ECONNREFUSED));
}

static SSL_CTX *client_ctx(wsgate_client_t *c, char *why, size_t why_len)
{
	if (c->ssl_ctx)
		return c->ssl_ctx;
	c->ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (!c->ssl_ctx)
		goto fail;
	SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
	if (c->ca_file ? SSL_CTX_load_verify_locations(c->ssl_ctx, c->ca_file, NULL) != 1 :
			 SSL_CTX_set_default_verify_paths(c->ssl_ctx) != 1) {
		snprintf(why, why_len, "cannot load CA bundle %s",
			 c->ca_file ? c->ca_file : "(system default)");
		SSL_CTX_free(c->ssl_ctx);
		c->ssl_ctx = NULL;
		return NULL;
	}
	SSL_CTX_set_verify(c->ssl_ctx, c->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	return c->ssl_ctx;
fail:
	snprintf(why, why_len, "cannot create a TLS context");
	return NULL;
}

static int tls_begin(wsgate_req_t *r)
{
	wsgate_client_t *c = r->c;
	char why[200] = "";
	SSL_CTX *ctx = client_ctx(c, why, sizeof(why));
	struct in6_addr a6;
	struct in_addr a4;
	int is_ip = inet_pton(AF_INET, c->host, &a4) == 1 || inet_pton(AF_INET6, c->host, &a6) == 1;

	if (!ctx)
		return fail(r, WSGATE_ERR_TLS, "SSL validation failed: %s", why);
	r->ssl = SSL_new(ctx);
	if (!r->ssl || !SSL_set_fd(r->ssl, r->fd))
		return fail(r, WSGATE_ERR_NOMEM, "cannot create a TLS session");
	if (!is_ip)
		SSL_set_tlsext_host_name(r->ssl, c->host);
	if (c->verify) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(r->ssl);

		if (is_ip ? !X509_VERIFY_PARAM_set1_ip_asc(vp, c->host) : !SSL_set1_host(r->ssl, c->host))
			return fail(r, WSGATE_ERR_TLS, "cannot set the name to verify");
	}
	r->state = S_TLS;
	return WSGATE_OK;
}

static int step_connect(wsgate_req_t *r)
{
	struct pollfd pfd = { .fd = r->fd, .events = POLLOUT };
	int err = 0;
	socklen_t len = sizeof(err);

	/* Called early (a spurious wake-up): still connecting. */
	if (poll(&pfd, 1, 0) == 0)
		return WSGATE_AGAIN;
	if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err)
		return connect_next(r, err ? err : errno);
	if (r->c->tls)
		return tls_begin(r);
	r->state = S_SEND;
	return WSGATE_OK;
}

static int tls_want(wsgate_req_t *r, int ret, const char *what)
{
	int e = SSL_get_error(r->ssl, ret);
	unsigned long code;
	char buf[160];

	if (e == SSL_ERROR_WANT_READ) {
		r->events = POLLIN;
		return WSGATE_AGAIN;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		r->events = POLLOUT;
		return WSGATE_AGAIN;
	}
	if (r->state == S_TLS && SSL_get_verify_result(r->ssl) != X509_V_OK)
		return fail(r, WSGATE_ERR_TLS, "SSL validation failed for %s: %s", r->c->host,
			    X509_verify_cert_error_string(SSL_get_verify_result(r->ssl)));
	code = ERR_get_error();
	ERR_clear_error();
	if (code)
		ERR_error_string_n(code, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "%s", e == SSL_ERROR_ZERO_RETURN ? "closed" :
			 errno ? strerror(errno) : "connection closed");
	return fail(r, r->state == S_TLS ? WSGATE_ERR_TLS : WSGATE_ERR_IO, "%s: %s", what, buf);
}

static int step_tls(wsgate_req_t *r)
{
	int ret;

	ERR_clear_error();
	ret = SSL_connect(r->ssl);
	if (ret != 1)
		return tls_want(r, ret, "TLS handshake");
	r->state = S_SEND;
	return WSGATE_OK;
}

/* A failed send or recv: wait for `events` when it would block, else the
 * request has failed. */
static int sock_error(wsgate_req_t *r, int events)
{
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		r->events = events;
		return WSGATE_AGAIN;
	}
	return fail(r, WSGATE_ERR_IO, "Connection was closed before we received a valid "
		    "response from endpoint URL: \"%s\" (%s)", r->url, strerror(errno));
}

static int step_send(wsgate_req_t *r)
{
	while (r->sent < r->out.len) {
		size_t left = r->out.len - r->sent;
		ssize_t n;

		if (r->ssl) {
			ERR_clear_error();
			n = SSL_write(r->ssl, r->out.data + r->sent, (int)(left > (1u << 30) ? 1u << 30 : left));
			if (n <= 0)
				return tls_want(r, (int)n, "sending");
		} else {
			n = send(r->fd, r->out.data + r->sent, left, MSG_NOSIGNAL);
			if (n < 0)
				return sock_error(r, POLLOUT);
		}
		r->sent += (size_t)n;
	}
	r->state = S_RECV;
	r->events = POLLIN;
	return WSGATE_OK;
}

static char *header_value(const gw_resp_t *resp, const char *name, size_t cut_at_colon)
{
	for (size_t i = 0; i < gw_resp_header_count(resp); i++) {
		const char *n, *v;

		gw_resp_header(resp, i, &n, &v);
		if (!strcasecmp(n, name))
			return dup_n(v, cut_at_colon ? strcspn(v, ":") : strlen(v));
	}
	return NULL;
}

/* The answer into r->res: status, error type (AWS may append ":uri"),
 * request ID, body and the error's message. */
static int take_answer(wsgate_req_t *r)
{
	gw_str_t body = gw_resp_body(r->resp);
	wsgate_response_t *res = &r->res;
	json_t *j;

	res->status = gw_resp_status_code(r->resp);
	res->error_type = header_value(r->resp, "x-amzn-ErrorType", 1);
	res->request_id = header_value(r->resp, "x-amzn-RequestId", 0);
	res->body = dup_n(body.ptr ? body.ptr : "", body.len);
	if (!res->body)
		return fail(r, WSGATE_ERR_NOMEM, "out of memory");
	res->body_len = body.len;
	if (res->status >= 300 && body.len &&
	    (j = json_loadb(body.ptr, body.len, JSON_DISABLE_EOF_CHECK, NULL))) {
		json_t *m = json_object_get(j, "message");

		if (!m)
			m = json_object_get(j, "Message");
		if (json_is_string(m))
			res->message = strdup(json_string_value(m));
		json_decref(j);
	}
	r->state = S_DONE;
	close_fd(r);
	return WSGATE_OK;
}

static int step_recv(wsgate_req_t *r)
{
	char buf[16384];

	for (;;) {
		ssize_t n;
		int extra = 0;
		enum gw_resp_status st;

		if (r->ssl) {
			ERR_clear_error();
			n = SSL_read(r->ssl, buf, sizeof(buf));
			if (n <= 0) {
				int e = SSL_get_error(r->ssl, (int)n);

				if (e == SSL_ERROR_ZERO_RETURN ||
				    (e == SSL_ERROR_SYSCALL && !ERR_peek_error()))
					n = 0; /* closed, with or without close_notify */
				else
					return tls_want(r, (int)n, "receiving");
			}
		} else {
			n = recv(r->fd, buf, sizeof(buf), 0);
			if (n < 0)
				return sock_error(r, POLLIN);
		}
		st = gw_resp_feed(r->resp, buf, (size_t)n, &extra);
		if (st == GW_RESP_DONE)
			return take_answer(r);
		if (st == GW_RESP_TOO_LARGE)
			return fail(r, WSGATE_ERR_PROTOCOL, "answer larger than %u bytes",
				    MAX_ANSWER);
		if (st == GW_RESP_BAD || n == 0)
			return fail(r, n ? WSGATE_ERR_PROTOCOL : WSGATE_ERR_IO,
				    n ? "the endpoint's answer is not HTTP/1.1" :
					"Connection was closed before we received a valid "
					"response from endpoint URL");
	}
}

int wsgate_req_step(wsgate_req_t *r)
{
	int rc = WSGATE_OK;

	while (rc == WSGATE_OK) {
		switch (r->state) {
		case S_CONNECT: rc = step_connect(r); break;
		case S_TLS: rc = step_tls(r); break;
		case S_SEND: rc = step_send(r); break;
		case S_RECV: rc = step_recv(r); break;
		case S_DONE: return WSGATE_OK;
		case S_FAILED: return r->last_error;
		}
		if (rc == WSGATE_OK && r->state == S_DONE)
			return WSGATE_OK;
	}
	return rc;
}

int wsgate_req_start(wsgate_client_t *c, const wsgate_call_t *call, wsgate_req_t **out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
	wsgate_req_t *r = calloc(1, sizeof(*r));
	int rc, g;

	*out = NULL;
	if (!r)
		return WSGATE_ERR_NOMEM;
	r->c = c;
	r->fd = -1;
	gw_buf_init(&r->out);
	*out = r;
	if (!valid_call(call))
		return fail(r, WSGATE_ERR_ARG, "invalid call");
	if ((rc = build(c, call, (long long)time(NULL), &r->out)))
		return fail(r, rc, "cannot sign the request: check the access key and region");
	/* "https://host:port" + the request line's target. */
	{
		const char *t = memchr(r->out.data, ' ', r->out.len);
		const char *e = t ? memchr(t + 1, ' ', r->out.len - (size_t)(t + 1 - r->out.data)) : NULL;

		snprintf(r->url, sizeof(r->url), "%s://%s%.*s", c->tls ? "https" : "http",
			 c->host_hdr, t && e ? (int)(e - t - 1) : 0, t ? t + 1 : "");
	}
	r->resp = gw_resp_create(MAX_ANSWER);
	if (!r->resp)
		return fail(r, WSGATE_ERR_NOMEM, "out of memory");
	g = getaddrinfo(c->host, c->port, &hints, &r->addrs);
	if (g)
		return fail(r, WSGATE_ERR_RESOLVE, "Could not connect to the endpoint URL: "
			    "\"%s\" (%s)", r->url, gai_strerror(g));
	r->next_addr = r->addrs;
	rc = connect_next(r, 0);
	return rc == WSGATE_AGAIN ? WSGATE_OK : rc;
}

int wsgate_req_fd(const wsgate_req_t *r)
{
	return r->fd;
}

int wsgate_req_events(const wsgate_req_t *r)
{
	return r->events;
}

const wsgate_response_t *wsgate_req_response(const wsgate_req_t *r)
{
	return &r->res;
}

void wsgate_req_destroy(wsgate_req_t *r)
{
	if (!r)
		return;
	close_fd(r);
	if (r->addrs)
		freeaddrinfo(r->addrs);
	if (r->resp)
		gw_resp_destroy(r->resp);
	gw_buf_dispose(&r->out);
	wsgate_response_dispose(&r->res);
	free(r);
}

/* --- synchronous calls --- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int wsgate_call(wsgate_client_t *c, const wsgate_call_t *call, wsgate_response_t *res)
{
	long long deadline = now_ms() + c->timeout_ms;
	wsgate_req_t *r = NULL;
	int rc;

	memset(res, 0, sizeof(*res));
	rc = wsgate_req_start(c, call, &r);
	while (rc == WSGATE_OK || rc == WSGATE_AGAIN) {
		struct pollfd pfd;
		long long left = deadline - now_ms();

		if ((rc = wsgate_req_step(r)) != WSGATE_AGAIN)
			break;
		pfd = (struct pollfd){ .fd = r->fd, .events = (short)r->events };
		if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
			rc = fail(r, WSGATE_ERR_TIMEOUT, "Read timeout on endpoint URL: \"%s\" "
				  "(no answer in %d ms)", r->url, c->timeout_ms);
			break;
		}
	}
	if (r) {
		*res = r->res;
		memset(&r->res, 0, sizeof(r->res));
		wsgate_req_destroy(r);
	}
	return rc;
}

int wsgate_post(wsgate_client_t *c, const char *id, const void *data, size_t len,
		wsgate_response_t *res)
{
	wsgate_call_t call = { .op = WSGATE_POST, .target = id, .data = data, .len = len };

	return wsgate_call(c, &call, res);
}

int wsgate_get(wsgate_client_t *c, const char *id, wsgate_response_t *res)
{
	wsgate_call_t call = { .op = WSGATE_GET, .target = id };

	return wsgate_call(c, &call, res);
}

int wsgate_delete(wsgate_client_t *c, const char *id, wsgate_response_t *res)
{
	wsgate_call_t call = { .op = WSGATE_DELETE, .target = id };

	return wsgate_call(c, &call, res);
}

int wsgate_list(wsgate_client_t *c, unsigned limit, const char *cursor, const char *channel,
		wsgate_response_t *res)
{
	wsgate_call_t call = { .op = WSGATE_LIST, .limit = limit, .cursor = cursor,
			       .channel = channel };

	return wsgate_call(c, &call, res);
}

int wsgate_publish(wsgate_client_t *c, const char *channel, const void *data, size_t len,
		   wsgate_response_t *res)
{
	wsgate_call_t call = { .op = WSGATE_PUBLISH, .target = channel, .data = data,
			       .len = len };

	return wsgate_call(c, &call, res);
}

int wsgate_join(wsgate_client_t *c, const char *id, const char *channel, wsgate_response_t *res)
{
	wsgate_call_t call = { .op = WSGATE_JOIN, .target = id, .channel = channel };

	return wsgate_call(c, &call, res);
}

int wsgate_leave(wsgate_client_t *c, const char *id, const char *channel, wsgate_response_t *res)
{
	wsgate_call_t call = { .op = WSGATE_LEAVE, .target = id, .channel = channel };

	return wsgate_call(c, &call, res);
}

int wsgate_broadcast(wsgate_client_t *c, const void *data, size_t len, wsgate_response_t *res)
{
	wsgate_call_t call = { .op = WSGATE_BROADCAST, .data = data, .len = len };

	return wsgate_call(c, &call, res);
}
