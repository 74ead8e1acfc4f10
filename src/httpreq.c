/* REST request parsing over http-parser (see httpreq.h), behind the strict
 * RFC 9112 scanner of head.c. */
#include "httpreq.h"
#include "head.h"

#include <http_parser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEADERS 100

typedef struct span {
	size_t off, len;
} span_t;

struct gw_req {
	http_parser parser;
	size_t max_head, max_body;
	gw_buf_t head; /* url and header bytes, spans point here */
	span_t url;
	span_t name[MAX_HEADERS], value[MAX_HEADERS];
	size_t n;
	int last;
	size_t head_bytes;
	gw_buf_t body;
	gw_http_scan_t scan;
	int scan_done; /* the scanner has passed the whole head */
	int done, body_too_large, head_too_large, head_done, bad;
};

static int add(gw_req_t *r, span_t *s, const char *at, size_t len)
{
	if (r->head.len + len > r->max_head) {
		r->head_too_large = 1;
		return -1;
	}
	if (!s->len)
		s->off = r->head.len;
	gw_buf_append(&r->head, at, len);
	s->len += len;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	gw_req_t *r = p->data;

	return add(r, &r->url, at, len);
}

static int on_field(http_parser *p, const char *at, size_t len)
{
	gw_req_t *r = p->data;

	/* Trailer fields of a chunked body are dropped (RFC 9110 §6.5.1):
	 * they were never checked as the head was, and must not join it. */
	if (r->head_done)
		return 0;
	if (r->last != 1) {
		if (r->n == MAX_HEADERS) {
			r->head_too_large = 1;
			return -1;
		}
		memset(&r->name[r->n], 0, sizeof(span_t));
		memset(&r->value[r->n], 0, sizeof(span_t));
		r->n++;
		r->last = 1;
	}
	return add(r, &r->name[r->n - 1], at, len);
}

static int on_value(http_parser *p, const char *at, size_t len)
{
	gw_req_t *r = p->data;

	if (r->head_done)
		return 0;
	r->last = 2;
	return add(r, &r->value[r->n - 1], at, len);
}

static gw_str_t str(const gw_req_t *r, span_t s);

static int on_headers_complete(http_parser *p)
{
	gw_req_t *r = p->data;
	gw_str_t names[MAX_HEADERS], values[MAX_HEADERS];
	const char *why;

	r->head_done = 1;
	/* http-parser ends a CONNECT at its head and would take its body for
	 * the next request; there is no tunnel to open anyway. */
	if (p->method == HTTP_CONNECT) {
		r->bad = 1;
		return -1;
	}
	/* Framing a proxy must not guess at (RFC 9112 §6.3). */
	for (size_t i = 0; i < r->n; i++)
		gw_req_header(r, i, &names[i], &values[i]);
	if (gw_http_check_fields(names, values, r->n, p->http_minor, &why)) {
		r->bad = 1;
		return -1;
	}
	/* Refused before a byte of it is read. */
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > r->max_body) {
		r->body_too_large = 1;
		return -1;
	}
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	gw_req_t *r = p->data;

	if (r->body.len + len > r->max_body) {
		r->body_too_large = 1;
		return -1;
	}
	gw_buf_append(&r->body, at, len);
	return 0;
}

static int on_complete(http_parser *p)
{
	gw_req_t *r = p->data;

	r->done = 1;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
	.on_url = on_url,
	.on_header_field = on_field,
	.on_header_value = on_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_complete,
};

gw_req_t *gw_req_create(size_t max_head, size_t max_body)
{
	gw_req_t *r = calloc(1, sizeof(*r));

	if (!r)
		abort();
	r->max_head = max_head;
	r->max_body = max_body;
	gw_req_reset(r);
	return r;
}

void gw_req_destroy(gw_req_t *r)
{
	if (!r)
		return;
	gw_buf_dispose(&r->head);
	gw_buf_dispose(&r->body);
	free(r);
}

void gw_req_reset(gw_req_t *r)
{
	http_parser_init(&r->parser, HTTP_REQUEST);
	r->parser.data = r;
	gw_buf_reset(&r->head);
	gw_buf_reset(&r->body);
	memset(&r->url, 0, sizeof(r->url));
	r->n = 0;
	r->last = 0;
	r->done = r->body_too_large = r->head_too_large = r->head_done = r->bad = 0;
	gw_http_scan_init(&r->scan);
	r->scan_done = 0;
}

