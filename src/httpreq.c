/* The request parser (see httpreq.h): a strict RFC 9112 scanner, then
 * http-parser on what the scanner passed. The head's bytes are kept as
 * received and fields are spans (offsets) into them, which survive the
 * buffer's reallocation; the body, in a whole request, goes to a buffer of
 * its own. */
#include "httpreq.h"

#include <http_parser.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEADERS 100

typedef struct span {
	size_t off, len;
} span_t;

/* The scanner's state: incremental, each byte is looked at once. */
typedef struct scan {
	int state;
	size_t n; /* bytes in the current element (method, version, blank lines) */
	char version[8];
} scan_t;

struct gw_req {
	http_parser parser;
	int head_only; /* stop after the head, keep every byte */
	size_t max_head, max_body;
	gw_buf_t raw;	 /* the head as received (head mode: and what follows) */
	size_t head_len; /* bytes of raw scanned and parsed as head */
	scan_t scan;
	span_t url;
	span_t name[MAX_HEADERS], value[MAX_HEADERS];
	size_t n;
	int last; /* 1 field, 2 value */
	int head_done, done;
	enum gw_req_status failed; /* a refusal, once made */
	gw_buf_t body;
};

/* --- RFC 9110/9112 syntax --- */

static int is_tchar(unsigned char c)
{
	/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
	 *         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return 1;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int gw_http_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int gw_http_conns_segment(const char *p, size_t len)
{
	static const char at[] = "@connections", pct[] = "%40connections";
	size_t n;

	if (len >= sizeof(at) - 1 && !memcmp(p, at, sizeof(at) - 1))
		n = sizeof(at) - 1;
	else if (len >= sizeof(pct) - 1 && !strncasecmp(p, pct, sizeof(pct) - 1))
		n = sizeof(pct) - 1;
	else
		return 0;
	return len == n || p[n] == '/';
}

int gw_http_is_token(const char *p, size_t n)
{
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)p[i]))
			return 0;
	return 1;
}

enum {
	SC_START, /* before the request line; empty lines are ignored (§2.2) */
	SC_START_LF,
	SC_METHOD,
	SC_TARGET,
	SC_TARGET_PCT1, /* after '%' */
	SC_TARGET_PCT2,
	SC_VERSION,
	SC_LINE_LF,
	SC_FIELD, /* start of a field line, or of the final empty line */
	SC_NAME,
	SC_VALUE,
	SC_VALUE_LF,
	SC_END_LF,
	SC_DONE,
	SC_BAD,
};

/* Leading empty lines tolerated before a request line (RFC 9112 §2.2 asks
 * for at least one; more is a client sending garbage). */
#define MAX_LEADING_EMPTY_LINES 4

static void scan_init(scan_t *s)
{
	memset(s, 0, sizeof(*s));
	s->state = SC_START;
}

