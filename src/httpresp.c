/* Integration response parsing over http-parser. The backend is a peer
 * like any other (it may be compromised): everything it sends is bounded
 * (http-parser's 80 KB head limit, MAX_HEADERS, max_body), and a response
 * whose header names or values could not be written out again as they are
 * (http-parser tolerates spaces in names) is malformed, as nginx treats an
 * "upstream sent invalid header". */
#include "httpresp.h"
#include "httpreq.h"

#include <http_parser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEADERS 100
/* What a pooled connection keeps allocated between calls: enough for the
 * usual answer, not one large answer's worth for the connection's life. */
#define KEEP_BYTES (64u << 10)

struct gw_resp {
	http_parser parser;
	size_t max_body;
	gw_buf_t hdrs; /* name\0value\0... */
	size_t off[MAX_HEADERS][2];
	size_t n;
	int last;
	gw_buf_t body;
	int done, too_large, started;
	int head;         /* the request was HEAD: no body */
	int in_body;      /* past the head: trailers are not headers */
	int bad_header;
};

static int on_field(http_parser *p, const char *at, size_t len)
{
	gw_resp_t *r = p->data;

	if (r->in_body)
		return 0;
	if (r->last != 1) {
		if (r->n == MAX_HEADERS) {
			r->last = 3; /* ignore the rest */
			return 0;
		}
		if (r->hdrs.len)
			gw_buf_append_char(&r->hdrs, '\0');
		r->off[r->n][0] = r->hdrs.len;
		r->off[r->n][1] = (size_t)-1;
		r->n++;
		r->last = 1;
	}
	gw_buf_append(&r->hdrs, at, len);
	return 0;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
	gw_resp_t *r = p->data;

	if (r->in_body || r->last == 3 || !r->n)
		return 0;
	if (r->last != 2) {
		gw_buf_append_char(&r->hdrs, '\0');
		r->off[r->n - 1][1] = r->hdrs.len;
		r->last = 2;
	}
	gw_buf_append(&r->hdrs, at, len);
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	gw_resp_t *r = p->data;

	r->in_body = 1;
	/* Terminates the last name or value; NUL cannot occur in either
	 * (http-parser refuses it), so strlen finds their ends. */
	gw_buf_append_char(&r->hdrs, '\0');
	for (size_t i = 0; i < r->n; i++) {
		const char *name, *value;

		gw_resp_header(r, i, &name, &value);
		if (!gw_http_is_token(name, strlen(name)) ||
		    !gw_http_field_value(value, strlen(value))) {
			r->bad_header = 1;
			return -1;
		}
	}
	return r->head ? 1 : 0; /* 1: no body follows */
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	gw_resp_t *r = p->data;

	if (r->body.len + len > r->max_body) {
		r->too_large = 1;
		return -1;
	}
	gw_buf_append(&r->body, at, len);
	return 0;
}

static int on_complete(http_parser *p)
{
	gw_resp_t *r = p->data;

	r->done = 1;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
	.on_header_field = on_field,
	.on_header_value = on_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_complete,
};

gw_resp_t *gw_resp_create(size_t max_body)
{
	gw_resp_t *r = calloc(1, sizeof(*r));

	if (!r)
		abort();
	r->max_body = max_body;
	gw_resp_reset(r);
	return r;
}

void gw_resp_destroy(gw_resp_t *r)
{
	if (!r)
		return;
	gw_buf_dispose(&r->hdrs);
	gw_buf_dispose(&r->body);
	free(r);
}

void gw_resp_reset(gw_resp_t *r)
{
	http_parser_init(&r->parser, HTTP_RESPONSE);
	r->parser.data = r;
	if (r->hdrs.cap > KEEP_BYTES)
		gw_buf_dispose(&r->hdrs);
	if (r->body.cap > KEEP_BYTES)
		gw_buf_dispose(&r->body);
	gw_buf_reset(&r->hdrs);
	gw_buf_reset(&r->body);
	r->n = 0;
	r->last = 0;
	r->done = r->too_large = r->started = 0;
	r->head = r->in_body = r->bad_header = 0;
}

void gw_resp_set_head(gw_resp_t *r, int head)
{
	r->head = head;
}

enum gw_resp_status gw_resp_feed(gw_resp_t *r, const char *data, size_t len, int *extra)
{
	size_t used;

	*extra = 0;
	if (!len && !r->started)
		return GW_RESP_BAD;
	r->started = 1;
	used = http_parser_execute(&r->parser, &settings, data, len);
	/* An interim 1xx answer (100 Continue, 103 Early Hints): the real one
	 * follows on the same connection. */
	while (r->done && r->parser.status_code >= 100 && r->parser.status_code < 200 &&
	       r->parser.status_code != 101) {
		size_t off = used;
		int head = r->head;

		gw_resp_reset(r);
		r->started = 1;
		r->head = head;
		used = off + http_parser_execute(&r->parser, &settings, data + off, len - off);
	}
	/* 101 switches protocols, which the gateway never asks for: the
	 * connection could not be read as HTTP any further. A status outside
	 * 100..599 means nothing to a client it would be passed on to. */
	if (r->done && (r->parser.status_code == 101 || r->parser.status_code < 100 ||
			r->parser.status_code > 599))
		return GW_RESP_BAD;
	if (r->done) {
		/* message_complete counts its byte (CALLBACK_NOTIFY): exact. */
		*extra = used < len;
		return GW_RESP_DONE;
	}
	if (r->too_large)
		return GW_RESP_TOO_LARGE;
	if (HTTP_PARSER_ERRNO(&r->parser) != HPE_OK || (!len && !r->done))
		return GW_RESP_BAD;
	return GW_RESP_MORE;
}

int gw_resp_status_code(const gw_resp_t *r)
{
	return (int)r->parser.status_code;
}

int gw_resp_keep_alive(const gw_resp_t *r)
{
	return http_should_keep_alive(&r->parser);
}

size_t gw_resp_header_count(const gw_resp_t *r)
{
	return r->n;
}

void gw_resp_header(const gw_resp_t *r, size_t i, const char **name, const char **value)
{
	*name = r->hdrs.data + r->off[i][0];
	*value = r->off[i][1] == (size_t)-1 ? "" : r->hdrs.data + r->off[i][1];
}

gw_str_t gw_resp_body(const gw_resp_t *r)
{
	return (gw_str_t){ r->body.data ? r->body.data : "", r->body.len };
}

gw_buf_t *gw_resp_body_buf(gw_resp_t *r)
{
	return &r->body;
}

/* --- HTTP rules --------------------------------------------------------- */

int gw_http_field_value(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}
	return 1;
}

int gw_http_status_allows_body(int status)
{
	return status >= 200 && status != 204 && status != 304;
}

int gw_http_forwardable_header(const char *name, size_t len)
{
	static const char *const own[] = { "Host", "Expect", "X-Forwarded-For",
		"X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "Forwarded",
		"X-Amzn-RequestId", NULL };

	if (!gw_http_is_token(name, len) || gw_http_hop_by_hop(name, len))
		return 0;
	if (len >= 9 && !strncasecmp(name, "X-Wsgate-", 9))
		return 0;
	for (const char *const *h = own; *h; h++)
		if (strlen(*h) == len && !strncasecmp(*h, name, len))
			return 0;
	return 1;
}