int gw_req_wants_continue(const gw_req_t *r)
{
	gw_str_t e = gw_req_get(r, "Expect");

	return r->head_done && !r->done && e.len == 12 && !strncasecmp(e.ptr, "100-continue", 12);
}

enum gw_req_status gw_req_feed(gw_req_t *r, const char *data, size_t len, size_t *used)
{
	size_t n;

	if (r->bad) {
		*used = 0;
		return GW_REQ_BAD;
	}
	/* Each head byte is scanned once; the body is http-parser's alone. */
	if (!r->scan_done) {
		enum gw_head_status st = gw_http_scan(&r->scan, data, len, &n);

		if (st == GW_HEAD_BAD) {
			r->bad = 1;
			*used = n;
			return GW_REQ_BAD;
		}
		r->scan_done = st == GW_HEAD_DONE;
	}
	n = http_parser_execute(&r->parser, &settings, data, len);

	if (r->done) {
		/* http-parser counts the byte it paused on for message_complete
		 * (CALLBACK_NOTIFY), so n is exact: the rest is the next request. */
		*used = n;
		return GW_REQ_DONE;
	}
	*used = n;
	if (r->body_too_large)
		return GW_REQ_BODY_TOO_LARGE;
	if (r->head_too_large)
		return GW_REQ_HEAD_TOO_LARGE;
	if (r->bad || HTTP_PARSER_ERRNO(&r->parser) != HPE_OK) {
		r->bad = 1;
		return GW_REQ_BAD;
	}
	/* Both must agree on where the head ends. */
	if (r->scan_done != r->head_done) {
		r->bad = 1;
		return GW_REQ_BAD;
	}
	return GW_REQ_MORE;
}

const char *gw_req_method(const gw_req_t *r)
{
	return http_method_str((enum http_method)r->parser.method);
}

static gw_str_t str(const gw_req_t *r, span_t s)
{
	return (gw_str_t){ s.len ? r->head.data + s.off : "", s.len };
}

gw_str_t gw_req_path(const gw_req_t *r)
{
	gw_str_t u = str(r, r->url);
	const char *q = memchr(u.ptr, '?', u.len);

	if (q)
		u.len = (size_t)(q - u.ptr);
	return u;
}

gw_str_t gw_req_query(const gw_req_t *r)
{
	gw_str_t u = str(r, r->url);
	const char *q = memchr(u.ptr, '?', u.len);

	if (!q)
		return (gw_str_t){ "", 0 };
	return (gw_str_t){ q + 1, u.len - (size_t)(q + 1 - u.ptr) };
}

size_t gw_req_header_count(const gw_req_t *r)
{
	return r->n;
}

void gw_req_header(const gw_req_t *r, size_t i, gw_str_t *name, gw_str_t *value)
{
	*name = str(r, r->name[i]);
	*value = str(r, r->value[i]);
}

gw_str_t gw_req_get(const gw_req_t *r, const char *name)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < r->n; i++)
		if (r->name[i].len == nl && !strncasecmp(r->head.data + r->name[i].off, name, nl))
			return str(r, r->value[i]);
	return (gw_str_t){ NULL, 0 };
}

int gw_req_keep_alive(const gw_req_t *r)
{
	return http_should_keep_alive(&r->parser);
}

gw_buf_t *gw_req_body(gw_req_t *r)
{
	return &r->body;
}

const char *gw_http_reason(int s)
{
	switch (s) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return s < 300 ? "OK" : s < 500 ? "Client Error" : "Server Error";
	}
}

int gw_http_hop_by_hop(const char *name, size_t len)
{
	static const char *const names[] = { "Connection", "Keep-Alive", "Transfer-Encoding",
		"TE", "Trailer", "Upgrade", "Proxy-Authorization", "Proxy-Authenticate",
		"Proxy-Connection", "Content-Length", NULL };

	for (const char *const *h = names; *h; h++)
		if (strlen(*h) == len && !strncasecmp(*h, name, len))
			return 1;
	return 0;
}
