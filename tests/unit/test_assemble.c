/* Joining BPF records into queries: order, drops, prepared statements. */
#include <stdlib.h>
#include <linux/types.h>

#include "assemble.h"
#include "pqsnoop.h"
#include "unit.h"

#define MAXQ 16

/* What the callback saw, copied (the query is valid only in the callback). */
struct seen {
	int n;
	struct {
		enum pq_query_kind kind;
		enum pq_query_status status;
		char sql[64];
		char stmt[16];
		int64_t rows;
		uint64_t start_ns, duration_ns;
		uint32_t tid, sql_len;
		bool truncated, text_unknown;
		char sqlstate[8], error[64];
	} q[MAXQ];
};

static void collect(const struct pq_query *q, void *ctx)
{
	struct seen *s = ctx;

	if (s->n >= MAXQ)
		return;
	s->q[s->n].kind = q->kind;
	s->q[s->n].status = q->status;
	snprintf(s->q[s->n].sql, sizeof(s->q[0].sql), "%s", q->sql);
	snprintf(s->q[s->n].stmt, sizeof(s->q[0].stmt), "%s", q->stmt_name ? q->stmt_name : "");
	snprintf(s->q[s->n].sqlstate, sizeof(s->q[0].sqlstate), "%s", q->sqlstate);
	snprintf(s->q[s->n].error, sizeof(s->q[0].error), "%s", q->error);
	s->q[s->n].rows = q->rows;
	s->q[s->n].start_ns = q->start_ns;
	s->q[s->n].duration_ns = q->duration_ns;
	s->q[s->n].tid = q->tid;
	s->q[s->n].sql_len = q->sql_len;
	s->q[s->n].truncated = q->truncated;
	s->q[s->n].text_unknown = q->text_unknown;
	s->n++;
}

static struct assembler *new_asm(struct seen *s)
{
	struct assembler_opts o = { .on_query = collect, .ctx = s, .mono_to_real_ns = 1000 };

	memset(s, 0, sizeof(*s));
	return assembler__new(&o);
}

static void send(struct assembler *a, uint32_t pid, uint64_t conn, uint64_t seq,
		 uint32_t kind, const char *name, const char *sql, uint64_t t)
{
	struct pq_rec_send r;
	size_t n = sql ? strlen(sql) : 0;

	memset(&r, 0, sizeof(r));
	r.type = PQ_REC_SEND;
	r.kind = kind;
	r.pid = pid;
	r.tid = pid + 1;
	r.conn = conn;
	r.seq = seq;
	r.start_ns = t;
	r.sql_cap = n;
	r.sql_len = n;
	if (name) {
		r.name_len = strlen(name);
		memcpy(r.name, name, r.name_len);
	}
	memcpy(r.sql, sql ? sql : "", n);
	CHECK_INT(assembler__record(a, &r, PQ_REC_SEND_HDR_SIZE + n + 1, NULL), PQ_REC_SEND);
}

static void end(struct assembler *a, uint32_t pid, uint64_t conn, uint64_t seq,
		uint32_t status, int32_t ntups, const char *tag, uint64_t t)
{
	struct pq_rec_end e;

	memset(&e, 0, sizeof(e));
	e.type = PQ_REC_END;
	e.pid = pid;
	e.tid = pid + 1;
	e.conn = conn;
	e.seq = seq;
	e.status = status;
	e.ntups = ntups;
	e.end_ns = t;
	e.nresults = 1;
	snprintf(e.cmd_status, sizeof(e.cmd_status), "%s", tag);
	if (status == PQS_FATAL_ERROR) {
		strcpy(e.sqlstate, "22012");
		strcpy(e.errmsg, "ERROR:  division by zero\n");
	}
	CHECK_INT(assembler__record(a, &e, sizeof(e), NULL), PQ_REC_END);
}

