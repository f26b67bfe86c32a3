#include "report.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "json_writer.h"
#include "sqllex.h"

#define DEFAULT_SQL_WIDTH 240
#define INDENT "     "

void report_fmt_duration(char *buf, size_t size, uint64_t ns)
{
	double v = (double)ns;

	if (ns < 1000)
		snprintf(buf, size, "%" PRIu64 " ns", ns);
	else if (ns < 1000000)
		snprintf(buf, size, v < 1e4 ? "%.1f us" : "%.0f us", v / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, size, v < 1e7 ? "%.1f ms" : "%.0f ms", v / 1e6);
	else if (ns < 60 * 1000000000ULL)
		snprintf(buf, size, "%.1f s", v / 1e9);
	else
		snprintf(buf, size, "%.1f min", v / 60e9);
}

/* --- SQL for a terminal -------------------------------------------------- */

/*
 * A long select list says little and hides what matters (the table and the
 * WHERE clause): "SELECT a, b, c FROM t" becomes "SELECT ... FROM t".
 * Returns the start and end of the list to drop, or false.
 */
static bool select_list(const char *s, size_t n, size_t *from, size_t *to)
{
	struct sql_lexer lx;
	struct sql_token t;
	const char *start = NULL;
	int depth = 0, commas = 0;

	sql_lexer_init(&lx, s, n);
	for (sql_lex(&lx, &t); t.type != SQL_EOF; sql_lex(&lx, &t)) {
		if (t.type == SQL_PUNCT && t.len == 1 && (t.s[0] == '(' || t.s[0] == '[')) {
			depth++;
		} else if (t.type == SQL_PUNCT && t.len == 1 && (t.s[0] == ')' || t.s[0] == ']')) {
			depth--;
		} else if (!start && depth == 0 && sql_word_is(&t, "SELECT")) {
			start = t.s + t.len;
			commas = 0;
		} else if (start && depth == 0 && t.type == SQL_PUNCT && t.s[0] == ',') {
			commas++;
		} else if (start && depth == 0 && sql_word_is(&t, "FROM")) {
			if (!commas && t.s - start <= 40)
				return false;
			*from = start - s;
			*to = t.s - s;
			return true;
		}
	}
	return false;
}

/* Writes normalized SQL abbreviated and cut to the width, escaped. */
static void put_sql(FILE *f, const char *s, size_t n, unsigned width)
{
	size_t a, b;
	char *buf = malloc(n + 8);
	size_t len = 0;

	if (!buf) {
		esc_text(f, s, n);
		return;
	}
	if (select_list(s, n, &a, &b)) {
		memcpy(buf, s, a);
		memcpy(buf + a, " ... ", 5);
		memcpy(buf + a + 5, s + b, n - b);
		len = a + 5 + n - b;
	} else {
		memcpy(buf, s, n);
		len = n;
	}
	if (len > width) {
		/* cut at a character boundary, not inside a UTF-8 sequence */
		len = width;
		while (len > 0 && ((unsigned char)buf[len] & 0xc0) == 0x80)
			len--;
		memcpy(buf + len, "...", 3);
		len += 3;
	}
	esc_text(f, buf, len);
	free(buf);
}

static void put_text(FILE *f, const struct fp_text *t)
{
	if (t)
		esc_text(f, t->s, t->len);
}

static unsigned width_of(const struct report_opts *o)
{
	return o && o->sql_width ? o->sql_width : DEFAULT_SQL_WIDTH;
}

