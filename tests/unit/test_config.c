/* config.c: loading and validating API files (defaults, folders, errors
 * that name the file, the key path and the expectation). */
#include "unit.h"

#include "config.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char root_dir[64];
static int sub_counter;

/* A fresh empty folder under the test's temp folder. */
static void new_folder(char *out, size_t n)
{
	snprintf(out, n, "%s/d%d", root_dir, ++sub_counter);
	if (mkdir(out, 0700))
		perror(out);
}

static void write_file(const char *folder, const char *name, const char *text,
		       char *path, size_t n)
{
	FILE *f;

	snprintf(path, n, "%s/%s", folder, name);
	f = fopen(path, "w");
	CHECK_MSG(f != NULL, "cannot write %s", path);
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

/* Some line of err starts with "FILE: KEY: " (or "FILE: " when key is
 * NULL) and contains every expectation given. */
static int has_line(const char *err, const char *file, const char *key, const char *e1,
		    const char *e2)
{
	char prefix[512];
	const char *line = err;

	snprintf(prefix, sizeof(prefix), "%s: %s%s", file, key ? key : "", key ? ": " : "");
	while (line && *line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char tmp[2048];

		snprintf(tmp, sizeof(tmp), "%.*s", (int)len, line);
		if (!strncmp(tmp, prefix, strlen(prefix)) && (!e1 || strstr(tmp, e1)) &&
		    (!e2 || strstr(tmp, e2)))
			return 1;
		line = nl ? nl + 1 : NULL;
	}
	return 0;
}

#define VALID_MIN                                                                   \
	"{\n"                                                                       \
	"  \"name\": \"chat\",\n"                                                   \
	"  \"integrations\": {\n"                                                   \
	"    \"backend\": { \"type\": \"AWS_PROXY\", \"uri\": \"http://127.0.0.1:9000/lambda\" }\n" \
	"  },\n"                                                                    \
	"  \"routes\": {\n"                                                         \
	"    \"$connect\": { \"integration\": \"backend\" },\n"                    \
	"    \"$disconnect\": { \"integration\": \"backend\" },\n"                 \
	"    \"$default\": { \"integration\": \"backend\", \"routeResponse\": true },\n" \
	"    \"sendmessage\": { \"integration\": \"backend\" }\n"                  \
	"  }\n"                                                                     \
	"}\n"

static const gw_route_t *find_route(const gw_api_t *api, const char *key)
{
	for (size_t i = 0; i < api->n_routes; i++)
		if (!strcmp(api->routes[i].key, key))
			return &api->routes[i];
	return NULL;
}

static void test_valid_defaults(void)
{
	char folder[128], path[256];
	gw_config_t *cfg = NULL;
	gw_buf_t err;
	int rc;

	new_folder(folder, sizeof(folder));
	write_file(folder, "chat.json", VALID_MIN, path, sizeof(path));
	gw_buf_init(&err);
	rc = gw_config_load(path, &cfg, &err);
	CHECK_MSG(rc == 0 && cfg, "load failed: %s", err.data ? err.data : "");
	CHECK_INT_EQ(err.len, 0);
	if (!cfg)
		goto out;
	CHECK_INT_EQ(cfg->n_apis, 1);
	{
		const gw_api_t *api = &cfg->apis[0];
		const gw_integration_t *in = &api->integrations[0];

		CHECK_STR_EQ(api->file, path);
		CHECK_STR_EQ(api->name, "chat");
		CHECK_STR_EQ(api->stage, "dev");
		CHECK_STR_EQ(api->base_path, "/");
		CHECK_STR_EQ(api->route_selection_expression, "$request.body.action");
		CHECK_INT_EQ(api->max_message_bytes, 131072);
		CHECK_INT_EQ(api->idle_timeout_s, 600);
		CHECK_INT_EQ(api->max_connection_s, 7200);
		CHECK_INT_EQ(api->outbound_buffer_bytes, 1024 * 1024);
		CHECK_INT_EQ(api->n_integrations, 1);
		CHECK_STR_EQ(in->name, "backend");
		CHECK_INT_EQ(in->type, GW_INTEG_AWS_PROXY);
		CHECK_STR_EQ(in->uri, "http://127.0.0.1:9000/lambda");
		CHECK_INT_EQ(in->timeout_ms, 29000);
		CHECK_INT_EQ(in->tls, 0);
		CHECK_STR_EQ(in->host, "127.0.0.1");
		CHECK_STR_EQ(in->address, "127.0.0.1");
		CHECK_INT_EQ(in->port, 9000);
		CHECK_STR_EQ(in->path, "/lambda");
		CHECK_INT_EQ(api->n_routes, 4);
		CHECK(api->connect_route && !strcmp(api->connect_route->key, "$connect"));
		CHECK(api->disconnect_route && !strcmp(api->disconnect_route->key, "$disconnect"));
		CHECK(api->default_route && !strcmp(api->default_route->key, "$default"));
		CHECK(api->connect_route && api->connect_route->integration == in);
		CHECK(api->default_route && api->default_route->route_response == 1);
		CHECK(api->connect_route && api->connect_route->route_response == 0);
		{
			const gw_route_t *r = find_route(api, "sendmessage");
			CHECK(r && r->integration == in && !r->route_response);
		}
		/* basePath "/" is matched by "/" only. */
		CHECK(gw_config_api_for_path(cfg, "/", 1) == api);
		CHECK(gw_config_api_for_path(cfg, "/chat", 5) == NULL);
	}
	gw_config_free(cfg);
out:
	gw_buf_dispose(&err);
}

static void test_valid_explicit(void)
{
	static const char text[] =
		"{ \"name\": \"admin\", \"stage\": \"prod_2-a\", \"basePath\": \"/admin/v1\",\n"
		"  \"routeSelectionExpression\": \"$request.body.op\",\n"
		"  \"limits\": { \"maxMessageBytes\": 1024, \"idleTimeoutSeconds\": 0,\n"
		"              \"maxConnectionSeconds\": 60, \"outboundBufferBytes\": 4096 },\n"
		"  \"integrations\": {\n"
		"    \"a\": { \"type\": \"AWS_PROXY\", \"uri\": \"https://127.0.0.1/x/y?z=1\", \"timeoutMs\": 50 },\n"
		"    \"b\": { \"type\": \"AWS_PROXY\", \"uri\": \"http://[::1]:8080\", \"timeoutMs\": 300000 }\n"
		"  },\n"
		"  \"routes\": { \"echo\": { \"integration\": \"b\", \"routeResponse\": false },\n"
		"              \"$default\": { \"integration\": \"a\" } } }\n";
	char folder[128], path[256];
	gw_config_t *cfg = NULL;
	gw_buf_t err;

	new_folder(folder, sizeof(folder));
	write_file(folder, "admin.json", text, path, sizeof(path));
	gw_buf_init(&err);
	CHECK_MSG(gw_config_load(path, &cfg, &err) == 0 && cfg, "load failed: %s",
		  err.data ? err.data : "");
	if (cfg) {
		const gw_api_t *api = &cfg->apis[0];
		const gw_integration_t *a = NULL, *b = NULL;

		for (size_t i = 0; i < api->n_integrations; i++) {
			if (!strcmp(api->integrations[i].name, "a"))
				a = &api->integrations[i];
			if (!strcmp(api->integrations[i].name, "b"))
				b = &api->integrations[i];
		}
		CHECK_STR_EQ(api->stage, "prod_2-a");
		CHECK_STR_EQ(api->base_path, "/admin/v1");
		CHECK_STR_EQ(api->route_selection_expression, "$request.body.op");
		CHECK_INT_EQ(api->max_message_bytes, 1024);
		CHECK_INT_EQ(api->idle_timeout_s, 0);
		CHECK_INT_EQ(api->max_connection_s, 60);
		CHECK_INT_EQ(api->outbound_buffer_bytes, 4096);
		CHECK(a && b);
		if (a && b) {
			CHECK_INT_EQ(a->tls, 1);
			CHECK_INT_EQ(a->port, 443);
			CHECK_STR_EQ(a->host, "127.0.0.1");
			CHECK_STR_EQ(a->path, "/x/y?z=1");
			CHECK_INT_EQ(a->timeout_ms, 50);
			CHECK_INT_EQ(b->tls, 0);
			CHECK_INT_EQ(b->port, 8080);
			CHECK_STR_EQ(b->host, "::1");
			CHECK_STR_EQ(b->address, "::1");
			CHECK_STR_EQ(b->path, "/");
			CHECK_INT_EQ(b->timeout_ms, 300000);
		}
		CHECK(api->connect_route == NULL);
		CHECK(api->disconnect_route == NULL);
		CHECK(api->default_route && api->default_route->integration == a);
		CHECK(find_route(api, "echo") && find_route(api, "echo")->integration == b);
		CHECK(gw_config_api_for_path(cfg, "/admin/v1", 9) == api);
		CHECK(gw_config_api_for_path(cfg, "/admin/v1/", 10) == api);
		CHECK(gw_config_api_for_path(cfg, "/admin", 6) == NULL);
		/* len is honoured, not the NUL. */
		CHECK(gw_config_api_for_path(cfg, "/admin/v1xyz", 9) == api);
		gw_config_free(cfg);
	}
	gw_buf_dispose(&err);
}

static const char *api_text(char *buf, size_t n, const char *name, const char *base_path)
{
	snprintf(buf, n,
		 "{ \"name\": \"%s\", \"basePath\": \"%s\",\n"
		 "  \"integrations\": { \"i\": { \"type\": \"AWS_PROXY\", \"uri\": \"http://127.0.0.1:1/\" } },\n"
		 "  \"routes\": { \"$default\": { \"integration\": \"i\" } } }\n",
		 name, base_path);
	return buf;
}

static void test_folder(void)
{
	char folder[128], path[256], text[512];
	gw_config_t *cfg = NULL;
	gw_buf_t err;

	new_folder(folder, sizeof(folder));
	/* Written out of order: loading is in name order. */
	write_file(folder, "b-admin.json", api_text(text, sizeof(text), "admin", "/admin"), path,
		   sizeof(path));
	write_file(folder, "a-chat.json", api_text(text, sizeof(text), "chat", "/chat"), path,
		   sizeof(path));
	/* Not API files: other extensions and hidden files are skipped. */
	write_file(folder, "notes.txt", "not json", path, sizeof(path));
	write_file(folder, ".hidden.json", "not json either", path, sizeof(path));
	write_file(folder, "x.json.bak", "{", path, sizeof(path));
	gw_buf_init(&err);
	CHECK_MSG(gw_config_load(folder, &cfg, &err) == 0 && cfg, "load failed: %s",
		  err.data ? err.data : "");
	if (cfg) {
		CHECK_INT_EQ(cfg->n_apis, 2);
		if (cfg->n_apis == 2) {
			CHECK_STR_EQ(cfg->apis[0].name, "chat");
			CHECK_STR_EQ(cfg->apis[1].name, "admin");
			CHECK_CONTAINS(cfg->apis[0].file, "a-chat.json");
			CHECK(gw_config_api_for_path(cfg, "/chat", 5) == &cfg->apis[0]);
			CHECK(gw_config_api_for_path(cfg, "/chat/", 6) == &cfg->apis[0]);
			CHECK(gw_config_api_for_path(cfg, "/chatx", 6) == NULL);
			CHECK(gw_config_api_for_path(cfg, "/cha", 4) == NULL);
			CHECK(gw_config_api_for_path(cfg, "/chat//", 7) == NULL);
			CHECK(gw_config_api_for_path(cfg, "/Chat", 5) == NULL);
			CHECK(gw_config_api_for_path(cfg, "/admin", 6) == &cfg->apis[1]);
			CHECK(gw_config_api_for_path(cfg, "/admin/", 7) == &cfg->apis[1]);
			CHECK(gw_config_api_for_path(cfg, "/", 1) == NULL);
			CHECK(gw_config_api_for_path(cfg, "", 0) == NULL);
		}
		gw_config_free(cfg);
	}
	/* The folder given with a trailing slash works the same. */
	{
		char slash[160];
		snprintf(slash, sizeof(slash), "%s/", folder);
		gw_buf_reset(&err);
		cfg = NULL;
		CHECK_MSG(gw_config_load(slash, &cfg, &err) == 0 && cfg, "load failed: %s",
			  err.data ? err.data : "");
		if (cfg) {
			CHECK_INT_EQ(cfg->n_apis, 2);
			CHECK(strstr(cfg->apis[0].file, "//") == NULL);
			gw_config_free(cfg);
		}
	}
	gw_buf_dispose(&err);
}

struct bad_case {
	const char *what;
	const char *text;
	const char *key; /* NULL: no key path on the line */
	const char *e1, *e2;
};

#define INTEG_OK "\"integrations\": { \"backend\": { \"type\": \"AWS_PROXY\", \"uri\": \"http://127.0.0.1:9000/\" } }"
#define ROUTES_OK "\"routes\": { \"$default\": { \"integration\": \"backend\" } }"

static const struct bad_case bad_cases[] = {
	{ "unknown top-level key",
	  "{ \"name\": \"x\", \"routs\": {}, " INTEG_OK ", " ROUTES_OK " }",
	  "routs", "unknown key", "expected one of: name, stage, basePath" },
	{ "unknown integration",
	  "{ \"name\": \"x\", " INTEG_OK ", \"routes\": { \"$connect\": { \"integration\": \"bakend\" } } }",
	  "routes.$connect.integration", "unknown integration", "\"bakend\"" },
	{ "maxMessageBytes wrong type",
	  "{ \"name\": \"x\", \"limits\": { \"maxMessageBytes\": \"big\" }, " INTEG_OK ", " ROUTES_OK " }",
	  "limits.maxMessageBytes", "expected an integer from 1 to", "found a string" },
	{ "maxMessageBytes too large",
	  "{ \"name\": \"x\", \"limits\": { \"maxMessageBytes\": 16777217 }, " INTEG_OK ", " ROUTES_OK " }",
	  "limits.maxMessageBytes", "expected an integer from 1 to 16777216", "found 16777217" },
	{ "maxMessageBytes real",
	  "{ \"name\": \"x\", \"limits\": { \"maxMessageBytes\": 1.5 }, " INTEG_OK ", " ROUTES_OK " }",
	  "limits.maxMessageBytes", "expected an integer", "found a number" },
	{ "unknown limits key",
	  "{ \"name\": \"x\", \"limits\": { \"maxMessages\": 1 }, " INTEG_OK ", " ROUTES_OK " }",
	  "limits.maxMessages", "unknown key", "maxMessageBytes" },
	{ "limits not an object",
	  "{ \"name\": \"x\", \"limits\": [], " INTEG_OK ", " ROUTES_OK " }",
	  "limits", "expected an object", "found an array" },
	{ "uri not http(s)",
	  "{ \"name\": \"x\", \"integrations\": { \"backend\": { \"type\": \"AWS_PROXY\", \"uri\": \"ftp://127.0.0.1/\" } }, " ROUTES_OK " }",
	  "integrations.backend.uri", "expected an http:// or https:// URL", "ftp://127.0.0.1/" },
	{ "uri port out of range",
	  "{ \"name\": \"x\", \"integrations\": { \"backend\": { \"type\": \"AWS_PROXY\", \"uri\": \"http://127.0.0.1:70000/\" } }, " ROUTES_OK " }",
	  "integrations.backend.uri", "expected a port from 1 to 65535", NULL },
	{ "uri without host",
	  "{ \"name\": \"x\", \"integrations\": { \"backend\": { \"type\": \"AWS_PROXY\", \"uri\": \"http:///path\" } }, " ROUTES_OK " }",
	  "integrations.backend.uri", "expected a host name", NULL },
	{ "uri missing",
	  "{ \"name\": \"x\", \"integrations\": { \"backend\": { \"type\": \"AWS_PROXY\" } }, " ROUTES_OK " }",
	  "integrations.backend.uri", "missing", "expected a string" },
	{ "timeoutMs too small",
	  "{ \"name\": \"x\", \"integrations\": { \"backend\": { \"type\": \"AWS_PROXY\", \"uri\": \"http://127.0.0.1/\", \"timeoutMs\": 49 } }, " ROUTES_OK " }",
	  "integrations.backend.timeoutMs", "expected an integer from 50 to 300000", "found 49" },
	{ "timeoutMs too large",
	  "{ \"name\": \"x\", \"integrations\": { \"backend\": { \"type\": \"AWS_PROXY\", \"uri\": \"http://127.0.0.1/\", \"timeoutMs\": 300001 } }, " ROUTES_OK " }",
	  "integrations.backend.timeoutMs", "expected an integer from 50 to 300000", "found 300001" },
	{ "integration type",
	  "{ \"name\": \"x\", \"integrations\": { \"backend\": { \"type\": \"HTTP\", \"uri\": \"http://127.0.0.1/\" } }, " ROUTES_OK " }",
	  "integrations.backend.type", "expected \"AWS_PROXY\"", "found \"HTTP\"" },
	{ "unknown integration key",
	  "{ \"name\": \"x\", \"integrations\": { \"backend\": { \"type\": \"AWS_PROXY\", \"uri\": \"http://127.0.0.1/\", \"url\": 1 } }, " ROUTES_OK " }",
	  "integrations.backend.url", "unknown key", "type, uri, timeoutMs" },
	{ "$foo route key",
	  "{ \"name\": \"x\", " INTEG_OK ", \"routes\": { \"$foo\": { \"integration\": \"backend\" } } }",
	  "routes.$foo", "reserved", "$connect, $disconnect, $default" },
	{ "routeResponse not boolean",
	  "{ \"name\": \"x\", " INTEG_OK ", \"routes\": { \"$default\": { \"integration\": \"backend\", \"routeResponse\": \"yes\" } } }",
	  "routes.$default.routeResponse", "expected true or false", "found a string" },
	{ "route not an object",
	  "{ \"name\": \"x\", " INTEG_OK ", \"routes\": { \"$default\": \"backend\" } }",
	  "routes.$default", "expected an object", "found a string" },
	{ "routes missing",
	  "{ \"name\": \"x\", " INTEG_OK " }",
	  "routes", "missing", NULL },
	{ "name missing",
	  "{ " INTEG_OK ", " ROUTES_OK " }",
	  "name", "missing", "expected a string" },
	{ "name empty",
	  "{ \"name\": \"\", " INTEG_OK ", " ROUTES_OK " }",
	  "name", "expected a non-empty string", "found an empty string" },
	{ "name not a string",
	  "{ \"name\": 7, " INTEG_OK ", " ROUTES_OK " }",
	  "name", "expected a non-empty string", "found an integer" },
	{ "stage with a space",
	  "{ \"name\": \"x\", \"stage\": \"pr od\", " INTEG_OK ", " ROUTES_OK " }",
	  "stage", "expected 1 to 128 characters", "\"pr od\"" },
	{ "basePath without slash",
	  "{ \"name\": \"x\", \"basePath\": \"chat\", " INTEG_OK ", " ROUTES_OK " }",
	  "basePath", "expected a path starting with '/'", "\"chat\"" },
	{ "basePath with query",
	  "{ \"name\": \"x\", \"basePath\": \"/chat?x=1\", " INTEG_OK ", " ROUTES_OK " }",
	  "basePath", "without a query", NULL },
	{ "top level not an object",
	  "[1, 2]",
	  NULL, "expected a JSON object at the top level", "found an array" },
	{ "invalid JSON",
	  "{\n  \"name\": \"x\",\n  \"routes\": }\n",
	  NULL, "line 3, column", "invalid JSON" },
	{ "duplicate key",
	  "{ \"name\": \"x\", \"name\": \"y\", " INTEG_OK ", " ROUTES_OK " }",
	  NULL, "invalid JSON", "name" },
	/* Item 27: what AWS refuses, and CR/LF that would split a request. */
	{ "item 27: CORS * with credentials",
	  "{ \"name\": \"x\", \"cors\": { \"allowOrigins\": [\"https://a.example\", \"*\"], "
	  "\"allowCredentials\": true }, " INTEG_OK ", " ROUTES_OK " }",
	  "cors.allowCredentials", "cannot be true when cors.allowOrigins contains \"*\"", "expected false" },
	{ "item 27: CR/LF in uri",
	  "{ \"name\": \"x\", \"integrations\": { \"backend\": { \"type\": \"HTTP_PROXY\", "
	  "\"uri\": \"http://127.0.0.1/a HTTP/1.1\\r\\nHost: evil\\r\\n\\r\\nGET /b\" } }, " ROUTES_OK " }",
	  "integrations.backend.uri", "expected a URL without spaces or control characters", "0x20" },
	{ "item 27: CR/LF in a stage variable",
	  "{ \"name\": \"x\", \"stageVariables\": { \"h\": \"127.0.0.1\\r\\nX-Evil: 1\" }, " INTEG_OK ", " ROUTES_OK " }",
	  "stageVariables.h", "expected text without control characters", "0x0d" },
	{ "item 27: a stage variable with LF substituted into uri",
	  "{ \"name\": \"x\", \"stageVariables\": { \"p\": \"a\\nb\" }, \"integrations\": { \"backend\": "
	  "{ \"type\": \"AWS_PROXY\", \"uri\": \"http://127.0.0.1/${stageVariables.p}\" } }, " ROUTES_OK " }",
	  "integrations.backend.uri", "expected a URL without spaces or control characters", "0x0a" },
	{ "item 27: CR/LF in a static requestParameters value",
	  "{ \"name\": \"x\", \"integrations\": { \"backend\": { \"type\": \"AWS_PROXY\", \"uri\": \"http://127.0.0.1/\", "
	  "\"requestParameters\": { \"integration.request.header.X-A\": \"'v\\r\\nX-B: 1'\" } } }, " ROUTES_OK " }",
	  "integrations.backend.requestParameters.integration.request.header.X-A",
	  "expected text without control characters", NULL },
	{ "requestParameters onto Content-Length",
	  "{ \"name\": \"x\", \"integrations\": { \"backend\": { \"type\": \"AWS_PROXY\", \"uri\": \"http://127.0.0.1/\", "
	  "\"requestParameters\": { \"integration.request.header.content-length\": \"route.request.header.x\" } } }, " ROUTES_OK " }",
	  "integrations.backend.requestParameters.integration.request.header.content-length",
	  "is reserved", "Content-Length" },
	{ "requestParameters onto Host",
	  "{ \"name\": \"x\", \"integrations\": { \"backend\": { \"type\": \"AWS_PROXY\", \"uri\": \"http://127.0.0.1/\", "
	  "\"requestParameters\": { \"integration.request.header.Host\": \"'evil'\" } } }, " ROUTES_OK " }",
	  "integrations.backend.requestParameters.integration.request.header.Host", "is reserved", NULL },
	{ "requestParameters onto X-Wsgate-Connection-Id",
	  "{ \"name\": \"x\", \"integrations\": { \"backend\": { \"type\": \"AWS_PROXY\", \"uri\": \"http://127.0.0.1/\", "
	  "\"requestParameters\": { \"integration.request.header.X-Wsgate-Connection-Id\": \"'x'\" } } }, " ROUTES_OK " }",
	  "integrations.backend.requestParameters.integration.request.header.X-Wsgate-Connection-Id",
	  "is reserved", NULL },
	{ "item 27: LF in cors.allowHeaders",
	  "{ \"name\": \"x\", \"cors\": { \"allowOrigins\": [\"*\"], \"allowHeaders\": [\"a\\nb\"] }, " INTEG_OK ", " ROUTES_OK " }",
	  "cors.allowHeaders", "expected text without control characters", "0x0a" },
	{ "item 27: CR in cors.allowOrigins",
	  "{ \"name\": \"x\", \"cors\": { \"allowOrigins\": [\"https://a\\r\"] }, " INTEG_OK ", " ROUTES_OK " }",
	  "cors.allowOrigins", "expected text without control characters", "0x0d" },
	{ "item 27: tab in basePath",
	  "{ \"name\": \"x\", \"basePath\": \"/a\\tb\", " INTEG_OK ", " ROUTES_OK " }",
	  "basePath", "expected a URL without spaces or control characters", "0x09" },
	{ "name longer than AWS allows",
	  "{ \"name\": \"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\", " INTEG_OK ", " ROUTES_OK " }",
	  "name", "expected at most 128 bytes", "found 129" },
	{ "uri with a fragment",
	  "{ \"name\": \"x\", \"integrations\": { \"backend\": { \"type\": \"AWS_PROXY\", \"uri\": \"http://127.0.0.1/a#b\" } }, " ROUTES_OK " }",
	  "integrations.backend.uri", "expected a URL without a fragment", "a#b" },
	{ "item 27: LF in name",
	  "{ \"name\": \"x\\ny\", " INTEG_OK ", " ROUTES_OK " }",
	  "name", "expected text without control characters", "0x0a" },
	{ "item 27: LF in an integration name, shown escaped",
	  "{ \"name\": \"x\", \"integrations\": { \"a\\nb\": { \"type\": \"MOCK\" } }, "
	  "\"routes\": { \"$default\": { \"integration\": \"a\\nb\" } } }",
	  "integrations.a\\nb", "expected text without control characters", "0x0a" },
	{ "item 27: space in a REST route path",
	  "{ \"name\": \"x\", " INTEG_OK ", \"routes\": { \"GET /a b\": { \"integration\": \"backend\" } } }",
	  "routes.GET /a b", "expected a URL without spaces", "offset 2" },
};

static void test_invalid_files(void)
{
	char folder[128];
	gw_buf_t err;

	new_folder(folder, sizeof(folder));
	gw_buf_init(&err);
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		char name[64], path[256];
		gw_config_t *cfg = (gw_config_t *)(void *)&err; /* must be reset to NULL */
		int rc;

		snprintf(name, sizeof(name), "bad%02zu.json", i);
		write_file(folder, name, c->text, path, sizeof(path));
		gw_buf_reset(&err);
		rc = gw_config_load(path, &cfg, &err);
		CHECK_MSG(rc == -1, "%s: load returned %d", c->what, rc);
		CHECK_MSG(cfg == NULL, "%s: *out not NULL on failure", c->what);
		if (!rc && cfg)
			gw_config_free(cfg);
		CHECK_MSG(has_line(err.data ? err.data : "", path, c->key, c->e1, c->e2),
			  "%s: no line \"%s: %s%s...%s...%s\" in:\n%s", c->what, path,
			  c->key ? c->key : "", c->key ? ": " : "", c->e1 ? c->e1 : "",
			  c->e2 ? c->e2 : "", err.data ? err.data : "(nothing)");
		/* Every line is "FILE: ..." and ends with a newline. */
		CHECK_MSG(err.len > 0 && err.data[err.len - 1] == '\n', "%s: error text ends with \\n",
			  c->what);
	}
	gw_buf_dispose(&err);
}