/* One byte; the next state (SC_BAD on a syntax error). */
static int scan_byte(scan_t *s, unsigned char c)
{
	switch (s->state) {
	case SC_START:
		if (c == '\r')
			return ++s->n > MAX_LEADING_EMPTY_LINES ? SC_BAD : SC_START_LF;
		s->n = 0;
		return is_tchar(c) ? SC_METHOD : SC_BAD;
	case SC_START_LF:
		return c == '\n' ? SC_START : SC_BAD;
	case SC_METHOD:
		if (c == ' ')
			return SC_TARGET;
		return is_tchar(c) ? SC_METHOD : SC_BAD;
	case SC_TARGET:
		/* Visible ASCII only: no CTL, no obs-text (RFC 9112 §3.2). A
		 * '#' is taken as data (rest.c encodes it for backends). */
		if (c == ' ') {
			if (!s->n)
				return SC_BAD;
			s->n = 0;
			return SC_VERSION;
		}
		if (c <= 0x20 || c >= 0x7f)
			return SC_BAD;
		s->n = 1;
		return c == '%' ? SC_TARGET_PCT1 : SC_TARGET;
	case SC_TARGET_PCT1:
		return gw_http_hexval(c) < 0 ? SC_BAD : SC_TARGET_PCT2;
	case SC_TARGET_PCT2:
		return gw_http_hexval(c) < 0 ? SC_BAD : SC_TARGET;
	case SC_VERSION:
		if (c == '\r') {
			/* Only HTTP/1.x: HTTP/0.9 has no version, an HTTP/2
			 * preface is "PRI * HTTP/2.0". */
			if (s->n == 8 && (!memcmp(s->version, "HTTP/1.1", 8) ||
					  !memcmp(s->version, "HTTP/1.0", 8)))
				return SC_LINE_LF;
			return SC_BAD;
		}
		if (s->n == sizeof(s->version))
			return SC_BAD;
		s->version[s->n++] = (char)c;
		return SC_VERSION;
	case SC_LINE_LF:
	case SC_VALUE_LF:
		/* A bare CR is invalid (§2.2); so is a bare LF here, as
		 * lenient parsers disagree on it. */
		return c == '\n' ? SC_FIELD : SC_BAD;
	case SC_FIELD:
		if (c == '\r')
			return SC_END_LF;
		/* SP or HTAB here is obs-fold, or whitespace before the first
		 * field: both rejected (§5.2, §2.2). */
		return is_tchar(c) ? SC_NAME : SC_BAD;
	case SC_NAME:
		/* No whitespace between name and colon (§5.1). */
		if (c == ':')
			return SC_VALUE;
		return is_tchar(c) ? SC_NAME : SC_BAD;
	case SC_VALUE:
		/* field-content: VCHAR, obs-text, SP, HTAB; no NUL, no CTL. */
		if (c == '\r')
			return SC_VALUE_LF;
		return c == '\t' || (c >= 0x20 && c != 0x7f) ? SC_VALUE : SC_BAD;
	case SC_END_LF:
		return c == '\n' ? SC_DONE : SC_BAD;
	default:
		return SC_BAD;
	}
}

/* Scans up to len bytes: MORE (all used), DONE (*used = bytes up to and
 * including the head's final LF) or BAD. Not to be called again once DONE
 * or BAD, until scan_init. */
static enum gw_req_status scan(scan_t *s, const char *p, size_t len, size_t *used)
{
	size_t i;

	for (i = 0; i < len; i++) {
		s->state = scan_byte(s, (unsigned char)p[i]);
		if (s->state == SC_BAD) {
			*used = i;
			return GW_REQ_BAD;
		}
		if (s->state == SC_DONE) {
			*used = i + 1;
			return GW_REQ_DONE;
		}
	}
	*used = len;
	return GW_REQ_MORE;
}

static int ieq(gw_str_t s, const char *lit)
{
	size_t n = strlen(lit);

	return s.len == n && !strncasecmp(s.ptr, lit, n);
}

/* Without the optional whitespace around a field value or list element. */
static gw_str_t trim(gw_str_t s)
{
	while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
		s.ptr++;
		s.len--;
	}
	while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
		s.len--;
	return s;
}

/* RFC 9110 §7.2: uri-host [ ":" port ], possibly empty. */
static int host_valid(gw_str_t v)
{
	for (size_t i = 0; i < v.len; i++) {
		unsigned char c = (unsigned char)v.ptr[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      strchr("-._~!$&'()*+,;=:[]%", c)))
			return 0;
	}
	return 1;
}

