/* API file loader. Uses jansson to parse; every check reports the file, the
 * key path and what was expected, and checking goes on after the first
 * problem so that one run of --check lists them all. */
#include "config.h"
#include "apiid.h"
#include "template.h"
#include "log.h"
#include "accesslog.h"
#include "metrics.h"
#include "admit.h"
#include "authz_store.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <jansson.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MAX_MESSAGE_BYTES 131072
#define DEFAULT_MAX_FRAME_BYTES 32768
#define DEFAULT_IDLE_TIMEOUT_S 600
#define DEFAULT_MAX_CONNECTION_S 7200
#define DEFAULT_OUTBOUND_BUFFER_BYTES (1024 * 1024)
#define DEFAULT_TIMEOUT_MS 29000

struct loader {
	const char *file;
	gw_buf_t *err;
	int errors;
	unsigned flags; /* GW_CONFIG_* */
};

/* Keys and values quoted in a message may hold control characters: shown
 * as \n, \r, \t or \xNN, so that each problem stays one line. */
static void append_visible(gw_buf_t *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[8];

		if (*p >= 0x20 && *p != 0x7f) {
			gw_buf_append_char(b, (char)*p);
			continue;
		}
		if (*p == '\n' || *p == '\r' || *p == '\t')
			snprintf(esc, sizeof(esc), "\\%c", *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't');
		else
			snprintf(esc, sizeof(esc), "\\x%02x", *p);
		gw_buf_append_str(b, esc);
	}
}

__attribute__((format(printf, 3, 4))) static void
problem(struct loader *l, const char *key, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	append_visible(l->err, l->file);
	gw_buf_append_str(l->err, ": ");
	if (key && *key) {
		append_visible(l->err, key);
		gw_buf_append_str(l->err, ": ");
	}
	append_visible(l->err, msg);
	gw_buf_append_char(l->err, '\n');
	l->errors++;
}

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* Rejects keys outside allowed[], naming the ones that are allowed. */
static void check_keys(struct loader *l, const char *where, json_t *obj,
		       const char *const *allowed)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		int ok = 0;
		char path[256], list[256] = "";

		for (const char *const *a = allowed; *a; a++) {
			if (!strcmp(*a, k))
				ok = 1;
			strncat(list, list[0] ? ", " : "", sizeof(list) - strlen(list) - 1);
			strncat(list, *a, sizeof(list) - strlen(list) - 1);
		}
		if (ok)
			continue;
		snprintf(path, sizeof(path), "%s%s%s", where, *where ? "." : "", k);
		problem(l, path, "unknown key (expected one of: %s)", list);
	}
}

static char *get_string(struct loader *l, json_t *obj, const char *key,
			const char *path, const char *dflt, int required)
{
	json_t *v = json_object_get(obj, key);

	if (!v) {
		if (required)
			problem(l, path, "missing (expected a string)");
		return dflt ? strdup(dflt) : NULL;
	}
	if (!json_is_string(v) || !json_string_length(v)) {
		problem(l, path, "expected a non-empty string, found %s",
			json_is_string(v) ? "an empty string" : json_kind(v));
		return dflt ? strdup(dflt) : NULL;
	}
	return strdup(json_string_value(v));
}

static long long get_int(struct loader *l, json_t *obj, const char *key,
			 const char *path, long long dflt, long long min,
			 long long max)
{
	json_t *v = json_object_get(obj, key);
	long long n;

	if (!v)
		return dflt;
	if (!json_is_integer(v)) {
		problem(l, path, "expected an integer from %lld to %lld, found %s",
			min, max, json_kind(v));
		return dflt;
	}
	n = json_integer_value(v);
	if (n < min || n > max) {
		problem(l, path, "expected an integer from %lld to %lld, found %lld",
			min, max, n);
		return dflt;
	}
	return n;
}

enum text_kind { TEXT_FIELD, TEXT_URL };

/* Text that ends up in an HTTP request line or header (a URL, a header
 * name or value, an origin): a CR or LF in it would split the message and
 * let the configuration smuggle requests or headers. */
static int text_ok(struct loader *l, const char *path, const char *s, enum text_kind kind)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p >= 0x20 && *p != 0x7f && !(kind == TEXT_URL && *p == ' '))
			continue;
		if (kind == TEXT_URL)
			problem(l, path, "expected a URL without spaces or control characters "
				"(percent-encode them), found byte 0x%02x at offset %zu", *p,
				(size_t)(p - (const unsigned char *)s));
		else
			problem(l, path, "expected text without control characters (CR, LF, "
				"tab...), found byte 0x%02x at offset %zu", *p,
				(size_t)(p - (const unsigned char *)s));
		return 0;
	}
	return 1;
}

/* Splits http(s)://host[:port]/path and resolves host once, here, so that
 * no DNS lookup ever runs on the event loop. */
static int parse_uri(struct loader *l, const char *path, gw_integration_t *in)
{
	const char *u = in->uri, *h, *e, *slash, *colon;
	struct addrinfo hints, *res = NULL;
	char port[8], addr[INET6_ADDRSTRLEN];
	int rc;

	if (!strncmp(u, "http://", 7)) {
		h = u + 7;
		in->port = 80;
	} else if (!strncmp(u, "https://", 8)) {
		h = u + 8;
		in->tls = 1;
		in->port = 443;
	} else {
		problem(l, path, "expected an http:// or https:// URL, found \"%s\"", u);
		return -1;
	}
	slash = strchr(h, '/');
	e = slash ? slash : h + strlen(h);
	if (*h == '[') { /* [v6]:port */
		const char *rb = memchr(h, ']', (size_t)(e - h));
		if (!rb) {
			problem(l, path, "expected a closing ']' in \"%s\"", u);
			return -1;
		}
		in->host = strndup(h + 1, (size_t)(rb - h - 1));
		colon = rb + 1 < e && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(h, ':', (size_t)(e - h));
		in->host = strndup(h, (size_t)((colon ? colon : e) - h));
	}
	if (colon) {
		char *end;
		long p = strtol(colon + 1, &end, 10);
		if (end != e || p < 1 || p > 65535) {
			problem(l, path, "expected a port from 1 to 65535 in \"%s\"", u);
			return -1;
		}
		in->port = (int)p;
	}
	if (!*in->host) {
		problem(l, path, "expected a host name in \"%s\"", u);
		return -1;
	}
	in->path = strdup(slash ? slash : "/");
	/* A fragment is not part of a request target: sent, it would reach the
	 * backend as part of the path. */
	if (strchr(in->path, '#')) {
		problem(l, path, "expected a URL without a fragment ('#'), found \"%s\"", u);
		return -1;
	}
	if (l->flags & GW_CONFIG_NO_RESOLVE) {
		in->address = strdup(in->host);
		return 0;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", in->port);
	rc = getaddrinfo(in->host, port, &hints, &res);
	if (rc || !res) {
		problem(l, path, "cannot resolve host \"%s\": %s", in->host,
			gai_strerror(rc));
		return -1;
	}
	if (res->ai_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr,
			  addr, sizeof(addr));
	else
		inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr,
			  addr, sizeof(addr));
	freeaddrinfo(res);
	in->address = strdup(addr);
	return 0;
}

/* Replaces ${stageVariables.NAME} in s. */
static char *substitute_stage_vars(struct loader *l, const char *path, const gw_api_t *api,
				   const char *s)
{
	static const char pre[] = "${stageVariables.";
	gw_buf_t out;
	const char *p = s, *q;

	gw_buf_init(&out);
	while ((q = strstr(p, pre))) {
		const char *name = q + sizeof(pre) - 1, *close = strchr(name, '}');
		const char *val;

		gw_buf_append(&out, p, (size_t)(q - p));
		if (!close) {
			problem(l, path, "expected '}' after \"%s\"", q);
			break;
		}
		val = gw_config_stage_var(api, name, (size_t)(close - name));
		if (!val)
			problem(l, path, "unknown stage variable \"%.*s\" (expected a key of "
				"stageVariables)", (int)(close - name), name);
		else
			gw_buf_append_str(&out, val);
		p = close + 1;
	}
	gw_buf_append_str(&out, p);
	return out.data;
}

static const char *const context_vars[] = { "connectionId", "routeKey", "eventType",
	"requestId", "extendedRequestId", "messageId", "stage", "apiId", "domainName",
	"connectedAt", "requestTimeEpoch", "requestTime", "messageDirection",
	"identity.sourceIp", "identity.userAgent", NULL };

int gw_config_context_var_known(const char *name, size_t len)
{
	for (const char *const *v = context_vars; *v; v++)
		if (strlen(*v) == len && !memcmp(*v, name, len))
			return 1;
	return 0;
}

static int param_name_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '$' || *s == '-'))
			return 0;
	return 1;
}

/* Headers a mapping may not set (reference §8.6 "Reserved headers", plus
 * Host and the gateway's own X-Wsgate-*): the gateway writes them itself,
 * and a second Content-Length, Transfer-Encoding or Host toward a
 * keep-alive backend is request smuggling. */
static int reserved_header(const char *name)
{
	static const char *const exact[] = { "authorization", "connection",
		"content-encoding", "content-length", "content-location", "forwarded",
		"host", "keep-alive", "origin", "proxy-authenticate", "proxy-authorization",
		"te", "trailer", "trailers", "transfer-encoding", "upgrade", "x-forwarded-for",
		"x-forwarded-host", "x-forwarded-proto", "via", NULL };
	static const char *const prefix[] = { "access-control-", "apigw-", "x-amz-",
		"x-amzn-", "x-wsgate-", NULL };

	for (const char *const *e = exact; *e; e++)
		if (!strcasecmp(name, *e))
			return 1;
	for (const char *const *p = prefix; *p; p++)
		if (!strncasecmp(name, *p, strlen(*p)))
			return 1;
	return 0;
}

