/* REST routes (see rest.h).
 *
 * A connection reads one request (head and body, parsed by httpreq.c),
 * stops reading, calls the route's integration, writes the answer, then
 * goes on with the next request on the same connection. Request bodies are
 * taken over by the integration call (one copy); a proxied response body is
 * taken over from the integration call (one copy). */
#include "core.h"
#include "httpreq.h"
#include "integration.h"
#include "log.h"
#include "rest.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_HEAD 16384
#define MAX_PARAMS 16
#define IDLE_TIMEOUT_S 60
#define READ_TIMEOUT_S 30

enum rest_state { RS_READING, RS_CALLING, RS_WRITING };

struct gw_rest {
	gw_watch_t watch; /* first */
	gw_gateway_t *gw;
	lws_dll2_t list; /* gw->rests */
	enum rest_state state;
	uint32_t events;
	gw_req_t *req;
	char in[16384];
	size_t in_len;
	size_t in_off;
	/* the request being served */
	const gw_api_t *api;
	const gw_rest_route_t *route;
	gw_call_t *call;
	char request_id[24];
	char source_ip[64];
	int tls;
	int is_head;
	int close_after;
	char *origin; /* Origin header, when CORS applies */
	/* the answer */
	gw_buf_t out;
	gw_buf_t out_body;
	size_t out_off;
	lws_sorted_usec_list_t timer;
	int dead; /* closed; freed from the next loop iteration */
	int continue_sent;
};

static void rest_destroy(gw_rest_t *r)
{
	lws_sul_cancel(&r->timer);
	if (r->call)
		gw_backend_cancel(r->call);
	if (!r->dead) {
		epoll_ctl(r->gw->epfd, EPOLL_CTL_DEL, r->watch.fd, NULL);
		close(r->watch.fd);
	}
	lws_dll2_remove(&r->list);
	gw_req_destroy(r->req);
	gw_buf_dispose(&r->out);
	gw_buf_dispose(&r->out_body);
	free(r->origin);
	free(r);
}

static void on_reap(lws_sorted_usec_list_t *sul)
{
	rest_destroy(lws_container_of(sul, gw_rest_t, timer));
}

/* Closes now, frees later: the callers up the stack may still hold r. */
static void rest_free(gw_rest_t *r)
{
	if (r->dead)
		return;
	if (r->call) {
		gw_backend_cancel(r->call);
		r->call = NULL;
	}
	epoll_ctl(r->gw->epfd, EPOLL_CTL_DEL, r->watch.fd, NULL);
	close(r->watch.fd);
	r->dead = 1;
	lws_sul_schedule(r->gw->ctx, 0, &r->timer, on_reap, 1);
}

static void set_events(gw_rest_t *r, uint32_t want)
{
	struct epoll_event ev;

	if (r->events == want)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = want;
	ev.data.ptr = &r->watch;
	epoll_ctl(r->gw->epfd, EPOLL_CTL_MOD, r->watch.fd, &ev);
	r->events = want;
}

static void on_timer(lws_sorted_usec_list_t *sul)
{
	rest_free(lws_container_of(sul, gw_rest_t, timer));
}

static void arm(gw_rest_t *r, int seconds)
{
	if (r->dead)
		return;
	lws_sul_schedule(r->gw->ctx, 0, &r->timer, on_timer, (lws_usec_t)seconds * LWS_US_PER_SEC);
}

/* --- routing ---------------------------------------------------------------- */

static const gw_api_t *api_for(const gw_config_t *cfg, gw_str_t path, size_t *strip)
{
	const gw_api_t *best = NULL;
	size_t best_len = 0;

	for (size_t i = 0; i < cfg->n_apis; i++) {
		const char *bp = cfg->apis[i].base_path;
		size_t bl = strlen(bp);

		if (bl > 1 && bp[bl - 1] == '/')
			bl--;
		if (bl == 1) {
			if (!best) {
				best = &cfg->apis[i];
				best_len = 0;
			}
			continue;
		}
		if (path.len >= bl && !memcmp(path.ptr, bp, bl) &&
		    (path.len == bl || path.ptr[bl] == '/') && bl > best_len) {
			best = &cfg->apis[i];
			best_len = bl;
		}
	}
	*strip = best_len;
	return best;
}

