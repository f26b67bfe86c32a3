/*
 * Reports: the text and JSON reports checked whole against golden copies,
 * the live printer, values kept out unless asked, hostile SQL escaped.
 */
#include <stdlib.h>

#include "detect.h"
#include "report.h"
#include "unit.h"

#define US 1000ULL
#define MS (1000 * US)
#define SEC (1000 * MS)
#define T0 (1700000000ULL * SEC)

#define POSTS "SELECT \"blog_post\".\"id\", \"blog_post\".\"title\", \"blog_post\".\"author_id\" " \
	"FROM \"blog_post\" ORDER BY \"blog_post\".\"id\" ASC"
#define AUTHOR "SELECT \"blog_author\".\"id\", \"blog_author\".\"name\" FROM \"blog_author\" " \
	"WHERE \"blog_author\".\"id\" = %d LIMIT 21"
#define SETTINGS "SELECT \"blog_sitesettings\".\"id\" FROM \"blog_sitesettings\" " \
	"WHERE \"blog_sitesettings\".\"id\" = 1 LIMIT 21"

static uint64_t now;

static void send(struct detector *d, uint32_t tid, const char *sql, uint64_t dur, int64_t rows)
{
	struct pq_query q = {
		.kind = PQ_KIND_QUERY, .pid = 4242, .tid = tid, .conn = 0x5000,
		.start_ns = now, .duration_ns = dur, .rows = rows, .sql = sql,
		.sql_len = strlen(sql), .sql_cap = strlen(sql),
	};

	CHECK_INT(detector__add(d, &q), 0);
	now += dur + 80 * US;
}

#define sendf(d, tid, fmt, v, dur) do { \
	char _b[512]; \
	snprintf(_b, sizeof(_b), fmt, (int)(v)); \
	send((d), (tid), _b, (dur), 1); \
	} while (0)

static struct unit_buf live;

static void on_finding(const struct finding *f, void *ctx)
{
	report_live(live.f, f, ctx);
}

/* 3 requests of an N+1 page, a request with a duplicate, another thread. */
static struct detector *scenario(bool keep_examples, struct report_opts *ro)
{
	struct detect_opts o = { .keep_examples = keep_examples, .on_finding = on_finding, .ctx = ro };
	struct detector *d = detector__new(&o);

	now = T0;
	for (int r = 0; r < 3; r++) {
		send(d, 4243, "SET TIME ZONE 'UTC'", 50 * US, 0);
		send(d, 4243, POSTS, MS, 100);
		for (int i = 0; i < 100; i++)
			sendf(d, 4243, AUTHOR, i % 10 + 1, 300 * US);
		now += 20 * SEC;
	}
	send(d, 4244, POSTS, MS, 20);
	for (int i = 0; i < 20; i++)
		send(d, 4244, SETTINGS, 200 * US, 1);
	detector__finish(d);
	return d;
}

static const char golden_text[] =
	"pqsnoop: 2 findings in 327 queries (2 threads, 4 units of work, 98 ms of database time)\n"
	"ranked by the database time a fix would save:\n"
	"\n"
	"#1 N+1  101 queries in 39 ms on tid 4243 (pid 4242), 3 times in 40.1 s, 90 ms of database time (89 "
	"ms wasted)\n"
	"     SELECT ... FROM \"blog_author\" WHERE \"blog_author\".\"id\" = $1 LIMIT $2   x100, 10 different "
	"values\n"
	"     after: SELECT ... FROM \"blog_post\" ORDER BY \"blog_post\".\"id\" ASC   (100 rows)\n"
	"     fix:   Post.objects.select_related(\"author\")\n"
	"            each Post loads its author with one more query by primary key on \"blog_author\"; "
	"select_related(\"author\") joins it into the query that loads the Post rows\n"
	"\n"
	"#2 DUP  21 queries in 6.6 ms on tid 4244 (pid 4242), once, 4.0 ms of database time (3.8 ms wasted)\n"
	"     SELECT \"blog_sitesettings\".\"id\" FROM \"blog_sitesettings\" WHERE \"blog_sitesettings\".\"id\" = $1 "
	"LIMIT $2   x20, same values\n"
	"     after: SELECT ... FROM \"blog_post\" ORDER BY \"blog_post\".\"id\" ASC   (20 rows)\n"
	"     fix:   load the Sitesettings once, before the loop, and reuse it\n"
	"            the same statement with the same values ran again and again in one unit of work; its "
	"result cannot have changed in between unless the loop writes it\n";

