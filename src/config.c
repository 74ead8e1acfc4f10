/* API file loader. Uses jansson to parse; every check reports the file, the
 * key path and what was expected, and checking goes on after the first
 * problem so that one run of --check lists them all. */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <jansson.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_MAX_MESSAGE_BYTES 131072
#define DEFAULT_IDLE_TIMEOUT_S 600
#define DEFAULT_MAX_CONNECTION_S 7200
#define DEFAULT_OUTBOUND_BUFFER_BYTES (1024 * 1024)
#define DEFAULT_TIMEOUT_MS 29000

struct loader {
	const char *file;
	gw_buf_t *err;
	int errors;
};

__attribute__((format(printf, 3, 4))) static void
problem(struct loader *l, const char *key, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gw_buf_append_str(l->err, l->file);
	gw_buf_append_str(l->err, ": ");
	if (key && *key) {
		gw_buf_append_str(l->err, key);
		gw_buf_append_str(l->err, ": ");
	}
	gw_buf_append_str(l->err, msg);
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

static void load_integrations(struct loader *l, json_t *root, gw_api_t *api)
{
	static const char *const keys[] = { "type", "uri", "timeoutMs", NULL };
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
		char *type;

		api->n_integrations = i;
		in->name = strdup(name);
		snprintf(base, sizeof(base), "integrations.%s", name);
		if (!json_is_object(v)) {
			problem(l, base, "expected an object, found %s", json_kind(v));
			continue;
		}
		check_keys(l, base, v, keys);
		snprintf(path, sizeof(path), "%s.type", base);
		type = get_string(l, v, "type", path, NULL, 1);
		if (type && strcmp(type, "AWS_PROXY"))
			problem(l, path, "expected \"AWS_PROXY\", found \"%s\"", type);
		free(type);
		in->type = GW_INTEG_AWS_PROXY;
		snprintf(path, sizeof(path), "%s.timeoutMs", base);
		in->timeout_ms = (int)get_int(l, v, "timeoutMs", path,
					      DEFAULT_TIMEOUT_MS, 50, 300000);
		snprintf(path, sizeof(path), "%s.uri", base);
		in->uri = get_string(l, v, "uri", path, NULL, 1);
		if (in->uri)
			parse_uri(l, path, in);
	}
}

static const gw_integration_t *find_integration(const gw_api_t *api, const char *name)
{
	for (size_t i = 0; i < api->n_integrations; i++)
		if (!strcmp(api->integrations[i].name, name))
			return &api->integrations[i];
	return NULL;
}

static void load_routes(struct loader *l, json_t *root, gw_api_t *api)
{
	static const char *const keys[] = { "integration", "routeResponse", NULL };
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
	json_object_foreach(obj, key, v) {
		gw_route_t *r = &api->routes[i++];
		char base[256], path[300];
		json_t *rr;
		char *iname;

		api->n_routes = i;
		r->key = strdup(key);
		snprintf(base, sizeof(base), "routes.%s", key);
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
		if (!strcmp(key, "$connect"))
			api->connect_route = r;
		else if (!strcmp(key, "$disconnect"))
			api->disconnect_route = r;
		else if (!strcmp(key, "$default"))
			api->default_route = r;
	}
}