/* Rank of a match, compared segment by segment: static before {param}
 * before {greedy+}. Lower is better. */
static int better(const gw_rest_route_t *a, const gw_rest_route_t *b)
{
	size_t n = a->n_segs < b->n_segs ? a->n_segs : b->n_segs;

	for (size_t i = 0; i < n; i++)
		if (a->segs[i].kind != b->segs[i].kind)
			return a->segs[i].kind < b->segs[i].kind;
	return a->n_segs > b->n_segs;
}

static int match_one(const gw_rest_route_t *rr, const char *path, size_t len,
		     size_t (*params)[2], size_t max, size_t *np)
{
	size_t pos = 0;

	*np = 0;
	if (len && path[0] == '/')
		pos = 1;
	/* A trailing slash names the same resource. */
	if (len > 1 && path[len - 1] == '/')
		len--;
	for (size_t i = 0; i < rr->n_segs; i++) {
		const gw_rest_seg_t *sg = &rr->segs[i];
		const char *e;
		size_t sl;

		if (pos >= len)
			return 0;
		if (sg->kind == GW_SEG_GREEDY) {
			if (*np < max) {
				params[*np][0] = pos;
				params[*np][1] = len - pos;
				(*np)++;
			}
			return 1;
		}
		e = memchr(path + pos, '/', len - pos);
		sl = e ? (size_t)(e - (path + pos)) : len - pos;
		if (!sl)
			return 0;
		if (sg->kind == GW_SEG_STATIC) {
			if (sl != sg->len || memcmp(path + pos, sg->text, sl))
				return 0;
		} else if (*np < max) {
			params[*np][0] = pos;
			params[*np][1] = sl;
			(*np)++;
		}
		pos += sl + 1;
	}
	return pos >= len;
}

const gw_rest_route_t *gw_rest_match(const gw_api_t *api, const char *method,
				     const char *path, size_t len, size_t (*params)[2],
				     size_t max)
{
	const gw_rest_route_t *best = NULL;
	size_t tmp[MAX_PARAMS][2], n;
	int best_any = 1;

	for (size_t i = 0; i < api->n_rest_routes; i++) {
		const gw_rest_route_t *rr = &api->rest_routes[i];
		int any = !strcmp(rr->method, "ANY");

		if (!any && strcmp(rr->method, method))
			continue;
		/* A route for this very method always beats ANY. */
		if (any && best && !best_any)
			continue;
		if (!match_one(rr, path, len, tmp, MAX_PARAMS, &n))
			continue;
		if (!best || (best_any && !any) || better(rr, best)) {
			best = rr;
			best_any = any;
			for (size_t k = 0; k < n && k < max; k++) {
				params[k][0] = tmp[k][0];
				params[k][1] = tmp[k][1];
			}
		}
	}
	return best;
}

/* --- answers ------------------------------------------------------------- */

static int origin_allowed(const gw_cors_t *c, const char *origin)
{
	for (size_t i = 0; i < c->n_origins; i++)
		if (!strcmp(c->origins[i], "*") || !strcasecmp(c->origins[i], origin))
			return 1;
	return 0;
}

