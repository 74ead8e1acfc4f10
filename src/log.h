/* Logging for the whole gateway: one line per event, on stderr, levelled.
 * Only top-level code logs; modules return errors. Debug lines cost one
 * branch when the level is off. */
#ifndef GW_LOG_H
#define GW_LOG_H

enum gw_log_level { GW_LOG_ERROR = 0, GW_LOG_WARN, GW_LOG_INFO, GW_LOG_DEBUG };

extern int gw_log_threshold;
/* --log-format json: each line one JSON object {time, level, msg}. */
extern int gw_log_json;

void gw_log_set_level(int level);
int gw_log_parse_level(const char *name);
void gw_log_emit(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define gw_log(level, ...)                                                     \
	do {                                                                   \
		if ((level) <= gw_log_threshold)                               \
			gw_log_emit((level), __VA_ARGS__);                     \
	} while (0)
/* At most one line per interval from one call site, telling how many were
 * left out since: for what a peer can trigger at will (a full fd table, a
 * flood of bad requests). */
int gw_log_admit(unsigned long long *next_ms, unsigned *dropped, unsigned interval_ms,
		 unsigned *suppressed);
#define gw_log_limited(level, interval_ms, fmt, ...)                           \
	do {                                                                   \
		static unsigned long long gw_log_next_;                        \
		static unsigned gw_log_dropped_;                               \
		unsigned gw_log_n_;                                            \
		if ((level) <= gw_log_threshold &&                             \
		    gw_log_admit(&gw_log_next_, &gw_log_dropped_, (interval_ms), \
				 &gw_log_n_))                                  \
			gw_log_emit((level), fmt " (%u more like this since)",  \
				    ##__VA_ARGS__, gw_log_n_);                 \
	} while (0)

#define gw_err(...) gw_log(GW_LOG_ERROR, __VA_ARGS__)
#define gw_warn(...) gw_log(GW_LOG_WARN, __VA_ARGS__)
#define gw_info(...) gw_log(GW_LOG_INFO, __VA_ARGS__)
#define gw_debug(...) gw_log(GW_LOG_DEBUG, __VA_ARGS__)

#endif
