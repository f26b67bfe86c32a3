/*
 * Fingerprints against libpg_query: the cache must return exactly
 * pg_query_fingerprint()'s value for every text libpg_query parses, never
 * merge what it keeps apart, and answer repeated shapes without parsing.
 */
#include <errno.h>
#include <pg_query.h>
#include <stdlib.h>

#include "fingerprint.h"
#include "sqlkey.h"
#include "sqllex.h"
#include "sqltext.h"
#include "unit.h"

/* --- the corpus ---------------------------------------------------------- */

/* What Django 3.2 + psycopg2 send for the demo blog (tests/demo/EXPECTED.md). */
static const char *const django[] = {
	"SET TIME ZONE 'UTC'",
	"SELECT \"blog_post\".\"id\", \"blog_post\".\"title\", \"blog_post\".\"body\", \"blog_post\".\"author_id\", \"blog_post\".\"category_id\", \"blog_post\".\"view_count\" FROM \"blog_post\" ORDER BY \"blog_post\".\"id\" ASC",
	"SELECT \"blog_author\".\"id\", \"blog_author\".\"name\" FROM \"blog_author\" WHERE \"blog_author\".\"id\" = 1 LIMIT 21",
	"SELECT \"blog_author\".\"id\", \"blog_author\".\"name\" FROM \"blog_author\" WHERE \"blog_author\".\"id\" = 7 LIMIT 21",
	"SELECT \"blog_category\".\"id\", \"blog_category\".\"name\" FROM \"blog_category\" WHERE \"blog_category\".\"id\" = 3 LIMIT 21",
	"SELECT \"blog_post\".\"id\", \"blog_post\".\"title\", \"blog_post\".\"body\", \"blog_post\".\"author_id\", \"blog_post\".\"category_id\", \"blog_post\".\"view_count\", \"blog_author\".\"id\", \"blog_author\".\"name\" FROM \"blog_post\" INNER JOIN \"blog_author\" ON (\"blog_post\".\"author_id\" = \"blog_author\".\"id\") ORDER BY \"blog_post\".\"id\" ASC",
	"SELECT \"blog_author\".\"id\", \"blog_author\".\"name\" FROM \"blog_author\" ORDER BY \"blog_author\".\"id\" ASC",
	"SELECT \"blog_post\".\"id\", \"blog_post\".\"title\" FROM \"blog_post\" WHERE \"blog_post\".\"author_id\" = 1",
	"SELECT \"blog_post\".\"id\", \"blog_post\".\"title\" FROM \"blog_post\" WHERE \"blog_post\".\"author_id\" IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)",
	"SELECT \"blog_post\".\"id\", \"blog_post\".\"title\" FROM \"blog_post\" WHERE \"blog_post\".\"author_id\" IN (4)",
	"SELECT \"blog_tag\".\"id\", \"blog_tag\".\"name\" FROM \"blog_tag\" INNER JOIN \"blog_post_tags\" ON (\"blog_tag\".\"id\" = \"blog_post_tags\".\"tag_id\") WHERE \"blog_post_tags\".\"post_id\" = 1",
	"SELECT (\"blog_post_tags\".\"post_id\") AS \"_prefetch_related_val_post_id\", \"blog_tag\".\"id\", \"blog_tag\".\"name\" FROM \"blog_tag\" INNER JOIN \"blog_post_tags\" ON (\"blog_tag\".\"id\" = \"blog_post_tags\".\"tag_id\") WHERE \"blog_post_tags\".\"post_id\" IN (1, 2, 3)",
	"SELECT COUNT(*) AS \"__count\" FROM \"blog_comment\" WHERE \"blog_comment\".\"post_id\" = 1",
	"SELECT \"blog_post\".\"id\", COUNT(\"blog_comment\".\"id\") AS \"n_comments\" FROM \"blog_post\" LEFT OUTER JOIN \"blog_comment\" ON (\"blog_post\".\"id\" = \"blog_comment\".\"post_id\") GROUP BY \"blog_post\".\"id\" ORDER BY \"blog_post\".\"id\" ASC",
	"SELECT \"blog_post\".\"id\" FROM \"blog_post\" ORDER BY \"blog_post\".\"id\" ASC",
	"INSERT INTO \"blog_visit\" (\"post_id\", \"created\") VALUES (1, '2026-11-26T11:48:21.506013+00:00'::timestamptz) RETURNING \"blog_visit\".\"id\"",
	"INSERT INTO \"blog_visit\" (\"post_id\", \"created\") VALUES (1, '2026-11-26T11:48:21.5+00:00'::timestamptz), (2, '2026-11-26T11:48:21.6+00:00'::timestamptz) RETURNING \"blog_visit\".\"id\"",
	"INSERT INTO \"blog_visit\" (\"post_id\", \"created\") VALUES (1, '2026-11-26T11:48:21.5+00:00'::timestamptz), (2, '2026-11-26T11:48:21.6+00:00'::timestamptz), (3, '2026-11-26T11:48:21.7+00:00'::timestamptz) RETURNING \"blog_visit\".\"id\"",
	"BEGIN",
	"COMMIT",
	"UPDATE \"blog_post\" SET \"view_count\" = 1 WHERE \"blog_post\".\"id\" = 1",
	"UPDATE \"blog_post\" SET \"view_count\" = (\"blog_post\".\"view_count\" + 1)",
	"SELECT (1) AS \"a\" FROM \"blog_comment\" WHERE \"blog_comment\".\"post_id\" = 1 LIMIT 1",
	"SELECT 1 AS \"a\" FROM \"blog_comment\" WHERE \"blog_comment\".\"post_id\" = 1 LIMIT 1",
	"SELECT \"blog_post\".\"id\", EXISTS(SELECT (1) AS \"a\" FROM \"blog_comment\" U0 WHERE U0.\"post_id\" = \"blog_post\".\"id\" LIMIT 1) AS \"has_comments\" FROM \"blog_post\" ORDER BY \"blog_post\".\"id\" ASC",
	"SELECT \"blog_sitesettings\".\"id\", \"blog_sitesettings\".\"site_name\" FROM \"blog_sitesettings\" WHERE \"blog_sitesettings\".\"id\" = 1 LIMIT 21",
	"SELECT \"blog_post\".\"id\" FROM \"blog_post\" WHERE (\"blog_post\".\"title\"::text LIKE '%dj\\_ango%' AND \"blog_post\".\"view_count\" > 10) ORDER BY \"blog_post\".\"id\" DESC LIMIT 20 OFFSET 40",
	"SELECT \"django_session\".\"session_key\", \"django_session\".\"session_data\", \"django_session\".\"expire_date\" FROM \"django_session\" WHERE (\"django_session\".\"expire_date\" > '2026-11-26T11:48:21.506013+00:00'::timestamptz AND \"django_session\".\"session_key\" = 'x7kq2') LIMIT 21",
	"SAVEPOINT \"s140234_x1\"",
	"RELEASE SAVEPOINT \"s140234_x1\"",
	"ROLLBACK TO SAVEPOINT \"s140234_x2\"",
	"DECLARE \"_django_curs_140234_sync_1\" NO SCROLL CURSOR WITH HOLD FOR SELECT \"blog_post\".\"id\" FROM \"blog_post\" WHERE \"blog_post\".\"id\" > 5",
	"DECLARE \"_django_curs_140234_sync_2\" NO SCROLL CURSOR WITH HOLD FOR SELECT \"blog_post\".\"id\" FROM \"blog_post\" WHERE \"blog_post\".\"id\" > 9",
	"FETCH FORWARD 2000 FROM \"_django_curs_140234_sync_1\"",
	"FETCH FORWARD 2000 FROM \"_django_curs_140234_sync_2\"",
	"FETCH FORWARD 100 FROM \"_django_curs_140234_sync_2\"",
	"CLOSE \"_django_curs_140234_sync_1\"",
	"SELECT \"blog_post\".\"id\" FROM \"blog_post\" WHERE \"blog_post\".\"id\" = ANY(ARRAY[1, 2, 3])",
	"SELECT \"blog_post\".\"id\" FROM \"blog_post\" WHERE \"blog_post\".\"id\" = ANY(ARRAY[5])",
	"SELECT \"blog_post\".\"id\" FROM \"blog_post\" WHERE \"blog_post\".\"published\" = true",
	"SELECT \"blog_post\".\"id\" FROM \"blog_post\" WHERE \"blog_post\".\"published\" = false",
	"SELECT \"blog_post\".\"id\" FROM \"blog_post\" WHERE \"blog_post\".\"published\" IS NULL",
	"SELECT \"blog_post\".\"id\" FROM \"blog_post\" WHERE \"blog_post\".\"published\" IS NOT NULL",
	"SELECT \"blog_post\".\"id\" FROM \"blog_post\" WHERE \"blog_post\".\"published\" IS TRUE",
	NULL,
};