static void test_simple_query(void)
{
	struct seen s;
	struct assembler *a = new_asm(&s);

	send(a, 10, 0xc0, 0, PQ_SEND_QUERY, NULL, "SELECT 1", 5000);
	CHECK_INT(s.n, 0);
	CHECK_INT(assembler__stats(a)->pending, 1);
	end(a, 10, 0xc0, 0, PQS_TUPLES_OK, 1, "SELECT 1", 7000);
	CHECK_INT(s.n, 1);
	CHECK_STR(s.q[0].sql, "SELECT 1");
	CHECK_INT(s.q[0].status, PQ_STATUS_OK);
	CHECK_INT(s.q[0].rows, 1);
	CHECK_INT(s.q[0].start_ns, 6000);	/* mono + offset */
	CHECK_INT(s.q[0].duration_ns, 2000);
	CHECK_INT(s.q[0].tid, 11);
	CHECK_INT(assembler__stats(a)->queries, 1);
	CHECK_INT(assembler__stats(a)->pending, 0);
	assembler__free(a);
}

static void test_pipeline_fifo_and_connections(void)
{
	struct seen s;
	struct assembler *a = new_asm(&s);

	send(a, 10, 0xc0, 0, PQ_SEND_QUERY_PARAMS, NULL, "A", 1);
	send(a, 10, 0xc0, 1, PQ_SEND_QUERY_PARAMS, NULL, "B", 2);
	send(a, 10, 0xd0, 0, PQ_SEND_QUERY, NULL, "other conn", 3);
	send(a, 11, 0xc0, 0, PQ_SEND_QUERY, NULL, "other pid", 3);
	end(a, 10, 0xc0, 0, PQS_TUPLES_OK, 2, "SELECT 2", 4);
	end(a, 11, 0xc0, 0, PQS_COMMAND_OK, 0, "INSERT 0 7", 4);
	end(a, 10, 0xc0, 1, PQS_FATAL_ERROR, 0, "", 5);
	end(a, 10, 0xd0, 0, PQS_COMMAND_OK, 0, "UPDATE 3", 6);
	CHECK_INT(s.n, 4);
	CHECK_STR(s.q[0].sql, "A");
	CHECK_STR(s.q[1].sql, "other pid");
	CHECK_INT(s.q[1].rows, 7);
	CHECK_STR(s.q[2].sql, "B");
	CHECK_INT(s.q[2].status, PQ_STATUS_ERROR);
	CHECK_STR(s.q[2].sqlstate, "22012");
	CHECK_STR(s.q[2].error, "division by zero");
	CHECK_INT(s.q[2].rows, 0);
	CHECK_STR(s.q[3].sql, "other conn");
	CHECK_INT(s.q[3].rows, 3);
	CHECK_INT(assembler__stats(a)->errors, 1);
	assembler__free(a);
}

static void test_prepared_statement_text(void)
{
	struct seen s;
	struct assembler *a = new_asm(&s);

	send(a, 10, 0xc0, 0, PQ_SEND_PREPARE, "_pg3_0", "SELECT $1::int", 1);
	end(a, 10, 0xc0, 0, PQS_COMMAND_OK, 0, "", 2);
	send(a, 10, 0xc0, 1, PQ_SEND_QUERY_PREPARED, "_pg3_0", NULL, 3);
	end(a, 10, 0xc0, 1, PQS_TUPLES_OK, 1, "SELECT 1", 4);
	/* prepared before we attached: only the name is known */
	send(a, 10, 0xc0, 2, PQ_SEND_QUERY_PREPARED, "old", NULL, 5);
	end(a, 10, 0xc0, 2, PQS_TUPLES_OK, 1, "SELECT 1", 6);
	/* the same name on another connection is another statement */
	send(a, 10, 0xe0, 0, PQ_SEND_QUERY_PREPARED, "_pg3_0", NULL, 5);
	end(a, 10, 0xe0, 0, PQS_TUPLES_OK, 1, "SELECT 1", 6);
	CHECK_INT(s.n, 4);
	CHECK_INT(s.q[0].kind, PQ_KIND_PREPARE);
	CHECK_INT(s.q[1].kind, PQ_KIND_QUERY);
	CHECK_STR(s.q[1].sql, "SELECT $1::int");
	CHECK_STR(s.q[1].stmt, "_pg3_0");
	CHECK_INT(s.q[1].sql_len, 14);
	CHECK(!s.q[1].text_unknown);
	CHECK(s.q[2].text_unknown);
	CHECK_STR(s.q[2].sql, "");
	CHECK(s.q[3].text_unknown);
	CHECK_INT(assembler__stats(a)->queries, 3);
	CHECK_INT(assembler__stats(a)->prepares, 1);
	assembler__free(a);
}

