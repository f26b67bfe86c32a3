/* Capture records: queries, stacks and summaries survive the round trip;
 * malformed payloads are refused, never crash. */
#include <stdlib.h>
#include <unistd.h>

#include "capture.h"
#include "unit.h"

static char path[] = "/tmp/pqsnoop-capture-XXXXXX";

static const struct pq_frame frames[] = {
	{ "/app/blog/views.py", "post_list", 42 },
	{ "/usr/lib/python3/dist-packages/django/db/models/query.py", "QuerySet.__iter__", 0 },
};

static void sample(struct capture_query *cq)
{
	memset(cq, 0, sizeof(*cq));
	cq->q.kind = PQ_KIND_QUERY;
	cq->q.status = PQ_STATUS_ERROR;
	cq->q.pid = 4242;
	cq->q.tid = 4243;
	cq->q.conn = 0x55d0c0ffee;
	cq->q.start_ns = 1795693796111925401ULL;
	cq->q.duration_ns = 703585;
	cq->q.rows = -1;
	cq->q.sql = "SELECT $1 /* \x1b[2J */";
	cq->q.sql_cap = strlen(cq->q.sql);
	cq->q.sql_len = 10000;
	cq->q.truncated = true;
	cq->q.stmt_name = NULL;
	cq->q.api = "PQsendQuery";
	cq->q.result_status = "PGRES_FATAL_ERROR";
	cq->q.cmd_status = "";
	cq->q.sqlstate = "22012";
	cq->q.error = "division by zero";
	cq->q.comm = "gunicorn";
	cq->q.stack = frames;
	cq->q.nframes = 2;
	cq->fp = 0xfeedULL;
	cq->values = 0x1234567890abcdefULL;
	cq->values_known = true;
	cq->cls = 2;
	cq->norm = cq->q.sql;
	cq->norm_len = cq->q.sql_cap;
	cq->values_redacted = true;
}

static void test_round_trip(void)
{
	char err[256];
	struct capfile_writer *w = capfile_writer__open(path, 0600, err, sizeof(err));
	struct capfile_reader *r;
	struct capture_arena *a = capture_arena__new();
	struct capture_meta m = { .version = "0.1.0", .hostname = "db1", .target_pid = 4242,
				  .target_comm = "python3", .start_ns = 7, .options = "-p 4242" };
	struct capture_query cq, back;
	struct run_summary s = { .dropped_send = 3, .processes = 2, .seconds = 1.5,
				 .end_reason = "duration" }, sback;
	struct capture_meta mback;
	const void *p;
	uint32_t len;
	uint16_t type;

	sample(&cq);
	s.asm_stats.queries = 101;
	CHECK(w != NULL);
	CHECK_INT(capture_put_meta(w, &m, err, sizeof(err)), 0);
	CHECK_INT(capture_put_query(w, &cq, err, sizeof(err)), 0);
	CHECK_INT(capture_put_summary(w, &s, err, sizeof(err)), 0);
	CHECK_INT(capfile_writer__close(w), 0);

	r = capfile_reader__open(path, err, sizeof(err));
	CHECK(r != NULL);
	CHECK_INT(capfile_reader__next(r, &type, &p, &len, err, sizeof(err)), 1);
	CHECK_INT(type, CAP_META);
	CHECK_INT(capture_get_meta(p, len, &mback, a), 0);
	CHECK_STR(mback.hostname, "db1");
	CHECK_STR(mback.options, "-p 4242");
	CHECK_INT(mback.target_pid, 4242);

	CHECK_INT(capfile_reader__next(r, &type, &p, &len, err, sizeof(err)), 1);
	CHECK_INT(type, CAP_QUERY);
	CHECK_INT(capture_get_query(p, len, &back, a), 0);
	CHECK_STR(back.q.sql, cq.q.sql);
	CHECK_INT(back.q.sql_cap, cq.q.sql_cap);
	CHECK_INT(back.q.sql_len, 10000);
	CHECK(back.q.truncated && back.values_redacted && !back.q.text_unknown);
	CHECK(back.q.stmt_name == NULL);
	CHECK_STR(back.q.error, "division by zero");
	CHECK_INT(back.q.rows, -1);
	CHECK_INT(back.q.status, PQ_STATUS_ERROR);
	CHECK_INT(back.q.start_ns, cq.q.start_ns);
	CHECK_INT(back.values, cq.values);
	CHECK_INT(back.fp, 0xfeed);
	CHECK(back.values_known && !back.parsed);
	CHECK_INT(back.cls, 2);
	CHECK_STR(back.norm, cq.q.sql);
	CHECK_INT(back.q.nframes, 2);
	CHECK_STR(back.q.stack[0].file, "/app/blog/views.py");
	CHECK_STR(back.q.stack[1].func, "QuerySet.__iter__");
	CHECK_INT(back.q.stack[0].line, 42);

	CHECK_INT(capfile_reader__next(r, &type, &p, &len, err, sizeof(err)), 1);
	CHECK_INT(type, CAP_SUMMARY);
	CHECK_INT(capture_get_summary(p, len, &sback, a), 0);
	CHECK_INT(sback.asm_stats.queries, 101);
	CHECK_INT(sback.dropped_send, 3);
	CHECK_STR(sback.end_reason, "duration");
	CHECK_INT(capfile_reader__next(r, &type, &p, &len, err, sizeof(err)), 0);
	capfile_reader__close(r);
	capture_arena__free(a);
}

/* Every cut of a query payload, and random bytes, are refused cleanly. */
static void test_malformed_payloads(void)
{
	char err[256];
	struct capfile_writer *w = capfile_writer__open(path, 0600, err, sizeof(err));
	struct capfile_reader *r;
	struct capture_arena *a = capture_arena__new();
	struct capture_query cq, back;
	struct capture_meta m;
	struct run_summary s;
	unsigned char *copy, junk[512];
	const void *p;
	uint32_t len;
	uint16_t type;

	sample(&cq);
	capture_put_query(w, &cq, err, sizeof(err));
	capfile_writer__close(w);
	r = capfile_reader__open(path, err, sizeof(err));
	CHECK_INT(capfile_reader__next(r, &type, &p, &len, err, sizeof(err)), 1);
	copy = malloc(len);
	memcpy(copy, p, len);
	for (uint32_t cut = 0; cut < len; cut++)
		CHECK_INT(capture_get_query(copy, cut, &back, a), -1);
	CHECK_INT(capture_get_query(copy, len, &back, a), 0);
	srand(7);
	for (int i = 0; i < 2000; i++) {
		size_t n = rand() % sizeof(junk);

		for (size_t k = 0; k < n; k++)
			junk[k] = rand();
		/* any result is fine; crashing or reading out of bounds is not */
		capture_get_query(junk, n, &back, a);
		capture_get_meta(junk, n, &m, a);
		capture_get_summary(junk, n, &s, a);
	}
	free(copy);
	capfile_reader__close(r);
	capture_arena__free(a);
}

int main(void)
{
	int fd = mkstemp(path);

	if (fd < 0)
		return 1;
	close(fd);
	RUN(test_round_trip);
	RUN(test_malformed_payloads);
	unlink(path);
	return unit_summary();
}