/* Constants of every kind, and things that look like them. */
static const char *const tricky[] = {
	"SELECT a FROM t WHERE x = 1",
	"SELECT a FROM t WHERE x = -1",
	"SELECT a FROM t WHERE x = - 1",
	"SELECT a FROM t WHERE x = 1e10",
	"SELECT a FROM t WHERE x = 1.5e-3",
	"SELECT a FROM t WHERE x = .5",
	"SELECT a FROM t WHERE x = 5.",
	"SELECT a FROM t WHERE x = 1.e5",
	"SELECT a FROM t WHERE x = 99999999999999999999999999",
	"SELECT a FROM t WHERE x = 'abc'",
	"SELECT a FROM t WHERE x = 'it''s'",
	"SELECT a FROM t WHERE x = ''",
	"SELECT a FROM t WHERE x = 'a\\'",
	"SELECT a FROM t WHERE x = E'a\\'b'",
	"SELECT a FROM t WHERE x = e'tab\\there'",
	"SELECT a FROM t WHERE x = E'\\x41'",
	"SELECT a FROM t WHERE x = E'\\xff'",
	"SELECT a FROM t WHERE x = E'\\u0041'",
	"SELECT a FROM t WHERE x = E'\\ud800'",
	"SELECT a FROM t WHERE x = U&'d\\0061t'",
	"SELECT a FROM t WHERE x = U&'d!0061t' UESCAPE '!'",
	"SELECT a FROM t WHERE x = U&'\\d800'",
	"SELECT a FROM t WHERE x = N'abc'",
	"SELECT a FROM t WHERE x = $$abc$$",
	"SELECT a FROM t WHERE x = $$it's$$",
	"SELECT a FROM t WHERE x = $tag$ab$$c$tag$",
	"SELECT a FROM t WHERE x = $tag$ab$ta$tag$",
	"SELECT a FROM t WHERE x = $a$b$a$",
	"SELECT a FROM t WHERE x = x'ff'",
	"SELECT a FROM t WHERE x = X'zz'",
	"SELECT a FROM t WHERE x = B'101'",
	"SELECT a FROM t WHERE x = b'12'",
	"SELECT a FROM t WHERE x = true",
	"SELECT a FROM t WHERE x = FALSE",
	"SELECT a FROM t WHERE x = NULL",
	"SELECT a FROM t WHERE x = $1",
	"SELECT a FROM t WHERE x = $2",
	"SELECT a FROM t WHERE x = $99999999999",
	"SELECT a FROM t WHERE x = '1'::int",
	"SELECT a FROM t WHERE x = '1'::text",
	"SELECT a FROM t WHERE x = CAST('1' AS int)",
	"SELECT a FROM t WHERE x = 1::float(10)",
	"SELECT a FROM t WHERE x = 1::float(30)",
	"SELECT a::varchar(10) FROM t",
	"SELECT a::varchar(20) FROM t",
	"SELECT x::timestamp(3) FROM t",
	"SELECT x::timestamp(6) FROM t",
	"SELECT a FROM t WHERE x = interval '1 day'",
	"SELECT a FROM t WHERE x = interval '2 days'",
	"SELECT a FROM t WHERE x = INTERVAL '1' DAY",
	"SELECT a FROM t WHERE x = INTERVAL 1 DAY",
	"SELECT a FROM t WHERE x = date '2020-01-01'",
	"SELECT a FROM t WHERE x = date 2020",
	"SELECT a FROM t WHERE x = 1 /* c */",
	"SELECT a FROM t WHERE x = 1 /* outer /* nested */ still */",
	"SELECT a FROM t WHERE x = 1 /* unterminated",
	"SELECT a FROM t WHERE x = 1 -- c",
	"SELECT a FROM t WHERE x = 1 --",
	"SELECT a FROM t WHERE x = 1--c\n AND y = 2",
	"SELECT a FROM t WHERE x = 1 AND y = 2",
	"SELECT a FROM t WHERE x =-1",
	"SELECT a FROM t WHERE x=1",
	"select a from t where x = 1",
	"SELECT a FROM T WHERE X = 1",
	"SELECT\ta\nFROM t\r\nWHERE x = 1",
	"SELECT a FROM t WHERE x = 1\v",
	"SELECT a FROM t WHERE x IN (1,2,3)",
	"SELECT a FROM t WHERE x IN (4)",
	"SELECT a FROM t WHERE x IN ('a', 'b')",
	"SELECT a FROM t WHERE x IN ($1, $2)",
	"SELECT a FROM t WHERE x IN ($1, 2)",
	"SELECT a FROM t WHERE x IN (-1, 2)",
	"SELECT a FROM t WHERE x IN (1, y)",
	"SELECT a FROM t WHERE x IN (y, 1)",
	"SELECT a FROM t WHERE x IN (y, y)",
	"SELECT a FROM t WHERE x NOT IN (1, 2)",
	"SELECT a FROM t WHERE x IN (SELECT 1)",
	"SELECT a FROM t WHERE (x, y) IN ((1, 2), (3, 4), (5, 6))",
	"SELECT a FROM t WHERE (x, y) IN ((1, 2))",
	"SELECT a FROM t WHERE (x, y) IN ((1, 2), (3))",
	"SELECT a FROM t WHERE x IN ('a'::uuid, 'b'::uuid)",
	"SELECT a FROM t WHERE x IN ('a'::uuid)",
	"SELECT a FROM t WHERE x IN ('a'::uuid, 'b'::text, 3)",
	"SELECT a FROM t WHERE x IN ('a'::uuid, y)",
	"SELECT a FROM t WHERE x IN ('a'::int[], '{1}'::int[])",
	"SELECT a FROM t WHERE x IN (1, 2) AND y IN (3)",
	"SELECT a FROM t WHERE x IN (1) AND y IN (3, 4)",
	"SELECT ARRAY[1,2]",
	"SELECT ARRAY[1,2,3]",
	"SELECT ARRAY['a']",
	"SELECT ARRAY[]::int[]",
	"SELECT ARRAY[[1,2],[3,4]]",
	"SELECT ARRAY[[1,2]]",
	"SELECT ARRAY[x, x]",
	"SELECT ARRAY[x]",
	"SELECT a[1] FROM t",
	"SELECT a[1:2] FROM t",
	"INSERT INTO t (a) VALUES (1)",
	"INSERT INTO t (a) VALUES (1), (2)",
	"INSERT INTO t (a) VALUES (1),(2) ,  (3)",
	"INSERT INTO t (a, b) VALUES (1, now()), (2, now())",
	"INSERT INTO t (a, b) VALUES (1, now())",
	"INSERT INTO t (a, b) VALUES (1, 2), (3, now())",
	"INSERT INTO t VALUES (ARRAY[[1,2],[3,4]]), (ARRAY[[1,2],[3,4]])",
	"INSERT INTO t VALUES (ARRAY[[1,2]])",
	"SELECT * FROM (VALUES (1), (2)) v",
	"SELECT * FROM (VALUES (1)) v",
	"SELECT f(1, 2)",
	"SELECT f(1)",
	"SELECT -1::int",
	"SELECT 1::int",
	"SELECT 1",
	"SELECT 2",
	"SELECT 1 x1F",
	"SELECT 0x1F",
	"SELECT 1_000",
	"SELECT 1e",
	"SELECT 1e+",
	"SELECT 1..2",
	"SELECT $1a",
	"SELECT 'a'\n'b'",
	"SELECT 'a' 'b'",
	"SELECT 'a' -- c\n'b'",
	"SELECT 'a' /* c */\n'b'",
	"SELECT 'a'\n\n  'b'",
	"SELECT 'unterminated",
	"SELECT \"unterminated",
	"SELECT $$unterminated",
	"SELECT \"\"",
	"SELECT \"a\"\"b\" FROM t",
	"SELECT x$$a$$",
	"SELECT a . b FROM t",
	"SELECT a.b FROM t",
	"SELECT a FROM t WHERE x ? 'k'",
	"SELECT a FROM t WHERE x ?| ARRAY['k']",
	"SELECT a FROM t WHERE x @> '{\"a\": 1}'",
	"SELECT a FROM t WHERE x->>'k' = 'v'",
	"SELECT a FROM t WHERE x LIKE 'a%' ESCAPE '!'",
	"SELECT extract(year from x) FROM t",
	"SELECT extract(month from x) FROM t",
	"SELECT date_trunc('day', x) FROM t",
	"SELECT a FROM t ORDER BY 1",
	"SELECT a FROM t ORDER BY 2",
	"SELECT a FROM t LIMIT 21",
	"SELECT a FROM t LIMIT 1",
	"SELECT a FROM t FETCH FIRST 5 ROWS ONLY",
	"SELECT a FROM t FETCH FIRST + 5 ROWS ONLY",
	"SELECT a FROM t FETCH FIRST + 'a' ROWS ONLY",
	"SELECT a FROM t WHERE x = 1; SELECT 2",
	"SELECT a FROM t WHERE x = 3; SELECT 4",
	"SELECT 1; ALTER USER u PASSWORD 'a'",
	"SELECT 1; ALTER USER u PASSWORD 'b'",
	"SET x = 1",
	"SET x = 2",
	"SET TIME ZONE 'Europe/Paris'",
	"SET search_path TO 'a', 'b'",
	"SHOW TimeZone",
	"FETCH NEXT FROM c1",
	"FETCH NEXT FROM c2",
	"FETCH c1",
	"MOVE FORWARD 5 IN c1",
	"CLOSE ALL",
	"CLOSE c",
	"SAVEPOINT savepoint",
	"ALTER USER u PASSWORD 'a'",
	"ALTER USER u PASSWORD 'b'",
	"CREATE ROLE r PASSWORD 'a'",
	"NOTIFY c, 'x'",
	"NOTIFY c, 'y'",
	"COPY t FROM '/tmp/a'",
	"COPY t FROM '/tmp/b'",
	"CREATE TABLE t (a varchar(10))",
	"CREATE TABLE t (a varchar(20))",
	"PREPARE TRANSACTION 'a'",
	"COMMIT PREPARED 'a'",
	"COMMIT PREPARED 'b'",
	"DO $$ BEGIN END $$",
	"EXPLAIN (FORMAT JSON) SELECT 1",
	"EXPLAIN (FORMAT TEXT) SELECT 1",
	"WITH x AS (SELECT 1 AS a) SELECT a FROM x WHERE a = 2",
	"WITH x AS (SELECT 3 AS a) SELECT a FROM x WHERE a = 4",
	"(SELECT 1) UNION (SELECT 2)",
	"TABLE t",
	"VALUES (1, 'a'), (2, 'b')",
	"SELECT a FROM t WHERE x = 'caf\xc3\xa9'",
	"SELECT a FROM t WHERE x = '\xff\xfe'",
	"SELECT a FROM t WHERE x = 'esc\x1b[31mred'",
	"SELECT \"caf\xc3\xa9\" FROM t",
	"SELECT caf\xc3\xa9 FROM t",
	"SELECT a FROM t WHERE x = '\x01i'",
	"SELECT a FROM t WHERE x = \"\x01i\"",
	"SELECT a FROM t WHERE x = 1 \x01",
	"",
	"   ",
	"-- only a comment",
	";",
	";;SELECT 1",
	"SELECT 1;",
	NULL,
};

