/*
 * Units of work and N+1 / duplicate detection on synthetic query streams,
 * with exact expected findings.
 */
#include <stdlib.h>

#include "detect.h"
#include "u64map.h"
#include "unit.h"

#define US 1000ULL
#define MS (1000 * US)
#define SEC (1000 * MS)

#define POSTS "SELECT \"blog_post\".\"id\", \"blog_post\".\"title\", \"blog_post\".\"author_id\", " \
	"\"blog_post\".\"category_id\" FROM \"blog_post\" ORDER BY \"blog_post\".\"id\" ASC"
#define AUTHOR "SELECT \"blog_author\".\"id\", \"blog_author\".\"name\" FROM \"blog_author\" " \
	"WHERE \"blog_author\".\"id\" = %d LIMIT 21"
#define CATEGORY "SELECT \"blog_category\".\"id\", \"blog_category\".\"name\" FROM \"blog_category\" " \
	"WHERE \"blog_category\".\"id\" = %d LIMIT 21"
#define COMMENTS "SELECT \"blog_comment\".\"id\", \"blog_comment\".\"user_id\" FROM \"blog_comment\" " \
	"WHERE \"blog_comment\".\"post_id\" = %d"
#define USER "SELECT \"auth_user\".\"id\", \"auth_user\".\"username\" FROM \"auth_user\" " \
	"WHERE \"auth_user\".\"id\" = %d LIMIT 21"
#define SETTINGS "SELECT \"blog_sitesettings\".\"id\" FROM \"blog_sitesettings\" " \
	"WHERE \"blog_sitesettings\".\"id\" = 1 LIMIT 21"
#define SESSION "SELECT \"django_session\".\"session_data\" FROM \"django_session\" " \
	"WHERE \"django_session\".\"session_key\" = 'k7' LIMIT 21"
#define SAVE_SESSION "UPDATE \"django_session\" SET \"session_data\" = 'x' " \
	"WHERE \"django_session\".\"session_key\" = 'k7'"

/* A thread sending queries one after another. */
struct stream {
	struct detector *d;
	uint32_t pid, tid;
	uint64_t t;		/* next start */
	uint64_t dur;		/* of each query */
	uint64_t think;		/* between queries */
	uint64_t conn;
	/* the Python stack of the next queries (site() and friends) */
	bool stacks;		/* false: site() does nothing */
	bool mw;		/* requests go through the app's middleware */
	struct pq_frame frames[16];
	uint32_t nframes;
};

/*
 * Synthetic stacks shaped like the demo's (innermost first): Django's
 * cursor and queryset frames, the application's frames, then Django's
 * handler (and the application's middleware, with mw), gunicorn and the
 * thread.  Library frames are under dist-packages or /usr/lib/python3.11/.
 */
#define VIEWS "/srv/app/blog/views.py"
#define MIDDLEWARE "/srv/app/blog/middleware.py"
#define DJANGO "/usr/lib/python3/dist-packages/django/"

static void push(struct stream *s, const char *file, const char *func, uint32_t line)
{
	if (s->nframes < 16)
		s->frames[s->nframes++] = (struct pq_frame){ .file = file, .func = func, .line = line };
}

static void outer_frames(struct stream *s, bool in_view)
{
	if (in_view)
		push(s, DJANGO "core/handlers/base.py", "BaseHandler._get_response", 181);
	if (s->mw && in_view)
		push(s, MIDDLEWARE, "TimingMiddleware.__call__", 16);
	push(s, DJANGO "core/handlers/base.py", "BaseHandler.get_response", 130);
	push(s, "/usr/lib/python3/dist-packages/gunicorn/workers/gthread.py", "ThreadWorker.handle", 271);
	push(s, "/usr/lib/python3.11/threading.py", "Thread.run", 975);
}

/* The next queries come from func:line in views.py (through a helper
 * function at helper_line when that is not 0). */
static void site_via(struct stream *s, const char *func, uint32_t line, const char *helper,
		     uint32_t helper_line)
{
	s->nframes = 0;
	if (!s->stacks)
		return;
	push(s, DJANGO "db/backends/utils.py", "CursorWrapper._execute", 84);
	push(s, DJANGO "db/models/sql/compiler.py", "SQLCompiler.execute_sql", 1175);
	if (helper)
		push(s, VIEWS, helper, helper_line);
	push(s, VIEWS, func, line);
	outer_frames(s, true);
}

static void site(struct stream *s, const char *func, uint32_t line)
{
	site_via(s, func, line, NULL, 0);
}

/* The next queries come from the application's middleware, at line. */
static void site_mw(struct stream *s, uint32_t line)
{
	s->nframes = 0;
	if (!s->stacks)
		return;
	push(s, DJANGO "db/backends/utils.py", "CursorWrapper._execute", 84);
	push(s, MIDDLEWARE, "TimingMiddleware.__call__", line);
	outer_frames(s, false);
}

static struct stream stream(struct detector *d, uint32_t tid)
{
	return (struct stream){ .d = d, .pid = 4242, .tid = tid, .t = 1700000000 * SEC,
				.dur = 100 * US, .think = 50 * US, .conn = 0x5000 };
}

static void send_q(struct stream *s, const char *sql, bool truncated, int64_t rows)
{
	struct pq_query q = {
		.kind = PQ_KIND_QUERY, .status = PQ_STATUS_OK, .pid = s->pid, .tid = s->tid,
		.conn = s->conn, .start_ns = s->t, .duration_ns = s->dur, .rows = rows,
		.sql = sql, .sql_len = strlen(sql), .sql_cap = strlen(sql),
		.truncated = truncated, .api = "PQsendQuery", .cmd_status = "", .sqlstate = "",
		.error = "", .comm = "gunicorn", .stack = s->frames, .nframes = s->nframes,
	};

	if (truncated)
		q.sql_len += 100;
	CHECK_INT(detector__add(s->d, &q), 0);
	s->t += s->dur + s->think;
}

static void sq(struct stream *s, const char *sql)
{
	send_q(s, sql, false, 1);
}

/* sq() with one %d filled in (a macro: the format stays a literal) */
#define sqf(s, fmt, v) do { \
	char _buf[1024]; \
	snprintf(_buf, sizeof(_buf), fmt, (int)(v)); \
	send_q((s), _buf, false, 1); \
	} while (0)

static int live_calls;
static const struct finding *live_last;

static void on_finding(const struct finding *f, void *ctx)
{
	(void)ctx;
	live_calls++;
	live_last = f;
}

static struct detector *new_detector(void)
{
	struct detect_opts o = { .on_finding = on_finding };

	live_calls = 0;
	live_last = NULL;
	return detector__new(&o);
}

/* The finding for a statement template, or NULL. */
static const struct finding *find(struct detector *d, enum finding_kind kind, const char *needle)
{
	for (size_t i = 0; i < detector__nfindings(d); i++) {
		const struct finding *f = detector__finding(d, i);

		if (f->kind == kind && strstr(f->stmt.norm->s, needle))
			return f;
	}
	return NULL;
}

/* One request of the demo's fk page: SET TIME ZONE, posts, 100 authors. */
static void fk_page(struct stream *s, int n)
{
	sq(s, "SET TIME ZONE 'UTC'");
	send_q(s, POSTS, false, n);
	for (int i = 0; i < n; i++)
		sqf(s, AUTHOR, i % 10 + 1);
}

