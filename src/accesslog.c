/* Access logs (see accesslog.h): formats compiled once at load into
 * literal and variable segments; one writer thread per process. */
#include "accesslog.h"
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum var {
	V_API_ID, V_CONNECTED_AT, V_CONNECTION_ID, V_DOMAIN_NAME, V_ERROR_MESSAGE,
	V_ERROR_MESSAGE_STRING, V_EVENT_TYPE, V_EXTENDED_REQUEST_ID, V_HTTP_METHOD,
	V_SOURCE_IP, V_USER_AGENT, V_INTEGRATION_LATENCY, V_INTEGRATION_LATENCY2,
	V_INTEGRATION_STATUS, V_INTEGRATION_STATUS2, V_PATH, V_REQUEST_ID, V_REQUEST_TIME,
	V_REQUEST_TIME_EPOCH, V_RESPONSE_LATENCY, V_ROUTE_KEY, V_STAGE, V_STATUS,
	V_DISCONNECT_CODE, V_DISCONNECT_REASON, V_COUNT
};

static const char *const var_names[V_COUNT] = {
	[V_API_ID] = "apiId",
	[V_CONNECTED_AT] = "connectedAt",
	[V_CONNECTION_ID] = "connectionId",
	[V_DOMAIN_NAME] = "domainName",
	[V_ERROR_MESSAGE] = "error.message",
	[V_ERROR_MESSAGE_STRING] = "error.messageString",
	[V_EVENT_TYPE] = "eventType",
	[V_EXTENDED_REQUEST_ID] = "extendedRequestId",
	[V_HTTP_METHOD] = "httpMethod",
	[V_SOURCE_IP] = "identity.sourceIp",
	[V_USER_AGENT] = "identity.userAgent",
	[V_INTEGRATION_LATENCY] = "integrationLatency",
	[V_INTEGRATION_LATENCY2] = "integration.latency",
	[V_INTEGRATION_STATUS] = "integrationStatus",
	[V_INTEGRATION_STATUS2] = "integration.status",
	[V_PATH] = "path",
	[V_REQUEST_ID] = "requestId",
	[V_REQUEST_TIME] = "requestTime",
	[V_REQUEST_TIME_EPOCH] = "requestTimeEpoch",
	[V_RESPONSE_LATENCY] = "responseLatency",
	[V_ROUTE_KEY] = "routeKey",
	[V_STAGE] = "stage",
	[V_STATUS] = "status",
	[V_DISCONNECT_CODE] = "disconnectStatusCode",
	[V_DISCONNECT_REASON] = "disconnectReason",
};

static const char default_format[] =
	"{\"requestId\":\"$context.requestId\",\"requestTime\":\"$context.requestTime\","
	"\"apiId\":\"$context.apiId\",\"stage\":\"$context.stage\","
	"\"eventType\":\"$context.eventType\",\"routeKey\":\"$context.routeKey\","
	"\"connectionId\":\"$context.connectionId\",\"status\":\"$context.status\","
	"\"sourceIp\":\"$context.identity.sourceIp\","
	"\"integrationLatency\":\"$context.integrationLatency\","
	"\"errorMessage\":\"$context.error.message\"}";

typedef struct seg {
	int var; /* -1: literal */
	size_t off, len;
} seg_t;

#define MAX_DESTS 64

struct gw_alog_format {
	char *text;
	seg_t *segs;
	size_t n_segs;
	int dest; /* index in the destination table */
};

/* --- destinations and the writer --- */

