/* Registry records (registry.c): whatever the LMDB file holds is decoded
 * (the file outlives the process and tools read it while a gateway runs).
 * A decoded record must have NUL-terminated fields and survive an
 * encode/decode round trip unchanged. Input: one msgpack value. */
#include "fuzz_common.h"
#include "registry.h"

#include <string.h>

static void terminated(const char *s, size_t cap)
{
	FZ_CHECK(memchr(s, '\0', cap) != NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gw_conn_record_t rec, again;
	void *enc = NULL;
	size_t len = 0;

	if (gw_registry_decode(data, size, &rec) != GW_REG_OK)
		return 0;
	terminated(rec.id, sizeof(rec.id));
	terminated(rec.api, sizeof(rec.api));
	terminated(rec.stage, sizeof(rec.stage));
	terminated(rec.source_ip, sizeof(rec.source_ip));
	terminated(rec.user_agent, sizeof(rec.user_agent));
	FZ_CHECK(gw_registry_encode(&rec, &enc, &len) == GW_REG_OK);
	FZ_CHECK(gw_registry_decode(enc, len, &again) == GW_REG_OK);
	/* Strings compare as C strings: a NUL inside a msgpack string ends
	 * the field, and what follows it is not kept. */
	FZ_CHECK(!strcmp(rec.id, again.id) && !strcmp(rec.api, again.api) &&
		 !strcmp(rec.stage, again.stage) && !strcmp(rec.source_ip, again.source_ip) &&
		 !strcmp(rec.user_agent, again.user_agent));
	FZ_CHECK(rec.connected_at == again.connected_at &&
		 rec.last_active_at == again.last_active_at && rec.worker == again.worker &&
		 rec.slot == again.slot && rec.state == again.state);
	free(enc);
	return 0;
}
