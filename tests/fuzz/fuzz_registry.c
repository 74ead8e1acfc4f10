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

/* Open finding registry-1 (crashes/registry/ubsan-memcpy-null-empty-key,
 * owner "ops"): msgpack-c gives a NULL pointer for an empty string read
 * before any other string, and copy_str passes it to memcpy. Until
 * copy_str skips empty strings, such inputs are left out so that the
 * fuzzer keeps looking for other findings. Set to 0 once fixed. */
#define SKIP_OPEN_FINDING_1 1

static int first_key_empty(const uint8_t *p, size_t n)
{
	size_t at;

	if (!n)
		return 0;
	if ((p[0] & 0xf0) == 0x80)
		at = 1;
	else if (p[0] == 0xde)
		at = 3;
	else if (p[0] == 0xdf)
		at = 5;
	else
		return 0;
	if (at >= n)
		return 0;
	switch (p[at]) {
	case 0xa0: return 1;
	case 0xd9: return at + 1 < n && !p[at + 1];
	case 0xda: return at + 2 < n && !p[at + 1] && !p[at + 2];
	case 0xdb: return at + 4 < n && !p[at + 1] && !p[at + 2] && !p[at + 3] && !p[at + 4];
	}
	return 0;
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

	if (SKIP_OPEN_FINDING_1 && first_key_empty(data, size))
		return 0;
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