static void test_nplusone(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 4243);
	const struct finding *f;

	fk_page(&s, 100);
	CHECK_INT(detector__nfindings(d), 0);	/* the unit is still open */
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 1);
	f = detector__finding(d, 0);
	CHECK_INT(f->kind, FINDING_NPLUSONE);
	CHECK_STR(f->stmt.norm->s, "SELECT \"blog_author\".\"id\", \"blog_author\".\"name\" FROM "
		  "\"blog_author\" WHERE \"blog_author\".\"id\" = $1 LIMIT $2");
	CHECK(f->has_parent);
	CHECK_STR(f->parent.norm->s, POSTS);
	CHECK_INT(f->parent_rows, 100);
	CHECK_INT(f->count_max, 100);
	CHECK_INT(f->count_typical, 100);
	CHECK_INT(f->distinct_max, 10);
	CHECK_INT(f->occurrences, 1);
	CHECK_INT(f->units, 1);
	CHECK_INT(f->queries, 100);
	CHECK_INT(f->db_ns, 100 * 100 * US);
	CHECK_INT(f->wasted_ns, 99 * 100 * US);
	CHECK(!f->interleaved && f->values_known && !f->truncated);
	CHECK_INT(f->tid, 4243);
	CHECK_INT(f->pid, 4242);
	CHECK_INT(f->worst.count, 100);
	/* from the posts query's start to the last author query's end */
	CHECK_INT(f->worst.span_ns, 101 * 100 * US + 100 * 50 * US);
	CHECK_INT(f->hint.kind, HINT_SELECT_RELATED);
	CHECK_STR(f->hint.fix, "Post.objects.select_related(\"author\")");
	CHECK_INT(live_calls, 1);
	CHECK(live_last == f);
	CHECK(f->stmt.example == NULL);	/* no values kept without keep_examples */

	const struct detect_totals *t = detector__totals(d);

	CHECK_INT(t->queries, 102);
	CHECK_INT(t->neutral, 1);
	CHECK_INT(t->units, 1);
	CHECK_INT(t->threads, 1);
	CHECK_INT(t->findings, 1);
	CHECK_INT(t->db_ns, 102 * 100 * US);
	detector__free(d);
}

static void test_interleaved(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);
	const struct finding *a, *c;

	send_q(&s, POSTS, false, 100);
	for (int i = 0; i < 100; i++) {
		sqf(&s, AUTHOR, i % 10 + 1);
		sqf(&s, CATEGORY, i % 5 + 1);
	}
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 2);
	a = find(d, FINDING_NPLUSONE, "blog_author");
	c = find(d, FINDING_NPLUSONE, "blog_category");
	CHECK(a && c);
	if (!a || !c)
		goto out;
	CHECK_INT(a->count_max, 100);
	CHECK_INT(c->count_max, 100);
	CHECK(a->interleaved && c->interleaved);
	/* both loops hang on the posts query */
	CHECK_STR(a->parent.norm->s, POSTS);
	CHECK_STR(c->parent.norm->s, POSTS);
	CHECK_STR(a->hint.fix, "Post.objects.select_related(\"author\")");
	CHECK_STR(c->hint.fix, "Post.objects.select_related(\"category\")");
out:
	detector__free(d);
}

static void test_nested(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);
	const struct finding *c, *u;
	int users = 0;

	/* for each post: its comments; for each comment: its user */
	send_q(&s, POSTS, false, 10);
	for (int p = 1; p <= 10; p++) {
		sqf(&s, COMMENTS, p);
		for (int k = 0; k < p % 4; k++, users++)
			sqf(&s, USER, 100 + users);
	}
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 2);
	c = find(d, FINDING_NPLUSONE, "blog_comment");
	u = find(d, FINDING_NPLUSONE, "auth_user");
	CHECK(c && u);
	if (!c || !u)
		goto out;
	CHECK_INT(c->count_max, 10);
	CHECK_INT(u->count_max, users);
	CHECK_STR(c->parent.norm->s, POSTS);
	CHECK_STR(c->hint.fix, "Post.objects.prefetch_related(\"comment_set\")");
	/* the users hang on the comments query */
	CHECK(strstr(u->parent.norm->s, "blog_comment") != NULL);
	CHECK_STR(u->hint.fix, "Comment.objects.select_related(\"user\")");
out:
	detector__free(d);
}

static void test_same_finding_in_many_units(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);
	const struct finding *f;

	for (int r = 0; r < 12; r++) {
		fk_page(&s, 10 + (r == 3 ? 30 : 0));
		s.t += 5 * SEC;	/* idle between requests */
	}
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 1);
	f = detector__finding(d, 0);
	CHECK_INT(f->occurrences, 12);
	CHECK_INT(f->units, 12);
	CHECK_INT(f->queries, 11 * 10 + 40);
	CHECK_INT(f->count_max, 40);
	CHECK_INT(f->count_typical, 10);
	CHECK_INT(f->threads, 1);
	CHECK(f->last_ns - f->first_ns > 55 * SEC);
	CHECK_INT(live_calls, 1);
	CHECK_INT(detector__totals(d)->units, 12);
	detector__free(d);
}

static void test_back_to_back_requests(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);
	const struct finding *f;

	/* requests 0.5 ms apart, less than a pause: one unit, but each
	 * request's loop is a run of its own and the per-request queries are
	 * no loop */
	for (int r = 0; r < 5; r++) {
		sq(&s, "SET TIME ZONE 'UTC'");
		sq(&s, SESSION);
		fk_page(&s, 10);
		sq(&s, SAVE_SESSION);
		s.t += MS / 2;
	}
	detector__finish(d);
	CHECK_INT(detector__totals(d)->units, 1);
	CHECK_INT(detector__nfindings(d), 1);
	f = detector__finding(d, 0);
	CHECK(f && strstr(f->stmt.norm->s, "blog_author"));
	CHECK_INT(f->occurrences, 5);
	CHECK_INT(f->units, 1);
	CHECK_INT(f->count_max, 10);
	CHECK_INT(f->count_typical, 10);
	detector__free(d);
}

static void test_one_query_requests_are_no_loop(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);

	/* an API hammered with one query per request, back to back */
	for (int r = 0; r < 50; r++) {
		sq(&s, "SET TIME ZONE 'UTC'");
		sqf(&s, AUTHOR, r);
		s.t += MS;
	}
	for (int r = 0; r < 50; r++) {
		sq(&s, SETTINGS);
		s.t += MS;
	}
	/* and a view with two queries, over and over */
	for (int r = 0; r < 50; r++) {
		sq(&s, SESSION);
		sq(&s, POSTS);
		s.t += MS;
	}
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 0);
	detector__free(d);
}

static void test_duplicate(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);
	const struct finding *f;

	send_q(&s, POSTS, false, 100);
	for (int i = 0; i < 100; i++)
		sq(&s, SETTINGS);
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 1);
	f = detector__finding(d, 0);
	CHECK_INT(f->kind, FINDING_DUPLICATE);
	CHECK_INT(f->count_max, 100);
	CHECK_INT(f->distinct_max, 1);
	CHECK_INT(f->wasted_ns, 99 * 100 * US);
	CHECK_INT(f->hint.kind, HINT_REUSE);
	CHECK_STR(f->parent.norm->s, POSTS);
	detector__free(d);
}

static void test_thresholds(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);

	send_q(&s, POSTS, false, 4);
	for (int i = 0; i < 4; i++)	/* 4 < 5 */
		sqf(&s, AUTHOR, i);
	s.t += SEC;
	send_q(&s, POSTS, false, 2);
	sq(&s, SETTINGS);		/* 2 < 3 */
	sq(&s, SETTINGS);
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 0);

	/* configurable */
	detector__free(d);
	struct detect_opts o = { .min_repeats = 4, .min_duplicates = 2 };

	d = detector__new(&o);
	s = stream(d, 7);
	send_q(&s, POSTS, false, 4);
	for (int i = 0; i < 4; i++)
		sqf(&s, AUTHOR, i);
	s.t += SEC;
	send_q(&s, POSTS, false, 2);
	sq(&s, SETTINGS);
	sq(&s, SETTINGS);
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 2);
	CHECK(find(d, FINDING_NPLUSONE, "blog_author") != NULL);
	CHECK(find(d, FINDING_DUPLICATE, "blog_sitesettings") != NULL);
	CHECK_INT(detector__opts(d)->min_repeats, 4);
	CHECK_INT(detector__opts(d)->idle_gap_ns, DETECT_DEFAULT_IDLE_GAP_NS);
	detector__free(d);
}

