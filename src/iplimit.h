/* Per source IP limits (issue 12): connections open at once, new
 * connections per second and connections still sending their head, counted for the whole process (every loop, every
 * API). IPv6 addresses count by their /64, which one host usually holds
 * whole; IPv4 by the address. One table under one mutex: it is touched once
 * when a connection is admitted and once when it is freed, never per
 * message. Entries go once they hold nothing (no connection, a full
 * bucket), so memory follows what is open and recent. */
#ifndef GW_IPLIMIT_H
#define GW_IPLIMIT_H

#include <stdint.h>

enum gw_iplimit_result {
	GW_IPLIMIT_OK = 0,
	GW_IPLIMIT_TOO_MANY,  /* max_conns open already */
	GW_IPLIMIT_TOO_FAST,  /* over the new-connection rate */
	GW_IPLIMIT_BAD_ADDR,  /* not a numeric address: not counted */
};

typedef struct gw_iplimit_rule {
	unsigned max_conns; /* 0: no bound */
	int rate_set;
	double rate;        /* new connections per second */
	uint64_t burst;
} gw_iplimit_rule_t;

/* Counts one more connection of ip if the rule allows it. On OK the caller
 * holds it and gives it back with gw_iplimit_release. Any thread. */
enum gw_iplimit_result gw_iplimit_acquire(const char *ip, const gw_iplimit_rule_t *rule,
					  uint64_t now_ns);
void gw_iplimit_release(const char *ip, uint64_t now_ns);
/* Connections still sending their request head (slowloris): at most
 * max_total in the process and max_per_ip per source address (0: no
 * bound). Set once at start-up, before any loop runs. */
void gw_iplimit_heads_configure(unsigned max_total, unsigned max_per_ip);
/* Counts one more connection reading its head: OK (then released with
 * gw_iplimit_head_release), TOO_MANY when a bound is reached. */
enum gw_iplimit_result gw_iplimit_head_acquire(const char *ip, int *per_ip);
void gw_iplimit_head_release(const char *ip);
#define GW_DEFAULT_MAX_PENDING_HEADS 16384
#define GW_DEFAULT_MAX_PENDING_HEADS_PER_IP 256

/* Entries held now (for tests). */
unsigned long gw_iplimit_entries(void);

#endif
