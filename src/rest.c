/* REST routes (see rest.h).
 *
 * A connection reads one request (head and body, parsed by httpreq.c),
 * stops reading, calls the route's integration, writes the answer, then
 * goes on with the next request on the same connection. Request bodies are
 * taken over by the integration call (one copy); a proxied response body is
 * taken over from the integration call (one copy).
 *
 * Every phase has a deadline that a peer cannot stretch: a request (head
 * and body) from its first byte, an idle keep-alive connection between
 * requests, an answer the client does not read. While the integration
 * runs, only the client's hang-up is acted on.
 *
 * The socket is registered once, edge-triggered, for everything it will
 * ever need (as nginx does): no epoll_ctl per request. An edge that comes
 * while the connection is not reading only sets in_ready; the next read
 * happens when it is set or bytes are buffered. A short read drains the
 * socket (Linux queues a new edge for any byte that arrives after it). */
#include "core.h"
#include "httpreq.h"
#include "httpresp.h"
#include "integration.h"
#include "accesslog.h"
#include "log.h"
#include "rest.h"

#include <errno.h>
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
/* No request within this long after the last answer: closed quietly. */
#define IDLE_TIMEOUT_MS 60000
/* A request's head and body, from its first byte: this long, plus one
 * second per BODY_MIN_RATE bytes of body received (a slow upload is fine,
 * a dribble is not, as Apache's mod_reqtimeout). Beyond it: 408. */
#define REQUEST_TIMEOUT_MS 10000
#define BODY_MIN_RATE 1024
/* An answer must be read within this long, plus one second per
 * WRITE_MIN_RATE bytes of it. */
#define WRITE_TIMEOUT_MS 30000
#define WRITE_MIN_RATE 1024
#define IN_BYTES 16384
/* Larger buffers are released after each request (see trim). */
#define KEEP_BUFFER_BYTES 65536
/* Reads per wakeup: a client that keeps sending cannot hold the loop. */
#define MAX_READS 16

/* After the last answer of a connection the client may still be sending
 * (the rest of a body refused with 413, pipelined requests): closing with
 * unread bytes sends a reset that destroys the answer before the client
 * reads it. So the input is read and dropped for a while first, as nginx's
 * lingering_close, within a time and a byte budget. */
#define LINGER_MS 5000
#define LINGER_MAX_BYTES (16u << 20)

struct gw_rest_ctx {
	lws_dll2_owner_t rests;   /* open REST connections */
	size_t max_request_bytes; /* the largest of the APIs' limits */
};

enum rest_state { RS_READING, RS_CALLING, RS_WRITING, RS_LINGER };

struct gw_rest {
	gw_watch_t watch; /* first */
	gw_worker_t *gw;
	lws_dll2_t list; /* gw->rest->rests, while open */
	enum rest_state state;
	gw_req_t *req;
	char *in; /* IN_BYTES, only while a request is being read or waits */
	size_t in_len;
	size_t in_off;
	uint64_t req_start; /* monotonic ms of the request's first byte; 0: idle */
	gw_wheel_entry_t timer;
	/* the request being served */
	gw_buf_t path; /* normalised (see normalize_path) */
	gw_config_t *cfg; /* the request's snapshot, held until it is answered */
	const gw_api_t *api;
	const gw_rest_route_t *route;
	gw_call_t *call;
	char request_id[24];
	char source_ip[64];
	int tls;
	int is_head;
	/* HEAD through HTTP_PROXY: the backend's Content-Length (the GET's
	 * length, RFC 9110 §9.3.2), or -1 */
	long long head_length;
	int close_after;
	char *origin; /* Origin header, when CORS applies */
	/* the answer */
	gw_buf_t out;
	gw_buf_t out_body;
	size_t out_off;
	int closed;  /* fd closed, memory freed after the epoll batch */
	int driving; /* inside drive(): no re-entry */
	int peer_eof; /* the client half-closed (EPOLLRDHUP) */
	int in_ready; /* the socket may hold unread bytes (see the top) */
	int continue_sent;
	int fed; /* bytes of this request went to the parser */
	int line_wait; /* in holds the start of a request line still to be judged */
	size_t lingered; /* bytes dropped while lingering */
	int64_t alog_ms; /* access log: the integration's latency, -1: none */
};

static void rest_destroy(void *p)
{
	gw_rest_t *r = p;

	gw_config_unref(r->cfg);
	gw_req_destroy(r->req);
	free(r->in);
	gw_buf_dispose(&r->path);
	gw_buf_dispose(&r->out);
	gw_buf_dispose(&r->out_body);
	free(r->origin);
	free(r);
}

