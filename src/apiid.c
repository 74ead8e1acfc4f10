#include "apiid.h"

#include <stdint.h>

void gw_apiid_derive(const char *name, char out[11])
{
	static const char digits[] = GW_APIID_DIGITS;
	uint64_t h = 14695981039346656037ULL;

	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (int i = 9; i >= 0; i--) {
		out[i] = digits[h % 36];
		h /= 36;
	}
	out[10] = '\0';
}