/* 1*DIGIT within uint64, or -1. */
static int parse_length(gw_str_t v, uint64_t *out)
{
	uint64_t n = 0;

	if (!v.len)
		return -1;
	for (size_t i = 0; i < v.len; i++) {
		if (v.ptr[i] < '0' || v.ptr[i] > '9' || n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(v.ptr[i] - '0');
	}
	*out = n;
	return 0;
}

/* Walks the codings of one Transfer-Encoding value: -1 when one is empty
 * or comes after chunked (chunked twice included); *last_chunked tells
 * whether the last one seen is chunked. */
static int codings(gw_str_t v, int *last_chunked)
{
	size_t i = 0;

	for (;;) {
		gw_str_t c = { v.ptr + i, 0 };

		while (i + c.len < v.len && v.ptr[i + c.len] != ',' && v.ptr[i + c.len] != ';')
			c.len++;
		i += c.len;
		/* parameters of a coding are skipped up to the next comma */
		while (i < v.len && v.ptr[i] != ',')
			i++;
		c = trim(c);
		if (!c.len || *last_chunked)
			return -1;
		*last_chunked = ieq(c, "chunked");
		if (i == v.len)
			return 0;
		i++;
	}
}

/* The rules on a complete head's fields that http-parser does not enforce
 * (RFC 9112 §3.2, §6.1, §6.3): exactly one valid Host in HTTP/1.1, at most
 * one in 1.0; Content-Length digits only, repeated only with the same value;
 * Transfer-Encoding ending in chunked, chunked only once, never with
 * Content-Length nor in HTTP/1.0 (other codings are left to the caller,
 * which answers 501). 0, or -1 with *why set. */
static int check_fields(const gw_str_t *names, const gw_str_t *values, size_t n, int http_minor,
			const char **why)
{
	size_t hosts = 0, lengths = 0, encodings = 0;
	uint64_t length = 0;
	int last_chunked = 0;

	for (size_t i = 0; i < n; i++) {
		gw_str_t v = trim(values[i]);
		uint64_t l;

		if (ieq(names[i], "Host")) {
			hosts++;
			if (!host_valid(v)) {
				*why = "invalid Host";
				return -1;
			}
		} else if (ieq(names[i], "Content-Length")) {
			if (parse_length(v, &l)) {
				*why = "invalid Content-Length";
				return -1;
			}
			if (lengths++ && l != length) {
				*why = "conflicting Content-Length";
				return -1;
			}
			length = l;
		} else if (ieq(names[i], "Transfer-Encoding")) {
			encodings++;
			if (codings(v, &last_chunked)) {
				*why = "chunked applied twice, or an empty coding";
				return -1;
			}
		}
	}
	if (hosts > 1 || (http_minor >= 1 && !hosts)) {
		*why = hosts ? "more than one Host" : "no Host";
		return -1;
	}
	/* Without chunked last, the end of the body is anybody's guess
	 * (§6.3); codings before it are for the caller to refuse (501). */
	if (encodings && (!last_chunked || lengths || http_minor < 1)) {
		*why = !last_chunked ? "Transfer-Encoding not ending in chunked"
		       : lengths     ? "Transfer-Encoding with Content-Length"
				     : "Transfer-Encoding in HTTP/1.0";
		return -1;
	}
	return 0;
}

/* --- http-parser callbacks --- */

static int fail(gw_req_t *r, enum gw_req_status st)
{
	r->failed = st;
	return -1;
}

/* Spans point into raw: http-parser only sees the head there. */
static void grow(gw_req_t *r, span_t *s, const char *at, size_t len)
{
	if (!s->len)
		s->off = (size_t)(at - r->raw.data);
	s->len += len;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	gw_req_t *r = p->data;

	grow(r, &r->url, at, len);
	return 0;
}

static int on_field(http_parser *p, const char *at, size_t len)
{
	gw_req_t *r = p->data;

	/* Trailer fields of a chunked body are dropped (RFC 9110 §6.5.1):
	 * they were never checked as the head was, and must not join it. */
	if (r->head_done)
		return 0;
	if (r->last != 1) {
		if (r->n == MAX_HEADERS)
			return fail(r, GW_REQ_HEAD_TOO_LARGE);
		memset(&r->name[r->n], 0, sizeof(span_t));
		memset(&r->value[r->n], 0, sizeof(span_t));
		r->n++;
		r->last = 1;
	}
	grow(r, &r->name[r->n - 1], at, len);
	return 0;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
	gw_req_t *r = p->data;

	if (r->head_done)
		return 0;
	r->last = 2;
	grow(r, &r->value[r->n - 1], at, len);
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	gw_req_t *r = p->data;
	gw_str_t names[MAX_HEADERS], values[MAX_HEADERS];
	const char *why;

	r->head_done = 1;
	/* Framing a proxy must not guess at (RFC 9112 §6.3). */
	for (size_t i = 0; i < r->n; i++)
		gw_req_header(r, i, &names[i], &values[i]);
	if (check_fields(names, values, r->n, p->http_minor, &why))
		return fail(r, GW_REQ_BAD);
	if (r->head_only) {
		http_parser_pause(p, 1);
		return 0;
	}
	/* http-parser ends a CONNECT at its head and would take its body for
	 * the next request; there is no tunnel to open anyway. (An upgrade
	 * head that is no WebSocket comes here from conn.c.) */
	if (p->method == HTTP_CONNECT)
		return fail(r, GW_REQ_BAD);
	/* Refused before a byte of it is read. */
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > r->max_body)
		return fail(r, GW_REQ_BODY_TOO_LARGE);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	gw_req_t *r = p->data;

	if (r->body.len + len > r->max_body)
		return fail(r, GW_REQ_BODY_TOO_LARGE);
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

/* --- the parser --- */

static gw_req_t *create(size_t max_head, size_t max_body, int head_only)
{
	gw_req_t *r = calloc(1, sizeof(*r));

	if (!r)
		abort();
	r->max_head = max_head;
	r->max_body = max_body;
	r->head_only = head_only;
	gw_req_reset(r);
	return r;
}

gw_req_t *gw_req_create(size_t max_head, size_t max_body)
{
	return create(max_head, max_body, 0);
}

gw_req_t *gw_req_create_head(size_t max_bytes)
{
	return create(max_bytes, 0, 1);
}

void gw_req_destroy(gw_req_t *r)
{
	if (!r)
		return;
	gw_buf_dispose(&r->raw);
	gw_buf_dispose(&r->body);
	free(r);
}

void gw_req_reset(gw_req_t *r)
{
	http_parser_init(&r->parser, HTTP_REQUEST);
	r->parser.data = r;
	gw_buf_reset(&r->raw);
	gw_buf_reset(&r->body);
	r->head_len = 0;
	scan_init(&r->scan);
	memset(&r->url, 0, sizeof(r->url));
	r->n = 0;
	r->last = 0;
	r->head_done = r->done = 0;
	r->failed = GW_REQ_MORE;
}

static enum gw_req_status refuse(gw_req_t *r, enum gw_req_status st)
{
	r->failed = st;
	return st;
}

/* The head's part of data: scanned, kept in raw (already there in head
 * mode), then parsed there; *took is how much of data it was. The scanner
 * sees each byte once, and http-parser only what the scanner passed,
 * never beyond the head. */
static enum gw_req_status feed_head(gw_req_t *r, const char *data, size_t len, size_t *took)
{
	enum gw_req_status st = scan(&r->scan, data, len, took);
	size_t at = r->head_len;

	if (st == GW_REQ_BAD)
		return refuse(r, GW_REQ_BAD);
	if (!r->head_only) {
		if (r->raw.len + *took > r->max_head)
			return refuse(r, GW_REQ_HEAD_TOO_LARGE);
		gw_buf_append(&r->raw, data, *took);
	}
	r->head_len += *took;
	/* (A length of 0 would tell http-parser the peer closed.) */
	if (*took)
		http_parser_execute(&r->parser, &settings, r->raw.data + at, *took);
	if (r->failed)
		return r->failed;
	/* Both must agree on where the head ends. http-parser may not count
	 * the byte it paused on (the final LF): the scanner's count is exact. */
	if (!r->head_done) {
		if (HTTP_PARSER_ERRNO(&r->parser) != HPE_OK || st == GW_REQ_DONE)
			return refuse(r, GW_REQ_BAD);
		return GW_REQ_MORE;
	}
	return st == GW_REQ_DONE ? GW_REQ_DONE : refuse(r, GW_REQ_BAD);
}

/* The body's part of data, up to the end of the request. */
static enum gw_req_status feed_body(gw_req_t *r, const char *data, size_t len, size_t *took)
{
	*took = 0;
	if (!r->done && len)
		*took = http_parser_execute(&r->parser, &settings, data, len);
	/* http-parser counts the byte it paused on for message_complete
	 * (CALLBACK_NOTIFY), so *took is exact: the rest is the next request. */
	if (r->done)
		return GW_REQ_DONE;
	if (r->failed)
		return r->failed;
	if (HTTP_PARSER_ERRNO(&r->parser) != HPE_OK)
		return refuse(r, GW_REQ_BAD);
	return GW_REQ_MORE;
}

enum gw_req_status gw_req_feed(gw_req_t *r, const char *data, size_t len, size_t *used)
{
	enum gw_req_status st;
	size_t head = 0, body = 0, unused;

	if (!used)
		used = &unused;
	*used = 0;
	if (r->failed)
		return r->failed;
	if (r->head_only) {
		if (r->raw.len + len > r->max_head)
			return refuse(r, GW_REQ_HEAD_TOO_LARGE);
		gw_buf_append(&r->raw, data, len);
		*used = len;
		return r->head_done ? GW_REQ_DONE : feed_head(r, data, len, &head);
	}
	if (!r->head_done) {
		st = feed_head(r, data, len, &head);
		*used = head;
		if (st != GW_REQ_DONE)
			return st;
	}
	st = feed_body(r, data + head, len - head, &body);
	*used = head + body;
	return st;
}

/* --- what was parsed --- */

static gw_str_t str(const gw_req_t *r, span_t s)
{
	return (gw_str_t){ s.len ? r->raw.data + s.off : "", s.len };
}

const char *gw_req_method(const gw_req_t *r)
{
	return http_method_str((enum http_method)r->parser.method);
}

gw_str_t gw_req_url(const gw_req_t *r)
{
	return str(r, r->url);
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

/* Whether header i has this name (of length nl). */
static int named(const gw_req_t *r, size_t i, const char *name, size_t nl)
{
	return r->name[i].len == nl && !strncasecmp(r->raw.data + r->name[i].off, name, nl);
}

gw_str_t gw_req_get(const gw_req_t *r, const char *name)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < r->n; i++)
		if (named(r, i, name, nl))
			return str(r, r->value[i]);
	return (gw_str_t){ NULL, 0 };
}