static void cors_headers(gw_rest_t *r, gw_buf_t *o, int preflight)
{
	const gw_cors_t *c = r->api ? &r->api->cors : NULL;
	int wildcard = 0;

	if (!c || !c->enabled || !r->origin || !origin_allowed(c, r->origin))
		return;
	for (size_t i = 0; i < c->n_origins; i++)
		wildcard |= !strcmp(c->origins[i], "*");
	gw_buf_append_str(o, "Access-Control-Allow-Origin: ");
	/* "*" cannot go with credentials: echo the origin then. */
	gw_buf_append_str(o, wildcard && !c->credentials ? "*" : r->origin);
	gw_buf_append_str(o, "\r\nVary: Origin\r\n");
	if (c->credentials)
		gw_buf_append_str(o, "Access-Control-Allow-Credentials: true\r\n");
	if (preflight) {
		if (c->methods) {
			gw_buf_append_str(o, "Access-Control-Allow-Methods: ");
			gw_buf_append_str(o, c->methods);
			gw_buf_append_str(o, "\r\n");
		}
		if (c->headers) {
			gw_buf_append_str(o, "Access-Control-Allow-Headers: ");
			gw_buf_append_str(o, c->headers);
			gw_buf_append_str(o, "\r\n");
		}
		if (c->max_age >= 0) {
			gw_buf_append_str(o, "Access-Control-Max-Age: ");
			gw_buf_append_u64(o, (uint64_t)c->max_age);
			gw_buf_append_str(o, "\r\n");
		}
	} else if (c->expose && *c->expose) {
		gw_buf_append_str(o, "Access-Control-Expose-Headers: ");
		gw_buf_append_str(o, c->expose);
		gw_buf_append_str(o, "\r\n");
	}
}

static void flush(gw_rest_t *r);

/* Starts writing an answer: status, extra header lines (may be NULL), and
 * the body in r->out_body. */
static void respond(gw_rest_t *r, int status, const char *headers, size_t hlen, int preflight)
{
	gw_buf_t *o = &r->out;

	gw_buf_reset(o);
	gw_buf_append_str(o, "HTTP/1.1 ");
	gw_buf_append_u64(o, (uint64_t)status);
	gw_buf_append_char(o, ' ');
	gw_buf_append_str(o, gw_http_reason(status));
	gw_buf_append_str(o, "\r\n");
	if (headers)
		gw_buf_append(o, headers, hlen);
	cors_headers(r, o, preflight);
	gw_buf_append_str(o, "apigw-requestid: ");
	gw_buf_append_str(o, r->request_id);
	gw_buf_append_str(o, "\r\nContent-Length: ");
	gw_buf_append_u64(o, r->out_body.len);
	gw_buf_append_str(o, r->close_after ? "\r\nConnection: close\r\n\r\n" : "\r\n\r\n");
	if (r->is_head)
		gw_buf_reset(&r->out_body);
	r->out_off = 0;
	r->state = RS_WRITING;
	flush(r);
}

static void respond_json(gw_rest_t *r, int status, const char *json)
{
	static const char ct[] = "Content-Type: application/json\r\n";

	gw_buf_reset(&r->out_body);
	gw_buf_append_str(&r->out_body, json);
	respond(r, status, ct, sizeof(ct) - 1, 0);
}

/* --- integrations ---------------------------------------------------------- */

static void on_answer(void *user, const gw_http_resp_t *resp);