static const char golden_json[] =
	"{\"totals\":{\"queries\":327,\"prepares\":0,\"neutral\":3,\"units\":4,\"threads\":2,\"db_time_ns\":98150000,\"first_"
	"ns\":1700000000000000000,\"last_ns\":1700000060124230000,\"findings\":2,\"findings_dropped\":0,\"dropped\":7,\""
	"not_loops\":0,\"unrelated_parents\":0,\"untracked\":0},\"option"
	"s\":{\"idle_gap_ns\":100000000,\"pause_ns\":0,\"max_span_ns\":10000000000,\"min_repeats\":5,\"min_duplica"
	"tes\":3,\"show_values\":false},\"findings\":[{\"rank\":1,\"kind\":\"n+1\",\"fingerprint\":\"1581435d636f87ce\",\"pars"
	"ed\":true,\"sql\":\"SELECT \\\"blog_author\\\".\\\"id\\\", \\\"blog_author\\\".\\\"name\\\" FROM \\\"blog_author\\\" WHERE "
	"\\\"blog_author\\\".\\\"id\\\" = $1 LIMIT "
	"$2\",\"count_max\":100,\"count_typical\":100,\"distinct_values\":10,\"values_known\":true,\"occurrences\":3,\"uni"
	"ts\":3,\"queries\":300,\"db_time_ns\":90000000,\"wasted_ns\":89100000,\"interleaved\":false,\"truncated\":false,"
	"\"pid\":4242,\"tid\":4243,\"threads\":1,\"first_ns\":1700000000001210000,\"last_ns\":1700000040117550000,\"worst"
	"\":{\"count\":100,\"pid\":4242,\"tid\":4243,\"start_ns\":1700000000000130000,\"span_ns\":39000000,\"db_time_ns\":3"
	"0000000},\"parent\":{\"fingerprint\":\"5ceffd69a136f91a\",\"parsed\":true,\"sql\":\"SELECT "
	"\\\"blog_post\\\".\\\"id\\\", \\\"blog_post\\\".\\\"title\\\", \\\"blog_post\\\".\\\"author_id\\\" FROM \\\"blog_post\\\" ORDER "
	"BY \\\"blog_post\\\".\\\"id\\\" "
	"ASC\",\"rows\":100},\"hint\":{\"kind\":\"select_related\",\"fix\":\"Post.objects.select_related(\\\"author\\\")\",\"why"
	"\":\"each Post loads its author with one more query by primary key on \\\"blog_author\\\"; "
	"select_related(\\\"author\\\") joins it into the query that loads the Post "
	"rows\",\"model\":\"Post\",\"field\":\"author\",\"guessed\":false},\"callsite\":null,\"stack\":[]},{\"rank\":2,\"kind\":\"duplicate\",\"fingerprint\":\"8"
	"8376dc03010ce50\",\"parsed\":true,\"sql\":\"SELECT \\\"blog_sitesettings\\\".\\\"id\\\" FROM "
	"\\\"blog_sitesettings\\\" WHERE \\\"blog_sitesettings\\\".\\\"id\\\" = $1 LIMIT "
	"$2\",\"count_max\":20,\"count_typical\":20,\"distinct_values\":1,\"values_known\":true,\"occurrences\":1,\"units\""
	":1,\"queries\":20,\"db_time_ns\":4000000,\"wasted_ns\":3800000,\"interleaved\":false,\"truncated\":false,\"pid\":"
	"4242,\"tid\":4244,\"threads\":1,\"first_ns\":1700000060118710000,\"last_ns\":1700000060124230000,\"worst\":{\"co"
	"unt\":20,\"pid\":4242,\"tid\":4244,\"start_ns\":1700000060117630000,\"span_ns\":6600000,\"db_time_ns\":4000000},"
	"\"parent\":{\"fingerprint\":\"5ceffd69a136f91a\",\"parsed\":true,\"sql\":\"SELECT \\\"blog_post\\\".\\\"id\\\", "
	"\\\"blog_post\\\".\\\"title\\\", \\\"blog_post\\\".\\\"author_id\\\" FROM \\\"blog_post\\\" ORDER BY "
	"\\\"blog_post\\\".\\\"id\\\" ASC\",\"rows\":20},\"hint\":{\"kind\":\"reuse\",\"fix\":\"load the Sitesettings once, "
	"before the loop, and reuse it\",\"why\":\"the same statement with the same values ran again and again "
	"in one unit of work; its result cannot have changed in between unless the loop writes "
	"it\",\"model\":\"Sitesettings\",\"field\":null,\"guessed\":false},\"callsite\":null,\"stack\":[]}]}\n";

