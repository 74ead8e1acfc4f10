/* Growable, binary-safe byte buffer ({ptr, len}, never NUL-scanned) used to
 * build events and responses. One owner; reset keeps the allocation so a
 * buffer reused per message allocates nothing in the steady state. */
#ifndef GW_BUF_H
#define GW_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct gw_buf {
	char *data;
	size_t len;
	size_t cap;
} gw_buf_t;

typedef struct gw_str {
	const char *ptr;
	size_t len;
} gw_str_t;

#define GW_STR(s) ((gw_str_t){ (s), sizeof(s) - 1 })

void gw_buf_init(gw_buf_t *b);
void gw_buf_dispose(gw_buf_t *b);
/* Make room for n more bytes; aborts on allocation failure (internal sizes
 * only: callers check peer-controlled sizes against limits first). */
void gw_buf_reserve(gw_buf_t *b, size_t n);
void gw_buf_reset(gw_buf_t *b);
void gw_buf_append(gw_buf_t *b, const void *p, size_t n);
void gw_buf_append_str(gw_buf_t *b, const char *s);
void gw_buf_append_char(gw_buf_t *b, char c);
void gw_buf_append_u64(gw_buf_t *b, uint64_t v);
void gw_buf_append_i64(gw_buf_t *b, int64_t v);
/* Appends s as a quoted JSON string, escaping what JSON requires. Invalid
 * UTF-8 bytes are replaced by U+FFFD so the output is always valid JSON. */
void gw_buf_append_json_str(gw_buf_t *b, const char *s, size_t n);
/* Standard base64 (RFC 4648 §4, padded). */
void gw_buf_append_base64(gw_buf_t *b, const void *p, size_t n);
/* Decodes standard base64 into b; returns 0 or -1 on malformed input. */
int gw_base64_decode(gw_buf_t *b, const char *s, size_t n);
/* URL-safe base64 without padding (RFC 4648 §5) into out (4*ceil(n/3)+1). */
size_t gw_base64url(char *out, const unsigned char *p, size_t n);

/* True when p[0..n) is well-formed UTF-8 (no overlongs, no surrogates). */
int gw_utf8_valid(const unsigned char *p, size_t n);

#endif