static void test_chunked_cursor(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);
	const struct finding *f;

	/* Post.objects.iterator(): FETCH after FETCH is no N+1 */
	sq(&s, "DECLARE \"_django_curs_1_sync_1\" NO SCROLL CURSOR WITH HOLD FOR " POSTS);
	for (int i = 0; i < 50; i++)
		sq(&s, "FETCH FORWARD 2000 FROM \"_django_curs_1_sync_1\"");
	sq(&s, "CLOSE \"_django_curs_1_sync_1\"");
	s.t += SEC;
	/* ... but a query per row inside it is, across the chunks */
	sq(&s, "DECLARE \"_django_curs_1_sync_2\" NO SCROLL CURSOR WITH HOLD FOR " POSTS);
	for (int chunk = 0; chunk < 3; chunk++) {
		sq(&s, "FETCH FORWARD 2000 FROM \"_django_curs_1_sync_2\"");
		for (int i = 0; i < 10; i++)
			sqf(&s, AUTHOR, chunk * 10 + i);
	}
	sq(&s, "FETCH FORWARD 2000 FROM \"_django_curs_1_sync_2\"");
	sq(&s, "CLOSE \"_django_curs_1_sync_2\"");
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 1);
	f = detector__finding(d, 0);
	CHECK(strstr(f->stmt.norm->s, "blog_author") != NULL);
	CHECK_INT(f->count_max, 30);
	CHECK(!f->interleaved);
	CHECK(strstr(f->parent.norm->s, "DECLARE") != NULL);
	CHECK_STR(f->hint.fix, "Post.objects.select_related(\"author\")");
	detector__free(d);
}

static void test_neutral_statements_do_not_break_runs(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);
	const struct finding *f;

	sq(&s, "BEGIN");
	send_q(&s, POSTS, false, 10);
	for (int i = 0; i < 10; i++) {
		sq(&s, "SAVEPOINT \"s1_x1\"");
		sqf(&s, AUTHOR, i);
		sq(&s, "RELEASE SAVEPOINT \"s1_x1\"");
		if (i == 5) {
			sq(&s, "SELECT 1");	/* a pool's ping */
			sq(&s, "SHOW TimeZone");
			sq(&s, "SELECT set_config('search_path', 'public', false)");
		}
	}
	sq(&s, "COMMIT");
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 1);
	f = detector__finding(d, 0);
	CHECK_INT(f->count_max, 10);
	CHECK(!f->interleaved);
	CHECK_STR(f->parent.norm->s, POSTS);
	CHECK_INT(detector__totals(d)->neutral, 2 + 20 + 3);
	detector__free(d);
}

static void test_threads_are_separate(void)
{
	struct detector *d = new_detector();
	struct stream a = stream(d, 100), b = stream(d, 200);
	const struct finding *f;

	/* two threads, interleaved in time: each its own loop */
	send_q(&a, POSTS, false, 6);
	send_q(&b, POSTS, false, 6);
	for (int i = 0; i < 6; i++) {
		sqf(&a, AUTHOR, i);
		sqf(&b, AUTHOR, i + 50);
	}
	/* a third thread repeats the author query once per request: no loop */
	struct stream c = stream(d, 300);

	for (int i = 0; i < 20; i++) {
		sqf(&c, AUTHOR, i);
		c.t += SEC;
	}
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 1);
	f = detector__finding(d, 0);
	CHECK_INT(f->occurrences, 2);
	CHECK_INT(f->units, 2);
	CHECK_INT(f->threads, 2);
	CHECK_INT(f->count_max, 6);
	CHECK_INT(detector__totals(d)->threads, 3);
	detector__free(d);
}

static void test_prepared_statements(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);
	struct pq_query prep = {
		.kind = PQ_KIND_PREPARE, .pid = 4242, .tid = 7, .start_ns = s.t,
		.sql = "SELECT \"blog_author\".\"name\" FROM \"blog_author\" WHERE \"blog_author\".\"id\" = $1",
		.sql_cap = 10, .sql_len = 10, .stmt_name = "_pg3_0",
	};
	const struct finding *f;

	send_q(&s, POSTS, false, 8);
	CHECK_INT(detector__add(d, &prep), 0);
	for (int i = 0; i < 8; i++)	/* bind parameters: values unknown */
		sq(&s, "SELECT \"blog_author\".\"name\" FROM \"blog_author\" WHERE \"blog_author\".\"id\" = $1");
	/* prepared before we attached: only the name is known */
	send_q(&s, POSTS, false, 6);
	for (int i = 0; i < 6; i++) {
		struct pq_query q = {
			.kind = PQ_KIND_QUERY, .pid = 4242, .tid = 7, .conn = 0x5000,
			.start_ns = s.t, .duration_ns = 10 * US, .rows = 1, .sql = "",
			.text_unknown = true, .stmt_name = "_pg3_7",
		};

		s.t += 20 * US;
		CHECK_INT(detector__add(d, &q), 0);
	}
	detector__finish(d);
	CHECK_INT(detector__totals(d)->prepares, 1);
	CHECK_INT(detector__nfindings(d), 2);
	f = find(d, FINDING_NPLUSONE, "blog_author");
	CHECK(f && !f->values_known && f->count_max == 8 && f->distinct_max == 0);
	f = find(d, FINDING_NPLUSONE, "_pg3_7");
	CHECK(f && !f->values_known && f->count_max == 6 && !f->stmt.parsed);
	detector__free(d);
}

static void test_long_loop_spans_units(void)
{
	struct detect_opts o = { .max_span_ns = SEC, .idle_gap_ns = 500 * MS };
	struct detector *d = detector__new(&o);
	struct stream s = stream(d, 7);
	const struct finding *f;

	/* a batch job: 30 queries, 100 ms apart: 3 s, cut every second */
	s.think = 100 * MS;
	send_q(&s, POSTS, false, 30);
	for (int i = 0; i < 30; i++)
		sqf(&s, AUTHOR, i);
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 1);
	f = detector__finding(d, 0);
	CHECK_INT(f->queries, 30);	/* every repeat, all with the posts parent */
	CHECK(f->occurrences >= 3);
	CHECK_STR(f->parent.norm->s, POSTS);
	CHECK(detector__totals(d)->units >= 3);
	detector__free(d);
}

static void test_tick_closes_idle_units(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);

	fk_page(&s, 10);
	detector__tick(d, s.t + 10 * MS);
	CHECK_INT(detector__nfindings(d), 0);
	CHECK_INT(live_calls, 0);
	/* idle for more than idle_gap, but the clock waits a second more: a
	 * query still in flight is only seen when it ends */
	detector__tick(d, s.t + 200 * MS);
	CHECK_INT(detector__nfindings(d), 0);
	detector__tick(d, s.t + 1200 * MS);
	CHECK_INT(detector__nfindings(d), 1);
	CHECK_INT(live_calls, 1);
	CHECK_INT(detector__totals(d)->units, 1);
	/* the next request: the same finding, no second live call */
	s.t += 2 * SEC;
	fk_page(&s, 10);
	detector__tick(d, s.t + 2 * SEC);
	CHECK_INT(detector__nfindings(d), 1);
	CHECK_INT(live_calls, 1);
	CHECK_INT(detector__finding(d, 0)->occurrences, 2);
	detector__free(d);
}

