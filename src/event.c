/* Event encoding. Field order follows AWS's captures so that a diff against
 * a real event reads easily; backends must not depend on it. */
#include "event.h"

#include <stdio.h>
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

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t gw_url_decode(char *out, const char *in, size_t n, int form)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (in[i] == '%' && i + 2 < n + 0 && hexval(in[i + 1]) >= 0 &&
		    hexval(in[i + 2]) >= 0) {
			out[o++] = (char)(hexval(in[i + 1]) << 4 | hexval(in[i + 2]));
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

static void kv_u64(gw_buf_t *b, const char *k, uint64_t v)
{
	gw_buf_append_char(b, '"');
	gw_buf_append_str(b, k);
	gw_buf_append(b, "\":", 2);
	gw_buf_append_u64(b, v);
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
	kv_str(b, "requestId", c->request_id);
	gw_buf_append_char(b, ',');
	kv_str(b, "domainName", c->domain_name);
	gw_buf_append_char(b, ',');
	kv_str(b, "connectionId", c->connection_id);
	gw_buf_append_char(b, ',');
	kv_str(b, "apiId", c->api->name);
	gw_buf_append_char(b, '}');
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

void gw_event_connect(gw_buf_t *out, const gw_event_ctx_t *ctx,
		      const gw_header_t *headers, size_t n_headers,
		      const char *query, size_t query_len)
{
	gw_buf_reset(out);
	gw_buf_append_char(out, '{');
	write_maps(out, "headers", "multiValueHeaders", headers, n_headers, 1);
	if (query_len) {
		/* Decoded copies live in one scratch area sized by the input. */
		char scratch[8192];
		gw_header_t params[128];
		size_t np = 0, used = 0;
		const char *p = query, *end = query + query_len;

		while (p < end && np < 128) {
			const char *amp = memchr(p, '&', (size_t)(end - p));
			const char *e = amp ? amp : end;
			const char *eq = memchr(p, '=', (size_t)(e - p));
			size_t kl = (size_t)((eq ? eq : e) - p);
			size_t vl = eq ? (size_t)(e - eq - 1) : 0;

			if (kl && used + kl + vl <= sizeof(scratch)) {
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
		if (np)
			write_maps(out, "queryStringParameters",
				   "multiValueQueryStringParameters", params, np, 0);
	}
	request_context(out, ctx, "CONNECT");
	gw_buf_append_str(out, ",\"isBase64Encoded\":false}");
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
	gw_buf_reset(out);
	gw_buf_append_str(out, "{\"headers\":{\"Host\":");
	gw_buf_append_json_str(out, ctx->domain_name, strlen(ctx->domain_name));
	gw_buf_append_str(out, ",\"X-Forwarded-For\":");
	gw_buf_append_json_str(out, ctx->source_ip, strlen(ctx->source_ip));
	gw_buf_append_str(out, "},\"multiValueHeaders\":{\"Host\":[");
	gw_buf_append_json_str(out, ctx->domain_name, strlen(ctx->domain_name));
	gw_buf_append_str(out, "],\"X-Forwarded-For\":[");
	gw_buf_append_json_str(out, ctx->source_ip, strlen(ctx->source_ip));
	gw_buf_append_str(out, "]},");
	request_context(out, ctx, "DISCONNECT");
	gw_buf_append_str(out, ",\"isBase64Encoded\":false}");
}
