/* Events built from what a client sent (event.c) must be JSON that a
 * Lambda can read, and carry the client's body byte for byte. */
#ifndef GW_FUZZ_EVENT_H
#define GW_FUZZ_EVENT_H

#include "buf.h"
#include "fuzz_common.h"

#include <jansson.h>
#include <string.h>

/* The parsed event, or NULL for valid JSON that jansson cannot hold (a
 * "\u0000" in an object key: a query parameter named "%00"). */
static inline json_t *fz_json(const gw_buf_t *b)
{
	json_error_t e;
	json_t *j = json_loadb(b->data, b->len, JSON_ALLOW_NUL, &e);

	if (!j && strstr(e.text, "NUL byte in object key"))
		return NULL;
	if (!j) {
		fprintf(stderr, "event is not JSON: %s at byte %d: %.*s\n", e.text, e.position,
			(int)(b->len < 4000 ? b->len : 4000), b->data);
		abort();
	}
	return j;
}

/* The event's body (base64 or not, as it says) is body[0..len). */
static inline void fz_check_body(json_t *ev, const char *body, size_t len)
{
	json_t *b = json_object_get(ev, "body");
	gw_buf_t d;

	if (!ev || !len)
		return;
	FZ_CHECK(json_is_string(b));
	if (json_is_true(json_object_get(ev, "isBase64Encoded"))) {
		gw_buf_init(&d);
		FZ_CHECK(!gw_base64_decode(&d, json_string_value(b), json_string_length(b)));
		FZ_CHECK(d.len == len && !memcmp(d.data, body, len));
		gw_buf_dispose(&d);
	} else {
		/* Sent as text only when it is text. */
		FZ_CHECK(gw_utf8_valid((const unsigned char *)body, len));
		FZ_CHECK(json_string_length(b) == len && !memcmp(json_string_value(b), body, len));
	}
}

#endif