static void load_params(struct loader *l, const char *base, json_t *obj, gw_integration_t *in)
{
	static const char th[] = "integration.request.header.";
	static const char tq[] = "integration.request.querystring.";
	const char *k;
	json_t *v;
	size_t i = 0;

	in->params = calloc(json_object_size(obj) + 1, sizeof(*in->params));
	json_object_foreach(obj, k, v) {
		gw_param_map_t *pm = &in->params[i];
		char path[400], err[200];
		const char *src;

		snprintf(path, sizeof(path), "%s.requestParameters.%s", base, k);
		if (!strncmp(k, th, sizeof(th) - 1)) {
			pm->name = strdup(k + sizeof(th) - 1);
		} else if (!strncmp(k, tq, sizeof(tq) - 1)) {
			pm->to_query = 1;
			pm->name = strdup(k + sizeof(tq) - 1);
		} else {
			problem(l, path, "expected a key integration.request.header.NAME or "
				"integration.request.querystring.NAME");
			continue;
		}
		i++;
		in->n_params = i;
		if (!param_name_ok(pm->name))
			problem(l, path, "expected a parameter name of [a-zA-Z0-9._$-]");
		else if (!pm->to_query && reserved_header(pm->name))
			problem(l, path, "header \"%s\" is reserved (expected a header other "
				"than Host, Content-Length, Transfer-Encoding, Connection, "
				"Authorization, X-Forwarded-*, Access-Control-*, X-Amz-*, "
				"X-Wsgate-* and the other hop-by-hop headers)", pm->name);
		if (!json_is_string(v)) {
			problem(l, path, "expected a string source, found %s", json_kind(v));
			continue;
		}
		src = json_string_value(v);
		if (src[0] == '\'' && strlen(src) >= 2 && src[strlen(src) - 1] == '\'') {
			pm->source = GW_SRC_STATIC;
			pm->arg = strndup(src + 1, strlen(src) - 2);
			text_ok(l, path, pm->arg, TEXT_FIELD);
		} else if (!strncmp(src, "context.", 8)) {
			pm->source = GW_SRC_CONTEXT;
			pm->arg = strdup(src + 8);
			if (!gw_config_context_var_known(pm->arg, strlen(pm->arg)))
				problem(l, path, "unknown context variable \"%s\"", pm->arg);
		} else if (!strncmp(src, "route.request.body.", 19)) {
			pm->source = GW_SRC_BODY;
			pm->arg = strdup(src + 19);
			pm->path = gw_rse_compile_path(pm->arg, err, sizeof(err));
			if (!pm->path)
				problem(l, path, "invalid body path \"%s\": %s", pm->arg, err);
		} else if (!strncmp(src, "route.request.header.", 21)) {
			pm->source = GW_SRC_HEADER;
			pm->arg = strdup(src + 21);
		} else if (!strncmp(src, "route.request.querystring.", 26)) {
			pm->source = GW_SRC_QUERY;
			pm->arg = strdup(src + 26);
		} else if (!strncmp(src, "stageVariables.", 15)) {
			pm->source = GW_SRC_STAGE_VAR;
			pm->arg = strdup(src + 15);
		} else {
			problem(l, path, "expected context.VAR, route.request.body.PATH, "
				"route.request.header.NAME, route.request.querystring.NAME, "
				"stageVariables.NAME or 'static text', found \"%s\"", src);
		}
	}
}

static void load_integrations(struct loader *l, json_t *root, gw_api_t *api)
{
	static const char *const proxy_keys[] = { "type", "uri", "timeoutMs", "method",
		"requestParameters", "caFile", "maxConnections", "maxQueue", NULL };
	static const char *const mock_keys[] = { "type", "statusCode", "body", NULL };
	json_t *obj = json_object_get(root, "integrations"), *v;
	const char *name;
	size_t i = 0;

	if (!obj) {
		return;
	}
	if (!json_is_object(obj)) {
		problem(l, "integrations", "expected an object, found %s", json_kind(obj));
		return;
	}
	api->integrations = calloc(json_object_size(obj) + 1, sizeof(*api->integrations));
	json_object_foreach(obj, name, v) {
		gw_integration_t *in = &api->integrations[i++];
		char base[256], path[300];
		json_t *x;
		char *type, *raw;

		api->n_integrations = i;
		in->name = strdup(name);
		snprintf(base, sizeof(base), "integrations.%s", name);
		text_ok(l, base, name, TEXT_FIELD);
		if (!json_is_object(v)) {
			problem(l, base, "expected an object, found %s", json_kind(v));
			continue;
		}
		snprintf(path, sizeof(path), "%s.type", base);
		type = get_string(l, v, "type", path, NULL, 1);
		if (!type)
			continue;
		if (!strcmp(type, "AWS_PROXY"))
			in->type = GW_INTEG_AWS_PROXY;
		else if (!strcmp(type, "HTTP_PROXY"))
			in->type = GW_INTEG_HTTP_PROXY;
		else if (!strcmp(type, "MOCK"))
			in->type = GW_INTEG_MOCK;
		else {
			problem(l, path, "expected \"AWS_PROXY\", \"HTTP_PROXY\" or \"MOCK\", "
				"found \"%s\"", type);
			free(type);
			continue;
		}
		free(type);
		check_keys(l, base, v, in->type == GW_INTEG_MOCK ? mock_keys : proxy_keys);
		if (in->type == GW_INTEG_MOCK) {
			snprintf(path, sizeof(path), "%s.statusCode", base);
			in->mock_status = (int)get_int(l, v, "statusCode", path, 200, 100, 599);
			x = json_object_get(v, "body");
			snprintf(path, sizeof(path), "%s.body", base);
			if (x && !json_is_string(x))
				problem(l, path, "expected a string, found %s", json_kind(x));
			in->mock_body = strdup(json_is_string(x) ? json_string_value(x) : "");
			continue;
		}
		snprintf(path, sizeof(path), "%s.timeoutMs", base);
		in->timeout_ms = (int)get_int(l, v, "timeoutMs", path,
					      DEFAULT_TIMEOUT_MS, 50, 300000);
		snprintf(path, sizeof(path), "%s.maxConnections", base);
		in->max_connections = (unsigned)get_int(l, v, "maxConnections", path, 64, 1, 10000);
		snprintf(path, sizeof(path), "%s.maxQueue", base);
		in->max_queue = (unsigned)get_int(l, v, "maxQueue", path, 4096, 0, 1000000);
		snprintf(path, sizeof(path), "%s.method", base);
		in->method = get_string(l, v, "method", path, NULL, 0);
		if (in->method) {
			static const char *const methods[] = { "GET", "POST", "PUT", "PATCH",
				"DELETE", "HEAD", "OPTIONS", NULL };
			int ok = 0;
			for (const char *const *m = methods; *m; m++)
				ok |= !strcmp(*m, in->method);
			if (!ok)
				problem(l, path, "expected GET, POST, PUT, PATCH, DELETE, HEAD or "
					"OPTIONS, found \"%s\"", in->method);
		}
		snprintf(path, sizeof(path), "%s.caFile", base);
		in->ca_file = get_string(l, v, "caFile", path, NULL, 0);
		if (in->ca_file && access(in->ca_file, R_OK))
			problem(l, path, "cannot read \"%s\"", in->ca_file);
		x = json_object_get(v, "requestParameters");
		snprintf(path, sizeof(path), "%s.requestParameters", base);
		if (x && !json_is_object(x))
			problem(l, path, "expected an object, found %s", json_kind(x));
		else if (x)
			load_params(l, base, x, in);
		snprintf(path, sizeof(path), "%s.uri", base);
		raw = get_string(l, v, "uri", path, NULL, 1);
		if (raw) {
			in->uri = substitute_stage_vars(l, path, api, raw);
			free(raw);
			if (text_ok(l, path, in->uri, TEXT_URL))
				parse_uri(l, path, in);
		}
	}
}

static void load_stage_vars(struct loader *l, json_t *root, gw_api_t *api)
{
	json_t *obj = json_object_get(root, "stageVariables"), *v;
	const char *k;
	size_t i = 0;

	if (!obj)
		return;
	if (!json_is_object(obj)) {
		problem(l, "stageVariables", "expected an object, found %s", json_kind(obj));
		return;
	}
	api->stage_vars = calloc(json_object_size(obj) + 1, sizeof(*api->stage_vars));
	json_object_foreach(obj, k, v) {
		char path[300];

		snprintf(path, sizeof(path), "stageVariables.%s", k);
		if (!json_is_string(v)) {
			problem(l, path, "expected a string, found %s", json_kind(v));
			continue;
		}
		if (!param_name_ok(k))
			problem(l, path, "expected a name of [a-zA-Z0-9._$-]");
		text_ok(l, path, json_string_value(v), TEXT_FIELD);
		api->stage_vars[i].name = strdup(k);
		api->stage_vars[i].value = strdup(json_string_value(v));
		api->n_stage_vars = ++i;
	}
}

const char *gw_config_stage_var(const gw_api_t *api, const char *name, size_t len)
{
	for (size_t i = 0; i < api->n_stage_vars; i++)
		if (strlen(api->stage_vars[i].name) == len &&
		    !memcmp(api->stage_vars[i].name, name, len))
			return api->stage_vars[i].value;
	return NULL;
}

static const gw_integration_t *find_integration(const gw_api_t *api, const char *name)
{
	for (size_t i = 0; i < api->n_integrations; i++)
		if (!strcmp(api->integrations[i].name, name))
			return &api->integrations[i];
	return NULL;
}

static const char *const rest_methods[] = { "GET", "POST", "PUT", "PATCH", "DELETE",
	"HEAD", "OPTIONS", "ANY", NULL };

/* "METHOD /path" (the method in capitals, one space, a path). */
static int is_rest_key(const char *key)
{
	const char *sp = strchr(key, ' ');

	if (!sp || sp == key || sp[1] != '/')
		return 0;
	for (const char *p = key; p < sp; p++)
		if (*p < 'A' || *p > 'Z')
			return 0;
	return 1;
}

static void parse_rest_key(struct loader *l, const char *where, const char *key,
			   gw_rest_route_t *rr)
{
	const char *sp = strchr(key, ' '), *p = sp + 1;
	size_t ml = (size_t)(sp - key);
	int ok = 0;

	for (const char *const *m = rest_methods; *m; m++)
		if (strlen(*m) == ml && !memcmp(*m, key, ml))
			ok = 1;
	if (!ok || ml >= sizeof(rr->method)) {
		problem(l, where, "expected a method of GET, POST, PUT, PATCH, DELETE, HEAD, "
			"OPTIONS or ANY");
		return;
	}
	memcpy(rr->method, key, ml);
	rr->method[ml] = '\0';
	/* "/" alone has no segment. */
	while (*p == '/' && p[1]) {
		const char *e = strchr(p + 1, '/');
		size_t n;
		gw_rest_seg_t *sg;

		p++;
		if (!e)
			e = p + strlen(p);
		n = (size_t)(e - p);
		rr->segs = realloc(rr->segs, (rr->n_segs + 1) * sizeof(*rr->segs));
		if (!rr->segs)
			abort();
		sg = &rr->segs[rr->n_segs++];
		memset(sg, 0, sizeof(*sg));
		if (!n) {
			problem(l, where, "expected a path without empty segments (\"//\")");
			return;
		}
		if (p[0] == '{' && p[n - 1] == '}') {
			int greedy = n > 3 && p[n - 2] == '+';
			size_t nl = n - 2 - (size_t)greedy;

			sg->kind = greedy ? GW_SEG_GREEDY : GW_SEG_PARAM;
			sg->text = strndup(p + 1, nl);
			sg->len = nl;
			for (size_t k = 0; k < nl; k++)
				if (!((sg->text[k] >= 'a' && sg->text[k] <= 'z') ||
				      (sg->text[k] >= 'A' && sg->text[k] <= 'Z') ||
				      (sg->text[k] >= '0' && sg->text[k] <= '9') || sg->text[k] == '_'))
					problem(l, where, "expected a parameter name of [A-Za-z0-9_] "
						"in \"%.*s\"", (int)n, p);
			if (!nl)
				problem(l, where, "expected a parameter name in \"%.*s\"", (int)n, p);
			if (greedy && *e)
				problem(l, where, "a greedy parameter {%s+} must be the last segment",
					sg->text);
			for (size_t k = 0; k + 1 < rr->n_segs; k++)
				if (rr->segs[k].kind != GW_SEG_STATIC && !strcmp(rr->segs[k].text, sg->text))
					problem(l, where, "parameter {%s} appears twice", sg->text);
		} else {
			if (memchr(p, '{', n) || memchr(p, '}', n))
				problem(l, where, "expected a whole segment {name} or static text, "
					"found \"%.*s\"", (int)n, p);
			sg->kind = GW_SEG_STATIC;
			sg->text = strndup(p, n);
			sg->len = n;
		}
		p = e;
	}
}

