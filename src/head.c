/* Incremental request-head parsing with http-parser. Spans are kept as
 * offsets into the growing buffer, since pointers would not survive its
 * reallocation. */
#include "head.h"

#include <http_parser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEADERS 100

typedef struct span {
	size_t off, len;
} span_t;

struct gw_head {
	gw_buf_t buf;
	size_t max;
	size_t parsed;
	http_parser parser;
	span_t url;
	span_t name[MAX_HEADERS], value[MAX_HEADERS];
	size_t n;
	int last; /* 1 field, 2 value */
	int done;
};

static int on_url(http_parser *p, const char *at, size_t len)
{
	gw_head_t *h = p->data;

	if (!h->url.len)
		h->url.off = (size_t)(at - h->buf.data);
	h->url.len += len;
	return 0;
}

static int on_field(http_parser *p, const char *at, size_t len)
{
	gw_head_t *h = p->data;

	if (h->last != 1) {
		if (h->n == MAX_HEADERS)
			return -1;
		h->name[h->n].off = (size_t)(at - h->buf.data);
		h->name[h->n].len = 0;
		h->value[h->n].off = h->value[h->n].len = 0;
		h->n++;
		h->last = 1;
	}
	h->name[h->n - 1].len += len;
	return 0;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
	gw_head_t *h = p->data;

	if (h->last != 2) {
		h->value[h->n - 1].off = (size_t)(at - h->buf.data);
		h->last = 2;
	}
	h->value[h->n - 1].len += len;
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	gw_head_t *h = p->data;

	h->done = 1;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
	.on_url = on_url,
	.on_header_field = on_field,
	.on_header_value = on_value,
	.on_headers_complete = on_headers_complete,
};

gw_head_t *gw_head_create(size_t max_bytes)
{
	gw_head_t *h = calloc(1, sizeof(*h));

	if (!h)
		abort();
	h->max = max_bytes;
	http_parser_init(&h->parser, HTTP_REQUEST);
	h->parser.data = h;
	return h;
}

void gw_head_destroy(gw_head_t *h)
{
	if (!h)
		return;
	gw_buf_dispose(&h->buf);
	free(h);
}

enum gw_head_status gw_head_feed(gw_head_t *h, const char *data, size_t len)
{
	if (h->buf.len + len > h->max)
		return GW_HEAD_TOO_LARGE;
	gw_buf_append(&h->buf, data, len);
	if (h->done)
		return GW_HEAD_DONE;
	h->parsed += http_parser_execute(&h->parser, &settings, h->buf.data + h->parsed,
					 h->buf.len - h->parsed);
	if (h->done) {
		/* Paused inside on_headers_complete, http-parser does not count
		 * the byte it was on: the head's final LF. */
		if (h->parsed < h->buf.len)
			h->parsed++;
		return GW_HEAD_DONE;
	}
	if (HTTP_PARSER_ERRNO(&h->parser) != HPE_OK)
		return GW_HEAD_BAD;
	return GW_HEAD_MORE;
}

static gw_str_t str(const gw_head_t *h, span_t s)
{
	return (gw_str_t){ h->buf.data + s.off, s.len };
}

gw_str_t gw_head_url(const gw_head_t *h)
{
	return str(h, h->url);
}

int gw_head_is_get(const gw_head_t *h)
{
	return h->parser.method == HTTP_GET;
}

int gw_head_is_websocket(const gw_head_t *h)
{
	gw_str_t v = gw_head_get(h, "Upgrade");

	if (!h->parser.upgrade || !v.ptr)
		return 0;
	for (size_t i = 0; i + 9 <= v.len; i++)
		if (!strncasecmp(v.ptr + i, "websocket", 9))
			return 1;
	return 0;
}

size_t gw_head_count(const gw_head_t *h)
{
	return h->n;
}

void gw_head_at(const gw_head_t *h, size_t i, gw_str_t *name, gw_str_t *value)
{
	*name = str(h, h->name[i]);
	*value = str(h, h->value[i]);
}

gw_str_t gw_head_get(const gw_head_t *h, const char *name)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < h->n; i++)
		if (h->name[i].len == nl && !strncasecmp(h->buf.data + h->name[i].off, name, nl))
			return str(h, h->value[i]);
	return (gw_str_t){ NULL, 0 };
}

gw_str_t gw_head_bytes(const gw_head_t *h)
{
	return (gw_str_t){ h->buf.data, h->buf.len };
}

size_t gw_head_length(const gw_head_t *h)
{
	return h->parsed;
}