static void call_http_proxy(gw_rest_t *r, const gw_integration_t *in, gw_str_t path,
			    size_t (*params)[2], size_t np)
{
	gw_gateway_t *gw = r->gw;
	gw_buf_t *h = &gw->scratch;
	gw_str_t query = gw_req_query(r->req), host = gw_req_get(r->req, "Host");
	gw_str_t xff = gw_req_get(r->req, "X-Forwarded-For");
	const char *p = in->path, *q;

	gw_buf_reset(h);
	gw_buf_append_str(h, in->method ? in->method : gw_req_method(r->req));
	gw_buf_append_char(h, ' ');
	/* {param} and {proxy} in the integration's path take the request's. */
	while ((q = strchr(p, '{'))) {
		const char *close = strchr(q, '}');
		int done = 0;

		gw_buf_append(h, p, (size_t)(q - p));
		if (!close)
			break;
		for (size_t i = 0; i < r->route->n_segs && !done; i++) {
			const gw_rest_seg_t *sg = &r->route->segs[i];
			size_t k = 0;

			if (sg->kind == GW_SEG_STATIC)
				continue;
			for (size_t j = 0; j < i; j++)
				k += r->route->segs[j].kind != GW_SEG_STATIC;
			if (k < np && sg->len == (size_t)(close - q - 1) && !memcmp(sg->text, q + 1, sg->len)) {
				/* already URL-encoded as received: passed through */
				gw_buf_append(h, path.ptr + params[k][0], params[k][1]);
				done = 1;
			}
		}
		if (!done)
			gw_buf_append(h, q, (size_t)(close + 1 - q));
		p = close + 1;
	}
	gw_buf_append_str(h, p);
	if (query.len) {
		gw_buf_append_char(h, strchr(in->path, '?') ? '&' : '?');
		gw_buf_append(h, query.ptr, query.len);
	}
	gw_buf_append_str(h, " HTTP/1.1\r\nHost: ");
	gw_buf_append_str(h, in->host);
	if (in->port != (in->tls ? 443 : 80)) {
		gw_buf_append_char(h, ':');
		gw_buf_append_u64(h, (uint64_t)in->port);
	}
	gw_buf_append_str(h, "\r\n");
	for (size_t i = 0; i < gw_req_header_count(r->req); i++) {
		gw_str_t n, v;

		gw_req_header(r->req, i, &n, &v);
		/* Expect: the gateway answered 100-continue itself. */
		if (gw_http_hop_by_hop(n.ptr, n.len) || (n.len == 4 && !strncasecmp(n.ptr, "Host", 4)) ||
		    (n.len == 6 && !strncasecmp(n.ptr, "Expect", 6)) ||
		    (n.len == 15 && !strncasecmp(n.ptr, "X-Forwarded-For", 15)) ||
		    (n.len == 17 && !strncasecmp(n.ptr, "X-Forwarded-Proto", 17)) ||
		    (n.len == 16 && !strncasecmp(n.ptr, "X-Forwarded-Host", 16)))
			continue;
		gw_buf_append(h, n.ptr, n.len);
		gw_buf_append(h, ": ", 2);
		gw_buf_append(h, v.ptr, v.len);
		gw_buf_append(h, "\r\n", 2);
	}
	gw_buf_append_str(h, "X-Forwarded-For: ");
	if (xff.len) {
		gw_buf_append(h, xff.ptr, xff.len);
		gw_buf_append_str(h, ", ");
	}
	gw_buf_append_str(h, r->source_ip);
	gw_buf_append_str(h, r->tls ? "\r\nX-Forwarded-Proto: https\r\n" : "\r\nX-Forwarded-Proto: http\r\n");
	if (host.len) {
		gw_buf_append_str(h, "X-Forwarded-Host: ");
		gw_buf_append(h, host.ptr, host.len);
		gw_buf_append_str(h, "\r\n");
	}
	gw_buf_append_str(h, "X-Amzn-RequestId: ");
	gw_buf_append_str(h, r->request_id);
	gw_buf_append_str(h, "\r\nContent-Length: ");
	gw_buf_append_u64(h, gw_req_body(r->req)->len);
	gw_buf_append_str(h, "\r\n\r\n");
	r->call = gw_backend_call_body(gw->be, gw_backend_endpoint_for(gw->be, in->index), h->data, h->len, gw_req_body(r->req),
				       (unsigned)in->timeout_ms, r->request_id, on_answer, r);
}