static void finding_block(FILE *f, const struct finding *fi, size_t rank,
			  const struct report_opts *o)
{
	char span[32], db[32], wasted[32], period[32];
	unsigned width = width_of(o);
	bool dup = fi->kind == FINDING_DUPLICATE;

	report_fmt_duration(span, sizeof(span), fi->worst.span_ns);
	report_fmt_duration(db, sizeof(db), fi->db_ns);
	report_fmt_duration(wasted, sizeof(wasted), fi->wasted_ns);
	report_fmt_duration(period, sizeof(period), fi->last_ns - fi->first_ns);

	if (rank)
		fprintf(f, "#%zu ", rank);
	/* the loop's own queries: the repeats and the one they follow */
	fprintf(f, "%-4s %" PRIu32 " queries in %s on tid %" PRIu32 " (pid %" PRIu32 ")",
		dup ? "DUP" : "N+1", fi->worst.count + (fi->has_parent ? 1 : 0), span,
		fi->worst.tid, fi->worst.pid);
	if (fi->threads > 1)
		fprintf(f, " and %" PRIu32 "%s other threads", fi->threads - 1,
			fi->threads >= 64 ? "+" : "");
	if (fi->occurrences == 1)
		fputs(", once", f);
	else
		fprintf(f, ", %" PRIu64 " times in %s", fi->occurrences, period);
	fprintf(f, ", %s of database time (%s wasted)\n", db, wasted);

	fputs(INDENT, f);
	put_sql(f, fi->stmt.norm->s, fi->stmt.norm->len, width);
	fprintf(f, "   x%" PRIu32, fi->count_max);
	if (fi->site_index >= 0) {
		const struct finding_frame *site = &fi->stack[fi->site_index];

		fputs("   at ", f);
		put_text(f, site->file);
		fprintf(f, ":%" PRIu32 " in ", site->line);
		put_text(f, site->func);
	}
	if (fi->count_typical != fi->count_max)
		fprintf(f, " (typically x%" PRIu32 ")", fi->count_typical);
	if (!fi->values_known)
		fputs(", values in bind parameters", f);
	else if (dup && fi->distinct_max == 1)
		fputs(", same values", f);
	else if (fi->distinct_max)
		fprintf(f, ", %" PRIu32 " different values", fi->distinct_max);
	if (fi->interleaved)
		fputs(", interleaved", f);
	if (fi->truncated)
		fputs(", text cut by the capture", f);
	fputc('\n', f);

	if (fi->has_parent) {
		fputs(INDENT "after: ", f);
		put_sql(f, fi->parent.norm->s, fi->parent.norm->len, width);
		if (fi->parent_rows >= 0)
			fprintf(f, "   (%" PRId64 " rows)", fi->parent_rows);
		fputc('\n', f);
	}
	if (fi->hint.fix[0]) {
		fputs(INDENT "fix:   ", f);
		esc_text(f, fi->hint.fix, strlen(fi->hint.fix));
		fputs("\n" INDENT "       ", f);
	} else {
		fputs(INDENT "fix:   unknown: ", f);
	}
	esc_text(f, fi->hint.why, strlen(fi->hint.why));
	fputc('\n', f);
	if (o && o->show_values && fi->stmt.example) {
		fputs(INDENT "example: ", f);
		put_text(f, fi->stmt.example);
		fputc('\n', f);
		if (fi->parent.example) {
			fputs(INDENT "after:   ", f);
			put_text(f, fi->parent.example);
			fputc('\n', f);
		}
	}
}

void report_live(FILE *f, const struct finding *fi, const struct report_opts *o)
{
	finding_block(f, fi, 0, o);
	fputc('\n', f);
	fflush(f);
}

void report_text(FILE *f, struct detector *d, const struct report_opts *o)
{
	const struct detect_totals *t = detector__totals(d);
	size_t n = detector__nfindings(d);
	char db[32];

	report_fmt_duration(db, sizeof(db), t->db_ns);
	if (n)
		fprintf(f, "pqsnoop: %zu finding%s in %" PRIu64 " quer%s", n, n == 1 ? "" : "s",
			t->queries, t->queries == 1 ? "y" : "ies");
	else
		fprintf(f, "pqsnoop: no N+1 or duplicate queries in %" PRIu64 " quer%s", t->queries,
			t->queries == 1 ? "y" : "ies");
	fprintf(f, " (%" PRIu64 " thread%s, %" PRIu64 " unit%s of work, %s of database time)\n",
		t->threads, t->threads == 1 ? "" : "s", t->units, t->units == 1 ? "" : "s", db);
	if (o && o->dropped)
		fprintf(f, "pqsnoop: %" PRIu64 " events were dropped: counts are lower bounds\n",
			o->dropped);
	if (t->findings_dropped)
		fprintf(f, "pqsnoop: %" PRIu64 " more findings were not kept (too many)\n",
			t->findings_dropped);
	if (n)
		fputs("ranked by the database time a fix would save:\n", f);
	for (size_t i = 0; i < n; i++) {
		fputc('\n', f);
		finding_block(f, detector__finding(d, i), i + 1, o);
	}
}

