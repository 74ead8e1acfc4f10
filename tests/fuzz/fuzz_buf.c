/* The byte helpers every event and answer goes through (buf.c, event.c):
 * JSON string escaping, UTF-8 validation, base64 both ways, URL decoding,
 * each against a reference or a round trip. Input: any bytes. */
#include "buf.h"
#include "event.h"
#include "fuzz_common.h"

#include <jansson.h>
#include <string.h>

/* RFC 3629 §4, written the long way. */
static int ref_utf8(const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = p[i];
		size_t k;
		unsigned lo = 0x80, hi = 0xbf;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3;
		else
			return 0;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
		else if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
		if (i + k >= n)
			return 0;
		if (p[i + 1] < lo || p[i + 1] > hi)
			return 0;
		for (size_t j = 2; j <= k; j++)
			if (p[i + j] < 0x80 || p[i + j] > 0xbf)
				return 0;
		i += k + 1;
	}
	return 1;
}

static int hexv(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void json_escape(const uint8_t *data, size_t size, gw_buf_t *b)
{
	json_error_t e;
	json_t *j;

	gw_buf_reset(b);
	gw_buf_append_json_str(b, (const char *)data, size);
	j = json_loadb(b->data, b->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	if (!j)
		fprintf(stderr, "not a JSON string: %s: %.*s\n", e.text, (int)b->len, b->data);
	FZ_CHECK(j && json_is_string(j));
	FZ_CHECK(gw_utf8_valid((const unsigned char *)json_string_value(j), json_string_length(j)));
	if (gw_utf8_valid(data, size))
		FZ_CHECK(json_string_length(j) == size &&
			 !memcmp(json_string_value(j), data, size));
	json_decref(j);
}

static void base64(const uint8_t *data, size_t size, gw_buf_t *b)
{
	gw_buf_t d;
	char *url = malloc(4 * ((size + 2) / 3) + 1);
	size_t ul;

	gw_buf_init(&d);
	gw_buf_reset(b);
	gw_buf_append_base64(b, data, size);
	FZ_CHECK(b->len == 4 * ((size + 2) / 3));
	FZ_CHECK(!gw_base64_decode(&d, b->data, b->len));
	FZ_CHECK(d.len == size && (!size || !memcmp(d.data, data, size)));
	/* Any input: decoded or refused, never more than 3/4 of it. */
	gw_buf_reset(&d);
	if (!gw_base64_decode(&d, (const char *)data, size))
		FZ_CHECK(d.len <= size / 4 * 3 + 3);
	ul = gw_base64url(url, data, size);
	FZ_CHECK(ul == (size * 4 + 2) / 3 && url[ul] == '\0');
	for (size_t i = 0; i < ul; i++)
		FZ_CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
				url[i]) && url[i]);
	free(url);
	gw_buf_dispose(&d);
}

static void url_decode(const uint8_t *data, size_t size, int form)
{
	char *out = malloc(size + 1), *ref = malloc(size + 1);
	size_t n = gw_url_decode(out, (const char *)data, size, form), r = 0;

	for (size_t i = 0; i < size; i++) {
		if (data[i] == '%' && i + 2 < size && hexv((char)data[i + 1]) >= 0 &&
		    hexv((char)data[i + 2]) >= 0) {
			ref[r++] = (char)(hexv((char)data[i + 1]) * 16 + hexv((char)data[i + 2]));
			i += 2;
		} else {
			ref[r++] = form && data[i] == '+' ? ' ' : (char)data[i];
		}
	}
	FZ_CHECK(n == r && !memcmp(out, ref, n));
	free(out);
	free(ref);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gw_buf_t b;

	gw_buf_init(&b);
	FZ_CHECK(!gw_utf8_valid(data, size) == !ref_utf8(data, size));
	json_escape(data, size, &b);
	base64(data, size, &b);
	url_decode(data, size, 0);
	url_decode(data, size, 1);
	gw_buf_dispose(&b);
	return 0;
}