static void check_golden(const char *got, const char *want)
{
	if (strcmp(got, want) != 0) {
		size_t i = 0;

		while (got[i] && got[i] == want[i])
			i++;
		fprintf(stderr, "  differs at byte %zu:\n  got:  %.120s\n  want: %.120s\n",
			i, got + (i > 40 ? i - 40 : 0), want + (i > 40 ? i - 40 : 0));
		CHECK(0);
	}
}

static void test_text_report(void)
{
	struct report_opts ro = { 0 };
	struct unit_buf b;
	struct detector *d;

	unit_buf_open(&live);
	d = scenario(false, &ro);
	free((void *)unit_buf_close(&live));
	unit_buf_open(&b);
	report_text(b.f, d, &ro);
	check_golden(unit_buf_close(&b), golden_text);
	free(b.data);
	detector__free(d);
}

static void test_json_report(void)
{
	struct report_opts ro = { .dropped = 7 };
	struct unit_buf b;
	struct detector *d;

	unit_buf_open(&live);
	d = scenario(false, &ro);
	free((void *)unit_buf_close(&live));
	unit_buf_open(&b);
	report_json(b.f, d, &ro);
	check_golden(unit_buf_close(&b), golden_json);
	free(b.data);
	detector__free(d);
}

static void test_live_findings(void)
{
	struct report_opts ro = { 0 };
	struct detector *d;
	const char *out;

	unit_buf_open(&live);
	d = scenario(false, &ro);
	out = unit_buf_close(&live);
	/* each finding once, when first seen (its first run: "once") */
	CHECK(strstr(out, "N+1  101 queries in 39 ms on tid 4243 (pid 4242), once,") == out);
	CHECK(strstr(out, "DUP  21 queries") != NULL);
	CHECK(strstr(strstr(out, "N+1") + 1, "N+1") == NULL);
	CHECK(out[strlen(out) - 1] == '\n' && out[strlen(out) - 2] == '\n');
	free((void *)out);
	detector__free(d);
}

static void test_values_only_when_asked(void)
{
	struct report_opts ro = { 0 }, show = { .show_values = true };
	struct unit_buf b;
	struct detector *d;
	const char *out;

	unit_buf_open(&live);
	d = scenario(true, &ro);
	free((void *)unit_buf_close(&live));

	/* kept (keep_examples), but not printed without show_values */
	unit_buf_open(&b);
	report_text(b.f, d, &ro);
	report_json(b.f, d, &ro);
	out = unit_buf_close(&b);
	CHECK(strstr(out, "= 7 LIMIT") == NULL && strstr(out, "= 1 LIMIT") == NULL);
	CHECK(strstr(out, "example") == NULL);
	free((void *)out);

	unit_buf_open(&b);
	report_text(b.f, d, &show);
	out = unit_buf_close(&b);
	CHECK(strstr(out, "     example: SELECT \"blog_author\".\"id\", \"blog_author\".\"name\" FROM "
		      "\"blog_author\" WHERE \"blog_author\".\"id\" = 1 LIMIT 21\n") != NULL);
	CHECK(strstr(out, "     after:   " POSTS "\n") != NULL);
	free((void *)out);

	unit_buf_open(&b);
	report_json(b.f, d, &show);
	out = unit_buf_close(&b);
	CHECK(strstr(out, "\"example\":\"SELECT \\\"blog_author\\\".\\\"id\\\", \\\"blog_author\\\".\\\"name\\\" "
		      "FROM \\\"blog_author\\\" WHERE \\\"blog_author\\\".\\\"id\\\" = 1 LIMIT 21\"") != NULL);
	CHECK(strstr(out, "\"parent_example\":\"SELECT") != NULL);
	CHECK(strstr(out, "\"show_values\":true") != NULL);
	free((void *)out);
	detector__free(d);
}

