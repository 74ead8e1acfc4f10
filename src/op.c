/* Operations (op.h): made and freed. */
#include "op.h"

#include <stdlib.h>
#include <string.h>

gw_op_t *gw_op_create(enum gw_op_kind kind, const char *id, size_t len)
{
	const gw_connid_key_t *key = gw_connid_process_key();
	gw_connid_t cid;
	gw_op_t *op;

	if (!key || gw_connid_decode(key, id, len, &cid) != GW_CONNID_OK)
		return NULL;
	op = calloc(1, sizeof(*op));
	if (!op)
		abort();
	op->kind = kind;
	memcpy(op->id, id, GW_CONNID_LEN);
	op->target = cid;
	gw_buf_init(&op->data);
	return op;
}

gw_op_t *gw_op_create_loop(enum gw_op_kind kind, uint32_t loop)
{
	gw_op_t *op = calloc(1, sizeof(*op));

	if (!op)
		abort();
	op->kind = kind;
	op->target.node = gw_connid_self(); /* this node's loops */
	op->target.loop = loop;
	gw_buf_init(&op->data);
	return op;
}

void gw_op_destroy(gw_op_t *op)
{
	if (!op)
		return;
	gw_buf_dispose(&op->data);
	free(op->remote);
	free(op);
}
