#include "timeline.h"

#include <stdlib.h>
#include <string.h>

#include "json_writer.h"
#include "u64map.h"

struct timeline {
	struct json_writer *jw;
	FILE *out;
	struct u64map threads;	/* pid << 32 | tid: named already */
	struct u64map procs;	/* pid: named already */
};

/* Microseconds, as the format wants; absolute (epoch) so several files
 * line up. */
static double us(uint64_t ns)
{
	return ns / 1000.0;
}

struct timeline *timeline__new(FILE *out)
{
	struct timeline *t = calloc(1, sizeof(*t));

	if (!t || !(t->jw = jw__new(out))) {
		free(t);
		return NULL;
	}
	t->out = out;
	jw_start_object(t->jw);
	jw_kv_string(t->jw, "displayTimeUnit", "ms");
	jw_key(t->jw, "traceEvents");
	jw_start_array(t->jw);
	return t;
}

static void meta(struct timeline *t, const char *what, uint32_t pid, uint32_t tid,
		 const char *name)
{
	struct json_writer *jw = t->jw;

	jw_start_object(jw);
	jw_kv_string(jw, "ph", "M");
	jw_kv_string(jw, "name", what);
	jw_kv_uint(jw, "pid", pid);
	jw_kv_uint(jw, "tid", tid);
	jw_key(jw, "args");
	jw_start_object(jw);
	jw_kv_string(jw, "name", name);
	jw_end_object(jw);
	jw_end_object(jw);
}

void timeline__query(struct timeline *t, const struct pq_query *q, const char *sql,
		     size_t sql_len, unsigned rank)
{
	struct json_writer *jw = t->jw;
	uint64_t key = (uint64_t)q->pid << 32 | q->tid;
	char name[64];

	if (!u64map_get(&t->procs, q->pid)) {
		char pname[64];

		u64map_put(&t->procs, q->pid, NULL);
		snprintf(pname, sizeof(pname), "pid %u", q->pid);
		meta(t, "process_name", q->pid, q->pid, pname);
	}
	if (!u64map_get(&t->threads, key)) {
		char tname[64];

		u64map_put(&t->threads, key, NULL);
		snprintf(tname, sizeof(tname), "%s %u", q->comm && *q->comm ? q->comm : "tid", q->tid);
		meta(t, "thread_name", q->pid, q->tid, tname);
	}
	/* the slice's name: the statement's first words */
	snprintf(name, sizeof(name), "%.*s", (int)(sql_len < 60 ? sql_len : 60), sql);
	for (char *p = name; *p; p++)
		if (*p == '\n' || *p == '\t' || *p == '\r')
			*p = ' ';
	jw_start_object(jw);
	jw_kv_string(jw, "ph", "X");
	jw_key(jw, "name");
	jw_string(jw, name);
	jw_kv_string(jw, "cat", rank ? "n+1" : "query");
	if (rank)
		jw_kv_string(jw, "cname", "terrible");
	jw_kv_uint(jw, "pid", q->pid);
	jw_kv_uint(jw, "tid", q->tid);
	jw_kv_double(jw, "ts", us(q->start_ns));
	jw_kv_double(jw, "dur", us(q->duration_ns));
	jw_key(jw, "args");
	jw_start_object(jw);
	jw_key(jw, "sql");
	jw_string_n(jw, sql, sql_len);
	jw_kv_int(jw, "rows", q->rows);
	jw_kv_string(jw, "status", pq_query_status_name(q->status));
	if (rank)
		jw_kv_uint(jw, "finding", rank);
	if (q->nframes) {
		jw_key(jw, "stack");
		jw_start_array(jw);
		for (uint32_t i = 0; i < q->nframes; i++) {
			char frame[512];

			snprintf(frame, sizeof(frame), "%s (%s:%u)",
				 q->stack[i].func ? q->stack[i].func : "?",
				 q->stack[i].file ? q->stack[i].file : "?", q->stack[i].line);
			jw_string(jw, frame);
		}
		jw_end_array(jw);
	}
	jw_end_object(jw);
	jw_end_object(jw);
}

void timeline__finish(struct timeline *t, struct detector *d)
{
	struct json_writer *jw = t->jw;
	const struct finding *f;

	for (size_t i = 0; (f = detector__finding(d, i)); i++) {
		char name[128];

		snprintf(name, sizeof(name), "#%zu %s x%u", i + 1,
			 f->kind == FINDING_DUPLICATE ? "duplicate" : "N+1", f->worst.count);
		jw_start_object(jw);
		jw_kv_string(jw, "ph", "X");
		jw_kv_string(jw, "name", name);
		jw_kv_string(jw, "cat", "finding");
		jw_kv_string(jw, "cname", "bad");
		jw_kv_uint(jw, "pid", f->worst.pid);
		jw_kv_uint(jw, "tid", f->worst.tid);
		jw_kv_double(jw, "ts", us(f->worst.start_ns));
		jw_kv_double(jw, "dur", us(f->worst.span_ns));
		jw_key(jw, "args");
		jw_start_object(jw);
		jw_key(jw, "sql");
		jw_string_n(jw, f->stmt.norm->s, f->stmt.norm->len);
		jw_kv_string(jw, "fix", f->hint.fix[0] ? f->hint.fix : f->hint.why);
		jw_end_object(jw);
		jw_end_object(jw);
	}
	jw_end_array(jw);
	jw_end_object(jw);
	jw_newline(jw);
	jw__free(jw);
	u64map_release(&t->threads);
	u64map_release(&t->procs);
	free(t);
}