static void test_lost_records(void)
{
	struct seen s;
	struct assembler *a = new_asm(&s);

	send(a, 10, 0xc0, 0, PQ_SEND_QUERY, NULL, "end lost", 1);
	/* seq 1's SEND was dropped; seq 2 arrives */
	send(a, 10, 0xc0, 2, PQ_SEND_QUERY, NULL, "fine", 2);
	end(a, 10, 0xc0, 1, PQS_TUPLES_OK, 1, "SELECT 1", 3);
	end(a, 10, 0xc0, 2, PQS_TUPLES_OK, 1, "SELECT 1", 4);
	CHECK_INT(s.n, 2);
	CHECK_STR(s.q[0].sql, "end lost");
	CHECK_INT(s.q[0].status, PQ_STATUS_UNKNOWN);
	CHECK_STR(s.q[1].sql, "fine");
	CHECK_INT(s.q[1].status, PQ_STATUS_OK);
	CHECK_INT(assembler__stats(a)->lost_ends, 1);
	CHECK_INT(assembler__stats(a)->lost_sends, 1);
	assembler__free(a);
}

static void test_close_flush_and_exit(void)
{
	struct seen s;
	struct assembler *a = new_asm(&s);
	struct pq_rec_conn_close c = { .type = PQ_REC_CONN_CLOSE, .pid = 10,
				       .conn = 0xc0, .next_seq = 1 };

	send(a, 10, 0xc0, 0, PQ_SEND_QUERY, NULL, "closed under it", 1);
	CHECK_INT(assembler__record(a, &c, sizeof(c), NULL), PQ_REC_CONN_CLOSE);
	CHECK_INT(s.n, 1);
	CHECK_INT(s.q[0].status, PQ_STATUS_UNFINISHED);
	/* the address is reused by a new connection: numbering restarts */
	send(a, 10, 0xc0, 0, PQ_SEND_QUERY, NULL, "new conn", 2);
	end(a, 10, 0xc0, 0, PQS_TUPLES_OK, 1, "SELECT 1", 3);
	CHECK_INT(s.n, 2);
	CHECK_INT(s.q[1].status, PQ_STATUS_OK);
	send(a, 12, 0xc0, 0, PQ_SEND_QUERY, NULL, "pid 12", 2);
	send(a, 13, 0xc0, 0, PQ_SEND_QUERY, NULL, "pid 13", 2);
	assembler__flush_pid(a, 12);
	CHECK_INT(s.n, 3);
	CHECK_STR(s.q[2].sql, "pid 12");
	assembler__flush(a);
	CHECK_INT(s.n, 4);
	CHECK_STR(s.q[3].sql, "pid 13");
	CHECK_INT(s.q[3].status, PQ_STATUS_UNFINISHED);
	CHECK_INT(assembler__stats(a)->unfinished, 3);
	assembler__free(a);
}

static void test_pending_freed_without_callbacks(void)
{
	struct seen s;
	struct assembler *a = new_asm(&s);

	/* ASan's leak check proves the free; no callback may run */
	send(a, 10, 0xc0, 0, PQ_SEND_PREPARE, "s", "SELECT 1", 1);
	send(a, 10, 0xc0, 1, PQ_SEND_QUERY, NULL, "SELECT 2", 1);
	assembler__free(a);
	CHECK_INT(s.n, 0);
}

