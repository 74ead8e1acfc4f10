/* Admission at the edge (issue 12): the checks an upgrade passes before any
 * integration is called, as pure functions of the configuration and the
 * request: its Origin against allowedOrigins (cross-site WebSocket
 * hijacking), and its API key against the API's keys. No logging here, and
 * never a key in an error text. */
#ifndef GW_ADMIT_H
#define GW_ADMIT_H

#include "buf.h"

#include <stddef.h>

/* An allowedOrigins entry: "*", "null", or scheme://host[:port] where the
 * host may start with "*." (any subdomain, one label or more, never the
 * domain itself). Entries are compared case-insensitively, so the loader
 * keeps them as written. 0, or -1 with *why (static text) set. */
int gw_admit_origin_pattern_check(const char *pattern, const char **why);
/* Whether an Origin header value is allowed by one of the patterns. */
int gw_admit_origin(char *const *patterns, size_t n, const char *origin, size_t len);

/* An API key's shape, as AWS's: 20 to 128 printable ASCII characters, no
 * space. 0 or -1. */
int gw_admit_api_key_check(const char *key, size_t len);
/* Whether key is one of keys; the time taken does not depend on where the
 * two first differ. */
int gw_admit_api_key(char *const *keys, size_t n, const char *key, size_t len);

/* The value of the query parameter name in query (without '?'),
 * percent-decoded into out. Returns how many times it appears (a value is
 * decoded only when it appears once), or -1 when that one value is not
 * valid percent-encoding. */
int gw_admit_query_param(const char *query, size_t qlen, const char *name, gw_buf_t *out);

#endif