size_t gw_req_count(const gw_req_t *r, const char *name)
{
	size_t nl = strlen(name), count = 0;

	for (size_t i = 0; i < r->n; i++)
		count += named(r, i, name, nl);
	return count;
}

int gw_req_keep_alive(const gw_req_t *r)
{
	return http_should_keep_alive(&r->parser);
}

int gw_req_is_websocket(const gw_req_t *r)
{
	gw_str_t v = gw_req_get(r, "Upgrade");

	if (!r->parser.upgrade || !v.ptr)
		return 0;
	for (size_t i = 0; i + 9 <= v.len; i++)
		if (!strncasecmp(v.ptr + i, "websocket", 9))
			return 1;
	return 0;
}

int gw_req_wants_continue(const gw_req_t *r)
{
	gw_str_t e = gw_req_get(r, "Expect");

	return r->head_done && !r->done && e.len == 12 && !strncasecmp(e.ptr, "100-continue", 12);
}

gw_buf_t *gw_req_body(gw_req_t *r)
{
	return &r->body;
}

gw_str_t gw_req_bytes(const gw_req_t *r)
{
	return (gw_str_t){ r->raw.data, r->raw.len };
}

size_t gw_req_head_length(const gw_req_t *r)
{
	return r->head_len;
}

/* --- what libwebsockets 4.1 refuses in an upgrade --- */

