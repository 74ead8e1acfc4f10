/* Origin and API key checks of a WebSocket upgrade (see admit.h). */
#include "httpreq.h"
#include "admit.h"

#include <openssl/crypto.h>
#include <string.h>
#include <strings.h>

static int is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.';
}

int gw_admit_origin_pattern_check(const char *p, const char **why)
{
	const char *s = p, *host, *end;

	if (!strcmp(p, "*") || !strcmp(p, "null"))
		return 0;
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))) {
		*why = "expected \"*\", \"null\" or scheme://host[:port] (e.g. "
		       "\"https://app.example.com\" or \"https://*.example.com\")";
		return -1;
	}
	while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
	       *s == '+' || *s == '-' || *s == '.')
		s++;
	if (strncmp(s, "://", 3)) {
		*why = "expected scheme://host[:port] (e.g. \"https://app.example.com\")";
		return -1;
	}
	host = s + 3;
	if (!strncmp(host, "*.", 2))
		host += 2;
	end = host;
	if (*end == '[') { /* an IPv6 literal */
		end = strchr(end, ']');
		if (!end || host != s + 3) {
			*why = "expected an IPv6 literal in brackets, without a wildcard";
			return -1;
		}
		end++;
	} else {
		while (is_host_char(*end))
			end++;
		if (end == host || *host == '.' || end[-1] == '.') {
			*why = "expected a host name after scheme:// (a wildcard only as "
			       "a leading \"*.\", e.g. \"https://*.example.com\")";
			return -1;
		}
	}
	if (*end == ':') {
		const char *d = ++end;
		long port = 0;

		while (*end >= '0' && *end <= '9' && port <= 65535)
			port = port * 10 + (*end++ - '0');
		if (end == d || port < 1 || port > 65535) {
			*why = "expected a port from 1 to 65535 after the host";
			return -1;
		}
	}
	if (*end) {
		*why = "expected an origin without a path, query or trailing '/' "
		       "(scheme://host[:port], as browsers send it)";
		return -1;
	}
	return 0;
}

/* A wildcard pattern (scheme, "://", "*.", domain, port) against an
 * origin: the same scheme and suffix (".example.com[:port]"), and one label
 * or more of host characters before it. */
static int wildcard_match(const char *p, const char *o, size_t len)
{
	const char *star = strstr(p, "://*.");
	size_t pre, suf;

	if (!star)
		return 0;
	pre = (size_t)(star - p) + 3;
	suf = strlen(star + 4); /* ".example.com[:port]" */
	if (len <= pre + suf || strncasecmp(p, o, pre) ||
	    strncasecmp(star + 4, o + len - suf, suf))
		return 0;
	for (size_t i = pre; i < len - suf; i++)
		if (!is_host_char(o[i]))
			return 0;
	return o[pre] != '.';
}

int gw_admit_origin(char *const *patterns, size_t n, const char *origin, size_t len)
{
	for (size_t i = 0; i < n; i++) {
		const char *p = patterns[i];
		size_t pl = strlen(p);

		if (!strcmp(p, "*"))
			return 1;
		if (pl == len && !strncasecmp(p, origin, len) && !memchr(origin, 0, len))
			return 1;
		if (wildcard_match(p, origin, len))
			return 1;
	}
	return 0;
}

int gw_admit_api_key_check(const char *key, size_t len)
{
	if (len < 20 || len > 128)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (key[i] <= 0x20 || key[i] >= 0x7f)
			return -1;
	return 0;
}

int gw_admit_api_key(char *const *keys, size_t n, const char *key, size_t len)
{
	int found = 0;

	/* Every key is compared whole (CRYPTO_memcmp), found or not, so the
	 * time tells neither which key nor how much of one matched. */
	for (size_t i = 0; i < n; i++) {
		size_t kl = strlen(keys[i]);

		found |= kl == len && !CRYPTO_memcmp(keys[i], key, len);
	}
	return found;
}

static int decode(const char *s, size_t n, gw_buf_t *out)
{
	gw_buf_reset(out);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			gw_buf_append_char(out, ' ');
		} else if (s[i] == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return -1;
			hi = gw_http_hexval(s[i + 1]);
			lo = gw_http_hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			gw_buf_append_char(out, (char)(hi << 4 | lo));
			i += 2;
		} else {
			gw_buf_append_char(out, s[i]);
		}
	}
	return 0;
}

int gw_admit_query_param(const char *q, size_t qlen, const char *name, gw_buf_t *out)
{
	size_t nl = strlen(name);
	const char *val = NULL, *end = q + qlen;
	size_t vlen = 0;
	int count = 0;

	for (const char *p = q; p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p)), *e = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(e - p));
		const char *k_end = eq ? eq : e;

		if ((size_t)(k_end - p) == nl && !memcmp(p, name, nl)) {
			count++;
			val = eq ? eq + 1 : e;
			vlen = (size_t)(e - val);
		}
		p = amp ? amp + 1 : end;
	}
	if (count == 1 && decode(val, vlen, out))
		return -1;
	return count;
}
