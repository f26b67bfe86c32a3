/*
 * Flamegraphs: the folded output checked whole for a small synthetic set of
 * queries (paths outermost first, weights summed, the format's reserved
 * characters replaced, no-stack queries grouped, finding leaves marked), and
 * the SVG with hostile labels: markup, quotes and invalid UTF-8 from the
 * traced process stay escaped text.
 */
#include <stdlib.h>

#include "escape.h"
#include "flame.h"
#include "unit.h"

/* Stacks are innermost first, as in struct pq_query. */
static const struct pq_frame st_view[] = {
	{ "/app/blog/views.py", "Repo.get", 8 },
	{ "/app/blog/views.py", "view", 13 },
};
/* the same outer frame, another inner one: the tree branches under view */
static const struct pq_frame st_view2[] = {
	{ "/app/blog/models.py", "Post.author", 77 },
	{ "/app/blog/views.py", "view", 13 },
};
/* library frames: paths shortened after dist-packages/ and lib/pythonX.Y/ */
static const struct pq_frame st_lib[] = {
	{ "/usr/lib/python3/dist-packages/django/db/models/query.py", "QuerySet.__iter__", 51 },
	{ "/usr/local/lib/python3.11/site-packages/celery/app/task.py", "Task.__call__", 411 },
	{ "/usr/lib/python3.11/threading.py", "Thread.run", 975 },
};
/* the format's separators in a file and a function name; unknown names */
static const struct pq_frame st_hostile[] = {
	{ "/app/we;ird\nfile.py", "f;g\nh", 3 },
	{ NULL, NULL, 0 },
};

static void add(struct flame *f, const struct pq_frame *stack, uint32_t nframes,
		const char *sql, uint64_t weight, unsigned rank)
{
	struct pq_query q = {
		.kind = PQ_KIND_QUERY, .pid = 4242, .tid = 4243, .conn = 0x5000,
		.start_ns = 1700000000000000000ULL, .duration_ns = 1000, .rows = 1,
		.sql = sql, .sql_len = strlen(sql), .sql_cap = strlen(sql),
		.api = "PQsendQuery", .cmd_status = "", .sqlstate = "", .error = "",
		.comm = "python3", .stack = stack, .nframes = nframes,
	};

	CHECK_INT(flame__add(f, &q, sql, strlen(sql), weight, rank), 0);
}

static char *folded_of(struct flame *f)
{
	struct unit_buf b;

	unit_buf_open(&b);
	flame__folded(f, b.f);
	unit_buf_close(&b);
	return b.data;
}

#define VIEW "view (/app/blog/views.py:13)"
#define GET "Repo.get (/app/blog/views.py:8)"
#define AUTHOR "Post.author (/app/blog/models.py:77)"
#define BY_ID "SELECT * FROM t WHERE id = $1"

static void test_folded_exact(void)
{
	struct flame *f = flame__new();
	char longsql[301];
	char *out, expected[4096];

	CHECK(f != NULL);
	if (!f)
		return;
	memset(longsql, 'x', 300);
	memcpy(longsql, "SELECT ", 7);
	longsql[300] = 0;

	add(f, st_view, 2, BY_ID, 1, 0);
	add(f, st_view, 2, BY_ID, 2, 0);		/* same path: weights summed */
	add(f, st_view, 2, "SELECT $1", 1, 1);		/* a finding's leaf */
	add(f, st_view, 2, BY_ID, 4, 2);		/* same text, in a finding: its own leaf */
	add(f, st_view2, 2, BY_ID, 10, 0);		/* branches under view */
	add(f, NULL, 0, "BEGIN", 5, 0);			/* no stack */
	add(f, NULL, 0, "BEGIN", 1, 0);
	add(f, NULL, 0, "\n  COMMIT \t\n", 1, 0);	/* whitespace trimmed */
	add(f, st_lib, 3, "SELECT 1;\nSELECT  2\t;", 7, 0);	/* ';' and newlines */
	add(f, st_hostile, 2, "SELECT 3", 12345678901ULL, 0);	/* large weights (time) */
	add(f, st_view, 2, longsql, 1, 3);		/* cut to 160 bytes */
	add(f, st_view, 2, BY_ID, 1, 0);		/* an old path again: still one line */

	snprintf(expected, sizeof(expected),
		 VIEW ";" GET ";SQL " BY_ID " 4\n"
		 VIEW ";" GET ";SQL SELECT $1 [finding #1] 1\n"
		 VIEW ";" GET ";SQL " BY_ID " [finding #2] 4\n"
		 VIEW ";" GET ";SQL %.160s [finding #3] 1\n"
		 VIEW ";" AUTHOR ";SQL " BY_ID " 10\n"
		 "[no Python stack];SQL BEGIN 6\n"
		 "[no Python stack];SQL COMMIT 1\n"
		 "Thread.run (threading.py:975);Task.__call__ (celery/app/task.py:411);"
		 "QuerySet.__iter__ (django/db/models/query.py:51);SQL SELECT 1, SELECT 2 , 7\n"
		 "? (?:0);f,g h (/app/we,ird file.py:3);SQL SELECT 3 12345678901\n",
		 longsql);
	out = folded_of(f);
	CHECK_STR(out, expected);
	free(out);
	flame__free(f);
}

/* Every line: labels without ';' or newline, joined by ';', a space, a
 * decimal weight.  Checked on hostile input. */