static void test_all_problems_reported(void)
{
	/* Checking goes on after the first problem: one line per problem. */
	static const char text[] =
		"{ \"name\": \"x\", \"extra\": 1, \"stage\": \"a b\",\n"
		"  \"limits\": { \"idleTimeoutSeconds\": -1 },\n"
		"  \"integrations\": { \"backend\": { \"type\": \"AWS_PROXY\", \"uri\": \"gopher://h\" } },\n"
		"  \"routes\": { \"$x\": { \"integration\": \"nope\" } } }\n";
	char folder[128], path[256];
	gw_config_t *cfg = NULL;
	gw_buf_t err;
	size_t lines = 0;

	new_folder(folder, sizeof(folder));
	write_file(folder, "many.json", text, path, sizeof(path));
	gw_buf_init(&err);
	CHECK_INT_EQ(gw_config_load(path, &cfg, &err), -1);
	CHECK(cfg == NULL);
	for (size_t i = 0; i < err.len; i++)
		lines += err.data[i] == '\n';
	CHECK_MSG(lines == 6, "expected 6 problem lines, got %zu:\n%s", lines,
		  err.data ? err.data : "");
	CHECK(has_line(err.data, path, "extra", "unknown key", NULL));
	CHECK(has_line(err.data, path, "stage", "expected 1 to 128", NULL));
	CHECK(has_line(err.data, path, "limits.idleTimeoutSeconds", "expected an integer from 0", "found -1"));
	CHECK(has_line(err.data, path, "integrations.backend.uri", "http://", "gopher://h"));
	CHECK(has_line(err.data, path, "routes.$x", "reserved", NULL));
	CHECK(has_line(err.data, path, "routes.$x.integration", "unknown integration", "\"nope\""));
	gw_buf_dispose(&err);
}

