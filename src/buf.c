/* Byte buffers, JSON string escaping and base64 (through OpenSSL's
 * EVP_EncodeBlock / EVP_DecodeBlock, so no hand-rolled codec). */
#include "buf.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gw_buf_init(gw_buf_t *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
}

void gw_buf_dispose(gw_buf_t *b)
{
	free(b->data);
	gw_buf_init(b);
}

void gw_buf_reserve(gw_buf_t *b, size_t n)
{
	size_t want = b->len + n + 1, cap = b->cap ? b->cap : 256;
	char *p;

	if (want <= b->cap)
		return;
	while (cap < want)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		abort();
	b->data = p;
	b->cap = cap;
}

void gw_buf_reset(gw_buf_t *b)
{
	b->len = 0;
}

void gw_buf_append(gw_buf_t *b, const void *p, size_t n)
{
	gw_buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void gw_buf_append_str(gw_buf_t *b, const char *s)
{
	gw_buf_append(b, s, strlen(s));
}

void gw_buf_append_char(gw_buf_t *b, char c)
{
	/* Called per byte by the escapers: no reserve call when it fits. */
	if (b->len + 2 > b->cap)
		gw_buf_reserve(b, 1);
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
}

/* Decimal digits without snprintf: it cost ~700 instructions a number,
 * and every request and answer head carries a few (issue 10, REST). */
static void append_dec(gw_buf_t *b, uint64_t v, int negative)
{
	char tmp[24];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	if (negative)
		tmp[--i] = '-';
	gw_buf_append(b, tmp + i, sizeof(tmp) - i);
}

void gw_buf_append_u64(gw_buf_t *b, uint64_t v)
{
	append_dec(b, v, 0);
}

void gw_buf_append_i64(gw_buf_t *b, int64_t v)
{
	/* -(v + 1) + 1 does not overflow for INT64_MIN. */
	append_dec(b, v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v, v < 0);
}

/* Length of the well-formed UTF-8 sequence at p, or 0 if malformed. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && p[1] < 0xa0)
			return 0; /* overlong */
		if (c == 0xed && p[1] >= 0xa0)
			return 0; /* surrogate */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && p[1] < 0x90)
			return 0;
		if (c == 0xf4 && p[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

int gw_utf8_valid(const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = utf8_seq(p + i, n - i);
		if (!k)
			return 0;
		i += k;
	}
	return 1;
}

void gw_buf_append_json_str(gw_buf_t *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;

	/* Worst case 6 bytes per input byte, plus quotes. */
	gw_buf_reserve(b, n + 2);
	gw_buf_append_char(b, '"');
	while (i < n) {
		unsigned char c = p[i];
		size_t k;

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			run++;
			continue;
		}
		if (run)
			gw_buf_append(b, p + i - run, run);
		run = 0;
		if (c >= 0x80) {
			k = utf8_seq(p + i, n - i);
			if (k) {
				gw_buf_append(b, p + i, k);
				i += k;
			} else {
				gw_buf_append(b, "\xef\xbf\xbd", 3);
				i++;
			}
			continue;
		}
		switch (c) {
		case '"': gw_buf_append(b, "\\\"", 2); break;
		case '\\': gw_buf_append(b, "\\\\", 2); break;
		case '\n': gw_buf_append(b, "\\n", 2); break;
		case '\r': gw_buf_append(b, "\\r", 2); break;
		case '\t': gw_buf_append(b, "\\t", 2); break;
		default: {
			char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			gw_buf_append(b, esc, 6);
		}
		}
		i++;
	}
	if (run)
		gw_buf_append(b, p + i - run, run);
	gw_buf_append_char(b, '"');
}

void gw_buf_append_base64(gw_buf_t *b, const void *p, size_t n)
{
	size_t out = 4 * ((n + 2) / 3);

	gw_buf_reserve(b, out);
	EVP_EncodeBlock((unsigned char *)b->data + b->len, p, (int)n);
	b->len += out;
	b->data[b->len] = '\0';
}

int gw_base64_decode(gw_buf_t *b, const char *s, size_t n)
{
	size_t pad = 0;
	int got;

	if (n % 4)
		return -1;
	if (n && s[n - 1] == '=')
		pad++;
	if (n > 1 && s[n - 2] == '=')
		pad++;
	/* EVP_DecodeBlock reads '=' anywhere as a zero: only trailing padding
	 * is base64. */
	for (size_t i = 0; i < n - pad; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '+' || c == '/'))
			return -1;
	}
	gw_buf_reserve(b, n / 4 * 3);
	got = EVP_DecodeBlock((unsigned char *)b->data + b->len,
			      (const unsigned char *)s, (int)n);
	if (got < 0)
		return -1;
	b->len += (size_t)got - pad;
	b->data[b->len] = '\0';
	return 0;
}

size_t gw_base64url(char *out, const unsigned char *p, size_t n)
{
	int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);

	while (len && out[len - 1] == '=')
		len--;
	for (int i = 0; i < len; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	out[len] = '\0';
	return (size_t)len;
}
