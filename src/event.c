/* Event encoding. Field order follows AWS's captures so that a diff against
 * a real event reads easily; backends must not depend on it. */
#include "httpreq.h"
#include "event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

void gw_event_clf_time(char out[64], uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, 64, "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday,
		 months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void gw_event_iso_time(char out[64], uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(ms % 1000));
}

size_t gw_url_decode(char *out, const char *in, size_t n, int form)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (in[i] == '%' && i + 2 < n + 0 && gw_http_hexval(in[i + 1]) >= 0 &&
		    gw_http_hexval(in[i + 2]) >= 0) {
			out[o++] = (char)(gw_http_hexval(in[i + 1]) << 4 | gw_http_hexval(in[i + 2]));
			i += 2;
		} else if (in[i] == '+' && form) {
			out[o++] = ' ';
		} else {
			out[o++] = in[i];
		}
	}
	return o;
}

static void kv_str(gw_buf_t *b, const char *k, const char *v)
{
	gw_buf_append_char(b, '"');
	gw_buf_append_str(b, k);
	gw_buf_append(b, "\":", 2);
	gw_buf_append_json_str(b, v, strlen(v));
}

/* AWS's domainName and DISCONNECT Host are the host without the port
 * (issue 15 item 3); "[::1]:80" keeps its brackets. */
size_t gw_event_host_len(const char *host)
{
	const char *end = host[0] == '[' ? strchr(host, ']') : NULL;

	if (end)
		return (size_t)(end + 1 - host);
	end = strchr(host, ':');
	return end ? (size_t)(end - host) : strlen(host);
}

static void kv_host(gw_buf_t *b, const char *k, const char *host)
{
	gw_buf_append_char(b, '"');
	gw_buf_append_str(b, k);
	gw_buf_append(b, "\":", 2);
	gw_buf_append_json_str(b, host, gw_event_host_len(host));
}

static void kv_u64(gw_buf_t *b, const char *k, uint64_t v)
{
	gw_buf_append_char(b, '"');
	gw_buf_append_str(b, k);
	gw_buf_append(b, "\":", 2);
	gw_buf_append_u64(b, v);
}

/* ,"stageVariables":{...} when the API has any. */
static void stage_variables(gw_buf_t *b, const gw_api_t *api)
{
	if (!api->n_stage_vars)
		return;
	gw_buf_append_str(b, ",\"stageVariables\":{");
	for (size_t i = 0; i < api->n_stage_vars; i++) {
		if (i)
			gw_buf_append_char(b, ',');
		kv_str(b, api->stage_vars[i].name, api->stage_vars[i].value);
	}
	gw_buf_append_char(b, '}');
}

static void request_context(gw_buf_t *b, const gw_event_ctx_t *c,
			    const char *event_type)
{
	char t[64];

	gw_buf_append_str(b, "\"requestContext\":{");
	kv_str(b, "routeKey", c->route_key);
	gw_buf_append_char(b, ',');
	if (c->message_id) {
		kv_str(b, "messageId", c->message_id);
		gw_buf_append_char(b, ',');
	}
	if (c->disconnect_reason) {
		kv_u64(b, "disconnectStatusCode", (uint64_t)c->disconnect_code);
		gw_buf_append_char(b, ',');
		kv_str(b, "disconnectReason", c->disconnect_reason);
		gw_buf_append_char(b, ',');
	}
	kv_str(b, "eventType", event_type);
	gw_buf_append_char(b, ',');
	kv_str(b, "extendedRequestId", c->request_id);
	gw_buf_append_char(b, ',');
	gw_event_clf_time(t, c->request_time);
	kv_str(b, "requestTime", t);
	gw_buf_append_char(b, ',');
	kv_str(b, "messageDirection", "IN");
	gw_buf_append_char(b, ',');
	kv_str(b, "stage", c->api->stage);
	gw_buf_append_char(b, ',');
	kv_u64(b, "connectedAt", c->connected_at);
	gw_buf_append_char(b, ',');
	kv_u64(b, "requestTimeEpoch", c->request_time);
	gw_buf_append_str(b, ",\"identity\":{");
	kv_str(b, "sourceIp", c->source_ip);
	if (c->user_agent) {
		gw_buf_append_char(b, ',');
		kv_str(b, "userAgent", c->user_agent);
	}
	gw_buf_append_str(b, "},");
	if (c->authorizer) {
		gw_buf_append_str(b, "\"authorizer\":");
		gw_buf_append(b, c->authorizer, c->authorizer_len);
		gw_buf_append_char(b, ',');
	}
	kv_str(b, "requestId", c->request_id);
	gw_buf_append_char(b, ',');
	kv_host(b, "domainName", c->domain_name);
	gw_buf_append_char(b, ',');
	kv_str(b, "connectionId", c->connection_id);
	gw_buf_append_char(b, ',');
	kv_str(b, "apiId", c->api->api_id);
	gw_buf_append_char(b, '}');
	/* Beside requestContext, as in AWS's proxy events. */
	stage_variables(b, c->api);
}