static void test_slow_query_in_a_loop(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);
	const struct finding *f;

	/* a loop over 10 posts whose 5th author query takes 600 ms: the
	 * clock ticks while it runs (the thread looks idle: its last query
	 * ended long ago), then the query ends and the loop goes on */
	send_q(&s, POSTS, false, 10);
	for (int i = 0; i < 10; i++) {
		if (i == 4) {
			for (int k = 1; k <= 6; k++)
				detector__tick(d, s.t + k * 100 * MS);
			s.dur = 600 * MS;
		}
		sqf(&s, AUTHOR, i);
		s.dur = 100 * US;
	}
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 1);
	f = detector__finding(d, 0);
	CHECK_INT(f->count_max, 10);
	CHECK_INT(f->occurrences, 1);
	CHECK_INT(detector__totals(d)->units, 1);
	detector__free(d);
}

static void test_ranked_by_wasted_time(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);

	/* many cheap repeats ... */
	s.dur = 10 * US;
	send_q(&s, POSTS, false, 50);
	for (int i = 0; i < 50; i++)
		sqf(&s, AUTHOR, i);
	s.t += SEC;
	/* ... rank below a few expensive ones */
	s.dur = 5 * MS;
	send_q(&s, POSTS, false, 6);
	for (int i = 0; i < 6; i++)
		sqf(&s, CATEGORY, i);
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 2);
	CHECK(strstr(detector__finding(d, 0)->stmt.norm->s, "blog_category") != NULL);
	CHECK(strstr(detector__finding(d, 1)->stmt.norm->s, "blog_author") != NULL);
	CHECK(detector__finding(d, 2) == NULL);
	detector__free(d);
}

static void test_truncated_texts(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);
	char buf[512];
	const struct finding *f;

	send_q(&s, POSTS, false, 8);
	for (int i = 0; i < 8; i++) {
		/* cut in the middle of the IN list */
		snprintf(buf, sizeof(buf), "SELECT \"t\".\"id\" FROM \"t\" WHERE \"t\".\"id\" IN (%d, %d, %d, %d",
			 i, i + 1, i + 2, i + 3);
		send_q(&s, buf, true, 1);
	}
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 1);
	f = detector__finding(d, 0);
	CHECK(f->truncated && !f->stmt.parsed);
	CHECK_INT(f->count_max, 8);
	detector__free(d);
}

static void test_examples_only_when_asked(void)
{
	struct detect_opts o = { .keep_examples = true };
	struct detector *d = detector__new(&o);
	struct stream s = stream(d, 7);
	const struct finding *f;

	fk_page(&s, 10);
	detector__finish(d);
	f = detector__finding(d, 0);
	CHECK(f->stmt.example && strstr(f->stmt.example->s, "\"blog_author\".\"id\" = 1 LIMIT 21"));
	CHECK(f->parent.example && strcmp(f->parent.example->s, POSTS) == 0);
	detector__free(d);
}

static void test_bounded_memory(void)
{
	struct detect_opts o = { .max_fps_per_unit = 16, .max_findings = 3 };
	struct detector *d = detector__new(&o);
	struct stream s = stream(d, 7);
	char buf[256];

	/* 100 different statements in one unit, then a loop: at 16
	 * statements, the ones that ran once some time ago are forgotten, so
	 * the loop is still tracked (letters, not digits: libpg_query's
	 * fingerprint ignores trailing digits of table names, so t10 and t11
	 * are one statement) */
	for (int i = 0; i < 100; i++) {
		snprintf(buf, sizeof(buf), "SELECT a FROM t%c%c WHERE x = 1", 'a' + i / 26, 'a' + i % 26);
		sq(&s, buf);
	}
	send_q(&s, POSTS, false, 6);
	for (int i = 0; i < 6; i++)
		sqf(&s, AUTHOR, i);
	CHECK_INT(detector__totals(d)->untracked, 0);
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 1);
	CHECK_STR(detector__finding(d, 0)->parent.norm->s, POSTS);
	detector__free(d);

	/* 17 loops one after the other in one unit: the parent and 16 loops
	 * are 17 statements; the parent, run once long ago, makes room for
	 * the 16th loop; the 17th is not tracked (6 executions); the others
	 * are N+1s: 3 findings kept, 13 dropped */
	d = detector__new(&o);
	s = stream(d, 7);
	send_q(&s, "SELECT a FROM parents", false, 6);
	for (int k = 0; k < 17; k++)
		for (int i = 0; i < 6; i++) {
			snprintf(buf, sizeof(buf), "SELECT a FROM child%c WHERE id = %d", 'a' + k, i);
			send_q(&s, buf, false, 6);
		}
	CHECK_INT(detector__totals(d)->untracked, 6);
	s.t += SEC;
	/* many short-lived threads: their units are freed when idle */
	for (uint32_t tid = 1000; tid < 3000; tid++) {
		struct stream t = stream(d, tid);

		t.t = s.t;
		sq(&t, POSTS);
	}
	detector__tick(d, s.t + 10 * SEC);
	CHECK_INT(detector__totals(d)->units, 2001);
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 3);
	CHECK_INT(detector__totals(d)->findings_dropped, 13);
	CHECK_INT(detector__totals(d)->threads, 2001);
	detector__free(d);
}

static void test_errors_and_unfinished_count(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);
	struct pq_query q;

	send_q(&s, POSTS, false, 5);
	for (int i = 0; i < 5; i++) {
		q = (struct pq_query){
			.kind = PQ_KIND_QUERY, .status = i == 4 ? PQ_STATUS_UNFINISHED : PQ_STATUS_ERROR,
			.pid = 4242, .tid = 7, .start_ns = s.t, .duration_ns = i == 4 ? 0 : 50 * US,
			.rows = -1, .sql = "SELECT 1/0 FROM \"blog_author\" WHERE \"blog_author\".\"id\" = 3",
		};
		q.sql_cap = q.sql_len = strlen(q.sql);
		q.sql = i % 2 ? "SELECT 1/0 FROM \"blog_author\" WHERE \"blog_author\".\"id\" = 4" : q.sql;
		CHECK_INT(detector__add(d, &q), 0);
		s.t += 100 * US;
	}
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 1);
	CHECK_INT(detector__finding(d, 0)->count_max, 5);
	detector__free(d);
}

static void test_more_repeats_than_parent_rows(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);

	/* a get() (1 row), then 30 requests, each running one lookup */
	send_q(&s, SESSION, false, 1);
	for (int i = 0; i < 30; i++) {
		sqf(&s, AUTHOR, i);
		s.t += 2 * MS;
	}
	s.t += SEC;
	/* the same loop after a query that returned 30 rows: a loop */
	send_q(&s, POSTS, false, 30);
	for (int i = 0; i < 30; i++)
		sqf(&s, AUTHOR, i);
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 1);
	CHECK_INT(detector__totals(d)->not_loops, 1);
	CHECK_STR(detector__finding(d, 0)->parent.norm->s, POSTS);
	detector__free(d);
}

static void test_conn_closed_ends_the_unit(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);

	/* requests 1 ms apart, each on a new connection (Django's default):
	 * pages with 3 posts each loading their author, two of them the same */
	for (int r = 0; r < 4; r++) {
		send_q(&s, POSTS, false, 3);
		sqf(&s, AUTHOR, 1);
		sqf(&s, AUTHOR, 1);
		sqf(&s, AUTHOR, 2);
		detector__conn_closed(d, s.pid, s.conn);
		s.t += MS;
	}
	detector__conn_closed(d, s.pid, 0x999);	/* not ours: nothing */
	CHECK_INT(detector__totals(d)->units, 4);
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 0);	/* 3 < 5, and 2 < 3 */
	detector__free(d);
}