static void load_cors(struct loader *l, json_t *root, gw_api_t *api)
{
	static const char *const keys[] = { "allowOrigins", "allowMethods", "allowHeaders",
		"exposeHeaders", "maxAge", "allowCredentials", NULL };
	static const char *const list_keys[] = { "allowMethods", "allowHeaders", "exposeHeaders" };
	json_t *obj = json_object_get(root, "cors"), *v;
	char **dst[3];
	size_t i;

	api->cors.max_age = -1;
	if (!obj)
		return;
	if (!json_is_object(obj)) {
		problem(l, "cors", "expected an object, found %s", json_kind(obj));
		return;
	}
	check_keys(l, "cors", obj, keys);
	api->cors.enabled = 1;
	v = json_object_get(obj, "allowOrigins");
	if (v && !json_is_array(v))
		problem(l, "cors.allowOrigins", "expected an array of origins, found %s",
			json_kind(v));
	else if (v) {
		api->cors.origins = calloc(json_array_size(v) + 1, sizeof(char *));
		json_array_foreach(v, i, obj) {
			if (!json_is_string(obj)) {
				problem(l, "cors.allowOrigins", "expected strings, found %s",
					json_kind(obj));
				continue;
			}
			text_ok(l, "cors.allowOrigins", json_string_value(obj), TEXT_FIELD);
			api->cors.origins[api->cors.n_origins++] = strdup(json_string_value(obj));
		}
		obj = json_object_get(root, "cors");
	}
	dst[0] = &api->cors.methods;
	dst[1] = &api->cors.headers;
	dst[2] = &api->cors.expose;
	for (int k = 0; k < 3; k++) {
		char path[64];
		json_t *e;
		gw_buf_t b;

		snprintf(path, sizeof(path), "cors.%s", list_keys[k]);
		v = json_object_get(obj, list_keys[k]);
		if (!v)
			continue;
		if (!json_is_array(v)) {
			problem(l, path, "expected an array of strings, found %s", json_kind(v));
			continue;
		}
		gw_buf_init(&b);
		json_array_foreach(v, i, e) {
			if (!json_is_string(e)) {
				problem(l, path, "expected strings, found %s", json_kind(e));
				continue;
			}
			text_ok(l, path, json_string_value(e), TEXT_FIELD);
			if (b.len)
				gw_buf_append_char(&b, ',');
			gw_buf_append_str(&b, json_string_value(e));
		}
		*dst[k] = b.data ? b.data : strdup("");
	}
	api->cors.max_age = (int)get_int(l, obj, "maxAge", "cors.maxAge", -1, -1, 86400);
	v = json_object_get(obj, "allowCredentials");
	if (v && !json_is_boolean(v))
		problem(l, "cors.allowCredentials", "expected true or false, found %s", json_kind(v));
	api->cors.credentials = v && json_is_true(v);
	/* AWS refuses it too: "*" with credentials would hand any site the
	 * user's cookies (the answer reflects the caller's Origin). */
	for (i = 0; api->cors.credentials && i < api->cors.n_origins; i++)
		if (!strcmp(api->cors.origins[i], "*")) {
			problem(l, "cors.allowCredentials", "cannot be true when cors.allowOrigins "
				"contains \"*\" (expected false, or the allowed origins listed "
				"one by one)");
			break;
		}
}

static int cmp_route(const void *a, const void *b)
{
	const gw_route_t *x = a, *y = b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, n);

	return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static void load_routes(struct loader *l, json_t *root, gw_api_t *api)
{
	static const char *const keys[] = { "integration", "routeResponse", "maxInFlight",
		"apiKeyRequired", "throttling", "authorizer", NULL };
	json_t *obj = json_object_get(root, "routes"), *v;
	const char *key;
	size_t i = 0;

	if (!obj) {
		problem(l, "routes", "missing (expected an object of route keys)");
		return;
	}
	if (!json_is_object(obj)) {
		problem(l, "routes", "expected an object, found %s", json_kind(obj));
		return;
	}
	api->routes = calloc(json_object_size(obj) + 1, sizeof(*api->routes));
	api->rest_routes = calloc(json_object_size(obj) + 1, sizeof(*api->rest_routes));
	json_object_foreach(obj, key, v) {
		gw_route_t *r;
		char base[256], path[300];
		json_t *rr;
		char *iname;

		if (is_rest_key(key)) {
			gw_rest_route_t *rest = &api->rest_routes[api->n_rest_routes++];

			r = &rest->route;
			snprintf(base, sizeof(base), "routes.%s", key);
			parse_rest_key(l, base, key, rest);
		} else {
			r = &api->routes[i++];
			api->n_routes = i;
		}
		r->key = strdup(key);
		r->key_len = strlen(key);
		r->max_in_flight = 1;
		snprintf(base, sizeof(base), "routes.%s", key);
		/* A WebSocket route key may hold any character a message can (it
		 * reaches headers only through append_header, which drops
		 * control characters); a REST path can never hold a space. */
		if (is_rest_key(key))
			text_ok(l, base, strchr(key, ' ') + 1, TEXT_URL);
		if (key[0] == '$' && strcmp(key, "$connect") && strcmp(key, "$disconnect") &&
		    strcmp(key, "$default"))
			problem(l, base, "the '$' prefix is reserved (expected $connect, "
				"$disconnect, $default or a key without '$')");
		if (!json_is_object(v)) {
			problem(l, base, "expected an object, found %s", json_kind(v));
			continue;
		}
		check_keys(l, base, v, keys);
		snprintf(path, sizeof(path), "%s.integration", base);
		iname = get_string(l, v, "integration", path, NULL, 1);
		if (iname) {
			r->integration = find_integration(api, iname);
			if (!r->integration)
				problem(l, path, "unknown integration \"%s\"", iname);
			free(iname);
		}
		rr = json_object_get(v, "routeResponse");
		snprintf(path, sizeof(path), "%s.routeResponse", base);
		if (rr && !json_is_boolean(rr))
			problem(l, path, "expected true or false, found %s", json_kind(rr));
		r->route_response = rr && json_is_true(rr);
		snprintf(path, sizeof(path), "%s.maxInFlight", base);
		r->max_in_flight = (unsigned)get_int(l, v, "maxInFlight", path, 1, 1, 1000);
	}
	/* Sorted once, so that a message finds its route by binary search. */
	qsort(api->routes, api->n_routes, sizeof(*api->routes), cmp_route);
	api->connect_route = gw_config_route(api, "$connect", 8);
	api->disconnect_route = gw_config_route(api, "$disconnect", 11);
	api->default_route = gw_config_route(api, "$default", 8);
}

