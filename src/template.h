/* SAM and CloudFormation templates: the AWS::ApiGatewayV2 resources of a
 * template (YAML or JSON, short-form tags included) turned into the API
 * file the gateway reads, and its Lambda functions into the list the
 * handler runner (clients/lambda-runner) serves. Intrinsic functions are
 * evaluated as CloudFormation would for a stack named "wsgate"; what has
 * no local meaning is reported as a warning, never dropped in silence. */
#ifndef GW_TEMPLATE_H
#define GW_TEMPLATE_H

#include "buf.h"

#include <jansson.h>
#include <stddef.h>

#define GW_TMPL_DEFAULT_RUNNER "http://127.0.0.1:9000/functions/"

typedef struct gw_tmpl_opts {
	/* A Lambda integration calls this URL followed by the function's
	 * logical ID; NULL: GW_TMPL_DEFAULT_RUNNER. */
	const char *runner_url;
	const char *api;    /* logical ID of the API to import; NULL: the only one */
	const char *region; /* AWS::Region; NULL: us-east-1 */
} gw_tmpl_opts_t;

/* The options --routes TEMPLATE uses (set once by main before loading). */
extern gw_tmpl_opts_t gw_tmpl_default_opts;

/* A file name ending in .yaml, .yml or .template. */
int gw_tmpl_is_template(const char *path);

/* The API file (a new reference) of the template data[0..len), or NULL
 * with the reason in err. Warnings, one a line, are appended to warn. */
json_t *gw_tmpl_to_api(const char *data, size_t len, const gw_tmpl_opts_t *o,
		       gw_buf_t *warn, gw_buf_t *err);

/* {"functions": {LOGICAL_ID: {handler, codeUri, runtime, timeout,
 * memorySize, environment, functionName}}, "tables": {LOGICAL_ID:
 * DynamoDB CreateTable input}} for the runner, or NULL. */
json_t *gw_tmpl_functions(const char *data, size_t len, const gw_tmpl_opts_t *o,
			  gw_buf_t *warn, gw_buf_t *err);

/* Reads a whole regular file (at most 16 MiB) into *data (free()). */
int gw_tmpl_read_file(const char *path, char **data, size_t *len, gw_buf_t *err);

#endif