typedef struct dest {
	char *path; /* NULL: stderr */
	int fd;     /* -1: not open (yet, or it failed) */
	gw_buf_t cur, spare;
} dest_t;

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	dest_t dests[MAX_DESTS];
	size_t n_dests;
	size_t pending; /* bytes in every cur */
	int started, stop, reopen;
	pthread_t thread;
} w = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static void open_dest(dest_t *d)
{
	if (!d->path) {
		d->fd = STDERR_FILENO;
		return;
	}
	if (d->fd >= 0)
		close(d->fd);
	d->fd = open(d->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (d->fd < 0)
		fprintf(stderr, "wsgate: access log %s: cannot open: %s\n", d->path,
			strerror(errno));
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n && fd >= 0) {
		ssize_t k = write(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return; /* a full disk loses lines, never the loops' time */
		p += k;
		n -= (size_t)k;
	}
}

/* One round: swap every destination's buffer out under the lock, write
 * them without it. */
static int drain_round(void)
{
	size_t n;
	int reopen, stop;

	pthread_mutex_lock(&w.lock);
	while (!w.pending && !w.reopen && !w.stop)
		pthread_cond_wait(&w.wake, &w.lock);
	n = w.n_dests;
	for (size_t i = 0; i < n; i++) {
		gw_buf_t t = w.dests[i].cur;

		w.dests[i].cur = w.dests[i].spare;
		w.dests[i].spare = t;
	}
	w.pending = 0;
	reopen = w.reopen;
	w.reopen = 0;
	stop = w.stop;
	pthread_mutex_unlock(&w.lock);
	/* Only this thread touches spare and fd; the table only grows, and
	 * an entry never moves. */
	for (size_t i = 0; i < n; i++) {
		dest_t *d = &w.dests[i];

		if (reopen || (d->fd < 0 && d->spare.len))
			open_dest(d);
		write_all(d->fd, d->spare.data, d->spare.len);
		gw_buf_reset(&d->spare);
	}
	return stop;
}

static void *writer_main(void *arg)
{
	(void)arg;
	while (!drain_round())
		;
	return NULL;
}

/* At exit: what is queued is written, then the thread ends. */
static void writer_stop(void)
{
	pthread_mutex_lock(&w.lock);
	w.stop = 1;
	pthread_cond_signal(&w.wake);
	pthread_mutex_unlock(&w.lock);
	pthread_join(w.thread, NULL);
	drain_round(); /* lines queued after the last round */
	for (size_t i = 0; i < w.n_dests; i++) {
		dest_t *d = &w.dests[i];

		if (d->path && d->fd >= 0)
			close(d->fd);
		free(d->path);
		gw_buf_dispose(&d->cur);
		gw_buf_dispose(&d->spare);
	}
	w.n_dests = 0;
}

/* The destination's index (the same path shares one), the writer started
 * on first use; -1 when the table is full. */
static int dest_index(const char *path)
{
	int i, rc = -1;

	pthread_mutex_lock(&w.lock);
	for (i = 0; i < (int)w.n_dests; i++)
		if ((!path && !w.dests[i].path) ||
		    (path && w.dests[i].path && !strcmp(path, w.dests[i].path))) {
			rc = i;
			goto out;
		}
	if (w.n_dests == MAX_DESTS)
		goto out;
	if (!w.started) {
		sigset_t all, old;
		int failed;

		/* The loops take signals through a signalfd: this thread must
		 * never be the one the kernel picks (SIGTERM would kill). */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		failed = pthread_create(&w.thread, NULL, writer_main, NULL);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (failed)
			goto out;
		w.started = 1;
		atexit(writer_stop);
	}
	w.dests[w.n_dests].path = path ? strdup(path) : NULL;
	w.dests[w.n_dests].fd = -1;
	gw_buf_init(&w.dests[w.n_dests].cur);
	gw_buf_init(&w.dests[w.n_dests].spare);
	rc = (int)w.n_dests++;
out:
	pthread_mutex_unlock(&w.lock);
	return rc;
}

void gw_alog_reopen(void)
{
	pthread_mutex_lock(&w.lock);
	w.reopen = 1;
	pthread_cond_signal(&w.wake);
	pthread_mutex_unlock(&w.lock);
}

/* --- formats --- */

static int lookup(const char *s, size_t n)
{
	for (int v = 0; v < V_COUNT; v++)
		if (strlen(var_names[v]) == n && !memcmp(var_names[v], s, n))
			return v;
	return -1;
}

static int destination_ok(const char *dest, char *err, size_t errlen)
{
	char dir[4096];
	const char *slash = strrchr(dest, '/');
	struct stat st;

	if (!strcmp(dest, "stderr"))
		return 0;
	if (!dest[0] || strlen(dest) >= sizeof(dir) || (slash && !slash[1])) {
		snprintf(err, errlen, "expected \"stderr\" or a file path, found \"%s\"", dest);
		return -1;
	}
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash == dest ? 1 : slash - dest), dest);
	if (stat(dir, &st) || !S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK)) {
		snprintf(err, errlen, "expected \"stderr\" or a file in a writable folder, "
			 "found \"%s\" (%s: %s)", dest, dir,
			 errno ? strerror(errno) : "not a folder");
		return -1;
	}
	/* A named pipe is fine (a log shipper reading it). */
	if (!stat(dest, &st) && !S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
		snprintf(err, errlen, "expected a regular file or a named pipe, found \"%s\"", dest);
		return -1;
	}
	return 0;
}