static void test_malformed_records(void)
{
	struct seen s;
	struct assembler *a = new_asm(&s);
	struct pq_rec_send r;
	uint32_t t = 99;

	memset(&r, 0, sizeof(r));
	r.type = PQ_REC_SEND;
	r.sql_cap = 100;	/* claims more text than the record holds */
	CHECK_INT(assembler__record(a, &r, PQ_REC_SEND_HDR_SIZE + 10, NULL), -1);
	r.sql_cap = PQ_SQL_MAX + 1;
	CHECK_INT(assembler__record(a, &r, sizeof(r), NULL), -1);
	CHECK_INT(assembler__record(a, &t, sizeof(t), NULL), -1);
	CHECK_INT(assembler__record(a, &t, 2, NULL), -1);
	CHECK_INT(assembler__stats(a)->bad_records, 4);
	CHECK_INT(s.n, 0);
	assembler__free(a);
}

static void test_truncated_text(void)
{
	struct seen s;
	struct assembler *a = new_asm(&s);
	struct pq_rec_send *r = calloc(1, sizeof(*r));

	r->type = PQ_REC_SEND;
	r->kind = PQ_SEND_QUERY;
	r->pid = 1;
	r->conn = 2;
	r->sql_cap = PQ_SQL_MAX;
	r->sql_len = 10000;
	memset(r->sql, 'x', PQ_SQL_MAX);
	CHECK_INT(assembler__record(a, r, PQ_REC_SEND_HDR_SIZE + PQ_SQL_MAX + 1, NULL), PQ_REC_SEND);
	end(a, 1, 2, 0, PQS_TUPLES_OK, 1, "SELECT 1", 1);
	CHECK_INT(s.n, 1);
	CHECK_INT(s.q[0].sql_len, 10000);
	CHECK(s.q[0].truncated);
	free(r);
	assembler__free(a);
}

static void test_rows_from_tags(void)
{
	CHECK_INT(pq_rows_from_result(PQS_TUPLES_OK, 5, "SELECT 5"), 5);
	CHECK_INT(pq_rows_from_result(PQS_COMMAND_OK, 0, "INSERT 0 12"), 12);
	CHECK_INT(pq_rows_from_result(PQS_COMMAND_OK, 0, "UPDATE 3"), 3);
	CHECK_INT(pq_rows_from_result(PQS_COMMAND_OK, 0, "DELETE 0"), 0);
	CHECK_INT(pq_rows_from_result(PQS_COMMAND_OK, 0, "COPY 100"), 100);
	CHECK_INT(pq_rows_from_result(PQS_COMMAND_OK, 0, "BEGIN"), 0);
	CHECK_INT(pq_rows_from_result(PQS_COMMAND_OK, 0, "CREATE TABLE"), 0);
	CHECK_INT(pq_rows_from_result(PQS_COMMAND_OK, 0, "SAVEPOINT s1"), 0);
	CHECK_INT(pq_rows_from_result(PQS_COMMAND_OK, 0, ""), 0);
	CHECK_STR(pq_exec_status_name(PQS_PIPELINE_ABORTED), "PGRES_PIPELINE_ABORTED");
	CHECK_STR(pq_exec_status_name(99), "PGRES_UNKNOWN");
}

int main(void)
{
	RUN(test_simple_query);
	RUN(test_pipeline_fifo_and_connections);
	RUN(test_prepared_statement_text);
	RUN(test_lost_records);
	RUN(test_close_flush_and_exit);
	RUN(test_pending_freed_without_callbacks);
	RUN(test_malformed_records);
	RUN(test_truncated_text);
	RUN(test_rows_from_tags);
	return unit_summary();
}