/* The names libwebsockets 4.1 recognises (lib/roles/http/lextable-strings.h,
 * as built by Debian: with HTTP/2 and the uncommon headers), in its lower
 * case, with the character that ends each. */
static const char *const lws_known[] = {
	"get ", "post ", "options ", "host:", "connection:", "upgrade:", "origin:",
	"sec-websocket-draft:", "sec-websocket-extensions:", "sec-websocket-key1:",
	"sec-websocket-key2:", "sec-websocket-protocol:", "sec-websocket-accept:",
	"sec-websocket-nonce:", "http/1.1 ", "http2-settings:", "accept:",
	"access-control-request-headers:", "if-modified-since:", "if-none-match:",
	"accept-encoding:", "accept-language:", "pragma:", "cache-control:",
	"authorization:", "cookie:", "content-length:", "content-type:", "date:", "range:",
	"referer:", "sec-websocket-key:", "sec-websocket-version:", "sec-websocket-origin:",
	"accept-charset:", "accept-ranges:", "access-control-allow-origin:", "age:", "allow:",
	"content-disposition:", "content-encoding:", "content-language:",
	"content-location:", "content-range:", "etag:", "expect:", "expires:", "from:",
	"if-match:", "if-range:", "if-unmodified-since:", "last-modified:", "link:",
	"location:", "max-forwards:", "proxy-authenticate:", "proxy-authorization:",
	"refresh:", "retry-after:", "server:", "set-cookie:", "strict-transport-security:",
	"transfer-encoding:", "user-agent:", "vary:", "via:", "www-authenticate:", "patch ",
	"put ", "delete ", "uri-args", "proxy ", "x-real-ip:", "http/1.0 ", "x-forwarded-for:",
	"connect ", "head ", "te:", "replay-nonce:", "x-auth-token:", NULL,
};