static int str_eq_nocase(gw_str_t a, gw_str_t b)
{
	return a.len == b.len && !strncasecmp(a.ptr, b.ptr, a.len);
}

/* Writes "single":{k:last},"multi":{k:[all]} for pairs, grouping names
 * case-insensitively (headers) or exactly (query parameters), in first-seen
 * order. Lists are short (headers, query), so the quadratic scan is cheaper
 * than a hash table. */
static void write_maps(gw_buf_t *b, const char *single, const char *multi,
		       const gw_header_t *kv, size_t n, int nocase)
{
	for (int pass = 0; pass < 2; pass++) {
		int first = 1;

		gw_buf_append_char(b, '"');
		gw_buf_append_str(b, pass ? multi : single);
		gw_buf_append_str(b, "\":{");
		for (size_t i = 0; i < n; i++) {
			size_t j, last = i;
			int seen = 0;

			for (j = 0; j < i && !seen; j++)
				seen = nocase ? str_eq_nocase(kv[j].name, kv[i].name)
					      : (kv[j].name.len == kv[i].name.len &&
						 !memcmp(kv[j].name.ptr, kv[i].name.ptr, kv[i].name.len));
			if (seen)
				continue;
			if (!first)
				gw_buf_append_char(b, ',');
			first = 0;
			gw_buf_append_json_str(b, kv[i].name.ptr, kv[i].name.len);
			gw_buf_append_char(b, ':');
			if (pass)
				gw_buf_append_char(b, '[');
			for (j = i; j < n; j++) {
				int same = nocase ? str_eq_nocase(kv[j].name, kv[i].name)
						  : (kv[j].name.len == kv[i].name.len &&
						     !memcmp(kv[j].name.ptr, kv[i].name.ptr, kv[i].name.len));
				if (!same)
					continue;
				if (pass) {
					if (j != i)
						gw_buf_append_char(b, ',');
					gw_buf_append_json_str(b, kv[j].value.ptr, kv[j].value.len);
				}
				last = j;
			}
			if (pass)
				gw_buf_append_char(b, ']');
			else
				gw_buf_append_json_str(b, kv[last].value.ptr, kv[last].value.len);
		}
		gw_buf_append_str(b, "},");
	}
}

/* Splits a raw query string into decoded name/value pairs, which point
 * into scratch (sized by the caller). Returns how many. */
static size_t parse_query(const char *query, size_t len, char *scratch, size_t cap,
			  gw_header_t *params, size_t max)
{
	const char *p = query, *end = query + len;
	size_t np = 0, used = 0;

	while (p < end && np < max) {
		const char *amp = memchr(p, '&', (size_t)(end - p)), *e = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(e - p));
		size_t kl = (size_t)((eq ? eq : e) - p), vl = eq ? (size_t)(e - eq - 1) : 0;

		if (kl && used + kl + vl <= cap) {
			params[np].name.ptr = scratch + used;
			params[np].name.len = gw_url_decode(scratch + used, p, kl, 1);
			used += params[np].name.len;
			params[np].value.ptr = scratch + used;
			params[np].value.len = eq ? gw_url_decode(scratch + used, eq + 1, vl, 1) : 0;
			used += params[np].value.len;
			np++;
		}
		p = e + 1;
	}
	return np;
}

void gw_event_connect(gw_buf_t *out, const gw_event_ctx_t *ctx,
		      const gw_header_t *headers, size_t n_headers,
		      const char *query, size_t query_len)
{
	gw_buf_reset(out);
	gw_buf_append_char(out, '{');
	write_maps(out, "headers", "multiValueHeaders", headers, n_headers, 1);
	if (query_len) {
		/* Decoded copies live in one scratch area. */
		char scratch[8192];
		gw_header_t params[128];
		size_t np = parse_query(query, query_len, scratch, sizeof(scratch), params, 128);

		if (np)
			write_maps(out, "queryStringParameters",
				   "multiValueQueryStringParameters", params, np, 0);
	}
	request_context(out, ctx, "CONNECT");
	gw_buf_append_str(out, ",\"isBase64Encoded\":false}");
}