/* gw_config_parse_buffer: the loader's checks on a buffer (for fuzzing):
 * same messages, named after the given name, and never a crash. */
static void test_parse_buffer(void)
{
	static const char cors_ok[] =
		"{ \"name\": \"x\", \"cors\": { \"allowOrigins\": [\"*\"], \"allowCredentials\": false }, "
		"\"integrations\": { \"backend\": { \"type\": \"AWS_PROXY\", "
		"\"uri\": \"http://no-such-host.invalid/x\", \"requestParameters\": "
		"{ \"integration.request.querystring.Host\": \"'ok'\", "
		"\"integration.request.header.X-Tab\": \"'a b'\" } } }, "
		"\"routes\": { \"$default\": { \"integration\": \"backend\" }, "
		"\"GET /a/{b}\": { \"integration\": \"backend\" } } }";
	static const char creds_ok[] =
		"{ \"name\": \"x\", \"cors\": { \"allowOrigins\": [\"https://a.example\"], "
		"\"allowCredentials\": true }, \"integrations\": { \"m\": { \"type\": \"MOCK\", "
		"\"body\": \"line 1\\r\\nline 2\" } }, \"routes\": { \"$default\": { \"integration\": \"m\" } } }";
	gw_config_t *cfg = NULL;
	gw_buf_t err;

	gw_buf_init(&err);
	/* Valid: "*" without credentials, a query parameter named Host, an
	 * unresolved host name, CR/LF in a MOCK body (a body, not a header). */
	CHECK_INT_EQ(gw_config_parse_buffer("mem.json", cors_ok, sizeof(cors_ok) - 1,
					    GW_CONFIG_NO_RESOLVE, &cfg, &err), 0);
	CHECK_MSG(cfg != NULL, "%s", err.data ? err.data : "");
	if (cfg) {
		CHECK_INT_EQ(cfg->n_apis, 1);
		CHECK_STR_EQ(cfg->apis[0].integrations[0].address, "no-such-host.invalid");
		gw_config_free(cfg);
	}
	CHECK_INT_EQ(gw_config_parse_buffer("mem.json", creds_ok, sizeof(creds_ok) - 1, 0, &cfg,
					    &err), 0);
	gw_config_free(cfg);
	/* Invalid JSON and garbage: an error naming the buffer, no crash. */
	gw_buf_reset(&err);
	CHECK_INT_EQ(gw_config_parse_buffer("mem.json", "{\"a\":", 5, 0, &cfg, &err), -1);
	CHECK(cfg == NULL);
	CHECK(has_line(err.data ? err.data : "", "mem.json", NULL, "invalid JSON", NULL));
	gw_buf_reset(&err);
	CHECK_INT_EQ(gw_config_parse_buffer("mem.json", "\0\xff\x01", 3, 0, &cfg, &err), -1);
	CHECK(has_line(err.data ? err.data : "", "mem.json", NULL, "invalid JSON", NULL));
	gw_buf_reset(&err);
	CHECK_INT_EQ(gw_config_parse_buffer("mem.json", "", 0, 0, &cfg, &err), -1);
	gw_buf_dispose(&err);
}

