/* The backend's HTTP response (httpresp.c) as backend.c reads it: bytes
 * in pieces of any size, then the peer's close (a zero-length feed); a
 * complete answer is read back by integration.c as an HTTP_PROXY and as an
 * AWS_PROXY answer. Fed in pieces or whole, the same bytes must give the
 * same response. Input: [seed][max piece][bytes...]. */
#include "fuzz_common.h"
#include "httpresp.h"
#include "integration.h"

#include <string.h>

#define MAX_BODY 8192
#define MAX_HEADERS 100

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 0x100000001b3ull;
	return (h ^ n) * 0x100000001b3ull;
}

static void integrate(gw_resp_t *r, const char **names, const char **values)
{
	static const gw_integration_t proxy = { .name = "proxy", .type = GW_INTEG_HTTP_PROXY };
	static const gw_integration_t lambda = { .name = "lambda", .type = GW_INTEG_AWS_PROXY };
	gw_str_t body = gw_resp_body(r);
	gw_http_resp_t hr = {
		.outcome = GW_CALL_OK,
		.status = gw_resp_status_code(r),
		.header_names = names,
		.header_values = values,
		.n_headers = gw_resp_header_count(r),
		.body = body.ptr,
		.body_len = body.len,
		.body_buf = gw_resp_body_buf(r),
	};
	gw_integ_result_t res;
	gw_buf_t scratch;

	gw_buf_init(&scratch);
	gw_integ_result(&proxy, &hr, &scratch, &res);
	if (res.subprotocol)
		fz_touch(res.subprotocol, strlen(res.subprotocol));
	gw_integ_result(&lambda, &hr, &scratch, &res);
	if (res.outcome == GW_INTEG_OK) {
		fz_touch(res.body, res.body_len);
		if (res.subprotocol)
			fz_touch(res.subprotocol, strlen(res.subprotocol));
	}
	gw_buf_dispose(&scratch);
}

static uint64_t inspect(uint64_t h, gw_resp_t *r, int run_integ)
{
	const char *names[MAX_HEADERS], *values[MAX_HEADERS];
	size_t n = gw_resp_header_count(r);
	gw_str_t body = gw_resp_body(r);
	int sc = gw_resp_status_code(r), ka = gw_resp_keep_alive(r);

	FZ_CHECK(n <= MAX_HEADERS);
	FZ_CHECK(body.len <= MAX_BODY);
	for (size_t i = 0; i < n; i++) {
		gw_resp_header(r, i, &names[i], &values[i]);
		h = mix(h, names[i], strlen(names[i]) + 1);
		h = mix(h, values[i], strlen(values[i]) + 1);
	}
	h = mix(h, body.ptr, body.len);
	h = mix(h, &sc, sizeof(sc));
	h = mix(h, &ka, sizeof(ka));
	if (run_integ)
		integrate(r, names, values);
	return h;
}

static uint64_t run(const uint8_t *data, size_t size, fz_split_t *split)
{
	gw_resp_t *r = gw_resp_create(MAX_BODY);
	uint64_t h = 0xcbf29ce484222325ull;
	enum gw_resp_status st = GW_RESP_MORE;
	size_t off = 0;
	int extra = 0;

	while (off < size && st == GW_RESP_MORE) {
		size_t n = split ? fz_split_next(split, size - off) : size - off;

		st = gw_resp_feed(r, (const char *)data + off, n, &extra);
		off += n;
	}
	/* The backend closed the connection. */
	if (st == GW_RESP_MORE)
		st = gw_resp_feed(r, "", 0, &extra);
	FZ_CHECK(st != GW_RESP_MORE);
	if (st == GW_RESP_DONE)
		h = inspect(h, r, split != NULL);
	/* BAD or TOO_LARGE: refused either way (see fuzz_httpreq.c). */
	h = mix(h, st == GW_RESP_DONE ? "done" : "fail", 4);
	gw_resp_destroy(r);
	return h;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_split_t split;
	uint64_t a, b;

	if (size < 2)
		return 0;
	fz_split_init(&split, data[0], data[1]);
	a = run(data + 2, size - 2, &split);
	b = run(data + 2, size - 2, NULL);
	FZ_CHECK(a == b);
	return 0;
}