void gw_event_authorizer(gw_buf_t *out, const gw_event_ctx_t *ctx, const char *method_arn,
			 const gw_header_t *headers, size_t n_headers,
			 const char *query, size_t query_len)
{
	char scratch[8192];
	gw_header_t params[128];
	size_t np = query_len ? parse_query(query, query_len, scratch, sizeof(scratch), params, 128)
			      : 0;

	gw_buf_reset(out);
	gw_buf_append_str(out, "{\"type\":\"REQUEST\",");
	kv_str(out, "methodArn", method_arn);
	gw_buf_append_char(out, ',');
	write_maps(out, "headers", "multiValueHeaders", headers, n_headers, 1);
	/* Always there (empty without a query): an authorizer reads them
	 * without checking first. */
	write_maps(out, "queryStringParameters", "multiValueQueryStringParameters", params, np, 0);
	if (!ctx->api->n_stage_vars)
		gw_buf_append_str(out, "\"stageVariables\":{},");
	request_context(out, ctx, "CONNECT");
	gw_buf_append_char(out, '}');
}

void gw_event_message(gw_buf_t *out, const gw_event_ctx_t *ctx,
		      const void *body, size_t len, int binary)
{
	gw_buf_reset(out);
	gw_buf_reserve(out, len * 4 / 3 + 1024);
	gw_buf_append_char(out, '{');
	request_context(out, ctx, "MESSAGE");
	gw_buf_append_str(out, ",\"body\":");
	if (binary) {
		gw_buf_append_char(out, '"');
		gw_buf_append_base64(out, body, len);
		gw_buf_append_str(out, "\",\"isBase64Encoded\":true}");
	} else {
		gw_buf_append_json_str(out, body, len);
		gw_buf_append_str(out, ",\"isBase64Encoded\":false}");
	}
}

void gw_event_disconnect(gw_buf_t *out, const gw_event_ctx_t *ctx)
{
	/* AWS's DISCONNECT headers, empty values included (aws-lambda-go's
	 * testdata apigw-websocket-request-disconnect.json); the address is
	 * in requestContext.identity.sourceIp. */
	gw_buf_reset(out);
	gw_buf_append_str(out, "{\"headers\":{");
	kv_host(out, "Host", ctx->domain_name);
	gw_buf_append_str(out, ",\"x-api-key\":\"\",\"X-Forwarded-For\":\"\",\"x-restapi\":\"\"},"
			       "\"multiValueHeaders\":{\"Host\":[");
	gw_buf_append_json_str(out, ctx->domain_name, gw_event_host_len(ctx->domain_name));
	gw_buf_append_str(out, "],\"x-api-key\":[\"\"],\"X-Forwarded-For\":[\"\"],"
			       "\"x-restapi\":[\"\"]},");
	request_context(out, ctx, "DISCONNECT");
	gw_buf_append_str(out, ",\"isBase64Encoded\":false}");
}

/* Appends the value of every header named like name (lowercase compare),
 * comma-joined; returns how many there were. */
static size_t joined(gw_buf_t *b, const gw_header_t *h, size_t n, gw_str_t name, int json)
{
	size_t count = 0;
	gw_buf_t tmp;

	gw_buf_init(&tmp);
	for (size_t i = 0; i < n; i++) {
		if (!str_eq_nocase(h[i].name, name))
			continue;
		if (count++)
			gw_buf_append_char(&tmp, ',');
		gw_buf_append(&tmp, h[i].value.ptr, h[i].value.len);
	}
	if (json)
		gw_buf_append_json_str(b, tmp.data ? tmp.data : "", tmp.len);
	else
		gw_buf_append(b, tmp.data ? tmp.data : "", tmp.len);
	gw_buf_dispose(&tmp);
	return count;
}

/* The whole name, lowercased: two long names that differ only after a
 * cut would become one key twice. */
static void lower_json_key(gw_buf_t *b, gw_str_t s)
{
	char small[256], *tmp = s.len <= sizeof(small) ? small : malloc(s.len);

	if (!tmp)
		abort();
	for (size_t i = 0; i < s.len; i++)
		tmp[i] = (s.ptr[i] >= 'A' && s.ptr[i] <= 'Z') ? (char)(s.ptr[i] + 32) : s.ptr[i];
	gw_buf_append_json_str(b, tmp, s.len);
	if (tmp != small)
		free(tmp);
}

/* JSON escaping makes a control character 6 bytes (\u0001) and a quote or
 * a backslash 2: a body of control characters would grow 6-fold. Base64
 * grows everything by 4/3, so a body goes base64 when it is not UTF-8 (as
 * AWS does for binary) or when escaping would more than double it: a text
 * body full of quotes (JSON in JSON) stays text. */