static void load_limits(struct loader *l, json_t *root, gw_api_t *api)
{
	static const char *const keys[] = { "maxMessageBytes", "idleTimeoutSeconds",
		"maxConnectionSeconds", "outboundBufferBytes", NULL };
	json_t *obj = json_object_get(root, "limits");

	api->max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES;
	api->idle_timeout_s = DEFAULT_IDLE_TIMEOUT_S;
	api->max_connection_s = DEFAULT_MAX_CONNECTION_S;
	api->outbound_buffer_bytes = DEFAULT_OUTBOUND_BUFFER_BYTES;
	if (!obj)
		return;
	if (!json_is_object(obj)) {
		problem(l, "limits", "expected an object, found %s", json_kind(obj));
		return;
	}
	check_keys(l, "limits", obj, keys);
	api->max_message_bytes = (size_t)get_int(l, obj, "maxMessageBytes",
		"limits.maxMessageBytes", DEFAULT_MAX_MESSAGE_BYTES, 1, 16 << 20);
	api->idle_timeout_s = (unsigned)get_int(l, obj, "idleTimeoutSeconds",
		"limits.idleTimeoutSeconds", DEFAULT_IDLE_TIMEOUT_S, 0, 86400 * 365);
	api->max_connection_s = (unsigned)get_int(l, obj, "maxConnectionSeconds",
		"limits.maxConnectionSeconds", DEFAULT_MAX_CONNECTION_S, 0, 86400 * 365);
	api->outbound_buffer_bytes = (size_t)get_int(l, obj, "outboundBufferBytes",
		"limits.outboundBufferBytes", DEFAULT_OUTBOUND_BUFFER_BYTES, 1024,
		1LL << 30);
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

static void load_api(struct loader *l, json_t *root, gw_api_t *api)
{
	static const char *const keys[] = { "name", "stage", "basePath",
		"routeSelectionExpression", "limits", "integrations", "routes", NULL };

	if (!json_is_object(root)) {
		problem(l, NULL, "expected a JSON object at the top level, found %s",
			json_kind(root));
		return;
	}
	check_keys(l, "", root, keys);
	api->name = get_string(l, root, "name", "name", "api", 1);
	api->stage = get_string(l, root, "stage", "stage", "dev", 0);
	if (api->stage && !valid_stage(api->stage))
		problem(l, "stage", "expected 1 to 128 characters of [A-Za-z0-9_-], "
			"found \"%s\"", api->stage);
	api->base_path = get_string(l, root, "basePath", "basePath", "/", 0);
	if (api->base_path && (api->base_path[0] != '/' || strchr(api->base_path, '?')))
		problem(l, "basePath", "expected a path starting with '/' and "
			"without a query, found \"%s\"", api->base_path);
	api->route_selection_expression = get_string(l, root,
		"routeSelectionExpression", "routeSelectionExpression",
		"$request.body.action", 0);
	load_limits(l, root, api);
	load_integrations(l, root, api);
	load_routes(l, root, api);
}

static void api_dispose(gw_api_t *api)
{
	for (size_t i = 0; i < api->n_integrations; i++) {
		gw_integration_t *in = &api->integrations[i];
		free(in->name);
		free(in->uri);
		free(in->host);
		free(in->address);
		free(in->path);
	}
	for (size_t i = 0; i < api->n_routes; i++)
		free(api->routes[i].key);
	free(api->integrations);
	free(api->routes);
	free(api->file);
	free(api->name);
	free(api->stage);
	free(api->base_path);
	free(api->route_selection_expression);
}

void gw_config_free(gw_config_t *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n_apis; i++)
		api_dispose(&cfg->apis[i]);
	free(cfg->apis);
	free(cfg);
}

static int load_file(gw_config_t *cfg, const char *file, gw_buf_t *err)
{
	struct loader l = { file, err, 0 };
	json_error_t jerr;
	json_t *root;
	gw_api_t *api;

	root = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		problem(&l, NULL, "line %d, column %d: invalid JSON: %s", jerr.line,
			jerr.column, jerr.text);
		return -1;
	}
	api = &cfg->apis[cfg->n_apis++];
	api->file = strdup(file);
	load_api(&l, root, api);
	json_decref(root);
	return l.errors ? -1 : 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int gw_config_load(const char *path, gw_config_t **out, gw_buf_t *err)
{
	gw_config_t *cfg = calloc(1, sizeof(*cfg));
	char **files = NULL;
	size_t n = 0, cap = 0;
	struct stat st;
	int rc = 0;

	*out = NULL;
	if (!cfg)
		abort();
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
			    gw_config_api_for_path(&(gw_config_t){ &cfg->apis[j], 1 },
						   cfg->apis[i].base_path,
						   strlen(cfg->apis[i].base_path))) {
				struct loader l = { cfg->apis[i].file, err, 0 };
				problem(&l, "basePath", "\"%s\" is already used by %s "
					"(expected a basePath unique across API files)",
					cfg->apis[i].base_path, cfg->apis[j].file);
				rc = -1;
			}
	if (rc)
		goto fail;
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