/*
 * The demo blog under traffic (tests/demo): every page's exact statements,
 * with the stacks the demo's views give them (views.py lines), round robin
 * over 18 pages on 4 server threads.
 */
#define PAGE_POSTS "SELECT \"blog_post\".\"id\", \"blog_post\".\"title\", \"blog_post\".\"body\", " \
	"\"blog_post\".\"author_id\", \"blog_post\".\"category_id\", \"blog_post\".\"view_count\" " \
	"FROM \"blog_post\" ORDER BY \"blog_post\".\"id\" ASC"
#define USER_OF_SESSION "SELECT \"auth_user\".\"id\" FROM \"auth_user\" INNER JOIN \"django_session\" " \
	"ON (\"auth_user\".\"id\" = \"django_session\".\"user_id\") WHERE \"django_session\".\"key\" = 'k%d'"
#define LOG_REQUEST "INSERT INTO \"blog_requestlog\" (\"path\", \"ms\") VALUES ('/p', %d)"

static void page(struct stream *s, int which)
{
	char in[2048];
	int n;

	site(s, "view", 1);
	sq(s, "SET TIME ZONE 'UTC'");
	switch (which) {
	case 0:	/* fk/nplus1 */
		site(s, "fk_nplus1", 28);
		send_q(s, PAGE_POSTS, false, 100);
		site_via(s, "fk_nplus1", 29, NULL, 0);
		for (int i = 1; i <= 100; i++)
			sqf(s, AUTHOR, (i - 1) % 10 + 1);
		break;
	case 1:	/* fk/fixed */
		site(s, "fk_fixed", 35);
		send_q(s, "SELECT \"blog_post\".\"id\", \"blog_author\".\"name\" FROM \"blog_post\" INNER JOIN "
		       "\"blog_author\" ON (\"blog_post\".\"author_id\" = \"blog_author\".\"id\") "
		       "ORDER BY \"blog_post\".\"id\" ASC", false, 100);
		break;
	case 2:	/* mn/nplus1 */
		site(s, "mn_nplus1", 44);
		send_q(s, PAGE_POSTS, false, 100);
		for (int i = 1; i <= 100; i++) {
			site(s, "mn_nplus1", 45);
			sqf(s, AUTHOR, (i - 1) % 10 + 1);
			site(s, "mn_nplus1", 46);
			sqf(s, CATEGORY, (i - 1) % 5 + 1);
		}
		break;
	case 3:	/* mn/fixed */
		site(s, "mn_fixed", 54);
		send_q(s, "SELECT \"blog_post\".\"id\", \"blog_author\".\"name\", \"blog_category\".\"name\" "
		       "FROM \"blog_post\" INNER JOIN \"blog_author\" ON (\"blog_post\".\"author_id\" = "
		       "\"blog_author\".\"id\") INNER JOIN \"blog_category\" ON (\"blog_post\".\"category_id\" = "
		       "\"blog_category\".\"id\") ORDER BY \"blog_post\".\"id\" ASC", false, 100);
		break;
	case 4:	/* reverse/nplus1 */
	case 5:	/* reverse/fixed */
		site(s, which == 4 ? "reverse_nplus1" : "reverse_fixed", which == 4 ? 65 : 74);
		send_q(s, "SELECT \"blog_author\".\"id\", \"blog_author\".\"name\" FROM \"blog_author\" "
		       "ORDER BY \"blog_author\".\"id\" ASC", false, 10);
		if (which == 5) {
			send_q(s, "SELECT \"blog_post\".\"id\" FROM \"blog_post\" WHERE \"blog_post\".\"author_id\" "
			       "IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)", false, 100);
			break;
		}
		/* a list comprehension: a frame of its own on the view's line */
		site_via(s, "reverse_nplus1", 66, "reverse_nplus1.<locals>.<listcomp>", 66);
		for (int a = 1; a <= 10; a++) {
			char buf[256];

			snprintf(buf, sizeof(buf), "SELECT \"blog_post\".\"id\" FROM \"blog_post\" "
				 "WHERE \"blog_post\".\"author_id\" = %d", a);
			send_q(s, buf, false, 10);
		}
		break;
	case 6:	/* m2m/nplus1 */
	case 8:	/* count/nplus1 */
	case 12:	/* update/nplus1 */
	case 14:	/* exists/nplus1 */
	case 16:	/* duplicate/nplus1 */
		switch (which) {
		case 6: site(s, "m2m_nplus1", 84); break;
		case 8: site(s, "count_nplus1", 102); break;
		case 12: site(s, "update_nplus1", 136); break;
		case 14: site(s, "exists_nplus1", 153); break;
		default: site(s, "duplicate_nplus1", 172); break;
		}
		send_q(s, PAGE_POSTS, false, 100);
		switch (which) {
		case 6: site_via(s, "m2m_nplus1", 85, "m2m_nplus1.<locals>.<listcomp>", 85); break;
		case 8: site(s, "count_nplus1", 103); break;
		case 12: site(s, "update_nplus1", 138); break;
		case 14: site(s, "exists_nplus1", 154); break;
		default: site(s, "duplicate_nplus1", 173); break;
		}
		for (int i = 1; i <= 100; i++) {
			if (which == 6)
				sqf(s, "SELECT \"blog_tag\".\"id\", \"blog_tag\".\"name\" FROM \"blog_tag\" INNER JOIN "
				    "\"blog_post_tags\" ON (\"blog_tag\".\"id\" = \"blog_post_tags\".\"tag_id\") "
				    "WHERE \"blog_post_tags\".\"post_id\" = %d", i);
			else if (which == 8)
				sqf(s, "SELECT COUNT(*) AS \"__count\" FROM \"blog_comment\" "
				    "WHERE \"blog_comment\".\"post_id\" = %d", i);
			else if (which == 12)
				sqf(s, "UPDATE \"blog_post\" SET \"view_count\" = 1 WHERE \"blog_post\".\"id\" = %d", i);
			else if (which == 14)
				sqf(s, "SELECT (1) AS \"a\" FROM \"blog_comment\" WHERE \"blog_comment\".\"post_id\" "
				    "= %d LIMIT 1", i);
			else
				sq(s, SETTINGS);
		}
		break;
	case 7:	/* m2m/fixed */
		site(s, "m2m_fixed", 92);
		send_q(s, PAGE_POSTS, false, 100);
		n = snprintf(in, sizeof(in), "SELECT (\"blog_post_tags\".\"post_id\") AS \"_prefetch_related_val_post_id\", "
			     "\"blog_tag\".\"id\" FROM \"blog_tag\" INNER JOIN \"blog_post_tags\" ON "
			     "(\"blog_tag\".\"id\" = \"blog_post_tags\".\"tag_id\") WHERE \"blog_post_tags\".\"post_id\" IN (1");
		for (int i = 2; i <= 100; i++)
			n += snprintf(in + n, sizeof(in) - n, ", %d", i);
		snprintf(in + n, sizeof(in) - n, ")");
		send_q(s, in, false, 250);
		break;
	case 9:	/* count/fixed */
		site(s, "count_fixed", 111);
		send_q(s, "SELECT \"blog_post\".\"id\", COUNT(\"blog_comment\".\"id\") AS \"n_comments\" FROM "
		       "\"blog_post\" LEFT OUTER JOIN \"blog_comment\" ON (\"blog_post\".\"id\" = "
		       "\"blog_comment\".\"post_id\") GROUP BY \"blog_post\".\"id\" ORDER BY \"blog_post\".\"id\" ASC",
		       false, 100);
		break;
	case 10:	/* insert/nplus1 */
	case 11:	/* insert/fixed */
		site(s, which == 10 ? "insert_nplus1" : "insert_fixed", which == 10 ? 119 : 126);
		send_q(s, "SELECT \"blog_post\".\"id\" FROM \"blog_post\" ORDER BY \"blog_post\".\"id\" ASC", false, 100);
		if (which == 11) {
			site(s, "insert_fixed", 128);
			sq(s, "BEGIN");
			n = snprintf(in, sizeof(in), "INSERT INTO \"blog_visit\" (\"post_id\", \"created\") VALUES "
				     "(1, '2026-11-26T11:48:21.5+00:00'::timestamptz)");
			for (int i = 2; i <= 30; i++)
				n += snprintf(in + n, sizeof(in) - n,
					      ", (%d, '2026-11-26T11:48:21.5+00:00'::timestamptz)", i);
			snprintf(in + n, sizeof(in) - n, " RETURNING \"blog_visit\".\"id\"");
			send_q(s, in, false, 30);
			sq(s, "COMMIT");
			break;
		}
		site(s, "insert_nplus1", 121);
		for (int i = 1; i <= 100; i++)
			sqf(s, "INSERT INTO \"blog_visit\" (\"post_id\", \"created\") VALUES (%d, "
			    "'2026-11-26T11:48:21.506013+00:00'::timestamptz) RETURNING \"blog_visit\".\"id\"", i);
		break;
	case 13:	/* update/fixed */
		site(s, "update_fixed", 145);
		send_q(s, "UPDATE \"blog_post\" SET \"view_count\" = (\"blog_post\".\"view_count\" + 1)", false, 100);
		break;
	case 15:	/* exists/fixed */
		site(s, "exists_fixed", 163);
		send_q(s, "SELECT \"blog_post\".\"id\", EXISTS(SELECT (1) AS \"a\" FROM \"blog_comment\" U0 "
		       "WHERE U0.\"post_id\" = \"blog_post\".\"id\" LIMIT 1) AS \"has_comments\" FROM "
		       "\"blog_post\" ORDER BY \"blog_post\".\"id\" ASC", false, 100);
		break;
	case 17:	/* duplicate/fixed */
		site(s, "duplicate_fixed", 180);
		sq(s, SETTINGS);
		site(s, "duplicate_fixed", 181);
		send_q(s, PAGE_POSTS, false, 100);
		break;
	}
}

