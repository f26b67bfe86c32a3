/*
 * Query fingerprints: "the same statement with different constants".
 *
 * libpg_query (PostgreSQL's own parser) is the authority: fp_cache__lookup()
 * returns exactly pg_query_fingerprint()'s value for every text it can
 * parse.  A parse costs ~11 us, so each text first gets a cheap lexical key
 * (sqlkey.h: constants replaced, whitespace and comments dropped) and the
 * key maps to the fingerprint computed once per shape:
 *
 *   - the first text of a shape is parsed (fingerprint + normalize);
 *   - the shape key is trusted for later texts only if libpg_query replaced
 *     every constant the key replaced (pg_query_normalize of that first text
 *     keeps none of them) and the statement kind keeps no fingerprint-relevant
 *     strings; otherwise the shape falls back to exact keys (same text but for
 *     whitespace and comments), parsed once each;
 *   - the next FP_VERIFY texts of a trusted shape with other constants are
 *     parsed anyway and compared; a mismatch demotes the shape to exact keys
 *     (counted in fp_stats.mismatches; never seen on the test corpus).
 *
 * Texts that were cut by the capture (truncated) or that libpg_query cannot
 * parse get a lexical fingerprint (fp_result.parsed == false) from their
 * shape key, in a key space of their own.
 *
 * Memory is bounded: at max_entries shapes (or FP_MAX_BYTES of keys and
 * texts) the cache is emptied and refilled (simpler than LRU, and costs one
 * parse per live shape per refill).  Not
 * thread-safe: one cache per thread.
 */
#ifndef PQSNOOP_FINGERPRINT_H
#define PQSNOOP_FINGERPRINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sqltext.h"

/* Parses per trusted shape to double-check the key (after the first). */
#define FP_VERIFY 2
#define FP_DEFAULT_MAX_ENTRIES 8192
#define FP_MAX_BYTES (16u << 20)	/* keys and texts: at most about 16 MiB */

/*
 * A reference-counted, immutable, NUL-terminated string, so that texts can
 * be shared by the cache, open units and findings and outlive any of them.
 * fp_text__new() returns NULL when out of memory; get/put accept NULL.
 */
struct fp_text {
	uint32_t refs;
	uint32_t len;
	char s[];
};

struct fp_text *fp_text__new(const char *s, size_t len);
static inline struct fp_text *fp_text__get(struct fp_text *t)
{
	if (t)
		t->refs++;
	return t;
}
void fp_text__put(struct fp_text *t);

struct fp_result {
	uint64_t fp;		/* pg_query_fingerprint(), or lexical (!parsed) */
	/*
	 * Equal values (for equal fp) mean the same constants too: a
	 * duplicate rather than an N+1.  Meaningless when !values_known.
	 */
	uint64_t values;
	bool values_known;	/* false: $n parameters hold the values */
	bool parsed;		/* fp and norm come from libpg_query */
	enum stmt_class cls;
	/* Normalized text ($n for constants, no comments).  Borrowed: valid
	 * until the next lookup or free; fp_text__get() it to keep it. */
	struct fp_text *norm;
};

struct fp_stats {
	uint64_t lookups;
	uint64_t hits;		/* answered without parsing */
	uint64_t parses;	/* pg_query_fingerprint() calls */
	uint64_t verifies;	/* of which double-checks of a trusted shape */
	uint64_t mismatches;	/* shapes demoted by a double-check */
	uint64_t unparsed;	/* lookups answered with a lexical fingerprint */
	uint64_t exact_shapes;	/* shapes that needed exact keys */
	uint64_t entries;	/* in the cache now */
	uint64_t resets;	/* times the cache was full and emptied */
};

struct fp_cache;

/* max_entries 0 means FP_DEFAULT_MAX_ENTRIES.  NULL when out of memory. */
struct fp_cache *fp_cache__new(size_t max_entries);
/*
 * Frees the cache.  NULL is fine.  libpg_query keeps a memory context per
 * thread; pg_query_exit() frees it but libpg_query 15-4.0 corrupts its heap
 * when used again afterwards, so call it only when nothing will parse any
 * more (at process exit, for leak checkers).
 */
void fp_cache__free(struct fp_cache *c);

/*
 * Fingerprint of sql[0..len) (need not be NUL-terminated).  truncated: the
 * capture cut the text, so libpg_query's verdict would be about a different
 * statement.  Returns 0, or -ENOMEM (r is then untouched).
 */
int fp_cache__lookup(struct fp_cache *c, const char *sql, size_t len,
		     bool truncated, struct fp_result *r);

void fp_cache__stats(const struct fp_cache *c, struct fp_stats *st);

/* 16 lower-case hex digits, as pg_query's fingerprint_str. */
void fp_format(uint64_t fp, char buf[17]);

#endif /* PQSNOOP_FINGERPRINT_H */