static void call_lambda(gw_rest_t *r, const gw_integration_t *in, gw_str_t path,
			size_t (*params)[2], size_t np)
{
	gw_gateway_t *gw = r->gw;
	gw_header_t headers[100], pp[MAX_PARAMS];
	size_t nh = gw_req_header_count(r->req), k = 0;
	gw_http_event_t ev;
	gw_buf_t body;
	gw_buf_t *h = &gw->scratch;

	if (nh > 100)
		nh = 100;
	for (size_t i = 0; i < nh; i++)
		gw_req_header(r->req, i, &headers[i].name, &headers[i].value);
	for (size_t i = 0; i < r->route->n_segs && k < np; i++) {
		const gw_rest_seg_t *sg = &r->route->segs[i];

		if (sg->kind == GW_SEG_STATIC)
			continue;
		pp[k].name = (gw_str_t){ sg->text, sg->len };
		pp[k].value = (gw_str_t){ path.ptr + params[k][0], params[k][1] };
		k++;
	}
	memset(&ev, 0, sizeof(ev));
	ev.api = r->api;
	ev.route_key = r->route->route.key;
	ev.method = gw_req_method(r->req);
	ev.path = gw_req_path(r->req);
	ev.query = gw_req_query(r->req);
	ev.headers = headers;
	ev.n_headers = nh;
	ev.path_params = pp;
	ev.n_path_params = k;
	ev.body = gw_req_body(r->req)->data;
	ev.body_len = gw_req_body(r->req)->len;
	ev.source_ip = r->source_ip;
	ev.request_id = r->request_id;
	ev.time = gw_wall_ms();
	gw_buf_init(&body);
	gw_event_http(&body, &ev);
	gw_buf_reset(h);
	gw_buf_append_str(h, "POST ");
	gw_buf_append_str(h, in->path);
	gw_buf_append_str(h, " HTTP/1.1\r\nHost: ");
	gw_buf_append_str(h, in->host);
	gw_buf_append_str(h, "\r\nContent-Type: application/json\r\nX-Amzn-RequestId: ");
	gw_buf_append_str(h, r->request_id);
	gw_buf_append_str(h, "\r\nContent-Length: ");
	gw_buf_append_u64(h, body.len);
	gw_buf_append_str(h, "\r\n\r\n");
	r->call = gw_backend_call_body(gw->be, gw_backend_endpoint_for(gw->be, in->index), h->data, h->len, &body,
				       (unsigned)in->timeout_ms, r->request_id, on_answer, r);
	gw_buf_dispose(&body);
}

/* Lambda payload 2.0 response rules (§8.2), into r->out_body + headers. */
static int lambda_answer(gw_rest_t *r, const gw_http_resp_t *resp, gw_buf_t *hdrs)
{
	json_error_t jerr;
	json_t *root, *v;
	int status = 200;

	if (resp->status < 200 || resp->status > 299)
		return -1;
	root = json_loadb(resp->body, resp->body_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!root)
		return -1;
	gw_buf_reset(&r->out_body);
	if (!json_is_object(root) || !json_object_get(root, "statusCode")) {
		/* A bare JSON answer: 200, application/json, the answer itself. */
		gw_buf_append(&r->out_body, resp->body, resp->body_len);
		gw_buf_append_str(hdrs, "Content-Type: application/json\r\n");
		json_decref(root);
		return 200;
	}
	v = json_object_get(root, "statusCode");
	if (!json_is_integer(v) || json_integer_value(v) < 100 || json_integer_value(v) > 599) {
		json_decref(root);
		return -1;
	}
	status = (int)json_integer_value(v);
	v = json_object_get(root, "headers");
	if (json_is_object(v)) {
		const char *k;
		json_t *hv;

		json_object_foreach(v, k, hv) {
			const char *s = json_is_string(hv) ? json_string_value(hv) : NULL;
			char num[32];

			if (!s && json_is_integer(hv)) {
				snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(hv));
				s = num;
			}
			if (!s || gw_http_hop_by_hop(k, strlen(k)) || strpbrk(k, "\r\n:") || strpbrk(s, "\r\n"))
				continue;
			/* Once CORS is configured, the gateway's headers win. */
			if (r->api->cors.enabled && !strncasecmp(k, "access-control-", 15))
				continue;
			gw_buf_append_str(hdrs, k);
			gw_buf_append_str(hdrs, ": ");
			gw_buf_append_str(hdrs, s);
			gw_buf_append_str(hdrs, "\r\n");
		}
	}
	v = json_object_get(root, "cookies");
	if (json_is_array(v)) {
		size_t i;
		json_t *c;

		json_array_foreach(v, i, c) {
			if (!json_is_string(c) || strpbrk(json_string_value(c), "\r\n"))
				continue;
			gw_buf_append_str(hdrs, "Set-Cookie: ");
			gw_buf_append_str(hdrs, json_string_value(c));
			gw_buf_append_str(hdrs, "\r\n");
		}
	}
	v = json_object_get(root, "body");
	if (json_is_string(v)) {
		if (json_is_true(json_object_get(root, "isBase64Encoded"))) {
			if (gw_base64_decode(&r->out_body, json_string_value(v), json_string_length(v))) {
				json_decref(root);
				return -1;
			}
		} else {
			gw_buf_append(&r->out_body, json_string_value(v), json_string_length(v));
		}
	} else if (v && !json_is_null(v)) {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (s) {
			gw_buf_append_str(&r->out_body, s);
			free(s);
		}
	}
	json_decref(root);
	return status;
}