gw_alog_format_t *gw_alog_compile(const char *format, const char *destination, char *err,
				  size_t errlen)
{
	gw_alog_format_t *f = calloc(1, sizeof(*f));
	const char *p;
	size_t n, cap = 8;
	int has_id = 0;

	if (!f)
		abort();
	if (!destination)
		destination = "stderr";
	errno = 0;
	if (destination_ok(destination, err, errlen))
		goto fail;
	f->text = strdup(format ? format : default_format);
	f->segs = calloc(cap, sizeof(*f->segs));
	if (!f->text || !f->segs)
		abort();
	if (strchr(f->text, '\n') || strchr(f->text, '\r')) {
		snprintf(err, errlen, "expected one line (no line breaks in the format)");
		goto fail;
	}
	for (p = f->text; *p;) {
		const char *v = strstr(p, "$context.");
		seg_t s;

		if (v == p) {
			const char *name = p + 9, *e = name;
			int var;

			while ((*e >= 'a' && *e <= 'z') || (*e >= 'A' && *e <= 'Z') ||
			       (*e >= '0' && *e <= '9') || *e == '.')
				e++;
			while (e > name && e[-1] == '.')
				e--; /* a sentence's full stop */
			var = lookup(name, (size_t)(e - name));
			if (var < 0) {
				snprintf(err, errlen, "unknown variable $context.%.*s (expected one "
					 "of AWS's $context variables that wsgate knows: $context."
					 "requestId, $context.connectionId, $context.eventType, "
					 "$context.routeKey, $context.status, ...)",
					 (int)(e - name > 64 ? 64 : e - name), name);
				goto fail;
			}
			has_id |= var == V_REQUEST_ID || var == V_EXTENDED_REQUEST_ID;
			s = (seg_t){ var, 0, 0 };
			p = e;
		} else {
			n = v ? (size_t)(v - p) : strlen(p);
			s = (seg_t){ -1, (size_t)(p - f->text), n };
			p += n;
		}
		if (f->n_segs == cap) {
			cap *= 2;
			f->segs = realloc(f->segs, cap * sizeof(*f->segs));
			if (!f->segs)
				abort();
		}
		f->segs[f->n_segs++] = s;
	}
	if (!has_id) {
		snprintf(err, errlen, "expected $context.requestId or $context.extendedRequestId "
			 "in the format (as AWS requires)");
		goto fail;
	}
	f->dest = dest_index(strcmp(destination, "stderr") ? destination : NULL);
	if (f->dest < 0) {
		snprintf(err, errlen, "too many access-log files (at most %d)", MAX_DESTS);
		goto fail;
	}
	return f;
fail:
	gw_alog_format_free(f);
	return NULL;
}

void gw_alog_format_free(gw_alog_format_t *f)
{
	if (!f)
		return;
	free(f->text);
	free(f->segs);
	free(f);
}

void gw_alog_ctx_init(gw_alog_ctx_t *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->integration_latency_ms = -1;
	ctx->response_latency_ms = -1;
}

/* A value inside the format's own quotes: JSON-escaped, so that a JSON
 * format stays JSON whatever a client sent. */
static void str(gw_buf_t *o, const char *s)
{
	size_t mark;

	if (!s || !*s) {
		gw_buf_append_char(o, '-');
		return;
	}
	/* Most values (IDs, addresses, route keys) need no escaping. */
	for (mark = 0; s[mark] >= 0x20 && s[mark] < 0x7f && s[mark] != '"' && s[mark] != '\\';
	     mark++)
		;
	if (!s[mark]) {
		gw_buf_append(o, s, mark);
		return;
	}
	mark = o->len;
	gw_buf_append_json_str(o, s, strlen(s));
	/* drop the quotes gw_buf_append_json_str adds */
	memmove(o->data + mark, o->data + mark + 1, o->len - mark - 2);
	o->len -= 2;
}

static void num(gw_buf_t *o, int64_t v)
{
	if (v < 0)
		gw_buf_append_char(o, '-');
	else
		gw_buf_append_i64(o, v);
}