int gw_event_body_base64(const char *body, size_t len, size_t *encoded)
{
	const unsigned char *p = (const unsigned char *)body;
	size_t escaped = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];

		if (c >= 0x20 && c != '"' && c != '\\')
			escaped += 1;
		else if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t')
			escaped += 2;
		else
			escaped += 6;
	}
	if (escaped <= 2 * len && gw_utf8_valid(p, len)) {
		*encoded = escaped + 2;
		return 0;
	}
	*encoded = (len + 2) / 3 * 4 + 2;
	return 1;
}

/* rawPath, http.path and pathParameters are decoded in AWS's captures
 * (issue 15 item 7); bytes that would not be UTF-8 once decoded stay as
 * sent, so the event stays valid JSON text. */
static void append_decoded(gw_buf_t *out, const char *p, size_t n)
{
	char small[512], *d = n <= sizeof(small) ? small : malloc(n);
	size_t dn;

	if (!d || !memchr(p, '%', n)) {
		gw_buf_append_json_str(out, p, n);
		goto out;
	}
	dn = gw_url_decode(d, p, n, 0);
	if (gw_utf8_valid((const unsigned char *)d, dn) && !memchr(d, '\0', dn))
		gw_buf_append_json_str(out, d, dn);
	else
		gw_buf_append_json_str(out, p, n);
out:
	if (d && d != small)
		free(d);
}

static int at_root(const gw_api_t *api)
{
	return !api->base_path || !api->base_path[0] || !strcmp(api->base_path, "/");
}