/* Closes now, frees after the epoll batch: later events of this batch and
 * the callers up the stack may still hold r (safe points, core.h). */
static void rest_close(gw_rest_t *r)
{
	if (r->closed)
		return;
	r->closed = 1;
	if (r->call) {
		gw_backend_cancel(r->call);
		r->call = NULL;
	}
	gw_wheel_cancel(&r->gw->wheel, &r->timer);
	gw_watch_close(r->gw, &r->watch);
	lws_dll2_remove(&r->list);
	gw_defer_free(r->gw, rest_destroy, r);
}

/* Edge-triggered, once: reading, writing and a hang-up. */
#define WATCH_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

/* Stopped reading a socket that may hold more (a read budget spent): no
 * new edge would come for those bytes, so ask epoll to report them again.
 * Only for a client that keeps sending. */
static void rearm(gw_rest_t *r)
{
	if (!r->closed)
		gw_loop_mod(r->gw->loop, &r->watch, WATCH_EVENTS);
}

static void respond_json(gw_rest_t *r, int status, const char *json);

static uint64_t request_deadline(gw_rest_t *r)
{
	return r->req_start + REQUEST_TIMEOUT_MS + gw_req_body(r->req)->len * 1000 / BODY_MIN_RATE;
}

static void on_deadline(gw_wheel_entry_t *e)
{
	gw_rest_t *r = lws_container_of(e, gw_rest_t, timer);

	if (r->closed)
		return;
	if (r->state == RS_READING && r->req_start) {
		uint64_t due = request_deadline(r);

		/* The body earned more time since the timer was set. */
		if (gw_now_ms() < due) {
			gw_wheel_set(&r->gw->wheel, &r->timer, due, on_deadline);
			return;
		}
		r->close_after = 1;
		gw_worker_request_id(r->gw, r->request_id);
		respond_json(r, 408, "{\"message\":\"Request Timeout\"}");
		return;
	}
	/* Idle between requests, or an answer the client does not read. */
	rest_close(r);
}

static void set_deadline(gw_rest_t *r, uint64_t due)
{
	if (!r->closed)
		gw_wheel_set(&r->gw->wheel, &r->timer, due, on_deadline);
}

/* The first byte of a request: its deadline starts. */
static void request_started(gw_rest_t *r)
{
	r->req_start = gw_now_ms();
	set_deadline(r, request_deadline(r));
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

/* --- paths ------------------------------------------------------------------ */

static int is_dots(const char *p, size_t n)
{
	return (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.');
}

/* Whether a raw segment is a dot segment once decoded ("%2e%2E" is ".."):
 * 1 for ".", 2 for "..", 0 otherwise; -1 when its decoded form hides a dot
 * segment behind an encoded separator ("..%2f", "%2e%5c"), which a backend
 * that decodes before it normalises would climb with. */
static int dot_segment(const char *s, size_t n)
{
	char d[MAX_HEAD];
	size_t dl, start = 0;

	if (n > sizeof(d))
		return -1;
	dl = gw_url_decode(d, s, n, 0);

	if (is_dots(d, dl))
		return (int)dl;
	for (size_t i = 0; i <= dl; i++) {
		if (i < dl && d[i] != '/' && d[i] != '\\')
			continue;
		if (is_dots(d + start, i - start))
			return -1;
		start = i + 1;
	}
	return 0;
}

/* RFC 3986 §5.2.4 remove_dot_segments on the raw path, dot segments
 * recognised in any percent-encoding, empty segments merged (as nginx's
 * merge_slashes): what routes match and what HTTP_PROXY substitutes can
 * then never climb out of a prefix. The segments keep their encoding.
 * Returns -1 for a path that climbs above the root or hides a dot segment. */
static int normalize_path(gw_str_t in, gw_buf_t *out)
{
	size_t i = 0;
	int trailing = 0;

	gw_buf_reset(out);
	while (i < in.len) {
		const char *e;
		size_t n;
		int dots;

		if (in.ptr[i] == '/') {
			i++;
			continue;
		}
		e = memchr(in.ptr + i, '/', in.len - i);
		n = e ? (size_t)(e - (in.ptr + i)) : in.len - i;
		dots = dot_segment(in.ptr + i, n);
		if (dots < 0)
			return -1;
		if (dots == 2) {
			if (!out->len)
				return -1;
			while (out->data[out->len - 1] != '/')
				out->len--;
			out->len--;
		} else if (!dots) {
			gw_buf_append_char(out, '/');
			gw_buf_append(out, in.ptr + i, n);
		}
		trailing = dots || e;
		i += n;
	}
	if (!out->len || trailing || (in.len && in.ptr[in.len - 1] == '/'))
		gw_buf_append_char(out, '/');
	return 0;
}

/* Appends a path parameter's raw value to a backend URL: valid %XX escapes
 * pass as they are, every byte that could change the URL's structure is
 * escaped: '#', '?', '%' not starting an escape, '/' unless the parameter
 * is greedy, and in the query '&', '=', '+', ';'. */
static void append_param(gw_buf_t *b, const char *p, size_t n, int greedy, int in_query)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			   (c && strchr("-._~!$'()*,:@", c)) ||
			   (!in_query && c && strchr("&=+;", c)) || (greedy && c == '/') ||
			   (c == '%' && i + 2 < n && gw_http_hexval(p[i + 1]) >= 0 && gw_http_hexval(p[i + 2]) >= 0);

		if (keep) {
			gw_buf_append_char(b, (char)c);
		} else {
			char esc[3] = { '%', hex[c >> 4], hex[c & 15] };
			gw_buf_append(b, esc, 3);
		}
	}
}

