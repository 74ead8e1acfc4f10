/* Channel names: which are valid, and their keyed hash. A leaf: the
 * channels (channel.c), the cluster's interest table and wire checks
 * (cluster.c) and the management API use them. */
#ifndef GW_CHANNAME_H
#define GW_CHANNAME_H

#include <stddef.h>
#include <stdint.h>

#define GW_CHAN_NAME_MAX 128
/* Names read from each list (join, leave) of one integration answer: as
 * many as a connection can be in (GW_CHAN_PER_CONN), so that an answer of
 * a million names costs the loop no more than one of 64. */
#define GW_CHAN_PER_ANSWER 64

/* The index's hash of a name: SipHash under a random key of the process
 * (also the cluster's interest table's). */
uint64_t gw_chan_hash(const char *name, size_t len);

/* 1 when name (len bytes, no NUL needed) is a valid channel name. */
int gw_chan_name_valid(const char *name, size_t len);

#endif
