/* requestContext.apiId: AWS's are 10 characters [a-z0-9] (issue 15 item
 * 6). An API file gives one or has one derived from its name; a template's
 * Ref to its API stands for the same. A leaf under config.c and
 * template.c, which both need it. */
#ifndef GW_APIID_H
#define GW_APIID_H

#define GW_APIID_DIGITS "0123456789abcdefghijklmnopqrstuvwxyz"

/* The apiId an API file without "apiId" gets: 10 of [a-z0-9] derived from
 * its name (FNV-1a 64 in base 36), stable across restarts and machines. */
void gw_apiid_derive(const char *name, char out[11]);

#endif