struct traffic {
	bool close_conns;	/* Django's default: a connection per request */
	bool stacks;		/* queries carry Python stacks */
	bool mw;		/* the app's middleware runs a query before and after each view */
	uint64_t gap_min, gap_var;	/* between a thread's requests */
	int reps;
	int npages;
	const int *pages;	/* NULL: 0..npages-1 */
};

static void demo_traffic(const struct traffic *tr)
{
	struct detector *d = new_detector();
	struct stream th[4];
	uint64_t rnd = 12345;
	int k = 0;

	for (int i = 0; i < 4; i++) {
		th[i] = stream(d, 100 + i);
		th[i].stacks = tr->stacks;
		th[i].mw = tr->mw;
		th[i].conn += i;
	}
	for (int r = 0; r < tr->reps; r++)
		for (int p = 0; p < tr->npages; p++, k++) {
			struct stream *s = &th[k % 4];

			if (tr->mw) {
				site_mw(s, 10);
				sqf(s, USER_OF_SESSION, k % 3);
			}
			page(s, tr->pages ? tr->pages[p] : p);
			if (tr->mw) {
				site_mw(s, 20);
				sqf(s, LOG_REQUEST, k);
			}
			if (tr->close_conns)
				detector__conn_closed(d, s->pid, s->conn);
			rnd = rnd * 6364136223846793005ULL + 1;
			s->t += tr->gap_min + (rnd >> 33) % tr->gap_var;
		}
	detector__finish(d);

	/* with stacks the fk and mn pages' author loops are two findings
	 * (views.py:29 and :45); without, one */
	const struct { enum finding_kind kind; const char *stmt; const char *fix; uint32_t line; } want[] = {
		{ FINDING_NPLUSONE, "FROM \"blog_author\" WHERE", "Post.objects.select_related(\"author\")", 29 },
		{ FINDING_NPLUSONE, "FROM \"blog_category\" WHERE", "Post.objects.select_related(\"category\")", 46 },
		{ FINDING_NPLUSONE, "\"author_id\" = $1", "Author.objects.prefetch_related(\"post_set\")", 66 },
		{ FINDING_NPLUSONE, "FROM \"blog_tag\"", "Post.objects.prefetch_related(\"tags\")", 85 },
		{ FINDING_NPLUSONE, "COUNT(*)", "Post.objects.annotate(Count(\"comment\"))", 103 },
		{ FINDING_NPLUSONE, "INSERT INTO", "Visit.objects.bulk_create([...])", 121 },
		{ FINDING_NPLUSONE, "UPDATE", "Post.objects.bulk_update(objs, [\"view_count\"])", 138 },
		{ FINDING_NPLUSONE, "AS \"a\"", "Post.objects.annotate(has_comment=Exists(Comment.objects.filter(post=OuterRef(\"pk\"))))", 154 },
		{ FINDING_DUPLICATE, "blog_sitesettings", "load the Sitesettings once, before the loop, and reuse it", 173 },
		{ FINDING_NPLUSONE, "FROM \"blog_author\" WHERE", "Post.objects.select_related(\"author\")", 45 },
	};
	size_t nwant = tr->stacks ? 10 : 9;

	if (tr->pages) {	/* fixed pages only */
		CHECK_INT(detector__nfindings(d), 0);
		for (size_t i = 0; i < detector__nfindings(d); i++)
			fprintf(stderr, "  unexpected: %s %s\n", finding_kind_name(detector__finding(d, i)->kind),
				detector__finding(d, i)->stmt.norm->s);
		detector__free(d);
		return;
	}
	CHECK_INT(detector__nfindings(d), nwant);
	for (size_t i = 0; i < nwant; i++) {
		const struct finding *f = NULL;

		for (size_t j = 0; j < detector__nfindings(d); j++) {
			const struct finding *g = detector__finding(d, j);

			if (g->kind == want[i].kind && strstr(g->stmt.norm->s, want[i].stmt) &&
			    (!tr->stacks || (g->site_index >= 0 &&
					     g->stack[g->site_index].line == want[i].line)))
				f = g;
		}
		if (!f) {
			fprintf(stderr, "  missing: %s (line %u)\n", want[i].stmt, (unsigned)want[i].line);
			CHECK(0);
			continue;
		}
		CHECK_STR(f->hint.fix, want[i].fix);
		/* without stacks the fk and mn pages share the author loop */
		CHECK_INT(f->occurrences, (uint64_t)tr->reps * (i == 0 && !tr->stacks ? 2 : 1));
		CHECK_INT(f->count_max, i == 2 ? 10 : 100);
		CHECK_INT(f->count_typical, i == 2 ? 10 : 100);
		CHECK(f->has_parent);
		CHECK(strstr(f->parent.norm->s, i == 2 ? "FROM \"blog_author\" ORDER BY" : "FROM \"blog_post\" ORDER BY"));
		if (tr->close_conns)
			CHECK_INT(f->units, f->occurrences);
	}
	for (size_t i = 0; i < detector__nfindings(d); i++) {
		const struct finding *f = detector__finding(d, i);
		bool known = false;

		for (size_t j = 0; j < nwant; j++)
			known |= f->kind == want[j].kind && strstr(f->stmt.norm->s, want[j].stmt);
		if (!known)
			fprintf(stderr, "  unexpected: %s %s\n", finding_kind_name(f->kind), f->stmt.norm->s);
	}
	detector__free(d);
}