static void test_hostile_sql_is_escaped(void)
{
	struct detect_opts o = { .keep_examples = true };
	struct report_opts show = { .show_values = true, .dropped = 1 };
	struct detector *d = detector__new(&o);
	struct unit_buf b;
	const char *out;
	char sql[256];

	now = T0;
	send(d, 1, "SELECT \"x\".\"id\" FROM \"\x1b]0;pwned\x07\" ORDER BY 1", MS, 10);
	for (int i = 0; i < 6; i++) {
		snprintf(sql, sizeof(sql), "SELECT \"\x1b[2J\xc2\x9b\".\"id\" FROM \"<b>\xe2\x80\xa8\" "
			 "WHERE \"c\" = '\xff\xfe\x1b[31m%d</script>' -- \r\n", i);
		send(d, 1, sql, MS, 1);
	}
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 1);

	unit_buf_open(&b);
	report_text(b.f, d, &show);
	out = unit_buf_close(&b);
	/* no control byte, no C1, no invalid UTF-8, no line separator */
	for (const unsigned char *p = (const unsigned char *)out; *p; p++)
		CHECK(*p >= 0x20 || *p == '\n');
	CHECK(strstr(out, "\xc2\x9b") == NULL && strstr(out, "\xe2\x80\xa8") == NULL);
	CHECK(strstr(out, "\xff") == NULL);
	CHECK(strstr(out, "\\x1b[2J") != NULL);
	CHECK(strstr(out, "\\x1b]0;pwned\\x07") != NULL);
	free((void *)out);

	unit_buf_open(&b);
	report_json(b.f, d, &show);
	out = unit_buf_close(&b);
	for (const unsigned char *p = (const unsigned char *)out; *p; p++)
		CHECK(*p >= 0x20 || p[1] == '\0');
	CHECK(strchr(out, '<') == NULL && strchr(out, '>') == NULL);
	CHECK(strstr(out, "\\u001b[2J") != NULL);
	CHECK(strstr(out, "\\ufffd") != NULL);
	CHECK(strstr(out, "\\u2028") != NULL);
	free((void *)out);
	detector__free(d);
}

static void test_nothing_found(void)
{
	struct detector *d = detector__new(NULL);
	struct report_opts ro = { 0 };
	struct unit_buf b;

	now = T0;
	send(d, 1, POSTS, MS, 100);
	detector__finish(d);
	unit_buf_open(&b);
	report_text(b.f, d, &ro);
	CHECK_STR(unit_buf_close(&b),
		  "pqsnoop: no N+1 or duplicate queries in 1 query (1 thread, 1 unit of work, "
		  "1.0 ms of database time)\n");
	free(b.data);
	unit_buf_open(&b);
	report_json(b.f, d, &ro);
	CHECK(strstr(unit_buf_close(&b), "\"findings\":[]}\n") != NULL);
	free(b.data);
	detector__free(d);
}

static void test_long_sql_is_cut(void)
{
	struct detector *d = detector__new(NULL);
	struct report_opts ro = { .sql_width = 60 };
	struct unit_buf b;
	char sql[1024];
	const char *out, *line;

	now = T0;
	send(d, 1, POSTS, MS, 10);
	for (int i = 0; i < 6; i++) {
		/* "é" (2 bytes) around the cut point: never split */
		snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM \"t\" WHERE \"t\".\"a\" = %d AND "
			 "\"t\".\"ééééééééééééééééééé\" = 1", i);
		send(d, 1, sql, MS, 1);
	}
	detector__finish(d);
	unit_buf_open(&b);
	report_text(b.f, d, &ro);
	out = unit_buf_close(&b);
	line = strstr(out, "     SELECT COUNT(*)");
	CHECK(line != NULL);
	if (line) {
		const char *end = strstr(line, "...   x6");

		CHECK(end != NULL);
		CHECK(end && end - line - 5 <= 60);
		CHECK(strstr(line, "\\x") == NULL || strstr(line, "\\x") > end);
	}
	free((void *)out);
	detector__free(d);
}

static void test_durations(void)
{
	char buf[32];
	static const struct { uint64_t ns; const char *s; } cases[] = {
		{ 0, "0 ns" }, { 999, "999 ns" }, { 1500, "1.5 us" }, { 850000, "850 us" },
		{ 1200000, "1.2 ms" }, { 38000000, "38 ms" }, { 1100000000, "1.1 s" },
		{ 60000000000ULL, "1.0 min" }, { 150000000000ULL, "2.5 min" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		report_fmt_duration(buf, sizeof(buf), cases[i].ns);
		CHECK_STR(buf, cases[i].s);
	}
}

int main(void)
{
	RUN(test_text_report);
	RUN(test_json_report);
	RUN(test_live_findings);
	RUN(test_values_only_when_asked);
	RUN(test_hostile_sql_is_escaped);
	RUN(test_nothing_found);
	RUN(test_long_sql_is_cut);
	RUN(test_durations);
	return unit_summary();
}