const gw_route_t *gw_config_route(const gw_api_t *api, const char *key, size_t len)
{
	size_t lo = 0, hi = api->n_routes;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const gw_route_t *r = &api->routes[mid];
		size_t n = r->key_len < len ? r->key_len : len;
		int c = memcmp(r->key, key, n);

		if (!c)
			c = r->key_len < len ? -1 : r->key_len > len;
		if (!c)
			return r;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* requestContext.apiId (apiid.h): given, or derived from the name, so
 * that it stays the same across restarts and machines. */
static void load_api_id(struct loader *l, json_t *root, gw_api_t *api)
{
	const char *digits = GW_APIID_DIGITS;
	json_t *v = json_object_get(root, "apiId");

	if (v) {
		const char *s = json_string_value(v);
		size_t n = s ? strlen(s) : 0;

		if (n == 10 && strspn(s, digits) == 10) {
			memcpy(api->api_id, s, 11);
			return;
		}
		problem(l, "apiId", "expected 10 characters from [a-z0-9], as AWS's");
	}
	gw_apiid_derive(api->name ? api->name : "", api->api_id);
}

/* REST events' requestContext.accountId: AWS's are 12 digits; the
 * default is the one the authorizer's methodArn names. */
static void load_account_id(struct loader *l, json_t *root, gw_api_t *api)
{
	json_t *v = json_object_get(root, "accountId");
	const char *s = json_string_value(v);

	memcpy(api->account_id, "000000000000", 13);
	if (!v)
		return;
	if (s && strlen(s) == 12 && strspn(s, "0123456789") == 12)
		memcpy(api->account_id, s, 13);
	else
		problem(l, "accountId", "expected a string of 12 digits, as AWS's");
}

static void load_limits(struct loader *l, json_t *root, gw_api_t *api)
{
	static const char *const keys[] = { "maxMessageBytes", "idleTimeoutSeconds",
		"maxConnectionSeconds", "outboundBufferBytes", "maxRequestBytes", "maxEventBytes",
		"maxFrameBytes", NULL };
	json_t *obj = json_object_get(root, "limits");

	api->max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES;
	api->max_frame_bytes = DEFAULT_MAX_FRAME_BYTES;
	api->idle_timeout_s = DEFAULT_IDLE_TIMEOUT_S;
	api->max_connection_s = DEFAULT_MAX_CONNECTION_S;
	api->outbound_buffer_bytes = DEFAULT_OUTBOUND_BUFFER_BYTES;
	api->max_request_bytes = 10u << 20;
	api->max_event_bytes = DEFAULT_MAX_EVENT_BYTES;
	if (!obj)
		return;
	if (!json_is_object(obj)) {
		problem(l, "limits", "expected an object, found %s", json_kind(obj));
		return;
	}
	check_keys(l, "limits", obj, keys);
	api->max_message_bytes = (size_t)get_int(l, obj, "maxMessageBytes",
		"limits.maxMessageBytes", DEFAULT_MAX_MESSAGE_BYTES, 1, 16 << 20);
	/* AWS: a frame over 32 KB closes with 1009, and a longer message is
	 * sent as several frames (issue 15 item 1). */
	api->max_frame_bytes = (size_t)get_int(l, obj, "maxFrameBytes",
		"limits.maxFrameBytes", DEFAULT_MAX_FRAME_BYTES, 125, 16 << 20);
	api->idle_timeout_s = (unsigned)get_int(l, obj, "idleTimeoutSeconds",
		"limits.idleTimeoutSeconds", DEFAULT_IDLE_TIMEOUT_S, 0, 86400 * 365);
	api->max_connection_s = (unsigned)get_int(l, obj, "maxConnectionSeconds",
		"limits.maxConnectionSeconds", DEFAULT_MAX_CONNECTION_S, 0, 86400 * 365);
	api->outbound_buffer_bytes = (size_t)get_int(l, obj, "outboundBufferBytes",
		"limits.outboundBufferBytes", DEFAULT_OUTBOUND_BUFFER_BYTES, 1024,
		1LL << 30);
	api->max_request_bytes = (size_t)get_int(l, obj, "maxRequestBytes",
		"limits.maxRequestBytes", 10 << 20, 0, 1LL << 30);
	api->max_event_bytes = (size_t)get_int(l, obj, "maxEventBytes",
		"limits.maxEventBytes", DEFAULT_MAX_EVENT_BYTES, 1024, 1LL << 30);
}

/* --- security at the edge (issue 12): allowedOrigins, apiKeys, throttling.
 * Read after the routes, so that route settings can be checked against the
 * API's. Key values are never quoted in a message. */

static void load_origins(struct loader *l, json_t *root, gw_api_t *api)
{
	json_t *v = json_object_get(root, "allowedOrigins"), *e;
	size_t i;

	if (!v)
		return;
	if (!json_is_array(v)) {
		problem(l, "allowedOrigins", "expected an array of origins (e.g. "
			"[\"https://app.example.com\", \"https://*.example.com\"]), found %s",
			json_kind(v));
		return;
	}
	api->origins_restricted = 1;
	api->allowed_origins = calloc(json_array_size(v) + 1, sizeof(char *));
	if (!api->allowed_origins)
		abort();
	json_array_foreach(v, i, e) {
		char path[64];
		const char *why;

		snprintf(path, sizeof(path), "allowedOrigins[%zu]", i);
		if (!json_is_string(e)) {
			problem(l, path, "expected a string, found %s", json_kind(e));
			continue;
		}
		if (gw_admit_origin_pattern_check(json_string_value(e), &why)) {
			problem(l, path, "%s, found \"%s\"", why, json_string_value(e));
			continue;
		}
		api->allowed_origins[api->n_allowed_origins++] = strdup(json_string_value(e));
	}
}

static void add_api_key(struct loader *l, gw_api_t *api, const char *where, const char *key,
			size_t len, size_t *cap)
{
	if (gw_admit_api_key_check(key, len)) {
		problem(l, where, "expected a key of 20 to 128 printable ASCII characters "
			"without spaces, found %zu bytes (the value is not shown)", len);
		return;
	}
	if (api->n_api_keys == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		api->api_keys = realloc(api->api_keys, *cap * sizeof(char *));
		if (!api->api_keys)
			abort();
	}
	api->api_keys[api->n_api_keys++] = strndup(key, len);
}

/* One key per line; blank lines and lines starting with '#' are skipped. A
 * relative path is taken from the API file's folder, where the keys of
 * that API are kept. */
static void load_key_file(struct loader *l, gw_api_t *api, const char *file, size_t *cap)
{
	const char *slash = strrchr(l->file, '/');
	char where[600], full[4096], *line = NULL;
	size_t lcap = 0;
	unsigned n = 0;
	struct stat st;
	ssize_t len;
	FILE *f;

	if (file[0] != '/' && slash)
		snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - l->file), l->file, file);
	else
		snprintf(full, sizeof(full), "%s", file);
	/* A FIFO or a device would be read forever. */
	if (stat(full, &st) || !S_ISREG(st.st_mode) || st.st_size > (1 << 20) ||
	    !(f = fopen(full, "r"))) {
		problem(l, "apiKeys.file", "cannot read \"%s\" (expected a regular file of API "
			"keys, one per line, at most 1 MB)", file);
		return;
	}
	while ((len = getline(&line, &lcap, f)) >= 0) {
		n++;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (!len || line[0] == '#')
			continue;
		snprintf(where, sizeof(where), "apiKeys.file (%s, line %u)", file, n);
		add_api_key(l, api, where, line, (size_t)len, cap);
	}
	fclose(f);
	if (line)
		OPENSSL_cleanse(line, lcap);
	free(line);
}

static void load_api_keys(struct loader *l, json_t *root, gw_api_t *api)
{
	static const char *const keys[] = { "keys", "file", "queryParameter", NULL };
	json_t *obj = json_object_get(root, "apiKeys"), *v, *e;
	size_t cap = 0, i;
	char *file;

	if (!obj)
		return;
	if (!json_is_object(obj)) {
		problem(l, "apiKeys", "expected an object {\"keys\": [...], \"file\": \"...\", "
			"\"queryParameter\": \"...\"}, found %s", json_kind(obj));
		return;
	}
	check_keys(l, "apiKeys", obj, keys);
	v = json_object_get(obj, "keys");
	if (v && !json_is_array(v))
		problem(l, "apiKeys.keys", "expected an array of strings, found %s", json_kind(v));
	else if (v)
		json_array_foreach(v, i, e) {
			char path[64];

			snprintf(path, sizeof(path), "apiKeys.keys[%zu]", i);
			if (!json_is_string(e))
				problem(l, path, "expected a string, found %s", json_kind(e));
			else
				add_api_key(l, api, path, json_string_value(e), json_string_length(e),
					    &cap);
		}
	file = get_string(l, obj, "file", "apiKeys.file", NULL, 0);
	if (file)
		load_key_file(l, api, file, &cap);
	free(file);
	api->api_key_query = get_string(l, obj, "queryParameter", "apiKeys.queryParameter",
					NULL, 0);
	if (api->api_key_query && !param_name_ok(api->api_key_query))
		problem(l, "apiKeys.queryParameter", "expected a parameter name of "
			"[a-zA-Z0-9._$-], found \"%s\"", api->api_key_query);
	if (!api->n_api_keys && !l->errors)
		problem(l, "apiKeys", "no keys (expected apiKeys.keys or apiKeys.file to "
			"list at least one)");
}

/* {rateLimit, burstLimit}; 0, or -1 after a problem. */
static int load_rate(struct loader *l, const char *where, json_t *v, gw_rate_t *out)
{
	static const char *const keys[] = { "rateLimit", "burstLimit", NULL };
	json_t *rate = json_object_get(v, "rateLimit");
	char path[320];
	long long burst;
	int before = l->errors;

	if (!json_is_object(v)) {
		problem(l, where, "expected an object {\"rateLimit\": N, \"burstLimit\": N}, "
			"found %s", json_kind(v));
		return -1;
	}
	check_keys(l, where, v, keys);
	snprintf(path, sizeof(path), "%s.rateLimit", where);
	if (!rate || !json_is_number(rate))
		problem(l, path, "expected a number of requests per second from 0 to "
			"1000000000, found %s", rate ? json_kind(rate) : "nothing");
	else if (json_number_value(rate) < 0 || json_number_value(rate) > 1e9)
		problem(l, path, "expected a number of requests per second from 0 to "
			"1000000000, found %g", json_number_value(rate));
	snprintf(path, sizeof(path), "%s.burstLimit", where);
	if (!json_object_get(v, "burstLimit"))
		problem(l, path, "missing (expected an integer from 0 to 1000000000)");
	burst = get_int(l, v, "burstLimit", path, 0, 0, 1000000000);
	if (l->errors != before)
		return -1;
	out->set = 1;
	out->rate = json_number_value(rate);
	out->burst = (uint64_t)burst;
	return 0;
}

/* {rateLimit, burstLimit} into a new bucket; NULL after a problem. */
static gw_throttle_t *load_throttling(struct loader *l, const char *where, json_t *v)
{
	gw_rate_t r = { 0, 0, 0 };
	gw_throttle_t *t;

	if (load_rate(l, where, v, &r))
		return NULL;
	/* Its own cache line: loops hammer it from several cores. */
	t = aligned_alloc(64, 64);
	if (!t)
		abort();
	gw_throttle_init(t, r.rate, r.burst);
	return t;
}

/* connectionThrottling: {messages: {...}, bytes: {...}} */
static void load_conn_throttling(struct loader *l, json_t *root, gw_api_t *api)
{
	static const char *const keys[] = { "messages", "bytes", NULL };
	json_t *obj = json_object_get(root, "connectionThrottling"), *v;

	if (!obj)
		return;
	if (!json_is_object(obj)) {
		problem(l, "connectionThrottling", "expected an object {\"messages\": {...}, "
			"\"bytes\": {...}}, found %s", json_kind(obj));
		return;
	}
	check_keys(l, "connectionThrottling", obj, keys);
	if ((v = json_object_get(obj, "messages")))
		load_rate(l, "connectionThrottling.messages", v, &api->conn_messages);
	if ((v = json_object_get(obj, "bytes")))
		load_rate(l, "connectionThrottling.bytes", v, &api->conn_bytes);
}

/* sourceIpLimits: {maxConnections, newConnections: {...}} */
static void load_ip_limits(struct loader *l, json_t *root, gw_api_t *api)
{
	static const char *const keys[] = { "maxConnections", "newConnections", NULL };
	json_t *obj = json_object_get(root, "sourceIpLimits"), *v;
	gw_rate_t r = { 0, 0, 0 };

	if (!obj)
		return;
	if (!json_is_object(obj)) {
		problem(l, "sourceIpLimits", "expected an object {\"maxConnections\": N, "
			"\"newConnections\": {...}}, found %s", json_kind(obj));
		return;
	}
	check_keys(l, "sourceIpLimits", obj, keys);
	api->ip_limited = 1;
	api->ip_rule.max_conns = (unsigned)get_int(l, obj, "maxConnections",
		"sourceIpLimits.maxConnections", 0, 1, 100000000);
	if ((v = json_object_get(obj, "newConnections")) &&
	    !load_rate(l, "sourceIpLimits.newConnections", v, &r)) {
		api->ip_rule.rate_set = 1;
		api->ip_rule.rate = r.rate;
		api->ip_rule.burst = r.burst;
	}
}