/* --- helpers ------------------------------------------------------------- */

struct pg {
	bool ok;
	uint64_t fp;
};

static struct pg pg_fp(const char *s)
{
	PgQueryFingerprintResult r = pg_query_fingerprint(s);
	struct pg p = { .ok = !r.error, .fp = r.fingerprint };

	pg_query_free_fingerprint_result(r);
	return p;
}

static int mismatches;

/* The cache's answer agrees with libpg_query's: same fp when it parses,
 * a lexical one when it does not. */
static void check_one(struct fp_cache *c, const char *s, size_t n)
{
	struct fp_result r;
	char *z = strndup(s, n);
	struct pg p;

	if (!z) {
		CHECK(0);
		return;
	}
	p = memchr(s, '\0', n) ? (struct pg){ 0 } : pg_fp(z);
	CHECK_INT(fp_cache__lookup(c, s, n, false, &r), 0);
	if (p.ok != r.parsed || (p.ok && p.fp != r.fp)) {
		if (mismatches++ < 20)
			fprintf(stderr, "  mismatch: pg %s %016llx, cache %s %016llx: [%s]\n",
				p.ok ? "ok" : "error", (unsigned long long)p.fp,
				r.parsed ? "ok" : "lexical", (unsigned long long)r.fp, z);
		CHECK(0);
	}
	CHECK(r.norm != NULL);
	free(z);
}