static void test_demo_traffic(void)
{
	static const int fixed[] = { 1, 3, 5, 7, 9, 11, 13, 15, 17 };
	struct traffic t = { .reps = 5, .npages = 18, .gap_var = 3 * MS };

	/* connections closed per request (Django's default), requests 0-3 ms
	 * apart on each thread: a unit of work per request, with or without
	 * stacks */
	t.close_conns = true;
	demo_traffic(&t);
	t.stacks = true;
	demo_traffic(&t);
	t.mw = true;
	demo_traffic(&t);
	/* persistent connections, requests back to back: one unit of work
	 * per thread; the stacks tell the requests apart */
	t.close_conns = false;
	t.mw = false;
	demo_traffic(&t);
	t.mw = true;
	demo_traffic(&t);
	t.gap_min = 200 * MS;	/* idle between requests */
	demo_traffic(&t);
	t.mw = false;
	t.stacks = false;
	demo_traffic(&t);
	/* the fixed pages alone, hammered back to back */
	t = (struct traffic){ .reps = 20, .npages = 9, .pages = fixed, .gap_var = MS };
	t.close_conns = true;
	demo_traffic(&t);
	t.close_conns = false;
	demo_traffic(&t);
	t.stacks = true;
	demo_traffic(&t);
	t.mw = true;
	demo_traffic(&t);
}

/* One request of the demo's fk page from views.py, with stacks. */
static void fk_page_stacks(struct stream *s, int n)
{
	site(s, "fk_nplus1", 28);
	sq(s, "SET TIME ZONE 'UTC'");
	send_q(s, PAGE_POSTS, false, n);
	site(s, "fk_nplus1", 29);
	for (int i = 0; i < n; i++)
		sqf(s, AUTHOR, i % 10 + 1);
}

static void test_slow_iterations(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);
	uint64_t rnd = 99;
	const struct finding *a, *c;

	/* the interleaved page under load: gaps of 0 to 90 ms between the
	 * queries of one loop (GIL contention, a slow database, the tracer's
	 * own cost), 3 requests each on its own connection */
	s.stacks = true;
	for (int r = 0; r < 3; r++) {
		site(&s, "mn_nplus1", 44);
		send_q(&s, PAGE_POSTS, false, 100);
		for (int i = 0; i < 100; i++) {
			rnd = rnd * 6364136223846793005ULL + 1;
			s.t += (rnd >> 33) % (90 * MS);
			site(&s, "mn_nplus1", 45);
			sqf(&s, AUTHOR, i % 10 + 1);
			rnd = rnd * 6364136223846793005ULL + 1;
			s.t += (rnd >> 33) % (90 * MS);
			site(&s, "mn_nplus1", 46);
			sqf(&s, CATEGORY, i % 5 + 1);
		}
		detector__conn_closed(d, s.pid, s.conn);
		s.t += 2 * MS;
	}
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 2);
	a = find(d, FINDING_NPLUSONE, "blog_author");
	c = find(d, FINDING_NPLUSONE, "blog_category");
	CHECK(a && c);
	if (a && c) {
		CHECK_INT(a->occurrences, 3);
		CHECK_INT(a->units, 3);
		CHECK_INT(a->count_max, 100);
		CHECK_INT(a->count_typical, 100);
		CHECK_INT(a->stack[a->site_index].line, 45);
		CHECK_INT(c->occurrences, 3);
		CHECK_INT(c->count_max, 100);
		CHECK_INT(c->stack[c->site_index].line, 46);
		CHECK_STR(c->parent.norm->s, PAGE_POSTS);
		CHECK_STR(c->hint.fix, "Post.objects.select_related(\"category\")");
	}
	CHECK_INT(detector__totals(d)->units, 3);
	detector__free(d);

	/*
	 * A web service called for each row, 150 to 400 ms per iteration.
	 * The stacks show the thread is still in the loop: one unit, one
	 * N+1.  Without stacks each idle gap (100 ms) ends the unit: the loop
	 * is cut into pieces without a parent, and nothing is found.
	 */
	for (int stacks = 1; stacks >= 0; stacks--) {
		d = new_detector();
		s = stream(d, 7);
		s.stacks = stacks;
		site(&s, "notify_authors", 80);
		send_q(&s, PAGE_POSTS, false, 20);
		site(&s, "notify_authors", 83);
		for (int i = 0; i < 20; i++) {
			rnd = rnd * 6364136223846793005ULL + 1;
			s.t += 150 * MS + (rnd >> 33) % (250 * MS);
			sqf(&s, AUTHOR, i % 10 + 1);
		}
		detector__finish(d);
		CHECK_INT(detector__nfindings(d), stacks ? 1 : 0);
		CHECK_INT(detector__totals(d)->units, stacks ? 1 : 21);
		if (stacks && detector__nfindings(d))
			CHECK_INT(detector__finding(d, 0)->count_max, 20);
		detector__free(d);
	}
}

static void test_stacks_same_page_back_to_back(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);
	const struct finding *f;

	/* persistent connections (CONN_MAX_AGE > 0), one thread serving the
	 * same page 5 times back to back: one unit of work, 5 loops; with
	 * and without the application's middleware querying around it */
	s.stacks = true;
	for (int mw = 0; mw < 2; mw++) {
		s.mw = mw;
		for (int r = 0; r < 5; r++) {
			if (mw) {
				site_mw(&s, 10);
				sqf(&s, USER_OF_SESSION, r);
			}
			fk_page_stacks(&s, r == 2 ? 40 : 100);
			if (mw) {
				site_mw(&s, 20);
				sqf(&s, LOG_REQUEST, r);
			}
			s.t += 500 * US;
		}
		s.t += 2 * SEC;
	}
	detector__finish(d);
	CHECK_INT(detector__totals(d)->units, 2);
	CHECK_INT(detector__nfindings(d), 1);
	f = detector__finding(d, 0);
	CHECK_INT(f->occurrences, 10);
	CHECK_INT(f->units, 2);
	CHECK_INT(f->count_max, 100);
	CHECK_INT(f->count_typical, 100);
	CHECK_INT(f->queries, 8 * 100 + 2 * 40);
	CHECK_STR(f->parent.norm->s, PAGE_POSTS);
	CHECK_INT(f->site_index, 2);
	CHECK_INT(f->stack[f->site_index].line, 29);
	CHECK_STR(f->stack[f->site_index].func->s, "fk_nplus1");
	detector__free(d);
}

static void test_stacks_unrelated_parent(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);

	/* persistent connection: a page that lists 100 posts, then an API
	 * view hammered with one lookup per request, back to back.  The
	 * lookups follow the list, and 50 <= 2 x 100 rows, but the stacks
	 * show another view: no loop */
	s.stacks = true;
	site(&s, "post_list", 12);
	send_q(&s, PAGE_POSTS, false, 100);
	site(&s, "api_author", 70);
	for (int r = 0; r < 50; r++) {
		sqf(&s, AUTHOR, r);
		s.t += 300 * US;
	}
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 0);
	detector__free(d);

	/* without stacks, nothing tells them apart */
	d = new_detector();
	s = stream(d, 7);
	send_q(&s, PAGE_POSTS, false, 100);
	for (int r = 0; r < 50; r++) {
		sqf(&s, AUTHOR, r);
		s.t += 300 * US;
	}
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 1);
	detector__free(d);
}