static void load_route_edge(struct loader *l, json_t *routes, gw_api_t *api,
			    const json_t *stage_throttling)
{
	const char *key;
	json_t *v;

	json_object_foreach(routes, key, v) {
		json_t *req = json_is_object(v) ? json_object_get(v, "apiKeyRequired") : NULL;
		json_t *th = json_is_object(v) ? json_object_get(v, "throttling") : NULL;
		gw_route_t *r = (gw_route_t *)gw_config_route(api, key, strlen(key));
		char path[300];

		snprintf(path, sizeof(path), "routes.%s.apiKeyRequired", key);
		if (req && !json_is_boolean(req))
			problem(l, path, "expected true or false, found %s", json_kind(req));
		else if (req && json_is_true(req) && strcmp(key, "$connect"))
			problem(l, path, "only $connect takes it (the key is checked once, on "
				"the upgrade)");
		else if (req && json_is_true(req))
			api->api_key_required = 1;
		snprintf(path, sizeof(path), "routes.%s.throttling", key);
		if (th && (!r || !strcmp(key, "$disconnect"))) {
			problem(l, path, "expected on $connect or a WebSocket message route "
				"(REST routes and $disconnect are not throttled)");
			continue;
		}
		if (!r || !strcmp(key, "$disconnect"))
			continue;
		if (!th && !stage_throttling)
			continue;
		if (!strcmp(key, "$connect")) {
			if (th) {
				free(api->upgrade_throttle);
				api->upgrade_throttle = load_throttling(l, path, th);
			}
			continue;
		}
		r->throttle = load_throttling(l, th ? path : "throttling",
					      th ? th : (json_t *)stage_throttling);
	}
}

static void load_edge(struct loader *l, json_t *root, gw_api_t *api)
{
	json_t *stage = json_object_get(root, "throttling");
	json_t *routes = json_object_get(root, "routes");

	load_origins(l, root, api);
	load_api_keys(l, root, api);
	load_conn_throttling(l, root, api);
	load_ip_limits(l, root, api);
	if (stage)
		api->upgrade_throttle = load_throttling(l, "throttling", stage);
	if (stage && !api->upgrade_throttle)
		stage = NULL; /* reported once */
	if (json_is_object(routes))
		load_route_edge(l, routes, api, stage);
	if (api->api_key_required && !json_object_get(root, "apiKeys"))
		problem(l, "routes.$connect.apiKeyRequired", "no keys to check (expected "
			"apiKeys with keys or a file of keys)");
	if (!api->api_key_required && json_object_get(root, "apiKeys"))
		problem(l, "apiKeys", "no route requires them (expected "
			"routes.$connect.apiKeyRequired: true)");
}

static void edge_dispose(gw_api_t *api)
{
	for (size_t i = 0; i < api->n_allowed_origins; i++)
		free(api->allowed_origins[i]);
	free(api->allowed_origins);
	for (size_t i = 0; i < api->n_api_keys; i++) {
		OPENSSL_cleanse(api->api_keys[i], strlen(api->api_keys[i]));
		free(api->api_keys[i]);
	}
	free(api->api_keys);
	free(api->api_key_query);
	free(api->upgrade_throttle);
	for (size_t i = 0; i < api->n_routes; i++)
		free(api->routes[i].throttle);
}

/* --- authorizers on $connect (issue 12, reference §5; authorizer.h) --- */

static void load_identity(struct loader *l, const char *base, json_t *v, gw_authorizer_t *a)
{
	char path[300];
	size_t n = 0, cap;
	json_t *list = NULL;

	snprintf(path, sizeof(path), "%s.identitySource", base);
	if (!v)
		return;
	/* AWS writes the list either way: an array, or one comma-joined string. */
	if (json_is_string(v)) {
		char *copy = strdup(json_string_value(v)), *save = NULL;

		list = json_array();
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			while (*t == ' ')
				t++;
			for (char *e = t + strlen(t); e > t && e[-1] == ' ';)
				*--e = '\0';
			json_array_append_new(list, json_string(t));
		}
		free(copy);
		v = list;
	}
	if (!json_is_array(v) || !json_array_size(v) || json_array_size(v) > 10) {
		problem(l, path, "expected 1 to 10 identity sources (an array of strings, or one "
			"comma-separated string), found %s", json_kind(v));
		goto out;
	}
	cap = json_array_size(v);
	a->sources = calloc(cap, sizeof(*a->sources));
	for (size_t i = 0; i < cap; i++) {
		const char *src = json_string_value(json_array_get(v, i));
		gw_identity_source_t *is = &a->sources[n];
		char ipath[340];

		snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
		if (!src) {
			problem(l, ipath, "expected a string, found %s",
				json_kind(json_array_get(v, i)));
			continue;
		}
		if (!strncmp(src, "route.request.header.", 21) && src[21]) {
			is->kind = GW_ID_HEADER;
			is->name = strdup(src + 21);
		} else if (!strncmp(src, "route.request.querystring.", 26) && src[26]) {
			is->kind = GW_ID_QUERY;
			is->name = strdup(src + 26);
		} else if (!strncmp(src, "stageVariables.", 15) && src[15]) {
			is->kind = GW_ID_STAGE_VAR;
			is->name = strdup(src + 15);
		} else {
			problem(l, ipath, "expected route.request.header.NAME, "
				"route.request.querystring.NAME or stageVariables.NAME, found \"%s\"",
				src);
			continue;
		}
		if (!param_name_ok(is->name)) {
			problem(l, ipath, "expected a name of [a-zA-Z0-9._$-], found \"%s\"", is->name);
			free(is->name);
			continue;
		}
		a->n_sources = ++n;
	}
out:
	json_decref(list);
}

/* jwksUri: fetched now, off the event loops (the loader runs at start-up,
 * for --check and on the reload thread); a reload fetches it again. */
static void load_jwks_uri(struct loader *l, const char *base, json_t *v, gw_authorizer_t *a)
{
	char path[300], ca_path[300], err[256];
	char *uri, *ca;

	snprintf(path, sizeof(path), "%s.jwtConfiguration.jwksRefreshSeconds", base);
	a->jwks_refresh_s = (unsigned)get_int(l, v, "jwksRefreshSeconds", path, 300, 1, 86400);
	snprintf(path, sizeof(path), "%s.jwtConfiguration.jwksUri", base);
	snprintf(ca_path, sizeof(ca_path), "%s.jwtConfiguration.caFile", base);
	if (json_object_get(v, "jwksFile"))
		problem(l, path, "expected either jwksFile or jwksUri, not both");
	uri = get_string(l, v, "jwksUri", path, NULL, 1);
	ca = get_string(l, v, "caFile", ca_path, NULL, 0);
	if (ca && access(ca, R_OK))
		problem(l, ca_path, "cannot read \"%s\"", ca);
	if (uri && (strncmp(uri, "https://", 8) || !text_ok(l, path, uri, TEXT_URL)))
		problem(l, path, "expected an https:// URL, found \"%s\"", uri);
	else if (uri && !l->errors && !(l->flags & GW_CONFIG_NO_RESOLVE)) {
		a->keys = gw_authz_keys_fetch(uri, ca, err, sizeof(err));
		if (!a->keys)
			problem(l, path, "\"%s\": %s", uri, err);
		else
			a->jwks = gw_jwks_start(a->name, uri, ca, a->jwks_refresh_s, a->keys);
	}
	a->jwks_file = uri; /* where the keys came from */
	free(ca);
}

static void load_jwt_config(struct loader *l, const char *base, json_t *v, gw_authorizer_t *a)
{
	static const char *const keys[] = { "issuer", "audience", "jwksFile", "jwksUri", "caFile",
		"leewaySeconds", "jwksRefreshSeconds", NULL };
	const char *slash = strrchr(l->file, '/');
	char path[300], full[4096], err[256];
	json_t *aud;

	snprintf(path, sizeof(path), "%s.jwtConfiguration", base);
	if (!json_is_object(v)) {
		problem(l, path, "expected an object {\"issuer\": ..., \"audience\": [...], "
			"\"jwksFile\": ...}, found %s", v ? json_kind(v) : "nothing");
		return;
	}
	check_keys(l, path, v, keys);
	snprintf(path, sizeof(path), "%s.jwtConfiguration.issuer", base);
	a->issuer = get_string(l, v, "issuer", path, NULL, 1);
	snprintf(path, sizeof(path), "%s.jwtConfiguration.leewaySeconds", base);
	a->leeway_s = (unsigned)get_int(l, v, "leewaySeconds", path, 0, 0, 300);
	snprintf(path, sizeof(path), "%s.jwtConfiguration.audience", base);
	aud = json_object_get(v, "audience");
	if (!json_is_array(aud) || !json_array_size(aud) || json_array_size(aud) > 50) {
		problem(l, path, "expected an array of 1 to 50 strings, found %s",
			aud ? json_kind(aud) : "nothing");
	} else {
		a->audiences = calloc(json_array_size(aud), sizeof(char *));
		for (size_t i = 0; i < json_array_size(aud); i++) {
			const char *s = json_string_value(json_array_get(aud, i));

			if (!s || !*s) {
				problem(l, path, "expected non-empty strings, found %s at [%zu]",
					json_kind(json_array_get(aud, i)), i);
				continue;
			}
			a->audiences[a->n_audiences++] = strdup(s);
		}
	}
	if (json_object_get(v, "jwksUri")) {
		load_jwks_uri(l, base, v, a);
		return;
	}
	if (json_object_get(v, "jwksRefreshSeconds")) {
		snprintf(path, sizeof(path), "%s.jwtConfiguration.jwksRefreshSeconds", base);
		problem(l, path, "only a jwksUri is refreshed (a jwksFile is read again on "
			"SIGHUP)");
	}
	snprintf(path, sizeof(path), "%s.jwtConfiguration.jwksFile", base);
	a->jwks_file = get_string(l, v, "jwksFile", path, NULL, 0);
	if (!a->jwks_file) {
		problem(l, path, "missing (expected jwksFile, a JWKS file, or jwksUri, an https:// "
			"URL)");
		return;
	}
	if (a->jwks_file[0] != '/' && slash)
		snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - l->file), l->file,
			 a->jwks_file);
	else
		snprintf(full, sizeof(full), "%s", a->jwks_file);
	a->keys = gw_authz_keys_load(full, err, sizeof(err));
	if (!a->keys)
		problem(l, path, "\"%s\": %s", a->jwks_file, err);
}

