#include "watch_output.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "escape.h"
#include "json_writer.h"

struct watch_out {
	FILE *f;
	bool json;
	const struct callsite_opts *cs;
	struct json_writer *jw;
};

uint64_t run_summary_dropped(const struct run_summary *s)
{
	/* a lost END is counted once by the BPF side (dropped_end) and shows
	 * up again as lost_ends; count the BPF side's numbers, plus what
	 * could not even be tracked */
	return s->dropped_send + s->dropped_end + s->conn_table_full;
}

struct watch_out *watch_out__new(FILE *f, bool json, const struct callsite_opts *cs)
{
	struct watch_out *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->f = f;
	w->json = json;
	w->cs = cs;
	if (json && !(w->jw = jw__new(f))) {
		free(w);
		return NULL;
	}
	return w;
}

void watch_out__free(struct watch_out *w)
{
	if (!w)
		return;
	jw__free(w->jw);
	free(w);
}

static void query_json(struct watch_out *w, const struct pq_query *q)
{
	struct json_writer *jw = w->jw;
	const struct pq_frame *site = callsite_of(q, w->cs);

	jw_start_object(jw);
	jw_kv_string(jw, "type", q->kind == PQ_KIND_PREPARE ? "prepare" : "query");
	jw_kv_uint(jw, "pid", q->pid);
	jw_kv_uint(jw, "tid", q->tid);
	jw_kv_string(jw, "comm", q->comm);
	jw_key(jw, "conn");
	jw_hex(jw, q->conn);
	jw_kv_uint(jw, "start_ns", q->start_ns);
	jw_kv_uint(jw, "duration_ns", q->duration_ns);
	jw_kv_int(jw, "rows", q->rows);
	jw_kv_string(jw, "status", pq_query_status_name(q->status));
	jw_kv_string(jw, "result_status", q->result_status);
	jw_kv_string(jw, "cmd_status", q->cmd_status);
	if (q->status == PQ_STATUS_ERROR) {
		jw_kv_string(jw, "sqlstate", q->sqlstate);
		jw_kv_string(jw, "error", *q->error ? q->error : q->sqlstate);
	}
	jw_kv_string(jw, "api", q->api);
	if (q->stmt_name)
		jw_kv_string(jw, "statement", q->stmt_name);
	if (q->text_unknown)
		jw_kv_bool(jw, "text_unknown", true);
	jw_key(jw, "sql");
	jw_string_n(jw, q->sql, q->sql_cap);
	jw_kv_uint(jw, "sql_len", q->sql_len);
	jw_kv_bool(jw, "truncated", q->truncated);
	if (q->sql_len_capped)
		jw_kv_bool(jw, "sql_len_is_lower_bound", true);
	jw_kv_uint(jw, "results", q->nresults);
	if (q->nframes) {
		jw_key(jw, "stack");
		jw_start_array(jw);
		for (uint32_t i = 0; i < q->nframes; i++)
			jw_frame(jw, q->stack[i].file, q->stack[i].func, q->stack[i].line);
		jw_end_array(jw);
		if (q->stack_truncated)
			jw_kv_bool(jw, "stack_truncated", true);
	}
	if (site) {
		jw_key(jw, "callsite");
		jw_frame(jw, site->file, site->func, site->line);
	}
	if (q->stack_error)
		jw_kv_string(jw, "stack_error", q->stack_error);
	jw_end_object(jw);
	jw_newline(jw);
}