/* Header fragments an lws 4.1 head can hold (frags[WSI_TOKEN_COUNT], the
 * first unused): the URI, the version, each known header, each URI
 * argument. */
#define LWS_MAX_FRAGS 94
/* Header space libwebsockets takes, bounded from above (measured against
 * 4.1.6, tests/e2e/hardening-parse.test.mjs): an unknown header keeps an
 * 8-byte record, its name and value; a known one its value, a NUL and, when
 * repeated, a separator; the URI a NUL per argument and its end; and a
 * header name is stored while being matched (up to 8 + 31 bytes). */
#define LWS_UNKNOWN_OVERHEAD 8
#define LWS_FIXED_OVERHEAD 48

/* 1 a header libwebsockets stores as a fragment, 0 one it keeps as a custom
 * header, -1 one its parser loses: a name that is a proper prefix of a known
 * one walks its lookup table up to the ':' and the colon then fails to end
 * it, so the name runs on into the following lines and the head is never
 * complete (e.g. "X-A:", "Con:", "Get:"). */
static int lws_header_kind(gw_str_t name)
{
	int prefix = 0;

	for (const char *const *k = lws_known; *k; k++) {
		size_t kl = strlen(*k);

		if (name.len >= kl || strncasecmp(*k, name.ptr, name.len))
			continue;
		if ((*k)[name.len] == ':' && kl == name.len + 1)
			return 1;
		prefix = 1;
	}
	return prefix ? -1 : 0;
}

/* A list (RFC 9110 §5.6.1) of tokens no longer than max_token, without
 * empty elements (libwebsockets' tokenizer refuses them); *found when one
 * is want (case-insensitive). 0 or -1. */
static int token_list(gw_str_t v, size_t max_token, const char *want, int *found)
{
	size_t i = 0;

	for (;;) {
		gw_str_t e = { v.ptr + i, 0 };

		while (i + e.len < v.len && v.ptr[i + e.len] != ',')
			e.len++;
		i += e.len;
		e = trim(e);
		if (!gw_http_is_token(e.ptr, e.len) || e.len > max_token)
			return -1;
		if (want && ieq(e, want))
			*found = 1;
		if (i == v.len)
			return 0;
		i++; /* the comma */
	}
}