static void load_one_authorizer(struct loader *l, gw_api_t *api, const char *name, json_t *v,
				gw_authorizer_t *a)
{
	static const char *const request_keys[] = { "type", "integration", "identitySource",
		"authorizerResultTtlInSeconds", NULL };
	static const char *const jwt_keys[] = { "type", "identitySource", "jwtConfiguration",
		"authorizerResultTtlInSeconds", NULL };
	char base[256], path[300];
	char *type, *iname;
	json_t *ttl;

	a->name = strdup(name);
	snprintf(base, sizeof(base), "authorizers.%s", name);
	if (!json_is_object(v)) {
		problem(l, base, "expected an object, found %s", json_kind(v));
		return;
	}
	snprintf(path, sizeof(path), "%s.type", base);
	type = get_string(l, v, "type", path, NULL, 1);
	if (!type)
		return;
	if (!strcmp(type, "JWT")) {
		a->type = GW_AUTHZ_JWT;
	} else if (strcmp(type, "REQUEST")) {
		problem(l, path, "expected \"REQUEST\" or \"JWT\", found \"%s\"", type);
		free(type);
		return;
	}
	free(type);
	check_keys(l, base, v, a->type == GW_AUTHZ_JWT ? jwt_keys : request_keys);
	load_identity(l, base, json_object_get(v, "identitySource"), a);
	if (a->type == GW_AUTHZ_JWT) {
		snprintf(path, sizeof(path), "%s.identitySource", base);
		if (a->n_sources != 1 || a->sources[0].kind == GW_ID_STAGE_VAR)
			problem(l, path, "expected one route.request.header.NAME or "
				"route.request.querystring.NAME (where the token is)");
		load_jwt_config(l, base, json_object_get(v, "jwtConfiguration"), a);
		/* Valid tokens, until their exp at the latest. */
		snprintf(path, sizeof(path), "%s.authorizerResultTtlInSeconds", base);
		a->ttl_s = (unsigned)get_int(l, v, "authorizerResultTtlInSeconds", path, 300, 0,
					     3600);
		if (a->ttl_s)
			a->cache = gw_authz_cache_create();
		return;
	}
	snprintf(path, sizeof(path), "%s.integration", base);
	iname = get_string(l, v, "integration", path, NULL, 1);
	if (iname) {
		a->route.integration = find_integration(api, iname);
		if (!a->route.integration)
			problem(l, path, "unknown integration \"%s\"", iname);
		else if (a->route.integration->type != GW_INTEG_AWS_PROXY)
			problem(l, path, "expected an AWS_PROXY integration (the authorizer "
				"answers as a Lambda authorizer does), \"%s\" is not", iname);
		free(iname);
	}
	a->route.key = (char *)"$connect";
	a->route.key_len = 8;
	a->route.max_in_flight = 1;
	ttl = json_object_get(v, "authorizerResultTtlInSeconds");
	snprintf(path, sizeof(path), "%s.authorizerResultTtlInSeconds", base);
	a->ttl_s = (unsigned)get_int(l, v, "authorizerResultTtlInSeconds", path,
				     a->n_sources ? 300 : 0, 0, 3600);
	if (ttl && a->ttl_s && !a->n_sources)
		problem(l, path, "caching needs an identitySource (the cache key); expected 0 "
			"or an identitySource");
	if (a->ttl_s)
		a->cache = gw_authz_cache_create();
}

static void load_authorizers(struct loader *l, json_t *root, gw_api_t *api)
{
	json_t *obj = json_object_get(root, "authorizers"), *routes = json_object_get(root, "routes");
	json_t *v;
	const char *key;
	size_t i = 0;

	if (obj && !json_is_object(obj)) {
		problem(l, "authorizers", "expected an object of authorizers by name, found %s",
			json_kind(obj));
		obj = NULL;
	}
	if (obj && json_object_size(obj) > 10)
		problem(l, "authorizers", "expected at most 10 authorizers, found %zu",
			json_object_size(obj));
	if (obj) {
		api->authorizers = calloc(json_object_size(obj) + 1, sizeof(*api->authorizers));
		json_object_foreach(obj, key, v) {
			api->n_authorizers = ++i;
			load_one_authorizer(l, api, key, v, &api->authorizers[i - 1]);
		}
	}
	if (!json_is_object(routes))
		return;
	json_object_foreach(routes, key, v) {
		json_t *az = json_is_object(v) ? json_object_get(v, "authorizer") : NULL;
		char path[300];

		if (!az)
			continue;
		snprintf(path, sizeof(path), "routes.%s.authorizer", key);
		if (strcmp(key, "$connect")) {
			problem(l, path, "only $connect takes an authorizer (a connection is "
				"authorized once, on the upgrade)");
			continue;
		}
		if (!json_is_string(az)) {
			problem(l, path, "expected the name of an authorizer, found %s",
				json_kind(az));
			continue;
		}
		for (i = 0; i < api->n_authorizers; i++)
			if (!strcmp(api->authorizers[i].name, json_string_value(az)))
				api->connect_authorizer = &api->authorizers[i];
		if (!api->connect_authorizer)
			problem(l, path, "unknown authorizer \"%s\" (expected one of authorizers)",
				json_string_value(az));
	}
}

static void authorizers_dispose(gw_api_t *api)
{
	for (size_t i = 0; i < api->n_authorizers; i++) {
		gw_authorizer_t *a = &api->authorizers[i];

		free(a->name);
		for (size_t j = 0; j < a->n_sources; j++)
			free(a->sources[j].name);
		free(a->sources);
		gw_authz_cache_destroy(a->cache);
		free(a->issuer);
		for (size_t j = 0; j < a->n_audiences; j++)
			free(a->audiences[j]);
		free(a->audiences);
		free(a->jwks_file);
		gw_jwks_stop(a->jwks);
		gw_authz_keys_free(a->keys);
	}
	free(api->authorizers);
}

static int valid_stage(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 128)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return 0;
	return 1;
}

/* --- managementAuth: SigV4 keys for the management API --- */

#define MAX_SECRET_BYTES 4096

/* The secret of a key, from an environment variable or a file. Messages
 * name the variable or the file, never what they hold. */
static char *read_secret(struct loader *l, const char *path, json_t *key, size_t *len)
{
	json_t *env = json_object_get(key, "secretAccessKeyEnv"),
	       *file = json_object_get(key, "secretAccessKeyFile");
	char *secret = NULL, where[300];
	size_t n = 0;

	if (!env == !file) {
		problem(l, path, "expected exactly one of secretAccessKeyEnv (the name of an "
			"environment variable) or secretAccessKeyFile (a file holding the "
			"secret)");
		return NULL;
	}
	if (env) {
		const char *v;

		snprintf(where, sizeof(where), "%s.secretAccessKeyEnv", path);
		if (!json_is_string(env) || !json_string_length(env)) {
			problem(l, where, "expected the name of an environment variable");
			return NULL;
		}
		v = getenv(json_string_value(env));
		if (!v || !*v) {
			problem(l, where, "environment variable %s is not set or empty "
				"(expected the secret access key)", json_string_value(env));
			return NULL;
		}
		secret = strdup(v);
		n = strlen(v);
	} else {
		struct stat st;
		FILE *f;

		snprintf(where, sizeof(where), "%s.secretAccessKeyFile", path);
		if (!json_is_string(file) || !json_string_length(file)) {
			problem(l, where, "expected a file name");
			return NULL;
		}
		if (stat(json_string_value(file), &st) || !S_ISREG(st.st_mode) ||
		    !(f = fopen(json_string_value(file), "r"))) {
			problem(l, where, "cannot read \"%s\" (expected a regular file holding "
				"the secret access key)", json_string_value(file));
			return NULL;
		}
		secret = calloc(1, MAX_SECRET_BYTES + 1);
		if (!secret)
			abort();
		n = fread(secret, 1, MAX_SECRET_BYTES + 1, f);
		fclose(f);
		if (n > MAX_SECRET_BYTES) {
			problem(l, where, "\"%s\" is larger than %d bytes (expected a secret "
				"access key)", json_string_value(file), MAX_SECRET_BYTES);
			goto fail;
		}
		/* Files end with a newline; the key does not. */
		while (n && (secret[n - 1] == '\n' || secret[n - 1] == '\r' ||
			     secret[n - 1] == ' ' || secret[n - 1] == '\t'))
			secret[--n] = '\0';
		if (!n) {
			problem(l, where, "\"%s\" is empty (expected a secret access key)",
				json_string_value(file));
			goto fail;
		}
	}
	if (!secret)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)secret[i] < 0x20 || secret[i] == 0x7f) {
			problem(l, env ? where : where, "the secret holds a control character "
				"(expected printable text)");
			goto fail;
		}
	*len = n;
	return secret;
fail:
	OPENSSL_cleanse(secret, MAX_SECRET_BYTES + 1);
	free(secret);
	return NULL;
}

static int scope_text_ok(const char *s, size_t max, int dash)
{
	size_t n = strlen(s);

	if (!n || n > max)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || (dash && (*s == '-' || *s == '_'))))
			return 0;
	return 1;
}

static void load_mgmt_key(struct loader *l, const char *path, json_t *obj, gw_mgmt_key_t *k)
{
	static const char *const keys[] = { "accessKeyId", "secretAccessKeyEnv",
		"secretAccessKeyFile", "regions", NULL };
	char where[300];
	json_t *regions, *r;
	size_t i;

	if (!json_is_object(obj)) {
		problem(l, path, "expected an object {\"accessKeyId\", \"secretAccessKeyEnv\" "
			"or \"secretAccessKeyFile\"}, found %s", json_kind(obj));
		return;
	}
	check_keys(l, path, obj, keys);
	snprintf(where, sizeof(where), "%s.accessKeyId", path);
	k->access_key_id = get_string(l, obj, "accessKeyId", where, NULL, 1);
	if (k->access_key_id && !scope_text_ok(k->access_key_id, 128, 0))
		problem(l, where, "expected 1 to 128 letters and digits, found \"%s\"",
			k->access_key_id);
	k->secret = read_secret(l, path, obj, &k->secret_len);
	regions = json_object_get(obj, "regions");
	if (!regions)
		return;
	snprintf(where, sizeof(where), "%s.regions", path);
	if (!json_is_array(regions) || !json_array_size(regions)) {
		problem(l, where, "expected a non-empty array of region names "
			"(leave it out to allow any region)");
		return;
	}
	k->regions = calloc(json_array_size(regions), sizeof(char *));
	if (!k->regions)
		abort();
	json_array_foreach(regions, i, r) {
		if (!json_is_string(r) || !scope_text_ok(json_string_value(r), 32, 1)) {
			problem(l, where, "expected region names such as \"us-east-1\" "
				"([a-z0-9-], at most 32)");
			continue;
		}
		k->regions[k->n_regions++] = strdup(json_string_value(r));
	}
}

static void load_mgmt_auth(struct loader *l, json_t *root, gw_api_t *api)
{
	static const char *const keys[] = { "keys", NULL };
	json_t *obj = json_object_get(root, "managementAuth"), *list, *v;
	size_t i;

	if (!obj)
		return;
	api->mgmt_auth = 1;
	if (!json_is_object(obj)) {
		problem(l, "managementAuth", "expected an object {\"keys\": [...]}, found %s",
			json_kind(obj));
		return;
	}
	check_keys(l, "managementAuth", obj, keys);
	list = json_object_get(obj, "keys");
	if (!json_is_array(list) || !json_array_size(list)) {
		problem(l, "managementAuth.keys", "expected a non-empty array of keys "
			"{\"accessKeyId\", \"secretAccessKeyEnv\" or \"secretAccessKeyFile\"}");
		return;
	}
	api->mgmt_keys = calloc(json_array_size(list), sizeof(*api->mgmt_keys));
	if (!api->mgmt_keys)
		abort();
	json_array_foreach(list, i, v) {
		gw_mgmt_key_t *k = &api->mgmt_keys[api->n_mgmt_keys++];
		char path[64];

		snprintf(path, sizeof(path), "managementAuth.keys[%zu]", i);
		load_mgmt_key(l, path, v, k);
		for (size_t j = 0; k->access_key_id && j + 1 < api->n_mgmt_keys; j++)
			if (api->mgmt_keys[j].access_key_id &&
			    !strcmp(api->mgmt_keys[j].access_key_id, k->access_key_id))
				problem(l, path, "accessKeyId \"%s\" is already listed "
					"(expected each key once)", k->access_key_id);
	}
}