/* Loads a folder holding no API file: fails, naming the folder. */
static void load_empty_folder(void *arg)
{
	const char *folder = arg;
	gw_config_t *cfg = (gw_config_t *)arg; /* must be reset to NULL */
	gw_buf_t err;

	gw_buf_init(&err);
	CHECK_INT_EQ(gw_config_load(folder, &cfg, &err), -1);
	CHECK(cfg == NULL);
	CHECK_MSG(has_line(err.data ? err.data : "", folder, NULL, "no *.json", NULL),
		  "error text: %s", err.data ? err.data : "(nothing)");
	gw_buf_dispose(&err);
}

static void test_folder_errors(void)
{
	char folder[128], path_a[256], path_b[256], text[512];
	gw_config_t *cfg = NULL;
	gw_buf_t err;

	gw_buf_init(&err);
	/* Duplicate basePath across two files: the message names both. */
	new_folder(folder, sizeof(folder));
	write_file(folder, "a.json", api_text(text, sizeof(text), "one", "/chat"), path_a,
		   sizeof(path_a));
	write_file(folder, "b.json", api_text(text, sizeof(text), "two", "/chat"), path_b,
		   sizeof(path_b));
	CHECK_INT_EQ(gw_config_load(folder, &cfg, &err), -1);
	CHECK(cfg == NULL);
	CHECK_MSG(has_line(err.data ? err.data : "", path_b, "basePath", "\"/chat\"", path_a),
		  "duplicate basePath not reported naming both files:\n%s",
		  err.data ? err.data : "");

	/* "/chat" and "/chat/" are the same endpoint for gw_config_api_for_path,
	 * so they are a duplicate too: the second API would be unreachable. */
	gw_buf_reset(&err);
	cfg = NULL;
	new_folder(folder, sizeof(folder));
	write_file(folder, "a.json", api_text(text, sizeof(text), "one", "/chat"), path_a,
		   sizeof(path_a));
	write_file(folder, "b.json", api_text(text, sizeof(text), "two", "/chat/"), path_b,
		   sizeof(path_b));
	CHECK_MSG(gw_config_load(folder, &cfg, &err) == -1,
		  "basePaths \"/chat\" and \"/chat/\" were both accepted; /chat/ routes to %s",
		  cfg ? gw_config_api_for_path(cfg, "/chat/", 6)->name : "?");
	CHECK_MSG(has_line(err.data ? err.data : "", path_b, "basePath", "\"/chat/\"", path_a),
		  "\"/chat/\" vs \"/chat\" not reported naming both files:\n%s",
		  err.data ? err.data : "");
	gw_config_free(cfg);

	/* A bad file in a folder is named, and the good one does not mask it. */
	gw_buf_reset(&err);
	cfg = NULL;
	new_folder(folder, sizeof(folder));
	write_file(folder, "a.json", api_text(text, sizeof(text), "one", "/a"), path_a,
		   sizeof(path_a));
	write_file(folder, "b.json", "{ \"name\": \"b\" }", path_b, sizeof(path_b));
	CHECK_INT_EQ(gw_config_load(folder, &cfg, &err), -1);
	CHECK(cfg == NULL);
	CHECK(has_line(err.data ? err.data : "", path_b, "routes", "missing", NULL));
	CHECK(strstr(err.data ? err.data : "", path_a) == NULL);

	/* Empty folder, and a folder with only non-API files. Run in a child:
	 * a crash here must not hide the other checks. */
	new_folder(folder, sizeof(folder));
	CHECK_IN_CHILD(load_empty_folder, folder);
	write_file(folder, "readme.txt", "x", path_a, sizeof(path_a));
	CHECK_IN_CHILD(load_empty_folder, folder);

	/* Nonexistent path. */
	gw_buf_reset(&err);
	snprintf(path_a, sizeof(path_a), "%s/does-not-exist.json", root_dir);
	CHECK_INT_EQ(gw_config_load(path_a, &cfg, &err), -1);
	CHECK(cfg == NULL);
	CHECK(has_line(err.data ? err.data : "", path_a, NULL, "cannot open", NULL));
	gw_buf_dispose(&err);
}

static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char full[512];
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(full, sizeof(full), "%s/%s", path, de->d_name);
		if (unlink(full))
			remove_tree(full);
	}
	closedir(d);
	rmdir(path);
}

int main(void)
{
	snprintf(root_dir, sizeof(root_dir), "/tmp/gw-unit-config-XXXXXX");
	if (!mkdtemp(root_dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_valid_defaults);
	RUN(test_valid_explicit);
	RUN(test_folder);
	RUN(test_invalid_files);
	RUN(test_all_problems_reported);
	RUN(test_parse_buffer);
	RUN(test_folder_errors);
	remove_tree(root_dir);
	UNIT_MAIN_END();
}