/* --- JSON -------------------------------------------------------------------- */

static void jw_fp(struct json_writer *jw, const char *key, uint64_t fp)
{
	char buf[17];

	fp_format(fp, buf);
	jw_kv_string(jw, key, buf);
}

static void jw_text(struct json_writer *jw, const char *key, const struct fp_text *t)
{
	jw_key(jw, key);
	if (t)
		jw_string_n(jw, t->s, t->len);
	else
		jw_null(jw);
}

static void json_finding(struct json_writer *jw, const struct finding *fi, size_t rank,
			 const struct report_opts *o)
{
	jw_start_object(jw);
	jw_kv_uint(jw, "rank", rank);
	jw_kv_string(jw, "kind", finding_kind_name(fi->kind));
	jw_fp(jw, "fingerprint", fi->stmt.fp);
	jw_kv_bool(jw, "parsed", fi->stmt.parsed);
	jw_text(jw, "sql", fi->stmt.norm);
	jw_kv_uint(jw, "count_max", fi->count_max);
	jw_kv_uint(jw, "count_typical", fi->count_typical);
	jw_key(jw, "distinct_values");
	if (fi->values_known)
		jw_uint(jw, fi->distinct_max);
	else
		jw_null(jw);
	jw_kv_bool(jw, "values_known", fi->values_known);
	jw_kv_uint(jw, "occurrences", fi->occurrences);
	jw_kv_uint(jw, "units", fi->units);
	jw_kv_uint(jw, "queries", fi->queries);
	jw_kv_uint(jw, "db_time_ns", fi->db_ns);
	jw_kv_uint(jw, "wasted_ns", fi->wasted_ns);
	jw_kv_bool(jw, "interleaved", fi->interleaved);
	jw_kv_bool(jw, "truncated", fi->truncated);
	jw_kv_uint(jw, "pid", fi->pid);
	jw_kv_uint(jw, "tid", fi->tid);
	jw_kv_uint(jw, "threads", fi->threads);
	jw_kv_uint(jw, "first_ns", fi->first_ns);
	jw_kv_uint(jw, "last_ns", fi->last_ns);

	jw_key(jw, "worst");
	jw_start_object(jw);
	jw_kv_uint(jw, "count", fi->worst.count);
	jw_kv_uint(jw, "pid", fi->worst.pid);
	jw_kv_uint(jw, "tid", fi->worst.tid);
	jw_kv_uint(jw, "start_ns", fi->worst.start_ns);
	jw_kv_uint(jw, "span_ns", fi->worst.span_ns);
	jw_kv_uint(jw, "db_time_ns", fi->worst.db_ns);
	jw_end_object(jw);

	jw_key(jw, "parent");
	if (fi->has_parent) {
		jw_start_object(jw);
		jw_fp(jw, "fingerprint", fi->parent.fp);
		jw_kv_bool(jw, "parsed", fi->parent.parsed);
		jw_text(jw, "sql", fi->parent.norm);
		jw_key(jw, "rows");
		if (fi->parent_rows >= 0)
			jw_int(jw, fi->parent_rows);
		else
			jw_null(jw);
		jw_end_object(jw);
	} else {
		jw_null(jw);
	}

	jw_key(jw, "hint");
	jw_start_object(jw);
	jw_kv_string(jw, "kind", hint_kind_name(fi->hint.kind));
	jw_key(jw, "fix");
	if (fi->hint.fix[0])
		jw_string(jw, fi->hint.fix);
	else
		jw_null(jw);
	jw_kv_string(jw, "why", fi->hint.why);
	jw_key(jw, "model");
	if (fi->hint.model[0])
		jw_string(jw, fi->hint.model);
	else
		jw_null(jw);
	jw_key(jw, "field");
	if (fi->hint.field[0])
		jw_string(jw, fi->hint.field);
	else
		jw_null(jw);
	jw_kv_bool(jw, "guessed", fi->hint.guessed);
	jw_end_object(jw);

	jw_key(jw, "callsite");
	if (fi->site_index >= 0) {
		const struct finding_frame *site = &fi->stack[fi->site_index];

		jw_frame(jw, site->file ? site->file->s : NULL,
			 site->func ? site->func->s : NULL, site->line);
	} else {
		jw_null(jw);
	}
	jw_key(jw, "stack");
	jw_start_array(jw);
	for (uint32_t i = 0; i < fi->nstack; i++)
		jw_frame(jw, fi->stack[i].file ? fi->stack[i].file->s : NULL,
			 fi->stack[i].func ? fi->stack[i].func->s : NULL, fi->stack[i].line);
	jw_end_array(jw);

	/* literal values only when asked for */
	if (o && o->show_values) {
		jw_text(jw, "example", fi->stmt.example);
		jw_text(jw, "parent_example", fi->parent.example);
	}
	jw_end_object(jw);
}