static void on_answer(void *user, const gw_http_resp_t *resp)
{
	gw_rest_t *r = user;
	const gw_integration_t *in = r->route->route.integration;
	gw_buf_t hdrs;
	int status;

	r->call = NULL;
	if (resp->outcome == GW_CALL_TIMEOUT) {
		respond_json(r, 504, "{\"message\":\"Endpoint request timed out\"}");
		return;
	}
	if (resp->outcome == GW_CALL_BUSY) {
		respond_json(r, 429, "{\"message\":\"Too Many Requests\"}");
		return;
	}
	if (resp->outcome != GW_CALL_OK) {
		respond_json(r, 500, "{\"message\":\"Internal Server Error\"}");
		return;
	}
	gw_buf_init(&hdrs);
	if (in->type == GW_INTEG_AWS_PROXY) {
		status = lambda_answer(r, resp, &hdrs);
		if (status < 0) {
			gw_warn("request %s: REST integration %s gave an invalid Lambda response "
				"(HTTP %d)", r->request_id, in->name, resp->status);
			gw_buf_dispose(&hdrs);
			respond_json(r, 500, "{\"message\":\"Internal Server Error\"}");
			return;
		}
	} else {
		/* HTTP_PROXY and MOCK: status, headers and body as they are. */
		status = resp->status;
		for (size_t i = 0; i < resp->n_headers; i++) {
			const char *n = resp->header_names[i];

			if (gw_http_hop_by_hop(n, strlen(n)) ||
			    (r->api->cors.enabled && !strncasecmp(n, "access-control-", 15)))
				continue;
			gw_buf_append_str(&hdrs, n);
			gw_buf_append_str(&hdrs, ": ");
			gw_buf_append_str(&hdrs, resp->header_values[i]);
			gw_buf_append_str(&hdrs, "\r\n");
		}
		if (in->type == GW_INTEG_MOCK && !resp->n_headers)
			gw_buf_append_str(&hdrs, "Content-Type: application/json\r\n");
		/* Take the body over instead of copying it. */
		gw_buf_dispose(&r->out_body);
		if (resp->body_buf) {
			r->out_body = *resp->body_buf;
			gw_buf_init(resp->body_buf);
		} else {
			gw_buf_init(&r->out_body);
			gw_buf_append(&r->out_body, resp->body, resp->body_len);
		}
	}
	respond(r, status, hdrs.data, hdrs.len, 0);
	gw_buf_dispose(&hdrs);
}

/* --- requests ---------------------------------------------------------------- */