static void run_list(struct fp_cache *c, const char *const *list, bool reverse)
{
	size_t n = 0;

	while (list[n])
		n++;
	for (size_t i = 0; i < n; i++) {
		const char *s = list[reverse ? n - 1 - i : i];

		check_one(c, s, strlen(s));
	}
}

/* --- tests --------------------------------------------------------------- */

static void test_corpus_matches_libpg_query(void)
{
	/* forward, backward and again (warm): every order of first sightings */
	for (int round = 0; round < 3; round++) {
		struct fp_cache *c = fp_cache__new(0);

		run_list(c, django, round == 1);
		run_list(c, tricky, round == 1);
		run_list(c, tricky, round != 1);
		run_list(c, django, false);
		fp_cache__free(c);
	}
}

static uint64_t fp_of(struct fp_cache *c, const char *s)
{
	struct fp_result r;

	if (fp_cache__lookup(c, s, strlen(s), false, &r))
		return 0;
	return r.fp;
}

static void test_same_and_different(void)
{
	struct fp_cache *c = fp_cache__new(0);

	/* different constants of every kind: one fingerprint */
	static const char *const same[] = {
		"SELECT a FROM t WHERE x = 1", "SELECT a FROM t WHERE x = -1",
		"SELECT a FROM t WHERE x = 1e10", "SELECT a FROM t WHERE x = 'abc'",
		"SELECT a FROM t WHERE x = E'a\\'b'", "SELECT a FROM t WHERE x = $$a$$",
		"SELECT a FROM t WHERE x = $tag$a$$b$tag$", "SELECT a FROM t WHERE x = 'it''s'",
		"SELECT a FROM t WHERE x = x'ff'", "SELECT a FROM t WHERE x = B'101'",
		"SELECT a FROM t WHERE x = true", "SELECT a FROM t WHERE x = $1",
		"SELECT a FROM t WHERE x = '1'::int", "SELECT a FROM t WHERE x IN (1, 2, 3)",
		"SELECT a FROM t WHERE x IN (4)", "select a  from t /* hi */ where x = 1 -- c",
		NULL,
	};
	uint64_t base = fp_of(c, same[0]);

	for (int i = 1; same[i]; i++) {
		if (fp_of(c, same[i]) != base)
			fprintf(stderr, "  not the same: %s\n", same[i]);
		CHECK(fp_of(c, same[i]) == base);
	}
	/* anything else: another fingerprint */
	CHECK(fp_of(c, "SELECT a FROM t WHERE x IS TRUE") != base);
	CHECK(fp_of(c, "SELECT a FROM t WHERE y = 1") != base);
	CHECK(fp_of(c, "SELECT a FROM u WHERE x = 1") != base);
	CHECK(fp_of(c, "SELECT a FROM t WHERE x > 1") != base);
	CHECK(fp_of(c, "SELECT a FROM t WHERE x = 1 AND y = 2") != base);
	CHECK(fp_of(c, "SELECT a FROM t WHERE x IS NULL") != base);
	CHECK(fp_of(c, "SELECT a FROM t WHERE x IN (1, y)") != base);
	CHECK(fp_of(c, "FETCH FORWARD 2000 FROM c") != fp_of(c, "FETCH FORWARD 100 FROM c"));
	CHECK(fp_of(c, "NOTIFY c, 'x'") != fp_of(c, "NOTIFY c, 'y'"));
	/* names libpg_query ignores */
	CHECK(fp_of(c, "SAVEPOINT \"s1_x1\"") == fp_of(c, "SAVEPOINT \"s1_x2\""));
	CHECK(fp_of(c, "FETCH FORWARD 2000 FROM \"c1\"") == fp_of(c, "FETCH FORWARD 2000 FROM \"c2\""));
	fp_cache__free(c);
}

