/* Shared by the libFuzzer harnesses: silence the gateway's log, cut an
 * input into pieces of fuzzer-chosen sizes (so that incremental parsers see
 * every split point), and fail loudly when an invariant breaks. */
#ifndef GW_FUZZ_COMMON_H
#define GW_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* An invariant of the parser under test: a broken one is a finding. */
#define FZ_CHECK(cond)                                                         \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", \
				#cond, __FILE__, __LINE__);                    \
			abort();                                               \
		}                                                              \
	} while (0)

/* Piece sizes come from a small PRNG seeded by the input's first bytes:
 * the fuzzer steers them, and a saved input replays the same pieces. */
typedef struct fz_split {
	uint32_t state;
	uint32_t max; /* largest piece */
} fz_split_t;

static inline void fz_split_init(fz_split_t *s, uint8_t seed, uint8_t max)
{
	s->state = 0x9e3779b9u ^ seed;
	s->max = max ? max : 256;
}

static inline size_t fz_split_next(fz_split_t *s, size_t left)
{
	size_t n;

	s->state ^= s->state << 13;
	s->state ^= s->state >> 17;
	s->state ^= s->state << 5;
	n = 1 + s->state % s->max;
	return n < left ? n : left;
}

/* Reads every byte of a span so that ASan checks it lies in live memory. */
static inline unsigned fz_touch(const char *p, size_t n)
{
	volatile unsigned sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += (unsigned char)p[i];
	return sum;
}

/* RFC 9110 §5.6.2 token. */
static inline int fz_token(const char *p, size_t n)
{
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c && strchr("!#$%&'*+-.^_`|~", c))))
			return 0;
	}
	return 1;
}

/* RFC 9110 §5.5 field-value as a proxy may forward it: no CTL but HTAB. */
static inline int fz_field_value(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}
	return 1;
}

/* A request-target as the scanner lets it through: visible ASCII ('#' is
 * taken as data; rest.c encodes it for backends). */
static inline int fz_target(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
			return 0;
	return 1;
}

/* FZ_STRICT (CMake option, on): heads and requests the gateway accepts
 * must have token names, field values and a clean request-target, as the
 * strict RFC 9112 scanner of httpreq.c promises (item 14). Off to fuzz a
 * checkout without it. */
#ifndef FZ_STRICT
#define FZ_STRICT 0
#endif

static inline void fz_quiet(void)
{
	gw_log_threshold = -1;
}

#endif