static void test_stacks_loops_one_after_another(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);
	const struct finding *f;

	/* one request, three loops over the same posts: the author statement
	 * from two lines (two findings: the callsite tells them apart), then
	 * the categories.  Each loop's parent is the posts query, not the
	 * last query of the loop before it (one row) */
	s.stacks = true;
	site(&s, "report", 10);
	send_q(&s, PAGE_POSTS, false, 20);
	site(&s, "report", 11);
	for (int i = 0; i < 20; i++)
		sqf(&s, AUTHOR, i);
	site(&s, "report", 14);
	for (int i = 0; i < 20; i++)
		sqf(&s, AUTHOR, i);
	site(&s, "report", 17);
	for (int i = 0; i < 20; i++)
		sqf(&s, CATEGORY, i);
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 3);
	for (size_t i = 0; i < detector__nfindings(d); i++) {
		f = detector__finding(d, i);
		CHECK_INT(f->count_max, 20);
		CHECK_STR(f->parent.norm->s, PAGE_POSTS);
		CHECK_INT(f->parent_rows, 20);
		CHECK(f->site_index == 2);
		CHECK_STR(f->hint.fix, strstr(f->stmt.norm->s, "blog_author") ?
			  "Post.objects.select_related(\"author\")" :
			  "Post.objects.select_related(\"category\")");
	}
	CHECK(find(d, FINDING_NPLUSONE, "blog_category") != NULL);
	detector__free(d);
}

static void test_stacks_nested_and_library_loops(void)
{
	struct detector *d = new_detector();
	struct stream s = stream(d, 7);
	const struct finding *c, *u, *t, *a;
	int users = 0;

	/* nested loops in a view: the users' loop goes on across the
	 * comments' loop */
	s.stacks = true;
	site(&s, "thread", 10);
	send_q(&s, POSTS, false, 10);
	for (int p = 1; p <= 10; p++) {
		site(&s, "thread", 12);
		sqf(&s, COMMENTS, p);
		site(&s, "thread", 14);
		for (int k = 0; k < p % 4; k++, users++)
			sqf(&s, USER, 100 + users);
	}
	detector__conn_closed(d, s.pid, s.conn);
	s.t += MS;

	/*
	 * A loop in library code (a REST framework's serializer): the list
	 * comes from the framework's list() (line 40), then per row one field
	 * calls the application (serializers.py:20), another loads tags in
	 * the framework only (no application frame).  Both fields are called
	 * from the same library line: the tags' parent is still the list.
	 */
	for (int r = 0; r < 2; r++) {
		s.nframes = 0;
		push(&s, DJANGO "db/backends/utils.py", "CursorWrapper._execute", 84);
		push(&s, "/usr/lib/python3/dist-packages/rest_framework/pagination.py", "paginate_queryset", 212);
		push(&s, "/usr/lib/python3/dist-packages/rest_framework/mixins.py", "ListModelMixin.list", 40);
		outer_frames(&s, true);
		send_q(&s, PAGE_POSTS, false, 30);
		for (int i = 0; i < 30; i++) {
			s.nframes = 0;
			push(&s, DJANGO "db/backends/utils.py", "CursorWrapper._execute", 84);
			push(&s, "/srv/app/blog/serializers.py", "PostSerializer.get_author_name", 20);
			push(&s, "/usr/lib/python3/dist-packages/rest_framework/fields.py",
			     "SerializerMethodField.to_representation", 1885);
			push(&s, "/usr/lib/python3/dist-packages/rest_framework/serializers.py",
			     "Serializer.to_representation", 522);
			push(&s, "/usr/lib/python3/dist-packages/rest_framework/mixins.py", "ListModelMixin.list", 43);
			outer_frames(&s, true);
			sqf(&s, AUTHOR, i % 7);
			s.nframes = 0;
			push(&s, DJANGO "db/backends/utils.py", "CursorWrapper._execute", 84);
			push(&s, "/usr/lib/python3/dist-packages/rest_framework/relations.py",
			     "ManyRelatedField.to_representation", 569);
			push(&s, "/usr/lib/python3/dist-packages/rest_framework/serializers.py",
			     "Serializer.to_representation", 522);
			push(&s, "/usr/lib/python3/dist-packages/rest_framework/mixins.py", "ListModelMixin.list", 43);
			outer_frames(&s, true);
			sqf(&s, "SELECT \"blog_tag\".\"id\" FROM \"blog_tag\" INNER JOIN \"blog_post_tags\" ON "
			    "(\"blog_tag\".\"id\" = \"blog_post_tags\".\"tag_id\") WHERE \"blog_post_tags\".\"post_id\" = %d", i);
		}
		detector__conn_closed(d, s.pid, s.conn);
		s.t += MS;
	}
	detector__finish(d);
	CHECK_INT(detector__nfindings(d), 4);
	c = find(d, FINDING_NPLUSONE, "blog_comment");
	u = find(d, FINDING_NPLUSONE, "auth_user");
	t = find(d, FINDING_NPLUSONE, "blog_tag");
	a = find(d, FINDING_NPLUSONE, "blog_author");
	CHECK(c && u && t && a);
	if (!c || !u || !t || !a)
		goto out;
	CHECK_INT(c->count_max, 10);
	CHECK_INT(u->count_max, users);
	CHECK(strstr(u->parent.norm->s, "blog_comment") != NULL);
	CHECK_INT(a->occurrences, 2);
	CHECK_INT(a->count_max, 30);
	CHECK_STR(a->parent.norm->s, PAGE_POSTS);
	CHECK_INT(a->stack[a->site_index].line, 20);
	CHECK_INT(t->occurrences, 2);
	CHECK_INT(t->count_max, 30);
	CHECK_STR(t->parent.norm->s, PAGE_POSTS);
	CHECK_INT(t->site_index, -1);	/* no application frame */
	CHECK_STR(t->hint.fix, "Post.objects.prefetch_related(\"tags\")");
out:
	detector__free(d);
}

/* The hash map under the detector: random puts and deletes against a
 * plain array (deletion shifts entries back: easy to get wrong). */
static void test_u64map(void)
{
	struct u64map m;
	static void *ref[512];
	uint64_t x = 88172645463325252ULL;

	u64map_init(&m);
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* few distinct keys, clustered: long probe chains */
		uint64_t key = (x % 512) * 1024;
		void *val = (void *)(uintptr_t)(i + 1);

		if (x >> 62) {
			CHECK_INT(u64map_put(&m, key, val), 0);
			ref[key / 1024] = val;
		} else {
			u64map_del(&m, key);
			ref[key / 1024] = NULL;
		}
	}
	size_t n = 0;

	for (int k = 0; k < 512; k++) {
		void **v = u64map_get(&m, (uint64_t)k * 1024);

		CHECK((v != NULL) == (ref[k] != NULL));
		if (v && ref[k])
			CHECK(*v == ref[k]);
		n += ref[k] != NULL;
	}
	CHECK_INT(m.n, n);
	u64map_release(&m);
}

int main(void)
{
	RUN(test_nplusone);
	RUN(test_interleaved);
	RUN(test_nested);
	RUN(test_same_finding_in_many_units);
	RUN(test_back_to_back_requests);
	RUN(test_one_query_requests_are_no_loop);
	RUN(test_duplicate);
	RUN(test_thresholds);
	RUN(test_chunked_cursor);
	RUN(test_neutral_statements_do_not_break_runs);
	RUN(test_threads_are_separate);
	RUN(test_prepared_statements);
	RUN(test_long_loop_spans_units);
	RUN(test_tick_closes_idle_units);
	RUN(test_slow_query_in_a_loop);
	RUN(test_ranked_by_wasted_time);
	RUN(test_truncated_texts);
	RUN(test_examples_only_when_asked);
	RUN(test_bounded_memory);
	RUN(test_errors_and_unfinished_count);
	RUN(test_more_repeats_than_parent_rows);
	RUN(test_conn_closed_ends_the_unit);
	RUN(test_demo_traffic);
	RUN(test_slow_iterations);
	RUN(test_stacks_same_page_back_to_back);
	RUN(test_stacks_unrelated_parent);
	RUN(test_stacks_loops_one_after_another);
	RUN(test_stacks_nested_and_library_loops);
	RUN(test_u64map);
	return unit_summary();
}