static void test_repeated_shapes_do_not_parse(void)
{
	struct fp_cache *c = fp_cache__new(0);
	struct fp_stats st;
	char sql[512];

	for (int i = 0; i < 1000; i++) {
		snprintf(sql, sizeof(sql),
			 "SELECT \"blog_author\".\"id\", \"blog_author\".\"name\" FROM \"blog_author\" "
			 "WHERE \"blog_author\".\"id\" = %d AND \"blog_author\".\"name\" = 'n''%d' LIMIT 21", i, i * 7);
		check_one(c, sql, strlen(sql));
		snprintf(sql, sizeof(sql),
			 "SAVEPOINT \"s1403_x%d\"", i);
		check_one(c, sql, strlen(sql));
		snprintf(sql, sizeof(sql),
			 "SELECT \"blog_post\".\"id\" FROM \"blog_post\" WHERE \"blog_post\".\"author_id\" IN (%d, %d%s)",
			 i, i + 1, i % 2 ? ", 5, 6, 7" : "");
		check_one(c, sql, strlen(sql));
	}
	fp_cache__stats(c, &st);
	/* 3 shapes: the first parse of each and FP_VERIFY double-checks; the
	 * check_one() comparisons parse with libpg_query directly */
	CHECK_INT(st.lookups, 3000);
	CHECK_INT(st.parses, 3 * (1 + FP_VERIFY));
	CHECK_INT(st.mismatches, 0);
	CHECK_INT(st.entries, 3);
	fp_cache__free(c);
}