void report_json(FILE *f, struct detector *d, const struct report_opts *o)
{
	const struct detect_totals *t = detector__totals(d);
	const struct detect_opts *opts = detector__opts(d);
	struct json_writer *jw = jw__new(f);
	size_t n = detector__nfindings(d);

	if (!jw) {
		/* out of memory: still one (small) valid document */
		fputs("{\"error\":\"out of memory\"}\n", f);
		return;
	}
	jw_start_object(jw);
	jw_key(jw, "totals");
	jw_start_object(jw);
	jw_kv_uint(jw, "queries", t->queries);
	jw_kv_uint(jw, "prepares", t->prepares);
	jw_kv_uint(jw, "neutral", t->neutral);
	jw_kv_uint(jw, "units", t->units);
	jw_kv_uint(jw, "threads", t->threads);
	jw_kv_uint(jw, "db_time_ns", t->db_ns);
	jw_kv_uint(jw, "first_ns", t->first_ns);
	jw_kv_uint(jw, "last_ns", t->last_ns);
	jw_kv_uint(jw, "findings", n);
	jw_kv_uint(jw, "findings_dropped", t->findings_dropped);
	jw_kv_uint(jw, "dropped", o ? o->dropped : 0);
	jw_kv_uint(jw, "not_loops", t->not_loops);
	jw_kv_uint(jw, "unrelated_parents", t->unrelated_parents);
	jw_kv_uint(jw, "untracked", t->untracked);
	/* no fingerprint-cache statistics: they describe the process that
	 * computed the report, and a report of a capture must equal the
	 * live one (pqsnoop -v shows them) */
	jw_end_object(jw);

	jw_key(jw, "options");
	jw_start_object(jw);
	jw_kv_uint(jw, "idle_gap_ns", opts->idle_gap_ns);
	jw_kv_uint(jw, "pause_ns", opts->pause_ns);
	jw_kv_uint(jw, "max_span_ns", opts->max_span_ns);
	jw_kv_uint(jw, "min_repeats", opts->min_repeats);
	jw_kv_uint(jw, "min_duplicates", opts->min_duplicates);
	jw_kv_bool(jw, "show_values", o && o->show_values);
	jw_end_object(jw);

	jw_key(jw, "findings");
	jw_start_array(jw);
	for (size_t i = 0; i < n; i++)
		json_finding(jw, detector__finding(d, i), i + 1, o);
	jw_end_array(jw);
	jw_end_object(jw);
	jw_newline(jw);
	jw__free(jw);
}