/* --- headers ---------------------------------------------------------------- */

static int name_is(gw_str_t n, const char *s)
{
	size_t l = strlen(s);

	return n.len == l && !strncasecmp(n.ptr, s, l);
}

/* Whether every Transfer-Encoding is just "chunked": a body in another
 * coding ("gzip, chunked") would reach the backend still coded but no
 * longer labelled; RFC 9112 §6.1 answers 501 to a coding not understood. */
static int codings_understood(gw_req_t *req)
{
	for (size_t i = 0; i < gw_req_header_count(req); i++) {
		gw_str_t n, v;

		gw_req_header(req, i, &n, &v);
		if (!name_is(n, "Transfer-Encoding"))
			continue;
		while (v.len && (v.ptr[0] == ' ' || v.ptr[0] == '\t')) {
			v.ptr++;
			v.len--;
		}
		while (v.len && (v.ptr[v.len - 1] == ' ' || v.ptr[v.len - 1] == '\t'))
			v.len--;
		if (!name_is(v, "chunked"))
			return 0;
	}
	return 1;
}

/* The path of an absolute-form target ("http://host/p"), which a server
 * must accept (RFC 9112 §3.2.2); any other target as it is. */
static gw_str_t origin_form(gw_str_t t)
{
	size_t skip = 0;
	const char *slash;

	if (t.len >= 7 && !strncasecmp(t.ptr, "http://", 7))
		skip = 7;
	else if (t.len >= 8 && !strncasecmp(t.ptr, "https://", 8))
		skip = 8;
	if (!skip)
		return t;
	slash = memchr(t.ptr + skip, '/', t.len - skip);
	if (!slash)
		return GW_STR("/");
	return (gw_str_t){ slash, t.len - (size_t)(slash - t.ptr) };
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

/* Starts writing an answer: status, extra header lines (may be NULL, each
 * already validated), and the body in r->out_body. */
/* One access-log line (accesslog.h) per REST request answered. */
static void alog(gw_rest_t *r, int status)
{
	gw_alog_ctx_t c;
	char path[1024];

	if (!r->api || !r->api->access_log || !r->req)
		return;
	snprintf(path, sizeof(path), "%.*s", (int)r->path.len, r->path.data ? r->path.data : "");
	gw_alog_ctx_init(&c);
	c.api_name = r->api->name;
	c.stage = r->api->stage;
	c.request_id = r->request_id;
	c.event_type = "HTTP";
	c.route_key = r->route ? r->route->route.key : NULL;
	c.source_ip = r->source_ip;
	c.method = gw_req_method(r->req);
	c.path = path;
	c.status = status;
	c.integration_latency_ms = r->alog_ms;
	c.response_latency_ms = r->req_start ? (int64_t)(gw_now_ms() - r->req_start) : -1;
	gw_alog_write(r->api->access_log, &c, r->gw->metrics);
}

static void respond(gw_rest_t *r, int status, const char *headers, size_t hlen, int preflight)
{
	gw_buf_t *o = &r->out;

	gw_metrics_rest(r->gw->metrics, r->api ? r->api->id : GW_CONFIG_API_ID_NONE, status);
	alog(r, status);
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
	gw_buf_append_str(o, "\r\n");
	/* A body after a 204 or 304 would be read as the next response. */
	if (gw_http_status_allows_body(status)) {
		gw_buf_append_str(o, "Content-Length: ");
		gw_buf_append_u64(o, r->is_head && r->head_length >= 0 ? (uint64_t)r->head_length
								       : r->out_body.len);
		gw_buf_append_str(o, "\r\n");
	} else {
		gw_buf_reset(&r->out_body);
	}
	gw_buf_append_str(o, r->close_after ? "Connection: close\r\n\r\n" : "\r\n");
	if (r->is_head)
		gw_buf_reset(&r->out_body);
	r->out_off = 0;
	r->state = RS_WRITING;
	set_deadline(r, gw_now_ms() + WRITE_TIMEOUT_MS +
			(o->len + r->out_body.len) * 1000 / WRITE_MIN_RATE);
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

/* The value of the path parameter named name[0..n) ("proxy" or "proxy+"),
 * or -1; *greedy tells whether it may hold slashes. */
static int param_index(const gw_rest_route_t *rt, const char *name, size_t n, size_t np,
		       int *greedy)
{
	size_t k = 0;

	if (n && name[n - 1] == '+')
		n--;
	for (size_t i = 0; i < rt->n_segs; i++) {
		const gw_rest_seg_t *sg = &rt->segs[i];

		if (sg->kind == GW_SEG_STATIC)
			continue;
		if (k < np && sg->len == n && !memcmp(sg->text, name, n)) {
			*greedy = sg->kind == GW_SEG_GREEDY;
			return (int)k;
		}
		k++;
	}
	return -1;
}

/* The integration's path with {param} and {proxy} taking the request's
 * values (escaped, see append_param), then the client's query. */
static void proxy_target(gw_rest_t *r, const gw_integration_t *in, gw_buf_t *h, gw_str_t path,
			 size_t (*params)[2], size_t np)
{
	gw_str_t query = gw_req_query(r->req);
	const char *p = in->path, *q;
	int in_query = 0;

	while ((q = strchr(p, '{'))) {
		const char *close = strchr(q, '}');
		int k, greedy = 0;

		in_query |= memchr(p, '?', (size_t)(q - p)) != NULL;
		gw_buf_append(h, p, (size_t)(q - p));
		if (!close) {
			p = q;
			break;
		}
		k = param_index(r->route, q + 1, (size_t)(close - q - 1), np, &greedy);
		if (k >= 0)
			append_param(h, path.ptr + params[k][0], params[k][1], greedy, in_query);
		else
			gw_buf_append(h, q, (size_t)(close + 1 - q));
		p = close + 1;
	}
	gw_buf_append_str(h, p);
	if (!query.len)
		return;
	gw_buf_append_char(h, strchr(in->path, '?') ? '&' : '?');
	/* A raw '#' would end the backend's query (the fragment is the
	 * client's); a space or a control byte, which a lenient parser lets
	 * into a target, would split the backend's request line. */
	for (size_t i = 0; i < query.len; i++) {
		unsigned char c = (unsigned char)query.ptr[i];

		if (c == '#' || c <= 0x20 || c >= 0x7f) {
			char esc[3] = { '%', "0123456789ABCDEF"[c >> 4], "0123456789ABCDEF"[c & 15] };

			gw_buf_append(h, esc, 3);
		} else {
			gw_buf_append_char(h, (char)c);
		}
	}
}

/* Calls the route's integration (integration.c builds the request). A
 * Lambda event over the payload limit is answered as AWS does. */
static void call_integration(gw_rest_t *r, const gw_integration_t *in, gw_str_t path,
			     size_t (*params)[2], size_t np)
{
	gw_worker_t *gw = r->gw;
	gw_header_t hs[GW_INVOKE_MAX_HEADERS], pp[MAX_PARAMS];
	size_t k = 0, nh = gw_req_header_count(r->req);
	gw_invocation_t inv;
	gw_http_event_t ev;
	gw_event_ctx_t ctx;

	memset(&ctx, 0, sizeof(ctx));
	ctx.api = r->api;
	ctx.route_key = r->route->route.key;
	ctx.connection_id = "";
	ctx.request_id = r->request_id;
	ctx.request_time = gw_wall_ms();
	ctx.source_ip = r->source_ip;
	ctx.domain_name = "";
	if (nh > GW_INVOKE_MAX_HEADERS)
		nh = GW_INVOKE_MAX_HEADERS;
	for (size_t i = 0; i < nh; i++)
		gw_req_header(r->req, i, &hs[i].name, &hs[i].value);
	memset(&inv, 0, sizeof(inv));
	inv.route = &r->route->route;
	inv.type = GW_EV_HTTP;
	inv.ctx = &ctx;
	inv.tls = r->tls;
	inv.headers = hs;
	inv.n_headers = nh;
	inv.method = gw_req_method(r->req);
	inv.forwarded_port = gw_gateway_port(gw->sh);
	inv.max_event_bytes = r->api->max_event_bytes;
	if (in->type == GW_INTEG_HTTP_PROXY) {
		/* r->out is free until the answer: it holds the target. */
		gw_buf_reset(&r->out);
		proxy_target(r, in, &r->out, path, params, np);
		inv.target = (gw_str_t){ r->out.data, r->out.len };
		inv.body_buf = gw_req_body(r->req);
	}
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
	ev.method = inv.method;
	ev.path = path;
	ev.query = gw_req_query(r->req);
	ev.path_params = pp;
	ev.n_path_params = k;
	ev.body = gw_req_body(r->req)->data;
	ev.body_len = gw_req_body(r->req)->len;
	ev.source_ip = r->source_ip;
	ev.request_id = r->request_id;
	ev.time = ctx.request_time;
	inv.http = &ev;
	r->call = gw_integ_invoke(gw->be, &inv, &gw->scratch, on_answer, r);
	if (!r->call)
		respond_json(r, 413, "{\"message\": \"Request Too Long\"}");
}

static void on_answer(void *user, const gw_http_resp_t *resp)
{
	gw_rest_t *r = user;
	const gw_integration_t *in = r->route->route.integration;
	gw_buf_t hdrs;
	int status;

	r->call = NULL;
	gw_metrics_integration(r->gw->metrics, r->api->id, resp->outcome, resp->status, resp->duration_us);
	r->alog_ms = (int64_t)(resp->duration_us / 1000);
	if (resp->outcome == GW_CALL_TIMEOUT) {
		/* What AWS HTTP APIs answer (issue 15 item 7). */
		respond_json(r, 503, "{\"message\":\"Service Unavailable\"}");
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
	/* HEAD through HTTP_PROXY: the length a GET would have. */
	for (size_t i = 0; r->is_head && in->type != GW_INTEG_AWS_PROXY && i < resp->n_headers; i++) {
		const char *n = resp->header_names[i], *v = resp->header_values[i];

		if (!strcasecmp(n, "Content-Length") && *v && strspn(v, "0123456789") == strlen(v) &&
		    strlen(v) < 16)
			r->head_length = atoll(v);
	}
	gw_buf_init(&hdrs);
	status = gw_integ_http_answer(in, resp, r->api->cors.enabled, &hdrs, &r->out_body);
	if (status < 0) {
		/* Logged (rate-limited) by integration.c. */
		gw_buf_dispose(&hdrs);
		respond_json(r, 500, "{\"message\":\"Internal Server Error\"}");
		return;
	}
	respond(r, status, hdrs.data, hdrs.len, 0);
	gw_buf_dispose(&hdrs);
}

/* --- requests ---------------------------------------------------------------- */

/* Issue 15 item 5: where this port serves /{stage}/@connections (conn.c
 * hands such requests to management), a management path without the stage
 * gets AWS's 403, as execute-api answers it (aws/aws-sdk-php#1955). The
 * management listener keeps wsgate's own stageless paths. */
static int stageless_mgmt(const gw_rest_t *r, gw_str_t path)
{
	const gw_worker_t *gw = r->gw;

	return (gw_gateway_mgmt_on_gateway(gw->sh) || gw_config_mgmt_auth(r->cfg)) &&
	       gw_http_conns_segment(path.ptr + 1, path.len - 1);
}

static void serve(gw_rest_t *r)
{
	gw_worker_t *gw = r->gw;
	gw_str_t path, origin = gw_req_get(r->req, "Origin");
	const char *method = gw_req_method(r->req);
	size_t params[MAX_PARAMS][2], np = 0, strip;
	const gw_integration_t *in;

	gw_worker_request_id(gw, r->request_id);
	r->is_head = !strcmp(method, "HEAD");
	r->head_length = -1;
	r->close_after = !gw_req_keep_alive(r->req) || gw_worker_stopping(gw);
	free(r->origin);
	r->origin = origin.ptr ? strndup(origin.ptr, origin.len) : NULL;
	r->api = NULL;
	r->route = NULL;
	r->alog_ms = -1;
	gw_buf_reset(&r->out_body);
	/* Field syntax, Host and framing were checked as the head was read
	 * (httpreq.c). */
	if (!codings_understood(r->req)) {
		r->close_after = 1;
		respond_json(r, 501, "{\"message\":\"Not Implemented\"}");
		return;
	}
	if (normalize_path(origin_form(gw_req_path(r->req)), &r->path)) {
		respond_json(r, 400, "{\"message\":\"Bad Request\"}");
		return;
	}
	path = (gw_str_t){ r->path.data, r->path.len };
	/* A reload during the call must not free its route (hot reload). */
	gw_config_unref(r->cfg);
	r->cfg = gw_config_ref(gw->cfg);
	if (stageless_mgmt(r, path)) {
		/* Closed after: a later request on this connection with the
		 * stage must reach management, which only a new one does. */
		r->close_after = 1;
		respond_json(r, 403, "{\"message\":\"Forbidden\"}");
		return;
	}
	r->api = api_for(r->cfg, path, &strip);
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
	gw_metrics_route(gw->metrics, r->route->route.metric_slot);
	for (size_t i = 0; i < MAX_PARAMS; i++)
		params[i][0] += strip;
	for (size_t i = 0; i < r->route->n_segs; i++)
		np += r->route->segs[i].kind != GW_SEG_STATIC;
	if (np > MAX_PARAMS)
		np = MAX_PARAMS;
	in = r->route->route.integration;
	/* Only a hang-up is acted on now; the next request waits in the
	 * socket (see rest_on_io). */
	r->state = RS_CALLING;
	gw_wheel_cancel(&gw->wheel, &r->timer);
	call_integration(r, in, path, params, np);
}

/* --- management requests on a REST connection ------------------------------- */

/* Whether this port also serves /{stage}/@connections (conn.c). */
static int serves_management(const gw_rest_t *r)
{
	return gw_gateway_mgmt_on_gateway(r->gw->sh) || gw_config_mgmt_auth(r->gw->cfg);
}

/* Whether the request line at p (len bytes, maybe without its end) names
 * /{stage}/@connections: 1 yes, 0 no, -1 not known until more of it
 * arrives. Judged on the raw target, as conn.c judges a connection's first
 * request. */
static int management_line(const char *p, size_t len)
{
	const char *eol, *t, *end, *seg;
	size_t all = len;

	while (len && (*p == '\r' || *p == '\n'))
		p++, len--;
	if (!(eol = memchr(p, '\n', len)))
		return all < IN_BYTES ? -1 : 0;
	if (!(t = memchr(p, ' ', (size_t)(eol - p))))
		return 0;
	t++;
	if (!(end = memchr(t, ' ', (size_t)(eol - t))))
		return 0;
	if ((seg = memchr(t, '?', (size_t)(end - t))))
		end = seg;
	if (end - t < 3 || t[0] != '/' || t[1] == '/' ||
	    !(seg = memchr(t + 1, '/', (size_t)(end - t - 1))))
		return 0;
	seg++;
	return gw_http_conns_segment(seg, (size_t)(end - seg));
}

/* A keep-alive REST connection's next request for /{stage}/@connections,
 * still unread in the socket, goes to the management vhost as the first
 * request of a connection does (conn.c): one socket serves each request as
 * its path says. (libwebsockets 4.1 feeds a POST adopted with bytes already
 * read the wrong body, hence the peek.) */
static void to_management(gw_rest_t *r)
{
	gw_worker_t *gw = r->gw;
	int fd = r->watch.fd;
	struct lws *wsi;

	gw_loop_del(gw->loop, &r->watch);
	r->watch.fd = -1;
	wsi = lws_adopt_socket_vhost(gw->vh_mgmt, fd);
	if (wsi)
		gw_vhosts_mark_from_gateway(wsi);
	else
		gw_log_limited(GW_LOG_WARN, 10000, "management: cannot adopt a connection");
	rest_close(r);
}

/* Before the first read of a request: peeks at its request line. 1 when
 * the connection went to management or must wait for more of the line, 0
 * to read the request here. */
static int peek_management(gw_rest_t *r)
{
	ssize_t n;
	int m;

	if (!r->in && !(r->in = malloc(IN_BYTES)))
		abort();
	n = recv(r->watch.fd, r->in, IN_BYTES, MSG_PEEK);
	if (n <= 0)
		return 0; /* the read says what it is */
	if (!r->req_start)
		request_started(r);
	m = management_line(r->in, (size_t)n);
	if (m < 0 && !r->peer_eof) {
		r->in_ready = 0; /* the rest of the line brings a new edge */
		return 1;
	}
	if (m > 0) {
		to_management(r);
		return 1;
	}
	return 0;
}

/* Parses buffered bytes; serves a complete request. */
static void parse(gw_rest_t *r)
{
	size_t used = 0;
	enum gw_req_status st;

	int m = !r->fed && serves_management(r) ?
			management_line(r->in + r->in_off, r->in_len - r->in_off) : 0;

	if (m < 0 && !r->peer_eof) {
		/* Read with the request before it, cut short: judged once the
		 * line is whole (drive appends to it), not fed to REST before. */
		memmove(r->in, r->in + r->in_off, r->in_len - r->in_off);
		r->in_len -= r->in_off;
		r->in_off = 0;
		r->line_wait = 1;
		return;
	}
	if (m > 0) {
		/* Pipelined behind a REST request, so already read: not served
		 * here (see to_management); the client may retry it on a new
		 * connection. */
		r->fed = 1;
		r->close_after = 1;
		gw_worker_request_id(r->gw, r->request_id);
		respond_json(r, 503, "{\"message\":\"Service Unavailable\"}");
		return;
	}
	st = gw_req_feed(r->req, r->in + r->in_off, r->in_len - r->in_off, &used);
	r->fed = 1;
	r->in_off += used;
	switch (st) {
	case GW_REQ_MORE:
		/* The client waits for this before sending its body. */
		if (!r->continue_sent && gw_req_wants_continue(r->req)) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

			r->continue_sent = 1;
			/* Nothing else is being written now; a short write
			 * would leave half a response on the wire. */
			if (send(r->watch.fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL) != sizeof(cont) - 1)
				rest_close(r);
		}
		return;
	case GW_REQ_DONE:
		serve(r);
		return;
	case GW_REQ_BODY_TOO_LARGE:
		r->close_after = 1;
		gw_worker_request_id(r->gw, r->request_id);
		respond_json(r, 413, "{\"message\":\"Request Entity Too Large\"}");
		return;
	case GW_REQ_HEAD_TOO_LARGE:
		r->close_after = 1;
		gw_worker_request_id(r->gw, r->request_id);
		respond_json(r, 431, "{\"message\":\"Request Header Fields Too Large\"}");
		return;
	case GW_REQ_BAD:
		r->close_after = 1;
		gw_worker_request_id(r->gw, r->request_id);
		respond_json(r, 400, "{\"message\":\"Bad Request\"}");
		return;
	}
}

/* Reads and serves requests until the socket is drained or a request is
 * being served. Never re-entered: an answer completed from inside it
 * (a synchronous 404) comes back to this loop rather than recursing, so a
 * pipeline of many requests costs no stack. */
static void drive(gw_rest_t *r)
{
	int reads = 0;

	if (r->driving)
		return;
	r->driving = 1;
	while (!r->closed && r->state == RS_READING) {
		size_t keep = 0;
		ssize_t n;

		if (r->in_off < r->in_len && !r->line_wait) {
			parse(r);
			continue;
		}
		if (!r->in_ready && !r->peer_eof)
			break; /* drained: the next edge comes back */
		if (reads++ == MAX_READS) {
			rearm(r);
			break;
		}
		if (r->line_wait)
			keep = r->in_len; /* shorter than IN_BYTES (management_line) */
		else if (!r->fed && serves_management(r) && peek_management(r))
			break;
		r->in_off = 0;
		r->in_len = keep;
		if (!r->in && !(r->in = malloc(IN_BYTES)))
			abort();
		n = recv(r->watch.fd, r->in + keep, IN_BYTES - keep, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			r->in_ready = 0;
			break;
		}
		if (n <= 0) {
			rest_close(r);
			break;
		}
		r->in_len = keep + (size_t)n;
		r->in_ready = (size_t)n == IN_BYTES - keep;
		r->line_wait = 0;
		if (!r->req_start)
			request_started(r);
	}
	r->driving = 0;
}

/* A buffer that grew for one large request or answer (up to 10 MB) is
 * released rather than kept for the connection's idle life. */
static void trim(gw_buf_t *b)
{
	if (b->cap > KEEP_BUFFER_BYTES)
		gw_buf_dispose(b);
	else
		gw_buf_reset(b);
}

/* After an answer: the next request on the connection, maybe buffered. */
static void next_request(gw_rest_t *r)
{
	trim(gw_req_body(r->req));
	gw_req_reset(r->req);
	trim(&r->out);
	trim(&r->out_body);
	r->api = NULL;
	r->route = NULL;
	/* An idle keep-alive connection holds no snapshot (hot reload). */
	gw_config_unref(r->cfg);
	r->cfg = NULL;
	free(r->origin);
	r->origin = NULL;
	r->continue_sent = 0;
	r->fed = 0;
	r->line_wait = 0;
	r->state = RS_READING;
	r->req_start = 0;
	if (r->in_off < r->in_len) {
		request_started(r);
	} else {
		/* Idle keep-alive connections hold no input buffer (as nginx). */
		free(r->in);
		r->in = NULL;
		r->in_off = r->in_len = 0;
		set_deadline(r, gw_now_ms() + IDLE_TIMEOUT_MS);
	}
	drive(r);
}

/* Reads and drops what the client still sends after its last answer,
 * until it closes, the budget is spent or the deadline passes. */
static void linger(gw_rest_t *r)
{
	char drop[4096];

	for (int reads = 0; reads < MAX_READS * 4; reads++) {
		ssize_t n = recv(r->watch.fd, drop, sizeof(drop), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0 || (r->lingered += (size_t)n) > LINGER_MAX_BYTES) {
			rest_close(r);
			return;
		}
	}
	rearm(r);
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
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return; /* EPOLLOUT's edge comes back; the write
					 * deadline set by respond() stands */
			rest_close(r);
			return;
		}
		r->out_off += (size_t)n;
	}
	/* Answered. */
	if (r->close_after) {
		shutdown(r->watch.fd, SHUT_WR);
		if (gw_worker_stopping(r->gw)) {
			rest_close(r);
			return;
		}
		r->state = RS_LINGER;
		r->in_off = r->in_len = 0;
		set_deadline(r, gw_now_ms() + LINGER_MS);
		linger(r);
		return;
	}
	next_request(r);
}