static void test_values_key(void)
{
	struct fp_cache *c = fp_cache__new(0);
	struct fp_result a, b, d, e, p;
	const char *s1 = "SELECT a FROM t WHERE x = 7 LIMIT 21";
	const char *s2 = "SELECT  a FROM t /* retry */ WHERE x = 7\n LIMIT 21";
	const char *s3 = "SELECT a FROM t WHERE x = 8 LIMIT 21";
	const char *s4 = "SELECT a FROM t WHERE x = '7' LIMIT 21";
	const char *s5 = "SELECT a FROM t WHERE x = $1 LIMIT 21";

	fp_cache__lookup(c, s1, strlen(s1), false, &a);
	fp_cache__lookup(c, s2, strlen(s2), false, &b);
	fp_cache__lookup(c, s3, strlen(s3), false, &d);
	fp_cache__lookup(c, s4, strlen(s4), false, &e);
	fp_cache__lookup(c, s5, strlen(s5), false, &p);
	CHECK(a.fp == b.fp && a.fp == d.fp && a.fp == e.fp && a.fp == p.fp);
	CHECK(a.values == b.values);	/* whitespace and comments do not count */
	CHECK(a.values != d.values);
	CHECK(a.values != e.values);	/* 7 and '7' are different constants */
	CHECK(a.values_known && !p.values_known);
	fp_cache__free(c);
}

static void test_normalized_text(void)
{
	struct fp_cache *c = fp_cache__new(0);
	struct fp_result r;
	const char *s = "SELECT \"blog_author\".\"id\", \"blog_author\".\"name\" FROM \"blog_author\" "
			"WHERE \"blog_author\".\"id\" = 7 LIMIT 21 /* user=alice@example.com */";
	const char *f = "FETCH FORWARD 2000 FROM \"_django_curs_1\"";
	const char *n = "NOTIFY chan, 'secret payload'";

	CHECK_INT(fp_cache__lookup(c, s, strlen(s), false, &r), 0);
	CHECK_STR(r.norm->s, "SELECT \"blog_author\".\"id\", \"blog_author\".\"name\" FROM \"blog_author\" "
		  "WHERE \"blog_author\".\"id\" = $1 LIMIT $2");
	CHECK(r.parsed);
	CHECK_INT(r.cls, STMT_WORK);
	CHECK_INT(fp_cache__lookup(c, f, strlen(f), false, &r), 0);
	CHECK_STR(r.norm->s, f);
	CHECK_INT(r.cls, STMT_CURSOR);
	/* strings libpg_query keeps are still data: not shown */
	CHECK_INT(fp_cache__lookup(c, n, strlen(n), false, &r), 0);
	CHECK_STR(r.norm->s, "NOTIFY chan, $1");
	fp_cache__free(c);
}

static void test_truncated(void)
{
	struct fp_cache *c = fp_cache__new(0);
	struct fp_result a, b, d;
	/* the same statement cut at three places of its IN list */
	const char *s = "SELECT \"t\".\"id\" FROM \"t\" WHERE \"t\".\"id\" IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)";
	size_t cut1 = strstr(s, "4, 5") - s + 1, cut2 = strstr(s, "10") - s + 1;

	CHECK_INT(fp_cache__lookup(c, s, cut1, true, &a), 0);
	CHECK_INT(fp_cache__lookup(c, s, cut2, true, &b), 0);
	CHECK_INT(fp_cache__lookup(c, s, strstr(s, "8,") - s + 2, true, &d), 0);
	CHECK(!a.parsed && !b.parsed && !d.parsed);
	CHECK(a.fp == b.fp && a.fp == d.fp);
	CHECK(a.fp != fp_of(c, s));	/* never merged with a complete text */
	CHECK_STR(a.norm->s, "SELECT \"t\".\"id\" FROM \"t\" WHERE \"t\".\"id\" IN ($1, $2, $3, ...");
	/* a cut string literal is not shown either */
	const char *q = "SELECT a FROM t WHERE name = 'Alice Smi";

	CHECK_INT(fp_cache__lookup(c, q, strlen(q), true, &a), 0);
	CHECK_STR(a.norm->s, "SELECT a FROM t WHERE name = ...");
	fp_cache__free(c);
}