static void request_time(gw_buf_t *o, int epoch)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	/* Formatted once a second per thread: snprintf was half a line's cost. */
	static __thread time_t last = -1;
	static __thread char s[32];
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (epoch) {
		gw_buf_append_u64(o, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
		return;
	}
	if (ts.tv_sec != last) {
		gmtime_r(&ts.tv_sec, &tm);
		snprintf(s, sizeof(s), "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday,
			 mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
		last = ts.tv_sec;
	}
	gw_buf_append_str(o, s);
}

void gw_alog_render(const gw_alog_format_t *f, const gw_alog_ctx_t *c, gw_buf_t *o)
{
	for (size_t i = 0; i < f->n_segs; i++) {
		const seg_t *s = &f->segs[i];

		switch (s->var) {
		case -1: gw_buf_append(o, f->text + s->off, s->len); break;
		case V_API_ID: str(o, c->api_name); break;
		case V_CONNECTED_AT: num(o, c->connected_at ? (int64_t)c->connected_at : -1); break;
		case V_CONNECTION_ID: str(o, c->connection_id); break;
		case V_DOMAIN_NAME: str(o, NULL); break;
		case V_ERROR_MESSAGE: str(o, c->error); break;
		case V_ERROR_MESSAGE_STRING:
			/* AWS's quoted form: "\"message\"" */
			if (c->error) {
				gw_buf_append_str(o, "\\\"");
				str(o, c->error);
				gw_buf_append_str(o, "\\\"");
			} else {
				gw_buf_append_char(o, '-');
			}
			break;
		case V_EVENT_TYPE: str(o, c->event_type); break;
		case V_REQUEST_ID:
		case V_EXTENDED_REQUEST_ID: str(o, c->request_id); break;
		case V_HTTP_METHOD: str(o, c->method); break;
		case V_SOURCE_IP: str(o, c->source_ip); break;
		case V_USER_AGENT: str(o, c->user_agent); break;
		case V_INTEGRATION_LATENCY:
		case V_INTEGRATION_LATENCY2: num(o, c->integration_latency_ms); break;
		case V_INTEGRATION_STATUS:
		case V_INTEGRATION_STATUS2: num(o, c->integration_status ? c->integration_status : -1); break;
		case V_PATH: str(o, c->path); break;
		case V_REQUEST_TIME: request_time(o, 0); break;
		case V_REQUEST_TIME_EPOCH: request_time(o, 1); break;
		case V_RESPONSE_LATENCY: num(o, c->response_latency_ms); break;
		case V_ROUTE_KEY: str(o, c->route_key); break;
		case V_STAGE: str(o, c->stage); break;
		case V_STATUS: num(o, c->status ? c->status : -1); break;
		case V_DISCONNECT_CODE: num(o, c->disconnect_code ? c->disconnect_code : -1); break;
		case V_DISCONNECT_REASON: str(o, c->disconnect_reason); break;
		}
	}
	gw_buf_append_char(o, '\n');
}

/* Each loop renders into its own buffer, reused line after line and
 * released when the thread ends (a key's destructor). */
static pthread_key_t line_key;
static pthread_once_t line_once = PTHREAD_ONCE_INIT;

static void line_free(void *p)
{
	gw_buf_dispose(p);
	free(p);
}

static void line_key_create(void)
{
	if (pthread_key_create(&line_key, line_free))
		abort();
}

static gw_buf_t *thread_line(void)
{
	gw_buf_t *b;

	pthread_once(&line_once, line_key_create);
	b = pthread_getspecific(line_key);
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b || pthread_setspecific(line_key, b))
			abort();
	}
	return b;
}

int gw_alog_write(const gw_alog_format_t *f, const gw_alog_ctx_t *ctx, struct gw_metrics *m)
{
	gw_buf_t *lp, line;
	dest_t *d;
	int rc = 0;

	if (!f)
		return 0;
	lp = thread_line();
	gw_buf_reset(lp);
	gw_alog_render(f, ctx, lp);
	line = *lp;
	pthread_mutex_lock(&w.lock);
	d = &w.dests[f->dest];
	if (w.pending + line.len > GW_ALOG_MAX_PENDING) {
		rc = -1;
	} else {
		gw_buf_append(&d->cur, line.data, line.len);
		if (!w.pending)
			pthread_cond_signal(&w.wake);
		w.pending += line.len;
	}
	pthread_mutex_unlock(&w.lock);
	if (rc && m)
		gw_metrics_log_dropped(m);
	if (lp->cap > 65536) /* a huge line's buffer is not kept */
		gw_buf_dispose(lp);
	return rc;
}