/* Exactly one header of this name; its value, or {NULL, 0}. */
static gw_str_t single(const gw_req_t *r, const char *name)
{
	return gw_req_count(r, name) == 1 ? gw_req_get(r, name) : (gw_str_t){ NULL, 0 };
}

/* The joined length libwebsockets gives all headers of this name (values
 * separated by one byte); 0 when absent. */
static size_t joined_length(const gw_req_t *r, const char *name, size_t *count)
{
	size_t len = 0;
	gw_str_t n, v;

	*count = 0;
	for (size_t i = 0; i < r->n; i++) {
		gw_req_header(r, i, &n, &v);
		if (ieq(n, name))
			len += (*count)++ ? v.len + 1 : v.len;
	}
	return len;
}

/* RFC 6455 §4.1: base64 of 16 bytes, so 22 characters, the last carrying
 * only 2 bits, then "==". */
static int ws_key_valid(gw_str_t k)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *last;

	if (k.len != 24 || k.ptr[22] != '=' || k.ptr[23] != '=')
		return 0;
	for (size_t i = 0; i < 22; i++)
		if (!k.ptr[i] || !strchr(b64, k.ptr[i]))
			return 0;
	last = strchr(b64, k.ptr[21]);
	return ((last - b64) & 0xf) == 0;
}

/* The request target as libwebsockets decodes it: origin-form, and no
 * %00, after which it drops the connection. Percent-escapes are already
 * known to be well-formed (scanner). */
static int ws_url_valid(gw_str_t u)
{
	if (!u.len || u.ptr[0] != '/')
		return 0;
	for (size_t i = 0; i + 2 < u.len; i++)
		if (u.ptr[i] == '%' && u.ptr[i + 1] == '0' && u.ptr[i + 2] == '0')
			return 0;
	return 1;
}

/* Fragments and header space the head takes in libwebsockets, bounded
 * from above. */
static void lws_usage(const gw_req_t *r, size_t *frags, size_t *space)
{
	gw_str_t u = gw_req_url(r), n, v;

	*frags = 2; /* URI, version */
	*space = LWS_FIXED_OVERHEAD + u.len + 3;
	for (size_t i = 0; i < u.len; i++)
		if (u.ptr[i] == '&' || u.ptr[i] == ';') {
			++*frags;
			++*space;
		}
	if (memchr(u.ptr, '?', u.len)) {
		++*frags;
		++*space;
	}
	for (size_t i = 0; i < r->n; i++) {
		gw_req_header(r, i, &n, &v);
		if (lws_header_kind(n) == 1) {
			++*frags;
			*space += v.len + 3;
		} else {
			*space += LWS_UNKNOWN_OVERHEAD + n.len + 1 + v.len + 2;
		}
	}
}

/* Whether header i has a tab before its value: libwebsockets skips only
 * spaces there for the headers it knows, and keeps the rest ("Upgrade:
 * <TAB>websocket" is then no websocket to it). */
static int tab_before_value(const gw_req_t *r, size_t i)
{
	size_t colon = r->name[i].off + r->name[i].len;

	if (!r->value[i].len || r->value[i].off <= colon)
		return 0;
	return memchr(r->raw.data + colon, '\t', r->value[i].off - colon) != NULL;
}