static void test_classify(void)
{
	static const struct { const char *sql; enum stmt_class cls; } cases[] = {
		{ "BEGIN", STMT_TXN }, { "commit", STMT_TXN }, { "ROLLBACK", STMT_TXN },
		{ "SAVEPOINT \"s1\"", STMT_TXN }, { "RELEASE SAVEPOINT \"s1\"", STMT_TXN },
		{ "ROLLBACK TO SAVEPOINT \"s1\"", STMT_TXN }, { "START TRANSACTION", STMT_TXN },
		{ "PREPARE TRANSACTION 'x'", STMT_TXN },
		{ "SET TIME ZONE 'UTC'", STMT_SESSION }, { "SHOW server_version", STMT_SESSION },
		{ "RESET ALL", STMT_SESSION }, { "DISCARD ALL", STMT_SESSION },
		{ "SELECT 1", STMT_SESSION }, { "select (1) as ping", STMT_SESSION },
		{ "SELECT set_config('TimeZone', 'UTC', false)", STMT_SESSION },
		{ "SELECT pg_catalog.set_config('search_path', '', false)", STMT_SESSION },
		{ "SELECT version()", STMT_SESSION },
		{ "SELECT t.oid, typarray FROM pg_type t JOIN pg_namespace ns ON typnamespace = ns.oid WHERE typname = 'hstore'", STMT_SESSION },
		{ "SELECT oid FROM pg_catalog.pg_type WHERE typname = 'citext'", STMT_SESSION },
		{ "FETCH FORWARD 2000 FROM \"c\"", STMT_CURSOR }, { "CLOSE \"c\"", STMT_CURSOR },
		{ "MOVE 5 IN c", STMT_CURSOR },
		{ "", STMT_EMPTY }, { " ; ", STMT_EMPTY },
		{ "SELECT now()", STMT_WORK }, { "SELECT nextval('s')", STMT_WORK },
		{ "SELECT (1) AS \"a\" FROM \"blog_comment\" WHERE \"blog_comment\".\"post_id\" = 1 LIMIT 1", STMT_WORK },
		{ "SELECT * FROM pg_type t JOIN \"blog_post\" p ON true", STMT_WORK },
		{ "SELECT * FROM (SELECT 1) x", STMT_WORK },
		{ "DECLARE c CURSOR FOR SELECT 1", STMT_WORK },
		{ "INSERT INTO t VALUES (1)", STMT_WORK }, { "CREATE TABLE t (a int)", STMT_WORK },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum stmt_class got = sql_classify(cases[i].sql, strlen(cases[i].sql));

		if (got != cases[i].cls)
			fprintf(stderr, "  %s: %s, expected %s\n", cases[i].sql,
				stmt_class_name(got), stmt_class_name(cases[i].cls));
		CHECK_INT(got, cases[i].cls);
	}
}

static void test_render(void)
{
	char *r;

	r = sql_render("SELECT  a /* x */ FROM t WHERE b = 'x' AND c = 3 AND d = $2", 59,
		       SQL_RENDER_CONSTANTS, NULL);
	CHECK_STR(r, "SELECT a FROM t WHERE b = $3 AND c = $4 AND d = $2");
	free(r);
	r = sql_render("SELECT a::varchar(10) FROM t WHERE b = 'x'", 42, SQL_RENDER_STRINGS, NULL);
	CHECK_STR(r, "SELECT a::varchar(10) FROM t WHERE b = $1");
	free(r);
	r = sql_render("", 0, SQL_RENDER_CONSTANTS | SQL_RENDER_TRUNCATED, NULL);
	CHECK_STR(r, "...");
	free(r);
}

static void test_cache_reset_keeps_answers(void)
{
	struct fp_cache *c = fp_cache__new(8);	/* tiny: resets all the time */
	struct fp_stats st;

	for (int i = 0; i < 3; i++) {
		run_list(c, django, false);
		run_list(c, tricky, true);
	}
	fp_cache__stats(c, &st);
	CHECK(st.resets > 10);
	CHECK(st.entries <= 8);
	fp_cache__free(c);
}

static void test_key_placeholders_cannot_be_forged(void)
{
	struct sql_key a, b;
	const char *s1 = "SELECT a FROM t WHERE x = 1";
	const char *s2 = "SELECT a FROM t WHERE x = \x01i";

	sql_key_init(&a);
	sql_key_init(&b);
	CHECK_INT(sql_key_build(&a, s1, strlen(s1), SQL_KEY_SHAPE), 0);
	CHECK_INT(sql_key_build(&b, s2, strlen(s2), SQL_KEY_SHAPE), 0);
	CHECK(a.len != b.len || memcmp(a.buf, b.buf, a.len) != 0);
	sql_key_release(&a);
	sql_key_release(&b);
}

/*
 * Mutations of the corpus (bytes inserted, deleted, replaced, duplicated
 * from the "interesting" alphabet) must still agree with libpg_query.
 * Deterministic: a fixed-seed generator.
 */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

/* PQSNOOP_FUZZ=iterations[,seed] runs the fuzzers longer (by hand) */
static int fuzz_iters(void)
{
	const char *e = getenv("PQSNOOP_FUZZ");
	int n = e ? atoi(e) : 0;

	if (e && strchr(e, ','))
		rng ^= strtoull(strchr(e, ',') + 1, NULL, 10) * 0x2545f4914f6cdd1dULL;
	return n > 0 ? n : 20000;
}

