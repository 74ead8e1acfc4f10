/* Route selection expressions (AWS grammar): "$request.body.action",
 * "${request.body.service}/${request.body.action}", "\$default", static
 * text. An expression is compiled once, at config load; evaluating it scans
 * the message only as far as the selected values, skipping everything else
 * without building a document tree, and stops as soon as it has them. */
#ifndef GW_SELECT_H
#define GW_SELECT_H

#include "buf.h"

#include <stddef.h>

typedef struct gw_rse gw_rse_t;

/* Compiles expr; on error returns NULL and writes "at character N: ..." to
 * err (N counts from 1). */
gw_rse_t *gw_rse_compile(const char *expr, char *err, size_t errlen);
void gw_rse_free(gw_rse_t *rse);
/* True when the expression has no variable (its value never changes). */
int gw_rse_is_static(const gw_rse_t *rse);

/* Evaluates against a message. Missing paths give "", strings their
 * unescaped text, numbers/true/false/null their JSON text, objects and
 * arrays their compact JSON. Returns 0, or -1 when the message is not JSON
 * (the caller then uses $default). out is reset first. */
int gw_rse_eval(const gw_rse_t *rse, const char *msg, size_t len, gw_buf_t *out);

/* One JSON path ("data.items[0].kind", "['a b']"), for request parameter
 * mapping (route.request.body.<path>): compiled and evaluated the same way. */
gw_rse_t *gw_rse_compile_path(const char *path, char *err, size_t errlen);

#endif
