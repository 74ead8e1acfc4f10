/* Log sink: timestamped lines on stderr; libwebsockets' own lines are
 * routed here too so that one stream tells the whole story. */
#include "log.h"
#include "buf.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int gw_log_threshold = GW_LOG_INFO;
int gw_log_json;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

/* libwebsockets' lines: a client can cause one per request (e.g. "More
 * hdr frags than we can deal with" on the management listener), so they
 * pass a token bucket: a burst of LWS_BURST (start-up errors come in a
 * few lines at once), then LWS_PER_S a second; the next line admitted
 * tells how many were left out. */
#define LWS_BURST 20
#define LWS_PER_S 2

static pthread_mutex_t lws_lock = PTHREAD_MUTEX_INITIALIZER;

static int lws_admit(unsigned *left_out)
{
	static double tokens = LWS_BURST;
	static unsigned long long last_ms;
	static unsigned dropped;
	struct timespec ts;
	unsigned long long now;
	int ok;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
	pthread_mutex_lock(&lws_lock);
	if (last_ms)
		tokens += (double)(now - last_ms) * LWS_PER_S / 1000;
	if (tokens > LWS_BURST)
		tokens = LWS_BURST;
	last_ms = now;
	ok = tokens >= 1;
	if (ok) {
		tokens--;
		*left_out = dropped;
		dropped = 0;
	} else {
		dropped++;
	}
	pthread_mutex_unlock(&lws_lock);
	return ok;
}

static void lws_emit(int level, const char *line)
{
	size_t n = strlen(line);
	int our = level == LLL_ERR ? GW_LOG_ERROR : level == LLL_WARN ? GW_LOG_WARN : GW_LOG_DEBUG;
	unsigned left_out;

	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	if (our > gw_log_threshold || !lws_admit(&left_out))
		return;
	if (left_out)
		gw_log_emit(our, "lws: %.*s (%u similar libwebsockets lines not logged)", (int)n,
			    line, left_out);
	else
		gw_log_emit(our, "lws: %.*s", (int)n, line);
}

void gw_log_set_level(int level)
{
	gw_log_threshold = level;
	lws_set_log_level(level >= GW_LOG_DEBUG ? (LLL_ERR | LLL_WARN | LLL_NOTICE)
						: (LLL_ERR | LLL_WARN),
			  lws_emit);
}

int gw_log_parse_level(const char *name)
{
	for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
		if (!strcmp(name, level_names[i]))
			return i;
	return -1;
}

/* A line is one line: a peer's bytes in a message (a channel name, a
 * path) must not start a forged one or move a terminal's cursor. Control
 * characters become \n, \r, \t or \xNN, in place (cut at the end). */
static void escape_controls(char *s, size_t size)
{
	char tmp[2048];
	size_t o = 0, i;

	for (i = 0; s[i] && (unsigned char)s[i] >= 0x20 && s[i] != 0x7f; i++)
		;
	if (!s[i])
		return;
	for (i = 0; s[i] && o + 5 < sizeof(tmp) && o + 5 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c != 0x7f)
			tmp[o++] = (char)c;
		else if (c == '\n' || c == '\r' || c == '\t')
			o += (size_t)snprintf(tmp + o, 3, "\\%c", c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
		else
			o += (size_t)snprintf(tmp + o, 5, "\\x%02x", c);
	}
	tmp[o] = '\0';
	memcpy(s, tmp, o + 1);
}

void gw_log_emit(int level, const char *fmt, ...)
{
	char line[2048], msg[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[level]);
	va_start(ap, fmt);
	vsnprintf(gw_log_json ? msg : line + n, gw_log_json ? sizeof(msg) : sizeof(line) - (size_t)n,
		  fmt, ap);
	va_end(ap);
	if (gw_log_json) {
		gw_buf_t b;

		/* One object per line; the message JSON-escaped (a peer's bytes
		 * can end up in it). */
		gw_buf_init(&b);
		line[n - 1 - strlen(level_names[level]) - 1] = '\0'; /* the time alone */
		gw_buf_append_str(&b, "{\"time\":\"");
		gw_buf_append_str(&b, line);
		gw_buf_append_str(&b, "\",\"level\":\"");
		gw_buf_append_str(&b, level_names[level]);
		gw_buf_append_str(&b, "\",\"msg\":");
		gw_buf_append_json_str(&b, msg, strlen(msg));
		gw_buf_append_str(&b, "}\n");
		fwrite(b.data, 1, b.len, stderr);
		gw_buf_dispose(&b);
		return;
	}
	escape_controls(line + n, sizeof(line) - (size_t)n);
	fprintf(stderr, "%s\n", line);
}

int gw_log_admit(unsigned long long *next_ms, unsigned *dropped, unsigned interval_ms,
		 unsigned *suppressed)
{
	struct timespec ts;
	unsigned long long now, next;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
	/* Several loops may share a call site: atomics, and one winner. */
	next = __atomic_load_n(next_ms, __ATOMIC_RELAXED);
	if (now < next ||
	    !__atomic_compare_exchange_n(next_ms, &next, now + interval_ms, 0, __ATOMIC_RELAXED,
					 __ATOMIC_RELAXED)) {
		__atomic_add_fetch(dropped, 1, __ATOMIC_RELAXED);
		return 0;
	}
	*suppressed = __atomic_exchange_n(dropped, 0, __ATOMIC_RELAXED);
	return 1;
}