static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static void test_mutations_match_libpg_query(void)
{
	static const char alphabet[] = "'\"$1.e-+/*\n ()[],;:xEBNU&\\\x01\xff?" "0aIN";
	struct fp_cache *c = fp_cache__new(512);
	const char *const *lists[] = { django, tricky };
	struct fp_stats st;
	char buf[1024];

	int iters = fuzz_iters();

	for (int iter = 0; iter < iters; iter++) {
		const char *const *list = lists[rnd(2)];
		size_t n = 0, len;

		while (list[n])
			n++;
		const char *src = list[rnd(n)];

		len = strlen(src);
		if (len >= sizeof(buf) - 16)
			continue;
		memcpy(buf, src, len);
		for (int m = rnd(3) + 1; m > 0; m--) {
			size_t pos = len ? rnd(len + 1) : 0;
			char ch = alphabet[rnd(sizeof(alphabet) - 1)];

			switch (rnd(3)) {
			case 0:	/* insert */
				if (len + 1 >= sizeof(buf))
					break;
				memmove(buf + pos + 1, buf + pos, len - pos);
				buf[pos] = ch;
				len++;
				break;
			case 1:	/* delete */
				if (pos < len) {
					memmove(buf + pos, buf + pos + 1, len - pos - 1);
					len--;
				}
				break;
			default:	/* replace */
				if (pos < len)
					buf[pos] = ch;
				break;
			}
		}
		check_one(c, buf, len);
		/* and a sibling with other constants, through the warm shape */
		for (size_t i = 0; i < len; i++)
			if (buf[i] >= '1' && buf[i] <= '8')
				buf[i]++;
		check_one(c, buf, len);
	}
	fp_cache__stats(c, &st);
	/* the point: most texts took the fast path (a parse only per shape) */
	printf("mutations: %llu lookups, %llu hits, %llu parses, %llu unparsed, %llu exact shapes, %llu mismatches\n",
	       (unsigned long long)st.lookups, (unsigned long long)st.hits,
	       (unsigned long long)st.parses, (unsigned long long)st.unparsed,
	       (unsigned long long)st.exact_shapes, (unsigned long long)st.mismatches);
	fp_cache__free(c);
}

/*
 * Valid variations: every constant of a corpus text replaced by another
 * kind of constant, comments and whitespace added between tokens.  These
 * take the fast path, which must still agree with libpg_query.
 */
static void test_constant_swaps_match_libpg_query(void)
{
	static const char *const pool[] = {
		"0", "42", "-7", "1.5", ".5", "1e10", "'x'", "'it''s'", "''", "E'a\\'b'",
		"E'\\x41'", "$$d$$", "$q$a$$b$q$", "N'n'", "B'101'", "X'ff'", "$1", "$3",
		"TRUE", "NULL", "'2020-01-01'::date", "U&'\\0041'", "1::float(10)",
		"(1)", "-1::int", "'a'\n'b'",
	};
	static const char *const extra[] = {
		"NOT", "IN", "(", ")", ",", "ARRAY[", "]", "VALUES", "NULLS", "FIRST",
		"WITH", "ORDINALITY", "UESCAPE", "'!'", "/* c */", "-- c\n", "::int",
		"1", "'x'", "$1", ";", "AND", "=", "-", "IS", "TRUE", "x", "\"q\"",
	};
	static const char *const gaps[] = { " ", "  ", "\n", " /* c */ ", " -- c\n", "\t", "" };
	struct fp_cache *c = fp_cache__new(0);
	const char *const *lists[] = { django, tricky };
	char buf[4096];
	struct fp_stats st;

	int iters = fuzz_iters();

	for (int iter = 0; iter < iters; iter++) {
		const char *const *list = lists[rnd(2)];
		size_t n = 0, len = 0;
		struct sql_lexer lx;
		struct sql_token t;
		bool swap_all = rnd(2);

		while (list[n])
			n++;
		const char *src = list[rnd(n)];

		sql_lexer_init(&lx, src, strlen(src));
		for (sql_lex(&lx, &t); t.type != SQL_EOF; sql_lex(&lx, &t)) {
			const char *w = t.s, *g = " ";
			size_t wl = t.len;

			if ((sql_tok_is_literal(&t) || t.type == SQL_PARAM) && (swap_all || rnd(2))) {
				w = pool[rnd(sizeof(pool) / sizeof(pool[0]))];
				wl = strlen(w);
			}
			if (t.flags & SQL_TF_GAP)
				g = gaps[rnd(sizeof(gaps) / sizeof(gaps[0]) - 1)];
			else if (!rnd(4))
				g = gaps[rnd(sizeof(gaps) / sizeof(gaps[0]))];
			else
				g = "";
			if (!rnd(40)) {	/* now and then a token out of place */
				const char *x = extra[rnd(sizeof(extra) / sizeof(extra[0]))];

				if (len + strlen(x) + 2 >= sizeof(buf))
					break;
				buf[len++] = ' ';
				memcpy(buf + len, x, strlen(x));
				len += strlen(x);
			}
			if (len + strlen(g) + wl + 1 >= sizeof(buf))
				break;
			memcpy(buf + len, g, strlen(g));
			len += strlen(g);
			memcpy(buf + len, w, wl);
			len += wl;
		}
		check_one(c, buf, len);
	}
	fp_cache__stats(c, &st);
	printf("constant swaps: %llu lookups, %llu hits, %llu parses, %llu unparsed, %llu exact shapes, %llu mismatches\n",
	       (unsigned long long)st.lookups, (unsigned long long)st.hits,
	       (unsigned long long)st.parses, (unsigned long long)st.unparsed,
	       (unsigned long long)st.exact_shapes, (unsigned long long)st.mismatches);
	fp_cache__free(c);
}

int main(void)
{
	RUN(test_corpus_matches_libpg_query);
	RUN(test_same_and_different);
	RUN(test_repeated_shapes_do_not_parse);
	RUN(test_values_key);
	RUN(test_normalized_text);
	RUN(test_truncated);
	RUN(test_classify);
	RUN(test_render);
	RUN(test_cache_reset_keeps_answers);
	RUN(test_key_placeholders_cannot_be_forged);
	RUN(test_mutations_match_libpg_query);
	RUN(test_constant_swaps_match_libpg_query);
	pg_query_exit();
	return unit_summary();
}
