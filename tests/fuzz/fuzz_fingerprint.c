/*
 * libFuzzer target: SQL text -> fp_cache__lookup (user/fingerprint.h).
 *
 * The input is split at NUL bytes into texts.  Each text is looked up in a
 * small cache (so resets happen), then three variants of it with every
 * digit changed (same shape, other constants: the first two are the
 * cache's double-checks, the third is answered by the fast path), then its
 * first half as a truncated capture.  For every text libpg_query parses,
 * the cache's answer must be exactly pg_query_fingerprint()'s value (the
 * contract in fingerprint.h): a difference aborts, as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pg_query.h>

#include "fingerprint.h"

static void check(struct fp_cache *c, const char *s, size_t len)
{
	struct fp_result r;
	char *z;

	if (fp_cache__lookup(c, s, len, false, &r))
		return;		/* -ENOMEM */
	/* touch what the result lends */
	if (r.norm) {
		volatile size_t n = strlen(r.norm->s);
		(void)n;
		if (r.norm->len != strlen(r.norm->s))
			abort();
	}
	if (memchr(s, '\0', len))
		return;
	z = malloc(len + 1);
	if (!z)
		return;
	memcpy(z, s, len);
	z[len] = '\0';
	PgQueryFingerprintResult fr = pg_query_fingerprint(z);
	if (!fr.error && (!r.parsed || r.fp != fr.fingerprint)) {
		char a[17];
		fp_format(r.fp, a);
		fprintf(stderr, "fingerprint mismatch for [%s]: cache %s (parsed=%d), "
			"pg_query %s\n", z, a, r.parsed, fr.fingerprint_str);
		abort();
	}
	pg_query_free_fingerprint_result(fr);
	free(z);
}

static void variant(char *dst, const char *src, size_t len, int shift)
{
	for (size_t i = 0; i < len; i++) {
		char ch = src[i];
		dst[i] = (ch >= '0' && ch <= '9') ? (char)('0' + (ch - '0' + shift) % 10) : ch;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fp_cache *c = fp_cache__new(8);
	const char *p = (const char *)data, *end = p + size;
	char *buf = malloc(size + 1);

	if (!c || !buf) {
		free(buf);
		fp_cache__free(c);
		return 0;
	}
	while (p <= end) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));
		size_t len = (size_t)((nul ? nul : end) - p);
		static const int shifts[] = { 1, 3, 7 };
		struct fp_result r;

		check(c, p, len);
		for (int i = 0; i < 3; i++) {
			variant(buf, p, len, shifts[i]);
			check(c, buf, len);
		}
		check(c, p, len);	/* the first text again: a hit */
		(void)fp_cache__lookup(c, p, len / 2, true, &r);
		if (!nul)
			break;
		p = nul + 1;
	}
	struct fp_stats st;
	fp_cache__stats(c, &st);
	free(buf);
	fp_cache__free(c);
	return 0;
}
