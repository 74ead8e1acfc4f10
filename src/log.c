/* Log sink: timestamped lines on stderr; libwebsockets' own lines are
 * routed here too so that one stream tells the whole story. */
#include "log.h"

#include <libwebsockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int gw_log_threshold = GW_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

static void lws_emit(int level, const char *line)
{
	size_t n = strlen(line);
	int our = level == LLL_ERR ? GW_LOG_ERROR : level == LLL_WARN ? GW_LOG_WARN : GW_LOG_DEBUG;

	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	if (our <= gw_log_threshold)
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

void gw_log_emit(int level, const char *fmt, ...)
{
	char line[2048];
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
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", line);
}
