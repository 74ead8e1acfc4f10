/* Shared helpers for the benchmark tools: clocks, /proc sampling, sample
 * arrays with percentiles. Header-only so each tool stays one file. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	return q;
}

static inline int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL, 0);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the limit. */
static inline long raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -1;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	return (long)rl.rlim_cur;
}

static inline int read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return (int)n;
}

/* utime+stime of one process, in seconds; -1 when unreadable. */
static inline double proc_cpu_s(long pid)
{
	char path[64], buf[2048], *p;
	unsigned long ut = 0, st = 0;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (read_file(path, buf, sizeof(buf)) < 0)
		return -1;
	p = strrchr(buf, ')'); /* comm may hold spaces */
	if (!p)
		return -1;
	/* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime(14) stime(15) */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		   &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* VmRSS of one process, in KiB; -1 when unreadable. */
static inline long proc_rss_kb(long pid)
{
	char path[64], buf[8192], *p;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if (read_file(path, buf, sizeof(buf)) < 0)
		return -1;
	p = strstr(buf, "VmRSS:");
	return p ? strtol(p + 6, NULL, 10) : -1;
}

/* A list of PIDs given as "1,2,3": the figures are summed, so a target made
 * of several processes (Pushpin) is measured as a whole. */
typedef struct {
	long pid[32];
	int n;
} pidlist_t;

static inline void pidlist_parse(pidlist_t *l, const char *s)
{
	l->n = 0;
	while (s && *s && l->n < 32) {
		char *end;
		long v = strtol(s, &end, 10);

		if (end == s)
			break;
		l->pid[l->n++] = v;
		s = *end == ',' ? end + 1 : end;
	}
}

static inline double pidlist_cpu_s(const pidlist_t *l)
{
	double t = 0;

	for (int i = 0; i < l->n; i++) {
		double v = proc_cpu_s(l->pid[i]);

		if (v > 0)
			t += v;
	}
	return t;
}

static inline long pidlist_rss_kb(const pidlist_t *l)
{
	long t = 0;

	for (int i = 0; i < l->n; i++) {
		long v = proc_rss_kb(l->pid[i]);

		if (v > 0)
			t += v;
	}
	return t;
}

static inline double self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* The one rule for progress lines: shown on a terminal only, never into a
 * pipe, a file or a CI log (CI set to anything but "", "0" or "false", as
 * CI services set CI=true). Same rule as run.sh's and tests/soak/lib.mjs'. */
static inline int progress_wanted(void)
{
	const char *ci = getenv("CI");

	if (ci && *ci && strcmp(ci, "0") && strcmp(ci, "false"))
		return 0;
	return isatty(STDERR_FILENO);
}

/* A carriage-return line on stderr, refreshed at most every 250 ms. */
typedef struct {
	int on, shown;
	uint64_t t0, t_last;
} progress_t;

static inline void progress_init(progress_t *p)
{
	p->on = progress_wanted();
	p->shown = 0;
	p->t0 = p->t_last = now_ns();
}

/* True when a refresh is due; the caller then calls progress_print. */
static inline int progress_due(progress_t *p, uint64_t now)
{
	if (!p->on || now - p->t_last < 250000000ull)
		return 0;
	return 1;
}

__attribute__((format(printf, 3, 4)))
static inline void progress_print(progress_t *p, uint64_t now, const char *fmt, ...)
{
	va_list ap;

	fputs("\r", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\033[K", stderr);
	fflush(stderr);
	p->t_last = now;
	p->shown = 1;
}

/* Erases the line, so that later output starts on a clean line. */
static inline void progress_end(progress_t *p)
{
	if (p->shown)
		fputs("\r\033[K", stderr);
	p->shown = 0;
}

/* Latency samples (ns), sorted once at the end for percentiles. */
typedef struct {
	uint64_t *v;
	size_t n, cap;
} samples_t;

static inline void samples_add(samples_t *s, uint64_t x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 65536;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = x;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static inline void samples_sort(samples_t *s)
{
	qsort(s->v, s->n, sizeof(*s->v), cmp_u64);
}

/* Percentile in microseconds of a sorted array; 0 when empty. */
static inline double samples_pct_us(const samples_t *s, double pct)
{
	size_t i;

	if (!s->n)
		return 0;
	i = (size_t)(pct / 100.0 * (double)(s->n - 1) + 0.5);
	if (i >= s->n)
		i = s->n - 1;
	return (double)s->v[i] / 1000.0;
}

#endif