static void mgmt_auth_dispose(gw_api_t *api)
{
	for (size_t i = 0; i < api->n_mgmt_keys; i++) {
		gw_mgmt_key_t *k = &api->mgmt_keys[i];

		if (k->secret)
			OPENSSL_cleanse(k->secret, k->secret_len);
		free(k->secret);
		free(k->access_key_id);
		for (size_t j = 0; j < k->n_regions; j++)
			free(k->regions[j]);
		free(k->regions);
	}
	free(api->mgmt_keys);
}

/* All or none: with only some API files signed, the others' connections
 * would be open to anyone who reaches the management listener. */
static int check_mgmt_auth(gw_config_t *cfg, gw_buf_t *err)
{
	const gw_api_t *with = NULL;
	int rc = 0;

	for (size_t i = 0; i < cfg->n_apis && !with; i++)
		if (cfg->apis[i].mgmt_auth)
			with = &cfg->apis[i];
	for (size_t i = 0; with && i < cfg->n_apis; i++)
		if (!cfg->apis[i].mgmt_auth) {
			struct loader l = { cfg->apis[i].file, err, 0, 0 };

			problem(&l, "managementAuth", "missing (expected in every API file "
				"once one has it: %s has one)", with->file);
			rc = -1;
		}
	return rc;
}

int gw_config_mgmt_auth(const gw_config_t *cfg)
{
	return cfg->n_apis && cfg->apis[0].mgmt_auth;
}

const gw_mgmt_key_t *gw_config_mgmt_key(const gw_api_t *api, const char *access_key_id)
{
	for (size_t i = 0; i < api->n_mgmt_keys; i++)
		if (api->mgmt_keys[i].access_key_id && api->mgmt_keys[i].secret &&
		    !strcmp(api->mgmt_keys[i].access_key_id, access_key_id))
			return &api->mgmt_keys[i];
	return NULL;
}

int gw_config_mgmt_key_region(const gw_mgmt_key_t *key, const char *region)
{
	if (!key->regions)
		return 1;
	for (size_t i = 0; i < key->n_regions; i++)
		if (!strcmp(key->regions[i], region))
			return 1;
	return 0;
}

/* accessLog: {"format": "...$context.X...", "destination": "stderr" | FILE}
 * (accesslog.h); the format defaults to a JSON line. */
static void load_access_log(struct loader *l, json_t *root, gw_api_t *api)
{
	static const char *const keys[] = { "format", "destination", NULL };
	json_t *obj = json_object_get(root, "accessLog"), *f, *d;
	char err[400];

	if (!obj)
		return;
	if (!json_is_object(obj)) {
		problem(l, "accessLog", "expected an object {\"format\": \"...\", "
			"\"destination\": \"stderr\" or a file}, found %s", json_kind(obj));
		return;
	}
	check_keys(l, "accessLog", obj, keys);
	f = json_object_get(obj, "format");
	d = json_object_get(obj, "destination");
	if (f && !json_is_string(f)) {
		problem(l, "accessLog.format", "expected a string, found %s", json_kind(f));
		return;
	}
	if (d && !json_is_string(d)) {
		problem(l, "accessLog.destination", "expected \"stderr\" or a file path, "
			"found %s", json_kind(d));
		return;
	}
	api->access_log = gw_alog_compile(f ? json_string_value(f) : NULL,
					  d ? json_string_value(d) : NULL, err, sizeof(err));
	if (!api->access_log)
		problem(l, strstr(err, "variable") || strstr(err, "format") || strstr(err, "line")
			   ? "accessLog.format" : "accessLog.destination", "%s", err);
}

static void load_api(struct loader *l, json_t *root, gw_api_t *api)
{
	static const char *const keys[] = { "name", "stage", "basePath",
		"routeSelectionExpression", "stageVariables", "limits", "integrations",
		"routes", "cors", "allowedOrigins", "apiKeys", "throttling",
		"connectionThrottling", "sourceIpLimits", "managementAuth", "authorizers",
		"accessLog", "apiId", "accountId", NULL };
	char err[200];

	if (!json_is_object(root)) {
		problem(l, NULL, "expected a JSON object at the top level, found %s",
			json_kind(root));
		return;
	}
	check_keys(l, "", root, keys);
	api->name = get_string(l, root, "name", "name", "api", 1);
	if (api->name && strlen(api->name) > GW_API_NAME_MAX)
		problem(l, "name", "expected at most %d bytes, found %zu", GW_API_NAME_MAX,
			strlen(api->name));
	else if (api->name)
		text_ok(l, "name", api->name, TEXT_FIELD);
	load_api_id(l, root, api);
	load_account_id(l, root, api);
	api->stage = get_string(l, root, "stage", "stage", "dev", 0);
	if (api->stage && !valid_stage(api->stage))
		problem(l, "stage", "expected 1 to 128 characters of [A-Za-z0-9_-], "
			"found \"%s\"", api->stage);
	api->base_path = get_string(l, root, "basePath", "basePath", "/", 0);
	if (api->base_path && (api->base_path[0] != '/' || strchr(api->base_path, '?')))
		problem(l, "basePath", "expected a path starting with '/' and "
			"without a query, found \"%s\"", api->base_path);
	else if (api->base_path)
		text_ok(l, "basePath", api->base_path, TEXT_URL);
	api->route_selection_expression = get_string(l, root,
		"routeSelectionExpression", "routeSelectionExpression",
		"$request.body.action", 0);
	if (api->route_selection_expression) {
		api->rse = gw_rse_compile(api->route_selection_expression, err, sizeof(err));
		if (!api->rse)
			problem(l, "routeSelectionExpression", "%s (in \"%s\")", err,
				api->route_selection_expression);
	}
	load_stage_vars(l, root, api);
	load_limits(l, root, api);
	load_cors(l, root, api);
	load_integrations(l, root, api);
	load_routes(l, root, api);
	load_edge(l, root, api);
	load_mgmt_auth(l, root, api);
	load_authorizers(l, root, api);
	load_access_log(l, root, api);
}

static void api_dispose(gw_api_t *api)
{
	authorizers_dispose(api);
	gw_alog_format_free(api->access_log);
	edge_dispose(api);
	for (size_t i = 0; i < api->n_integrations; i++) {
		gw_integration_t *in = &api->integrations[i];
		free(in->name);
		free(in->uri);
		free(in->host);
		free(in->address);
		free(in->path);
		free(in->method);
		free(in->mock_body);
		free(in->ca_file);
		for (size_t j = 0; j < in->n_params; j++) {
			free(in->params[j].name);
			free(in->params[j].arg);
			gw_rse_free(in->params[j].path);
		}
		free(in->params);
	}
	for (size_t i = 0; i < api->n_stage_vars; i++) {
		free(api->stage_vars[i].name);
		free(api->stage_vars[i].value);
	}
	free(api->stage_vars);
	gw_rse_free(api->rse);
	for (size_t i = 0; i < api->n_routes; i++)
		free(api->routes[i].key);
	for (size_t i = 0; i < api->n_rest_routes; i++) {
		free(api->rest_routes[i].route.key);
		for (size_t j = 0; j < api->rest_routes[i].n_segs; j++)
			free(api->rest_routes[i].segs[j].text);
		free(api->rest_routes[i].segs);
	}
	free(api->rest_routes);
	for (size_t i = 0; i < api->cors.n_origins; i++)
		free(api->cors.origins[i]);
	free(api->cors.origins);
	free(api->cors.methods);
	free(api->cors.headers);
	free(api->cors.expose);
	free(api->integrations);
	free(api->routes);
	free(api->file);
	free(api->name);
	free(api->stage);
	free(api->base_path);
	free(api->route_selection_expression);
	mgmt_auth_dispose(api);
}

/* Process-wide state shared by every snapshot: the API id table, the
 * next integration index and the count of live snapshots. A reload runs
 * on its own thread while the loops read, hence the lock and atomics. */
static struct {
	char name[GW_API_NAME_MAX + 1];
	char stage[129];
	size_t max_message_bytes;
} api_ids[GW_CONFIG_API_ID_NONE];
static unsigned n_api_ids; /* written under api_ids_lock, read with acquire */
static pthread_mutex_t api_ids_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned next_integration_index;
static unsigned live_snapshots;
/* The index ranges of live snapshots (gw_config_index_live): as many as
 * snapshots are held, a handful. */
static struct index_range {
	unsigned base, n;
} *live_ranges;
static size_t n_live_ranges, cap_live_ranges;
static pthread_mutex_t ranges_lock = PTHREAD_MUTEX_INITIALIZER;

static void range_add(unsigned base, unsigned n)
{
	pthread_mutex_lock(&ranges_lock);
	if (n_live_ranges == cap_live_ranges) {
		cap_live_ranges = cap_live_ranges ? cap_live_ranges * 2 : 8;
		live_ranges = realloc(live_ranges, cap_live_ranges * sizeof(*live_ranges));
		if (!live_ranges)
			abort();
	}
	live_ranges[n_live_ranges++] = (struct index_range){ base, n };
	pthread_mutex_unlock(&ranges_lock);
}

static void range_remove(unsigned base, unsigned n)
{
	pthread_mutex_lock(&ranges_lock);
	for (size_t i = 0; i < n_live_ranges; i++)
		if (live_ranges[i].base == base && live_ranges[i].n == n) {
			live_ranges[i] = live_ranges[--n_live_ranges];
			break;
		}
	if (!n_live_ranges) {
		free(live_ranges);
		live_ranges = NULL;
		cap_live_ranges = 0;
	}
	pthread_mutex_unlock(&ranges_lock);
}

int gw_config_index_live(unsigned index)
{
	int live = 0;

	pthread_mutex_lock(&ranges_lock);
	for (size_t i = 0; i < n_live_ranges && !live; i++)
		live = index - live_ranges[i].base < live_ranges[i].n;
	pthread_mutex_unlock(&ranges_lock);
	return live;
}

/* The id of (name, stage): the one it had before, or a new one. An entry
 * is never changed but for its largest message size, nor removed. */
