/* The admin page (admin/ in the repository): its files, embedded into the
 * binary at build time (cmake/embed-admin.cmake writes them as C arrays,
 * which mgmt.c includes), so one wsgate binary serves the page with
 * nothing installed beside it.
 * The management listener serves them unauthenticated under /admin/: they
 * hold no secret, and every call the page makes is an ordinary, signed
 * management request. */
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include <stddef.h>

typedef struct gw_admin_file {
	const char *path; /* "/admin/admin.js"; "/admin/" is index.html */
	const char *type; /* Content-Type */
	const unsigned char *data;
	size_t len;
} gw_admin_file_t;

#endif
