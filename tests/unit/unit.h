/* Minimal unit-test harness shared by tests/unit/test_*.c.
 *
 *   CHECK(expr)             counts and reports a failure, then goes on
 *   CHECK_MSG(expr, fmt..)  same, with a printf-style explanation
 *   CHECK_INT_EQ(a, b)      compares two integers, printing both values
 *   CHECK_STR_EQ(a, b)      compares two NUL-terminated strings
 *   CHECK_MEM_EQ(a, an, b, bn)  compares two byte ranges
 *   CHECK_CONTAINS(hay, needle) strstr(hay, needle) != NULL
 *   RUN(fn)                 runs one test function, naming it on failure
 *   CHECK_IN_CHILD(fn, arg) runs fn(arg) in a forked process, so that code
 *                           which aborts (a sanitizer report) fails one check
 *                           instead of ending the whole test program
 *   UNIT_MAIN_END()         prints a summary; returns non-zero on failure
 *
 * Every macro prints file:line and the failed expression. The process
 * exit status is the number of failures (capped), so ctest sees it. */
#ifndef GW_UNIT_H
#define GW_UNIT_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int unit_failures;
static int unit_checks;
static const char *unit_current = "";

#define UNIT_FAIL_HEAD(expr)                                                   \
	(fprintf(stderr, "%s:%d: [%s] CHECK FAILED: %s\n", __FILE__, __LINE__, \
		 unit_current, (expr)),                                         \
	 unit_failures++)

#define CHECK(expr)                                                            \
	do {                                                                   \
		unit_checks++;                                                 \
		if (!(expr))                                                   \
			UNIT_FAIL_HEAD(#expr);                                 \
	} while (0)

#define CHECK_MSG(expr, ...)                                                   \
	do {                                                                   \
		unit_checks++;                                                 \
		if (!(expr)) {                                                 \
			UNIT_FAIL_HEAD(#expr);                                 \
			fprintf(stderr, "    ");                               \
			fprintf(stderr, __VA_ARGS__);                          \
			fprintf(stderr, "\n");                                 \
		}                                                              \
	} while (0)

#define CHECK_INT_EQ(a, b)                                                     \
	do {                                                                   \
		long long unit_a_ = (long long)(a), unit_b_ = (long long)(b);  \
		unit_checks++;                                                 \
		if (unit_a_ != unit_b_) {                                      \
			UNIT_FAIL_HEAD(#a " == " #b);                          \
			fprintf(stderr, "    left:  %lld\n    right: %lld\n",   \
				unit_a_, unit_b_);                             \
		}                                                              \
	} while (0)

#define CHECK_STR_EQ(a, b)                                                     \
	do {                                                                   \
		const char *unit_a_ = (a), *unit_b_ = (b);                     \
		unit_checks++;                                                 \
		if (!unit_a_ || !unit_b_ || strcmp(unit_a_, unit_b_)) {        \
			UNIT_FAIL_HEAD(#a " equals " #b);                      \
			fprintf(stderr, "    left:  \"%s\"\n    right: \"%s\"\n", \
				unit_a_ ? unit_a_ : "(null)",                  \
				unit_b_ ? unit_b_ : "(null)");                 \
		}                                                              \
	} while (0)

static inline void unit_dump(const char *label, const void *p, size_t n)
{
	const unsigned char *c = p;

	fprintf(stderr, "    %s (%zu bytes): ", label, n);
	for (size_t i = 0; i < n && i < 256; i++)
		if (c[i] >= 0x20 && c[i] < 0x7f && c[i] != '\\')
			fputc(c[i], stderr);
		else
			fprintf(stderr, "\\x%02x", c[i]);
	if (n > 256)
		fprintf(stderr, "...");
	fputc('\n', stderr);
}

#define CHECK_MEM_EQ(a, an, b, bn)                                             \
	do {                                                                   \
		const void *unit_a_ = (a), *unit_b_ = (b);                     \
		size_t unit_an_ = (an), unit_bn_ = (bn);                       \
		unit_checks++;                                                 \
		if (unit_an_ != unit_bn_ ||                                    \
		    (unit_an_ && (!unit_a_ || !unit_b_ ||                      \
				  memcmp(unit_a_, unit_b_, unit_an_)))) {      \
			UNIT_FAIL_HEAD(#a " equals " #b);                      \
			unit_dump("left ", unit_a_ ? unit_a_ : "", unit_a_ ? unit_an_ : 0); \
			unit_dump("right", unit_b_ ? unit_b_ : "", unit_b_ ? unit_bn_ : 0); \
		}                                                              \
	} while (0)

#define CHECK_CONTAINS(hay, needle)                                            \
	do {                                                                   \
		const char *unit_h_ = (hay), *unit_n_ = (needle);              \
		unit_checks++;                                                 \
		if (!unit_h_ || !strstr(unit_h_, unit_n_)) {                   \
			UNIT_FAIL_HEAD(#hay " contains " #needle);             \
			fprintf(stderr, "    text:   \"%s\"\n    wanted: \"%s\"\n", \
				unit_h_ ? unit_h_ : "(null)", unit_n_);        \
		}                                                              \
	} while (0)

#define RUN(fn)                                                                \
	do {                                                                   \
		int unit_before_ = unit_failures;                              \
		unit_current = #fn;                                            \
		fn();                                                          \
		fprintf(stderr, "%-40s %s\n", #fn,                             \
			unit_failures == unit_before_ ? "ok" : "FAILED");      \
	} while (0)

#define UNIT_CHILD_CHECKS_FAILED 3

/* Exit status of fn(arg) run in a child: 0 when its checks passed,
 * UNIT_CHILD_CHECKS_FAILED when some failed (already reported by the child),
 * anything else when it crashed or was killed (128 + signal). */
static inline int unit_run_child(void (*fn)(void *), void *arg)
{
	int status = 0, before = unit_failures;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return -1;
	}
	if (pid == 0) {
		fn(arg);
		fflush(stderr);
		_exit(unit_failures != before ? UNIT_CHILD_CHECKS_FAILED : 0);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

#define CHECK_IN_CHILD(fn, arg)                                                \
	do {                                                                   \
		int unit_st_;                                                  \
		unit_current = #fn;                                            \
		unit_st_ = unit_run_child(fn, arg);                            \
		unit_checks++;                                                 \
		if (unit_st_ != 0) {                                           \
			UNIT_FAIL_HEAD(#fn "(" #arg ") in a child process");   \
			fprintf(stderr, "    %s (exit status %d)\n",           \
				unit_st_ == UNIT_CHILD_CHECKS_FAILED             \
					? "its checks failed (see above)"      \
					: "it CRASHED or aborted (see the report above)", \
				unit_st_);                                     \
		}                                                              \
	} while (0)

#define UNIT_MAIN_END()                                                        \
	do {                                                                   \
		fprintf(stderr, "%s: %d checks, %d failed\n", __FILE__,        \
			unit_checks, unit_failures);                           \
		return unit_failures ? (unit_failures > 100 ? 100 : unit_failures) : 0; \
	} while (0)

#endif