/* The header-by-header rules; NULL when they hold. */
static const char *ws_fields_problem(const gw_req_t *r)
{
	size_t count, len;
	gw_str_t n, v;
	int found = 0;

	for (size_t i = 0; i < r->n; i++) {
		int kind;

		gw_req_header(r, i, &n, &v);
		kind = lws_header_kind(n);
		if (kind < 0)
			return "a header name libwebsockets cannot parse";
		if (kind == 1 && tab_before_value(r, i))
			return "a tab before a value libwebsockets keeps";
		/* conn.c picks the vhost by the first name up to a comma or a
		 * space; libwebsockets' own list parser would not match it. */
		if (ieq(n, "Sec-WebSocket-Protocol") && memchr(v.ptr, '\t', v.len))
			return "a tab in Sec-WebSocket-Protocol";
		if (ieq(n, "Transfer-Encoding") || (ieq(n, "Content-Length") && !ieq(trim(v), "0")))
			return "a body on an upgrade";
	}
	v = single(r, "Host");
	if (!v.ptr || !trim(v).len)
		return "no Host";
	v = single(r, "Upgrade");
	if (!v.ptr || !ieq(v, "websocket"))
		return "Upgrade is not exactly websocket";
	if (!ws_key_valid(single(r, "Sec-WebSocket-Key")))
		return "invalid Sec-WebSocket-Key";
	if (!ieq(trim(single(r, "Sec-WebSocket-Version")), "13"))
		return "Sec-WebSocket-Version is not 13";
	/* libwebsockets copies these into 128-byte buffers. */
	if (joined_length(r, "Connection", &count) > 126)
		return "Connection too long";
	for (size_t i = 0; i < r->n; i++) {
		gw_req_header(r, i, &n, &v);
		if (ieq(n, "Connection") && token_list(v, SIZE_MAX, "upgrade", &found))
			return "malformed Connection";
		/* and each protocol name into 64 bytes */
		if (ieq(n, "Sec-WebSocket-Protocol") && token_list(v, 62, NULL, &found))
			return "malformed Sec-WebSocket-Protocol";
	}
	if (!found)
		return "Connection without upgrade";
	if (joined_length(r, "Sec-WebSocket-Protocol", &count) > 126)
		return "Sec-WebSocket-Protocol too long";
	/* Its extension parser stops at 255 bytes. */
	len = joined_length(r, "Sec-WebSocket-Extensions", &count);
	if (len > 254)
		return "Sec-WebSocket-Extensions too long";
	return NULL;
}

/* The limits every head meets in libwebsockets, upgrade or not. */
static enum gw_req_status lws_limits(const gw_req_t *r, size_t lws_space, const char **why)
{
	size_t frags, space;

	lws_usage(r, &frags, &space);
	if (frags > LWS_MAX_FRAGS) {
		*why = "too many headers and URI arguments for libwebsockets";
		return GW_REQ_HEAD_TOO_LARGE;
	}
	if (space + 1 >= lws_space) {
		*why = "head too large for libwebsockets' header space";
		return GW_REQ_HEAD_TOO_LARGE;
	}
	return GW_REQ_DONE;
}

enum gw_req_status gw_req_check_lws(const gw_req_t *r, size_t lws_space, const char **why)
{
	gw_str_t n, v;

	*why = NULL;
	if (!r->head_done || r->failed) {
		*why = "incomplete head";
		return GW_REQ_BAD;
	}
	for (size_t i = 0; i < r->n; i++) {
		gw_req_header(r, i, &n, &v);
		if (lws_header_kind(n) < 0) {
			*why = "a header name libwebsockets cannot parse";
			return GW_REQ_BAD;
		}
	}
	return lws_limits(r, lws_space, why);
}

enum gw_req_status gw_req_check_websocket(const gw_req_t *r, size_t lws_space, const char **why)
{

	*why = NULL;
	if (!r->head_done || r->failed) {
		*why = "incomplete head";
		return GW_REQ_BAD;
	}
	if (r->parser.method != HTTP_GET || r->parser.http_major != 1 || r->parser.http_minor != 1)
		*why = "not an HTTP/1.1 GET";
	else if (!ws_url_valid(gw_req_url(r)))
		*why = "a request target libwebsockets refuses";
	else
		*why = ws_fields_problem(r);
	if (*why)
		return GW_REQ_BAD;
	return lws_limits(r, lws_space, why);
}

/* --- what the gateway writes --- */

const char *gw_http_reason(int s)
{
	/* RFC 9110 §15 (and 6585's 428, 429, 431, 511; 7725's 451): a
	 * backend's status passes through REST and $connect answers. */
	switch (s) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Content";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 451: return "Unavailable For Legal Reasons";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 511: return "Network Authentication Required";
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