static void query_text(struct watch_out *w, const struct pq_query *q)
{
	time_t secs = (time_t)(q->start_ns / 1000000000ULL);
	struct tm tm;
	char ts[16];
	const char *st = q->kind == PQ_KIND_PREPARE ? "prep" :
			 pq_query_status_name(q->status);
	const struct pq_frame *site;

	localtime_r(&secs, &tm);
	strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
	fprintf(w->f, "%s.%06" PRIu64 " %6u/%-6u %9.3f ms %6" PRId64 " %-5s ",
		ts, (uint64_t)((q->start_ns % 1000000000ULL) / 1000), q->pid, q->tid,
		q->duration_ns / 1e6, q->rows < 0 ? 0 : q->rows, st);
	if (q->kind == PQ_KIND_PREPARE || q->stmt_name) {
		fputs("[", w->f);
		esc_text(w->f, q->stmt_name ? q->stmt_name : "", q->stmt_name ? strlen(q->stmt_name) : 0);
		fputs("] ", w->f);
	}
	if (q->text_unknown)
		fputs("(text unknown: prepared before pqsnoop attached)", w->f);
	esc_text(w->f, q->sql, q->sql_cap);
	if (q->truncated)
		fprintf(w->f, " ...[%" PRIu32 " bytes%s]", q->sql_len,
			q->sql_len_capped ? " or more" : "");
	if (q->status == PQ_STATUS_ERROR) {
		fputs("  -- ERROR ", w->f);
		esc_text(w->f, q->sqlstate, strlen(q->sqlstate));
		fputs(": ", w->f);
		esc_text(w->f, q->error, strlen(q->error));
	}
	site = callsite_of(q, w->cs);
	if (site) {
		fputs("  @ ", w->f);
		esc_text(w->f, site->file, strlen(site->file));
		fprintf(w->f, ":%u ", site->line);
		esc_text(w->f, site->func, strlen(site->func));
	}
	fputc('\n', w->f);
}

void watch_out__query(struct watch_out *w, const struct pq_query *q)
{
	if (w->json)
		query_json(w, q);
	else
		query_text(w, q);
}

void watch_out__summary(struct watch_out *w, const struct run_summary *s,
			FILE *text_stream)
{
	const struct assembler_stats *a = &s->asm_stats;
	uint64_t dropped = run_summary_dropped(s);

	if (w->json) {
		struct json_writer *jw = w->jw;

		jw_start_object(jw);
		jw_kv_string(jw, "type", "summary");
		jw_kv_uint(jw, "queries", a->queries);
		jw_kv_uint(jw, "prepares", a->prepares);
		jw_kv_uint(jw, "errors", a->errors);
		jw_kv_uint(jw, "unfinished", a->unfinished);
		jw_kv_uint(jw, "dropped", dropped);
		jw_key(jw, "drops");
		jw_start_object(jw);
		jw_kv_uint(jw, "send_records", s->dropped_send);
		jw_kv_uint(jw, "end_records", s->dropped_end);
		jw_kv_uint(jw, "other_records", s->dropped_other);
		jw_kv_uint(jw, "stack_records", s->dropped_stack);
		jw_kv_uint(jw, "untracked_connections", s->conn_table_full);
		jw_kv_uint(jw, "ends_lost", a->lost_ends);
		jw_kv_uint(jw, "sends_lost", a->lost_sends);
		jw_end_object(jw);
		jw_kv_uint(jw, "processes", s->processes);
		jw_kv_double(jw, "seconds", s->seconds);
		jw_kv_string(jw, "end", s->end_reason);
		jw_end_object(jw);
		jw_newline(jw);
		return;
	}
	fprintf(text_stream,
		"pqsnoop: %" PRIu64 " queries (%" PRIu64 " errors, %" PRIu64
		" unfinished), %" PRIu64 " prepares, %" PRIu64
		" processes, %.1f s, ended by %s\n",
		a->queries, a->errors, a->unfinished, a->prepares,
		s->processes, s->seconds, s->end_reason);
	if (dropped)
		fprintf(text_stream,
			"pqsnoop: %" PRIu64 " events dropped (%" PRIu64
			" query starts, %" PRIu64 " query ends, %" PRIu64
			" untracked connections): the numbers above are a lower"
			" bound; raise --ringbuf-size\n",
			dropped, s->dropped_send, s->dropped_end, s->conn_table_full);
}