static void test_folded_lines_well_formed(void)
{
	static const struct pq_frame st[] = {
		{ "/app/a;b;c.py", ";;;", 1 },
		{ "/app/\r\n.py", "\n\n", 2 },
	};
	struct flame *f = flame__new();
	char *out, *line, *save = NULL;
	int lines = 0;

	add(f, st, 2, ";\n;\r\n;", 3, 1);
	add(f, st, 2, "", 2, 0);
	add(f, NULL, 0, ";", 1, 0);
	out = folded_of(f);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sp = strrchr(line, ' ');

		lines++;
		CHECK(sp != NULL && sp > line);
		CHECK(strchr(line, '\r') == NULL);
		if (sp) {
			CHECK(sp[1] != 0 && strspn(sp + 1, "0123456789") == strlen(sp + 1));
		}
	}
	CHECK_INT(lines, 3);
	free(out);
	flame__free(f);
}

static int is_valid_utf8(const char *s, size_t n)
{
	unsigned cp;

	for (size_t i = 0; i < n;) {
		size_t len = utf8_seq_len((const unsigned char *)s + i, n - i, &cp);

		if (!len)
			return 0;
		i += len;
	}
	return 1;
}

/* Text cut to the label's length stays valid UTF-8 when it was. */
static void test_folded_cut_keeps_utf8(void)
{
	char sql[512] = "SELECT 'x";
	struct flame *f = flame__new();
	char *out;

	for (int i = 0; i < 150; i++)
		strcat(sql, "\xc3\xa9");	/* é: 9 + 2k bytes, cut at 160 is mid-character */
	strcat(sql, "'");
	add(f, NULL, 0, sql, 1, 0);
	out = folded_of(f);
	CHECK(is_valid_utf8(out, strlen(out)));
	free(out);
	flame__free(f);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

#define HOSTILE "</svg><script>alert(1)</script>"

static void test_svg_escapes(void)
{
	static const struct pq_frame st[] = {
		{ "/app/" HOSTILE "&\"'\xff\xfe.py", "run" HOSTILE, 9 },
		{ "/app/views.py", "view", 1 },
	};
	struct flame *f = flame__new();
	struct unit_buf b;
	const char *s;

	add(f, st, 2, "SELECT 1 AS \"" HOSTILE "\" /* &\"' */ FROM \"\xff\xc3(\"", 1, 0);
	add(f, st, 2, "SELECT $1 /* " HOSTILE " */", 3, 1);
	add(f, NULL, 0, "SELECT ']]><script>alert(2)</script>'", 1, 0);
	unit_buf_open(&b);
	flame__svg(f, b.f, "pqsnoop: " HOSTILE " on h\xff", "queries");
	s = unit_buf_close(&b);

	CHECK(strncmp(s, "<?xml ", 6) == 0);
	/* pqsnoop's own viewer script and nothing else */
	CHECK_INT(count(s, "<script"), 1);
	CHECK_INT(count(s, "</script>"), 1);
	CHECK_INT(count(s, "<svg"), 1);
	CHECK_INT(count(s, "</svg>"), 1);
	CHECK_INT(count(s, "]]>"), 1);
	CHECK(strcmp(s + strlen(s) - 7, "</svg>\n") == 0);
	CHECK(count(s, "&lt;script&gt;alert(") >= 5);
	CHECK_INT(count(s, "alert("), count(s, "&lt;script&gt;alert("));
	CHECK(strstr(s, "&lt;/svg&gt;&lt;script&gt;alert(1)&lt;/script&gt;") != NULL);
	CHECK(strstr(s, "&amp;&quot;&#39;") != NULL);
	/* invalid UTF-8 (SQL, file name, title) became U+FFFD: the file is valid
	 * UTF-8, with no control characters XML forbids */
	CHECK(is_valid_utf8(s, strlen(s)));
	CHECK(strstr(s, "\xef\xbf\xbd") != NULL);
	for (const char *p = s; *p; p++)
		CHECK((unsigned char)*p >= 0x20 || *p == '\n' || *p == '\t');
	/* every frame is a group; finding leaves marked (red) */
	CHECK_INT(count(s, "<g "), count(s, "</g>"));
	CHECK_INT(count(s, "<g class=\"f nplus1\">"), 1);
	CHECK(strstr(s, "fill=\"rgb(230,") != NULL);
	CHECK(strstr(s, "[finding #1]") != NULL);
	CHECK(strstr(s, "[no Python stack]") != NULL);
	free(b.data);
	flame__free(f);
}

/* Nothing added: still a complete, empty picture. */
static void test_svg_empty(void)
{
	struct flame *f = flame__new();
	struct unit_buf b;
	const char *s;

	unit_buf_open(&b);
	flame__svg(f, b.f, "empty", "queries");
	s = unit_buf_close(&b);
	CHECK_INT(count(s, "</svg>"), 1);
	CHECK_INT(count(s, "<g "), 0);
	CHECK(strstr(s, "\"nan") == NULL && strstr(s, "\"-nan") == NULL);
	CHECK(strstr(s, "\"inf") == NULL);
	free(b.data);
	unit_buf_open(&b);
	flame__folded(f, b.f);
	s = unit_buf_close(&b);
	CHECK_STR(s, "");
	free(b.data);
	flame__free(f);
}

int main(void)
{
	RUN(test_folded_exact);
	RUN(test_folded_lines_well_formed);
	RUN(test_folded_cut_keeps_utf8);
	RUN(test_svg_escapes);
	RUN(test_svg_empty);
	return unit_summary();
}