void gw_event_http(gw_buf_t *out, const gw_http_event_t *e)
{
	static const gw_str_t cookie = { "cookie", 6 };
	char t[64], host[256] = "";
	size_t host_len = 0;
	int first;

	gw_buf_reset(out);
	gw_buf_append_str(out, "{\"version\":\"2.0\",\"routeKey\":");
	gw_buf_append_json_str(out, e->route_key, strlen(e->route_key));
	gw_buf_append_str(out, ",\"rawPath\":");
	append_decoded(out, e->path.ptr, e->path.len);
	gw_buf_append_str(out, ",\"rawQueryString\":");
	gw_buf_append_json_str(out, e->query.ptr, e->query.len);
	/* cookies: the Cookie header(s), split on "; " */
	first = 1;
	for (size_t i = 0; i < e->n_headers; i++) {
		const char *p = e->headers[i].value.ptr, *end = p + e->headers[i].value.len;

		if (!str_eq_nocase(e->headers[i].name, cookie))
			continue;
		while (p < end) {
			const char *semi = memchr(p, ';', (size_t)(end - p)), *ce = semi ? semi : end;

			while (p < ce && *p == ' ')
				p++;
			if (ce > p) {
				gw_buf_append_str(out, first ? ",\"cookies\":[" : ",");
				gw_buf_append_json_str(out, p, (size_t)(ce - p));
				first = 0;
			}
			p = ce + 1;
		}
	}
	if (!first)
		gw_buf_append_char(out, ']');
	/* headers: lowercased, duplicates comma-joined, cookies apart */
	gw_buf_append_str(out, ",\"headers\":{");
	first = 1;
	for (size_t i = 0; i < e->n_headers; i++) {
		int seen = 0;

		for (size_t j = 0; j < i && !seen; j++)
			seen = str_eq_nocase(e->headers[j].name, e->headers[i].name);
		if (seen || str_eq_nocase(e->headers[i].name, cookie))
			continue;
		if (!first)
			gw_buf_append_char(out, ',');
		first = 0;
		lower_json_key(out, e->headers[i].name);
		gw_buf_append_char(out, ':');
		joined(out, e->headers, e->n_headers, e->headers[i].name, 1);
		if (e->headers[i].name.len == 4 && !strncasecmp(e->headers[i].name.ptr, "host", 4)) {
			host_len = e->headers[i].value.len < sizeof(host) - 1 ? e->headers[i].value.len
									       : sizeof(host) - 1;
			memcpy(host, e->headers[i].value.ptr, host_len);
			host[host_len] = '\0';
		}
	}
	gw_buf_append_char(out, '}');
	/* queryStringParameters: decoded, duplicates comma-joined */
	if (e->query.len) {
		char scratch[8192];
		gw_header_t params[128];
		size_t np = parse_query(e->query.ptr, e->query.len, scratch, sizeof(scratch),
					params, 128);

		gw_buf_append_str(out, ",\"queryStringParameters\":{");
		first = 1;
		for (size_t i = 0; i < np; i++) {
			int seen = 0;
			size_t count = 0;

			for (size_t j = 0; j < i && !seen; j++)
				seen = params[j].name.len == params[i].name.len &&
				       !memcmp(params[j].name.ptr, params[i].name.ptr, params[i].name.len);
			if (seen)
				continue;
			if (!first)
				gw_buf_append_char(out, ',');
			first = 0;
			gw_buf_append_json_str(out, params[i].name.ptr, params[i].name.len);
			gw_buf_append(out, ":\"", 2);
			for (size_t j = i; j < np; j++) {
				gw_buf_t v;

				if (params[j].name.len != params[i].name.len ||
				    memcmp(params[j].name.ptr, params[i].name.ptr, params[i].name.len))
					continue;
				if (count++)
					gw_buf_append_char(out, ',');
				/* the value without its quotes */
				gw_buf_init(&v);
				gw_buf_append_json_str(&v, params[j].value.ptr, params[j].value.len);
				gw_buf_append(out, v.data + 1, v.len - 2);
				gw_buf_dispose(&v);
			}
			gw_buf_append_char(out, '"');
		}
		gw_buf_append_char(out, '}');
	}
	if (e->n_path_params) {
		gw_buf_append_str(out, ",\"pathParameters\":{");
		for (size_t i = 0; i < e->n_path_params; i++) {
			if (i)
				gw_buf_append_char(out, ',');
			gw_buf_append_json_str(out, e->path_params[i].name.ptr, e->path_params[i].name.len);
			gw_buf_append_char(out, ':');
			append_decoded(out, e->path_params[i].value.ptr,
				       e->path_params[i].value.len);
		}
		gw_buf_append_char(out, '}');
	}
	stage_variables(out, e->api);
	/* requestContext */
	{
		const char *colon = memchr(host, ':', host_len), *dot;
		size_t hl = colon ? (size_t)(colon - host) : host_len;

		host[hl] = '\0';
		dot = memchr(host, '.', hl);
		gw_buf_append_str(out, ",\"requestContext\":{");
		kv_str(out, "accountId", e->api->account_id);
		gw_buf_append_char(out, ',');
		kv_str(out, "apiId", e->api->api_id);
		gw_buf_append_str(out, ",\"domainName\":");
		gw_buf_append_json_str(out, host, hl);
		/* The first label of a name; an address has none, and AWS's own
		 * host would give the apiId (issue 15 item 7). */
		gw_buf_append_str(out, ",\"domainPrefix\":");
		if (!hl || host[0] == '[' || strspn(host, "0123456789.") == hl)
			gw_buf_append_json_str(out, e->api->api_id, strlen(e->api->api_id));
		else
			gw_buf_append_json_str(out, host, dot ? (size_t)(dot - host) : hl);
	}
	gw_buf_append_str(out, ",\"http\":{");
	kv_str(out, "method", e->method);
	gw_buf_append_str(out, ",\"path\":");
	append_decoded(out, e->path.ptr, e->path.len);
	gw_buf_append_str(out, ",\"protocol\":\"HTTP/1.1\",");
	kv_str(out, "sourceIp", e->source_ip);
	gw_buf_append_str(out, ",\"userAgent\":");
	{
		static const gw_str_t ua = { "user-agent", 10 };
		joined(out, e->headers, e->n_headers, ua, 1);
	}
	gw_buf_append_str(out, "},");
	kv_str(out, "requestId", e->request_id);
	gw_buf_append_char(out, ',');
	kv_str(out, "routeKey", e->route_key);
	gw_buf_append_char(out, ',');
	/* An API at the root is AWS's $default stage, served at the base URL. */
	kv_str(out, "stage", at_root(e->api) ? "$default" : e->api->stage);
	gw_buf_append_char(out, ',');
	gw_event_clf_time(t, e->time);
	kv_str(out, "time", t);
	gw_buf_append_char(out, ',');
	kv_u64(out, "timeEpoch", e->time);
	gw_buf_append_char(out, '}');
	if (e->body_len) {
		size_t encoded;
		int text = !gw_event_body_base64(e->body, e->body_len, &encoded);

		gw_buf_reserve(out, encoded + 64);
		gw_buf_append_str(out, ",\"body\":");
		if (text) {
			gw_buf_append_json_str(out, e->body, e->body_len);
		} else {
			gw_buf_append_char(out, '"');
			gw_buf_append_base64(out, e->body, e->body_len);
			gw_buf_append_char(out, '"');
		}
		gw_buf_append_str(out, text ? ",\"isBase64Encoded\":false}" : ",\"isBase64Encoded\":true}");
	} else {
		gw_buf_append_str(out, ",\"isBase64Encoded\":false}");
	}
}