/* Every edge is noted whatever the state, since it does not come again: a
 * half-close (EPOLLRDHUP) may come from a client that still waits for its
 * answer, which it gets before the connection reads its end. While the
 * integration runs, a reset or an error ends the call. */
static void rest_on_io(gw_watch_t *w, uint32_t events)
{
	gw_rest_t *r = lws_container_of(w, gw_rest_t, watch);

	if (r->closed)
		return;
	if (events & EPOLLRDHUP)
		r->peer_eof = 1;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		r->in_ready = 1;
	switch (r->state) {
	case RS_WRITING:
		if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			flush(r);
		return;
	case RS_CALLING:
		if (events & (EPOLLHUP | EPOLLERR))
			rest_close(r);
		return;
	case RS_READING:
		drive(r);
		return;
	case RS_LINGER:
		linger(r);
		return;
	}
}

void gw_rest_accept(gw_worker_t *gw, int fd, const char *source_ip, int tls)
{
	gw_rest_t *r = calloc(1, sizeof(*r));

	if (!r)
		abort();
	r->gw = gw;
	r->watch.cb = rest_on_io;
	r->watch.fd = fd;
	r->tls = tls;
	snprintf(r->source_ip, sizeof(r->source_ip), "%s", source_ip);
	r->req = gw_req_create(MAX_HEAD, gw->rest->max_request_bytes);
	gw_buf_init(&r->path);
	gw_buf_init(&r->out);
	gw_buf_init(&r->out_body);
	lws_dll2_add_tail(&r->list, &gw->rest->rests);
	if (gw_loop_add(gw->loop, &r->watch, WATCH_EVENTS)) {
		rest_close(r);
		return;
	}
	/* The request is already waiting (conn.c peeked its head): the
	 * registration reports it as the first edge. */
	r->in_ready = 1;
	request_started(r);
}