static void serve(gw_rest_t *r)
{
	gw_gateway_t *gw = r->gw;
	gw_str_t path = gw_req_path(r->req), origin = gw_req_get(r->req, "Origin");
	const char *method = gw_req_method(r->req);
	size_t params[MAX_PARAMS][2], np = 0, strip;
	const gw_integration_t *in;

	gw_gateway_request_id(gw, r->request_id);
	r->is_head = !strcmp(method, "HEAD");
	r->close_after = !gw_req_keep_alive(r->req) || gw->stopping;
	free(r->origin);
	r->origin = origin.ptr ? strndup(origin.ptr, origin.len) : NULL;
	r->api = api_for(gw->cfg, path, &strip);
	r->route = NULL;
	gw_buf_reset(&r->out_body);
	if (!r->api) {
		respond_json(r, 404, "{\"message\":\"Not Found\"}");
		return;
	}
	if (gw_req_body(r->req)->len > r->api->max_request_bytes) {
		r->close_after = 1;
		respond_json(r, 413, "{\"message\":\"Request Entity Too Large\"}");
		return;
	}
	/* Preflight: answered by the gateway, route or not. */
	if (r->api->cors.enabled && !strcmp(method, "OPTIONS") && r->origin &&
	    gw_req_get(r->req, "Access-Control-Request-Method").ptr) {
		respond(r, 204, NULL, 0, 1);
		return;
	}
	r->route = gw_rest_match(r->api, method, path.ptr + strip, path.len - strip, params,
				 MAX_PARAMS);
	if (!r->route) {
		respond_json(r, 404, "{\"message\":\"Not Found\"}");
		return;
	}
	for (size_t i = 0; i < MAX_PARAMS; i++)
		params[i][0] += strip;
	for (size_t i = 0; i < r->route->n_segs; i++)
		np += r->route->segs[i].kind != GW_SEG_STATIC;
	if (np > MAX_PARAMS)
		np = MAX_PARAMS;
	in = r->route->route.integration;
	r->state = RS_CALLING;
	set_events(r, 0);
	lws_sul_cancel(&r->timer);
	switch (in->type) {
	case GW_INTEG_MOCK: {
		gw_event_ctx_t ctx;
		gw_buf_t body;

		memset(&ctx, 0, sizeof(ctx));
		ctx.api = r->api;
		ctx.route_key = r->route->route.key;
		ctx.connection_id = "";
		ctx.request_id = r->request_id;
		ctx.request_time = gw_wall_ms();
		ctx.source_ip = r->source_ip;
		ctx.domain_name = "";
		gw_buf_init(&body);
		gw_integ_mock_body(in, &ctx, &body);
		r->call = gw_backend_local(gw->be, in->mock_status, body.data ? body.data : "",
					   body.len, on_answer, r);
		gw_buf_dispose(&body);
		break;
	}
	case GW_INTEG_HTTP_PROXY:
		call_http_proxy(r, in, path, params, np);
		break;
	case GW_INTEG_AWS_PROXY:
		call_lambda(r, in, path, params, np);
		break;
	}
}

/* Parses buffered bytes; serves a complete request. */
static void parse(gw_rest_t *r)
{
	size_t used = 0;
	enum gw_req_status st;

	if (r->in_off == r->in_len)
		return;
	st = gw_req_feed(r->req, r->in + r->in_off, r->in_len - r->in_off, &used);
	r->in_off += used;
	if (r->in_off == r->in_len)
		r->in_off = r->in_len = 0;
	switch (st) {
	case GW_REQ_MORE:
		/* The client waits for this before sending its body. */
		if (!r->continue_sent && gw_req_wants_continue(r->req)) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

			r->continue_sent = 1;
			if (send(r->watch.fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL) < 0)
				gw_debug("REST: cannot send 100 Continue: %s", strerror(errno));
		}
		return;
	case GW_REQ_DONE:
		r->continue_sent = 0;
		serve(r);
		return;
	case GW_REQ_BODY_TOO_LARGE:
		r->close_after = 1;
		gw_gateway_request_id(r->gw, r->request_id);
		respond_json(r, 413, "{\"message\":\"Request Entity Too Large\"}");
		return;
	case GW_REQ_HEAD_TOO_LARGE:
		r->close_after = 1;
		gw_gateway_request_id(r->gw, r->request_id);
		respond_json(r, 431, "{\"message\":\"Request Header Fields Too Large\"}");
		return;
	case GW_REQ_BAD:
		r->close_after = 1;
		gw_gateway_request_id(r->gw, r->request_id);
		respond_json(r, 400, "{\"message\":\"Bad Request\"}");
		return;
	}
}

