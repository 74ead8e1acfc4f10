/* Route selection micro-benchmark: ns per message for 100 B, 4 KB and
 * 128 KB JSON messages, with the selected key first or last. Prints a table;
 * it asserts nothing (figures, not pass/fail).
 *
 *   build/bench_select [iterations-scale]
 */
#include "select.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* {"action":"join",  "pad0":"xxxx", ...} or with action at the end, padded
 * with realistic nested content to about size bytes. */
static void make_msg(gw_buf_t *b, size_t size, int key_first)
{
	int i = 0;

	gw_buf_reset(b);
	gw_buf_append_char(b, '{');
	if (key_first)
		gw_buf_append_str(b, "\"action\":\"sendmessage\",");
	while (b->len + 120 < size) {
		char item[160];
		int n = snprintf(item, sizeof(item),
				 "\"field%d\":{\"text\":\"lorem ipsum dolor sit amet\",\"n\":%d,"
				 "\"tags\":[\"a\",\"b\",true,null],\"esc\":\"q\\\"x\"},",
				 i, i * 7);
		gw_buf_append(b, item, (size_t)n);
		i++;
	}
	/* top up to the size asked for */
	if (b->len + 40 < size) {
		size_t pad = size - b->len - 40;
		gw_buf_append_str(b, "\"pad\":\"");
		while (pad--)
			gw_buf_append_char(b, 'p');
		gw_buf_append_str(b, "\",");
	}
	if (!key_first)
		gw_buf_append_str(b, "\"action\":\"sendmessage\",");
	gw_buf_append_str(b, "\"end\":1}");
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = { 100, 4096, 131072 };
	double scale = argc > 1 ? atof(argv[1]) : 1.0;
	char err[128];
	gw_rse_t *rse = gw_rse_compile("$request.body.action", err, sizeof(err));
	gw_buf_t msg, out;

	gw_buf_init(&msg);
	gw_buf_init(&out);
	printf("%-10s %-6s %10s %12s %10s\n", "size", "key", "messages", "ns/message", "MB/s");
	for (size_t s = 0; s < 3; s++)
		for (int first = 1; first >= 0; first--) {
			long iters = (long)(scale * (sizes[s] > 10000 ? 20000 : 2000000));
			double t0, t1;
			long i;

			make_msg(&msg, sizes[s], first);
			if (gw_rse_eval(rse, msg.data, msg.len, &out) || strcmp(out.data, "sendmessage")) {
				fprintf(stderr, "selection failed on %zu-byte message\n", msg.len);
				return 1;
			}
			t0 = now_ns();
			for (i = 0; i < iters; i++)
				gw_rse_eval(rse, msg.data, msg.len, &out);
			t1 = now_ns();
			printf("%-10zu %-6s %10ld %12.1f %10.0f\n", msg.len, first ? "first" : "last",
			       iters, (t1 - t0) / (double)iters,
			       (double)msg.len * (double)iters / ((t1 - t0) / 1e9) / 1e6);
		}
	gw_rse_free(rse);
	gw_buf_dispose(&msg);
	gw_buf_dispose(&out);
	return 0;
}