void gw_rest_shutdown(gw_worker_t *gw)
{
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, gw->rest->rests.head) {
		gw_rest_t *r = lws_container_of(d, gw_rest_t, list);

		if ((r->state == RS_READING && !r->req_start) || r->state == RS_LINGER)
			rest_close(r);
		else
			r->close_after = 1;
	} lws_end_foreach_dll_safe(d, d1);
}

void gw_rest_free_all(gw_worker_t *gw)
{
	/* The memory goes with the loop's last deferred frees. */
	while (gw->rest->rests.head)
		rest_close(lws_container_of(gw->rest->rests.head, gw_rest_t, list));
}

size_t gw_rest_count(const gw_worker_t *gw)
{
	return (size_t)gw->rest->rests.count;
}

static size_t max_request_bytes(const gw_config_t *cfg)
{
	size_t max = 0;

	for (size_t a = 0; a < cfg->n_apis; a++)
		if (cfg->apis[a].max_request_bytes > max)
			max = cfg->apis[a].max_request_bytes;
	return max;
}

gw_rest_ctx_t *gw_rest_ctx_create(const gw_config_t *cfg)
{
	gw_rest_ctx_t *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return NULL;
	rc->max_request_bytes = max_request_bytes(cfg);
	return rc;
}

void gw_rest_ctx_set_config(gw_rest_ctx_t *rc, const gw_config_t *cfg)
{
	rc->max_request_bytes = max_request_bytes(cfg);
}

void gw_rest_ctx_destroy(gw_rest_ctx_t *rc)
{
	free(rc);
}