static void flush(gw_rest_t *r)
{
	/* Head and body in one writev: one syscall, one segment when small. */
	while (r->out_off < r->out.len + r->out_body.len) {
		struct iovec iov[2];
		int n_iov = 0;
		ssize_t n;

		if (r->out_off < r->out.len) {
			iov[n_iov].iov_base = r->out.data + r->out_off;
			iov[n_iov++].iov_len = r->out.len - r->out_off;
			if (r->out_body.len) {
				iov[n_iov].iov_base = r->out_body.data;
				iov[n_iov++].iov_len = r->out_body.len;
			}
		} else {
			iov[n_iov].iov_base = r->out_body.data + (r->out_off - r->out.len);
			iov[n_iov++].iov_len = r->out.len + r->out_body.len - r->out_off;
		}
		n = writev(r->watch.fd, iov, n_iov);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				set_events(r, EPOLLOUT);
				arm(r, READ_TIMEOUT_S);
				return;
			}
			rest_free(r);
			return;
		}
		r->out_off += (size_t)n;
	}
	/* Answered. */
	if (r->close_after) {
		shutdown(r->watch.fd, SHUT_WR);
		rest_free(r);
		return;
	}
	if (r->dead)
		return;
	gw_req_reset(r->req);
	gw_buf_reset(&r->out);
	gw_buf_reset(&r->out_body);
	r->state = RS_READING;
	set_events(r, EPOLLIN | EPOLLRDHUP);
	arm(r, IDLE_TIMEOUT_S);
	/* A pipelined request may already be buffered. */
	parse(r);
}

void gw_rest_on_io(struct gw_watch *w, uint32_t events)
{
	gw_rest_t *r = (gw_rest_t *)w;

	if (r->dead)
		return;
	if (r->state == RS_WRITING) {
		flush(r);
		return;
	}
	if (r->state != RS_READING)
		return;
	while (!r->dead && r->state == RS_READING) {
		ssize_t n;

		if (r->in_len == sizeof(r->in)) {
			/* Everything buffered was parsed; make room. */
			r->in_len = r->in_off = 0;
		}
		n = recv(r->watch.fd, r->in + r->in_len, sizeof(r->in) - r->in_len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			rest_free(r);
			return;
		}
		r->in_len += (size_t)n;
		arm(r, READ_TIMEOUT_S);
		parse(r);
	}
	(void)events;
}

void gw_rest_accept(gw_gateway_t *gw, int fd, const char *source_ip, int tls)
{
	gw_rest_t *r = calloc(1, sizeof(*r));
	struct epoll_event ev;

	if (!r)
		abort();
	r->gw = gw;
	r->watch.kind = GW_WATCH_REST;
	r->watch.fd = fd;
	r->tls = tls;
	snprintf(r->source_ip, sizeof(r->source_ip), "%s", source_ip);
	r->req = gw_req_create(MAX_HEAD, gw->max_request_bytes);
	gw_buf_init(&r->out);
	gw_buf_init(&r->out_body);
	lws_dll2_add_tail(&r->list, &gw->rests);
	memset(&ev, 0, sizeof(ev));
	ev.events = r->events = EPOLLIN | EPOLLRDHUP;
	ev.data.ptr = &r->watch;
	if (epoll_ctl(gw->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		rest_free(r);
		return;
	}
	arm(r, READ_TIMEOUT_S);
}

void gw_rest_shutdown(gw_gateway_t *gw)
{
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, gw->rests.head) {
		gw_rest_t *r = lws_container_of(d, gw_rest_t, list);

		if (r->state == RS_READING && !r->in_len)
			rest_free(r);
		else
			r->close_after = 1;
	} lws_end_foreach_dll_safe(d, d1);
}

void gw_rest_free_all(gw_gateway_t *gw)
{
	while (gw->rests.head)
		rest_destroy(lws_container_of(gw->rests.head, gw_rest_t, list));
}

size_t gw_rest_count(const gw_gateway_t *gw)
{
	size_t n = 0;

	lws_start_foreach_dll(struct lws_dll2 *, d, gw->rests.head) {
		n += !lws_container_of(d, gw_rest_t, list)->dead;
	} lws_end_foreach_dll(d);
	return n;
}