static unsigned api_id(const gw_api_t *api)
{
	unsigned i, n;

	if (!api->name || !api->stage || strlen(api->name) > GW_API_NAME_MAX ||
	    strlen(api->stage) >= sizeof(api_ids[0].stage))
		return GW_CONFIG_API_ID_NONE;
	pthread_mutex_lock(&api_ids_lock);
	n = n_api_ids;
	for (i = 0; i < n; i++)
		if (!strcmp(api_ids[i].name, api->name) && !strcmp(api_ids[i].stage, api->stage))
			break;
	if (i == n && n < GW_CONFIG_API_ID_NONE) {
		snprintf(api_ids[i].name, sizeof(api_ids[i].name), "%s", api->name);
		snprintf(api_ids[i].stage, sizeof(api_ids[i].stage), "%s", api->stage);
		__atomic_store_n(&n_api_ids, n + 1, __ATOMIC_RELEASE);
	}
	if (i < GW_CONFIG_API_ID_NONE &&
	    __atomic_load_n(&api_ids[i].max_message_bytes, __ATOMIC_RELAXED) < api->max_message_bytes)
		__atomic_store_n(&api_ids[i].max_message_bytes, api->max_message_bytes,
				 __ATOMIC_RELAXED);
	pthread_mutex_unlock(&api_ids_lock);
	return i;
}

const char *gw_config_api_stage(unsigned id)
{
	return id < __atomic_load_n(&n_api_ids, __ATOMIC_ACQUIRE) ? api_ids[id].stage : NULL;
}

const char *gw_config_api_name(unsigned id)
{
	return id < __atomic_load_n(&n_api_ids, __ATOMIC_ACQUIRE) ? api_ids[id].name : NULL;
}

size_t gw_config_stage_history(const char *stage)
{
	unsigned n = __atomic_load_n(&n_api_ids, __ATOMIC_ACQUIRE);
	size_t max = 0;

	for (unsigned i = 0; i < n; i++) {
		size_t m = __atomic_load_n(&api_ids[i].max_message_bytes, __ATOMIC_RELAXED);

		if (!strcmp(api_ids[i].stage, stage) && m > max)
			max = m;
	}
	return max;
}

unsigned gw_config_live(void)
{
	return __atomic_load_n(&live_snapshots, __ATOMIC_RELAXED);
}

static gw_config_t *config_new(void)
{
	gw_config_t *cfg = calloc(1, sizeof(*cfg));

	if (!cfg)
		abort();
	cfg->refs = 1;
	__atomic_add_fetch(&live_snapshots, 1, __ATOMIC_RELAXED);
	return cfg;
}

gw_config_t *gw_config_ref(gw_config_t *cfg)
{
	__atomic_add_fetch(&cfg->refs, 1, __ATOMIC_RELAXED);
	return cfg;
}

void gw_config_free(gw_config_t *cfg)
{
	gw_config_unref(cfg);
}

void gw_config_unref(gw_config_t *cfg)
{
	/* Release, then acquire by the last owner: every owner's reads of the
	 * snapshot happen before it is freed. */
	if (!cfg || __atomic_sub_fetch(&cfg->refs, 1, __ATOMIC_ACQ_REL))
		return;
	if (cfg->n_integrations)
		range_remove(cfg->index_base, cfg->n_integrations);
	for (size_t i = 0; i < cfg->n_apis; i++)
		api_dispose(&cfg->apis[i]);
	free(cfg->apis);
	free(cfg);
	__atomic_sub_fetch(&live_snapshots, 1, __ATOMIC_RELAXED);
}

static int load_root(gw_config_t *cfg, const char *file, json_t *root,
		     const json_error_t *jerr, unsigned flags, gw_buf_t *err)
{
	struct loader l = { file, err, 0, flags };
	gw_api_t *api;

	if (!root) {
		problem(&l, NULL, "line %d, column %d: invalid JSON: %s", jerr->line,
			jerr->column, jerr->text);
		return -1;
	}
	api = &cfg->apis[cfg->n_apis++];
	api->file = strdup(file);
	load_api(&l, root, api);
	json_decref(root);
	return l.errors ? -1 : 0;
}

/* A SAM/CloudFormation template (template.h) read as the API file it
 * imports to; its warnings are logged, on every load. */
static int load_template(gw_config_t *cfg, const char *file, gw_buf_t *err)
{
	json_error_t jerr = { .text = "" };
	gw_buf_t warn, terr;
	char *data = NULL;
	size_t len = 0;
	json_t *root;

	if (gw_tmpl_read_file(file, &data, &len, err))
		return -1;
	gw_buf_init(&warn);
	gw_buf_init(&terr);
	root = gw_tmpl_to_api(data, len, &gw_tmpl_default_opts, &warn, &terr);
	free(data);
	for (const char *p = warn.data, *nl; p && p < warn.data + warn.len; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(warn.data + warn.len - p));
		gw_warn("%s: template %.*s", file, (int)(nl - p), p);
	}
	gw_buf_dispose(&warn);
	if (!root) {
		gw_buf_append_str(err, file);
		gw_buf_append_str(err, ": ");
		gw_buf_append(err, terr.data, terr.len);
		gw_buf_dispose(&terr);
		return -1;
	}
	gw_buf_dispose(&terr);
	return load_root(cfg, file, root, &jerr, 0, err);
}

static int load_file(gw_config_t *cfg, const char *file, gw_buf_t *err)
{
	json_error_t jerr;
	struct stat st;

	if (gw_tmpl_is_template(file))
		return load_template(cfg, file, err);
	/* A FIFO or a device would be read forever. */
	if (stat(file, &st) || !S_ISREG(st.st_mode)) {
		gw_buf_append_str(err, file);
		gw_buf_append_str(err, ": cannot read (expected a regular JSON file)\n");
		return -1;
	}
	return load_root(cfg, file, json_load_file(file, JSON_REJECT_DUPLICATES, &jerr), &jerr,
			 0, err);
}

/* Each route's series in the metrics (metrics.h). */
static void routes_metric_slots(gw_api_t *api)
{
	/* $connect and $disconnect are counted as connections, not here. */
	for (size_t i = 0; i < api->n_routes; i++)
		api->routes[i].metric_slot =
			&api->routes[i] == api->connect_route || &api->routes[i] == api->disconnect_route
				? GW_METRICS_MAX_ROUTES - 1
				: gw_metrics_route_slot(api->id, api->routes[i].key);
	for (size_t i = 0; i < api->n_rest_routes; i++)
		api->rest_routes[i].route.metric_slot =
			gw_metrics_route_slot(api->id, api->rest_routes[i].route.key);
}

/* Integration indexes never repeat within the process: a loop's pools
 * stay bound for the connections of an older snapshot after a reload
 * binds the new one's. */
static void assign_indexes(gw_config_t *cfg)
{
	unsigned n = 0, base;

	for (size_t a = 0; a < cfg->n_apis; a++)
		n += (unsigned)cfg->apis[a].n_integrations;
	base = __atomic_fetch_add(&next_integration_index, n, __ATOMIC_RELAXED);
	cfg->index_base = base;
	for (size_t a = 0; a < cfg->n_apis; a++) {
		cfg->apis[a].id = api_id(&cfg->apis[a]);
		routes_metric_slots(&cfg->apis[a]);
		for (size_t i = 0; i < cfg->apis[a].n_integrations; i++)
			cfg->apis[a].integrations[i].index = base + cfg->n_integrations++;
	}
	if (cfg->n_integrations)
		range_add(base, cfg->n_integrations);
}

int gw_config_parse_buffer(const char *name, const char *data, size_t len, unsigned flags,
			   gw_config_t **out, gw_buf_t *err)
{
	gw_config_t *cfg = config_new();
	json_error_t jerr;
	json_t *root;

	*out = NULL;
	if (!(cfg->apis = calloc(1, sizeof(*cfg->apis))))
		abort();
	root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (load_root(cfg, name, root, &jerr, flags, err)) {
		gw_config_free(cfg);
		return -1;
	}
	assign_indexes(cfg);
	*out = cfg;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int gw_config_load(const char *path, gw_config_t **out, gw_buf_t *err)
{
	gw_config_t *cfg = config_new();
	char **files = NULL;
	size_t n = 0, cap = 0;
	struct stat st;
	int rc = 0;

	*out = NULL;
	if (stat(path, &st)) {
		gw_buf_append_str(err, path);
		gw_buf_append_str(err, ": cannot open (expected an API file or a folder of them)\n");
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		struct dirent *de;

		if (!d) {
			gw_buf_append_str(err, path);
			gw_buf_append_str(err, ": cannot read folder\n");
			goto fail;
		}
		while ((de = readdir(d))) {
			size_t len = strlen(de->d_name);
			char full[4096];

			if (len < 6 || strcmp(de->d_name + len - 5, ".json") || de->d_name[0] == '.')
				continue;
			snprintf(full, sizeof(full), "%s%s%s", path,
				 path[strlen(path) - 1] == '/' ? "" : "/", de->d_name);
			if (n == cap) {
				cap = cap ? cap * 2 : 8;
				files = realloc(files, cap * sizeof(*files));
				if (!files)
					abort();
			}
			files[n++] = strdup(full);
		}
		closedir(d);
		if (n)
			qsort(files, n, sizeof(*files), cmp_str);
		if (!n) {
			gw_buf_append_str(err, path);
			gw_buf_append_str(err, ": no *.json API files in this folder\n");
			goto fail;
		}
	} else {
		files = malloc(sizeof(*files));
		if (!files)
			abort();
		files[n++] = strdup(path);
	}
	cfg->apis = calloc(n, sizeof(*cfg->apis));
	for (size_t i = 0; i < n; i++)
		if (load_file(cfg, files[i], err))
			rc = -1;
	/* Two APIs cannot share an upgrade path ("/chat" and "/chat/" being
	 * the same): the second would be unreachable. */
	for (size_t i = 0; i < cfg->n_apis; i++)
		for (size_t j = 0; j < i; j++)
			if (cfg->apis[i].base_path && cfg->apis[j].base_path &&
			    gw_config_api_for_path(&(gw_config_t){ &cfg->apis[j], 1, 0, 0, 0 },
						   cfg->apis[i].base_path,
						   strlen(cfg->apis[i].base_path))) {
				struct loader l = { cfg->apis[i].file, err, 0, 0 };
				problem(&l, "basePath", "\"%s\" is already used by %s "
					"(expected a basePath unique across API files)",
					cfg->apis[i].base_path, cfg->apis[j].file);
				rc = -1;
			}
	if (!rc && check_mgmt_auth(cfg, err))
		rc = -1;
	if (rc)
		goto fail;
	assign_indexes(cfg);
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	free(files);
	*out = cfg;
	return 0;
fail:
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	free(files);
	gw_config_free(cfg);
	return -1;
}

const gw_api_t *gw_config_api_for_path(const gw_config_t *cfg, const char *path,
				       size_t len)
{
	/* "/chat" and "/chat/" name the same endpoint. */
	if (len > 1 && path[len - 1] == '/')
		len--;
	for (size_t i = 0; i < cfg->n_apis; i++) {
		const char *bp = cfg->apis[i].base_path;
		size_t bl = strlen(bp);

		if (bl > 1 && bp[bl - 1] == '/')
			bl--;
		if (bl == len && !memcmp(bp, path, len))
			return &cfg->apis[i];
	}
	return NULL;
}
