/* Management paths (mgmt-api/mgmt.c): "/@connections/{id}" and
 * "/{stage}/@connections/{id}" as libwebsockets hands them over (already
 * percent-decoded), then the id looked up in a registry as
 * the request would. The URI comes with its length (a "%00" decodes to a
 * NUL inside it). parse_path is static: this file includes mgmt.c to
 * reach it (the fuzz library leaves mgmt.c out, so nothing is defined
 * twice). POST bodies are opaque bytes, never parsed, so the path is all
 * a management client controls. Input: the URI. */
#include "../../mgmt-api/mgmt.c"

#include "fuzz_common.h"
#include "registry.h"

#include <ftw.h>

static gw_registry_t *reg;
static char dir[] = "/tmp/wsgate-fuzz-mgmt-XXXXXX";

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static void cleanup(void)
{
	gw_registry_close(reg);
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const ids[] = { "AbCdEfGhIjKlMnOp", "0123456789abcdef", "a" };
	char err[256];

	fz_quiet();
	if (!mkdtemp(dir) || gw_registry_open(dir, &reg, err, sizeof(err))) {
		fprintf(stderr, "fuzz_mgmt: registry in %s: %s\n", dir, err);
		abort();
	}
	atexit(cleanup);
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		gw_conn_record_t rec;

		memset(&rec, 0, sizeof(rec));
		snprintf(rec.id, sizeof(rec.id), "%s", ids[i]);
		snprintf(rec.api, sizeof(rec.api), "chat");
		snprintf(rec.stage, sizeof(rec.stage), "dev");
		rec.state = GW_CONN_OPEN;
		if (gw_registry_insert(reg, &rec) != GW_REG_OK)
			abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char conns[] = "/@connections/";
	struct mgmt_pss pss;
	gw_conn_record_t rec;
	const char *uri = (const char *)data;

	memset(&pss, 0, sizeof(pss));
	if (parse_path(&pss, uri, size))
		return 0;
	FZ_CHECK(pss.id_len > 0 && pss.id_len < sizeof(pss.id));
	FZ_CHECK(strlen(pss.id) == pss.id_len && !strchr(pss.id, '/'));
	FZ_CHECK(!memcmp(pss.id, uri + size - pss.id_len, pss.id_len));
	FZ_CHECK(memchr(pss.stage, '\0', sizeof(pss.stage)) && !strchr(pss.stage, '/'));
	/* "/{stage}/@connections/{id}", or no stage at all. */
	if (pss.stage[0])
		FZ_CHECK(uri[0] == '/' && !memcmp(uri + 1, pss.stage, strlen(pss.stage)) &&
			 !memcmp(uri + 1 + strlen(pss.stage), conns, sizeof(conns) - 1) &&
			 1 + strlen(pss.stage) + sizeof(conns) - 1 + pss.id_len == size);
	else
		FZ_CHECK(!memcmp(uri, conns, sizeof(conns) - 1) &&
			 sizeof(conns) - 1 + pss.id_len == size);
	if (gw_registry_get(reg, pss.id, pss.id_len, &rec) == GW_REG_OK)
		FZ_CHECK(strlen(rec.id) == pss.id_len && !memcmp(rec.id, pss.id, pss.id_len));
	return 0;
}
