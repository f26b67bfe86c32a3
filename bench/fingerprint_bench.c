/*
 * fingerprint_bench: the cost of a fingerprint per query, fast path
 * (fp_cache__lookup on a known shape) against a full libpg_query parse.
 *
 *   make build/libcore.a
 *   cc -O2 -D_GNU_SOURCE -Iuser bench/fingerprint_bench.c build/libcore.a \
 *      -lpg_query -lz -lm -o build/fingerprint_bench
 *   build/fingerprint_bench [rounds]
 *
 * The workload is the statements of the demo blog (tests/demo/EXPECTED.md)
 * with a different constant in every text, as an N+1 loop sends them.  Not
 * run by the tests: timing depends on the machine.
 */
#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "detect.h"
#include "fingerprint.h"
#include "sqlkey.h"

#define NTEXTS 4000
#define REPEAT 5

static const char *const shapes[] = {
	"SELECT \"blog_author\".\"id\", \"blog_author\".\"name\" FROM \"blog_author\" WHERE \"blog_author\".\"id\" = %d LIMIT 21",
	"SELECT \"blog_category\".\"id\", \"blog_category\".\"name\" FROM \"blog_category\" WHERE \"blog_category\".\"id\" = %d LIMIT 21",
	"SELECT \"blog_post\".\"id\", \"blog_post\".\"title\", \"blog_post\".\"body\", \"blog_post\".\"author_id\", \"blog_post\".\"category_id\", \"blog_post\".\"view_count\" FROM \"blog_post\" WHERE \"blog_post\".\"author_id\" = %d",
	"SELECT \"blog_tag\".\"id\", \"blog_tag\".\"name\" FROM \"blog_tag\" INNER JOIN \"blog_post_tags\" ON (\"blog_tag\".\"id\" = \"blog_post_tags\".\"tag_id\") WHERE \"blog_post_tags\".\"post_id\" = %d",
	"SELECT COUNT(*) AS \"__count\" FROM \"blog_comment\" WHERE \"blog_comment\".\"post_id\" = %d",
	"INSERT INTO \"blog_visit\" (\"post_id\", \"created\") VALUES (%d, '2026-11-26T11:48:21.506013+00:00'::timestamptz) RETURNING \"blog_visit\".\"id\"",
	"UPDATE \"blog_post\" SET \"view_count\" = %d WHERE \"blog_post\".\"id\" = 1",
	"SELECT (1) AS \"a\" FROM \"blog_comment\" WHERE \"blog_comment\".\"post_id\" = %d LIMIT 1",
};
#define NSHAPES (sizeof(shapes) / sizeof(shapes[0]))

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 20;
	static char *texts[NTEXTS];
	static size_t lens[NTEXTS];
	struct fp_cache *c = fp_cache__new(0);
	struct fp_result r;
	struct fp_stats st;
	struct sql_key k;
	size_t bytes = 0;
	uint64_t sink = 0;
	double t0, fast, keyonly, parse, norm;
	int n;

	if (!c || rounds <= 0)
		return 1;
	for (n = 0; n < NTEXTS; n++) {
		char buf[1024];

		snprintf(buf, sizeof(buf), shapes[n % NSHAPES], n * 7 + 1);
		texts[n] = strdup(buf);
		lens[n] = strlen(buf);
		bytes += lens[n];
	}

	/* warm: one parse (and the double-checks) per shape */
	for (n = 0; n < NTEXTS; n++)
		fp_cache__lookup(c, texts[n], lens[n], false, &r);

	/* the machine is shared: best of REPEAT runs of each measurement */
	fast = keyonly = parse = norm = 1e9;
	sql_key_init(&k);
	for (int rep = 0; rep < REPEAT; rep++) {
		double t;

		t0 = now();
		for (int i = 0; i < rounds; i++)
			for (n = 0; n < NTEXTS; n++) {
				fp_cache__lookup(c, texts[n], lens[n], false, &r);
				sink += r.fp ^ r.values;
			}
		t = (now() - t0) / ((double)rounds * NTEXTS);
		fast = t < fast ? t : fast;

		t0 = now();
		for (int i = 0; i < rounds; i++)
			for (n = 0; n < NTEXTS; n++) {
				sql_key_build(&k, texts[n], lens[n], SQL_KEY_SHAPE);
				sink += k.hash;
			}
		t = (now() - t0) / ((double)rounds * NTEXTS);
		keyonly = t < keyonly ? t : keyonly;

		/* a full parse is ~20x slower: fewer iterations */
		int slow = NTEXTS / 4;

		t0 = now();
		for (n = 0; n < slow; n++) {
			PgQueryFingerprintResult fr = pg_query_fingerprint(texts[n]);

			sink += fr.fingerprint;
			pg_query_free_fingerprint_result(fr);
		}
		t = (now() - t0) / slow;
		parse = t < parse ? t : parse;

		t0 = now();
		for (n = 0; n < slow; n++) {
			PgQueryNormalizeResult nr = pg_query_normalize(texts[n]);

			sink += nr.normalized_query ? (unsigned char)nr.normalized_query[0] : 0;
			pg_query_free_normalize_result(nr);
		}
		t = (now() - t0) / slow;
		norm = t < norm ? t : norm;
	}
	sql_key_release(&k);

	/* the whole detection path: fingerprint, unit, runs (N+1 loops of
	 * 100 queries after a parent, one thread) */
	double detect = 1e9;

	for (int rep = 0; rep < REPEAT; rep++) {
		struct detector *d = detector__new(NULL);
		uint64_t t = 1700000000ULL * 1000000000ULL;
		double t1;
		int nq = 0;

		t0 = now();
		for (int i = 0; i < rounds; i++)
			for (n = 0; n < NTEXTS; n++, nq++) {
				struct pq_query q = {
					.kind = PQ_KIND_QUERY, .pid = 1, .tid = 2, .start_ns = t,
					.duration_ns = 100000, .rows = 100, .sql = texts[n],
					.sql_len = lens[n], .sql_cap = lens[n],
				};

				/* the parent of each loop of 100 */
				if (n % 100 == 0)
					q.sql = "SELECT \"blog_post\".\"id\" FROM \"blog_post\"",
					q.sql_cap = q.sql_len = strlen(q.sql);
				detector__add(d, &q);
				t += 150000;
			}
		detector__finish(d);
		t1 = (now() - t0) / nq;
		detect = t1 < detect ? t1 : detect;
		detector__free(d);
	}

	fp_cache__stats(c, &st);
	printf("texts: %d (%zu shapes, %.0f bytes on average)\n", NTEXTS, NSHAPES,
	       (double)bytes / NTEXTS);
	printf("fp_cache__lookup, known shape:  %8.3f us/query\n", fast * 1e6);
	printf("  of which the shape key:       %8.3f us/query\n", keyonly * 1e6);
	printf("pg_query_fingerprint:           %8.3f us/query\n", parse * 1e6);
	printf("pg_query_normalize:             %8.3f us/query\n", norm * 1e6);
	printf("detector__add (all of it):      %8.3f us/query\n", detect * 1e6);
	printf("speed-up: %.0fx; cache: %llu lookups, %llu parses, %llu hits\n",
	       parse / fast, (unsigned long long)st.lookups,
	       (unsigned long long)st.parses, (unsigned long long)st.hits);
	for (n = 0; n < NTEXTS; n++)
		free(texts[n]);
	fp_cache__free(c);
	pg_query_exit();
	return sink == 42;	/* keep the work */
}
