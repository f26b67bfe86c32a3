/*
 * pqsnoop report FILE: the report of a capture, without root.
 *
 * Detection replays the capture into a detector with the recording run's
 * options (overridden by the command line's), so text and JSON are exactly
 * what the live run printed.  Flamegraphs and timelines need to know the
 * findings while they place each query: they replay it a second time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "callsite.h"
#include "commands.h"
#include "flame.h"
#include "log.h"
#include "replay.h"
#include "report.h"
#include "timeline.h"

struct report_run {
	const struct cli *c;
	struct detector *d;
	struct run_summary sum;
	bool have_summary;
	struct capture_meta meta;
	char host[256], comm[64], version[32];
	/* second pass */
	struct flame *flame;
	struct timeline *tl;
	bool by_time;
	int err;
};

static void on_meta(const struct capture_meta *m, void *ctx)
{
	struct report_run *r = ctx;
	struct detect_opts o = {0};

	r->meta = *m;
	snprintf(r->host, sizeof(r->host), "%s", m->hostname ? m->hostname : "?");
	snprintf(r->version, sizeof(r->version), "%s", m->version ? m->version : "?");
	r->meta.hostname = r->host;
	r->meta.version = r->version;
	r->meta.options = NULL;
	r->meta.target_comm = NULL;
	if (r->d)
		return;	/* second pass */
	cli_detect_opts(r->c, &o);
	/* the recording run's options, unless this command line says otherwise */
	if (!o.idle_gap_ns)
		o.idle_gap_ns = m->idle_gap_ns;
	if (!o.pause_ns)
		o.pause_ns = m->pause_ns;
	if (!o.max_span_ns)
		o.max_span_ns = m->max_span_ns;
	if (!o.min_repeats)
		o.min_repeats = m->min_repeats;
	if (!o.min_duplicates)
		o.min_duplicates = m->min_duplicates;
	o.keep_examples = r->c->show_values && m->show_values;
	r->d = detector__new(&o);
	if (!r->d)
		r->err = -ENOMEM;
}

/* The finding (rank from 1) q belongs to, 0 for none. */
static unsigned finding_of(struct report_run *r, const struct pq_query *q, uint64_t fp)
{
	const struct pq_frame *site = callsite_of(q, &r->c->callsite);
	const struct finding *f;

	for (size_t i = 0; (f = detector__finding(r->d, i)); i++) {
		const struct finding_frame *fs;

		if (f->stmt.fp != fp)
			continue;
		fs = f->site_index >= 0 ? &f->stack[f->site_index] : NULL;
		if (!fs && !site)
			return i + 1;
		if (fs && site && fs->line == site->line && site->file &&
		    strcmp(fs->file->s, site->file) == 0)
			return i + 1;
	}
	return 0;
}

static void on_query(const struct capture_query *cq, const struct fp_result *fr, void *ctx)
{
	struct report_run *r = ctx;
	const struct pq_query *q = &cq->q;
	const char *sql = cq->norm ? cq->norm : q->sql;
	size_t len = cq->norm ? cq->norm_len : q->sql_cap;
	unsigned rank;

	if (!r->d || r->err)
		return;
	if (!r->flame && !r->tl) {
		if (detector__add_fp(r->d, q, fr))
			r->err = -ENOMEM;
		return;
	}
	if (q->kind != PQ_KIND_QUERY)
		return;
	rank = finding_of(r, q, cq->fp);
	if (r->flame && flame__add(r->flame, q, sql, len,
				   r->by_time ? (q->duration_ns + 500) / 1000 : 1, rank))
		r->err = -ENOMEM;
	if (r->tl)
		timeline__query(r->tl, q, sql, len, rank);
}

static void on_close(uint32_t pid, uint64_t conn, void *ctx)
{
	struct report_run *r = ctx;

	if (r->d && !r->flame && !r->tl)
		detector__conn_closed(r->d, pid, conn);
}

static void on_tick(uint64_t now_ns, void *ctx)
{
	struct report_run *r = ctx;

	if (r->d && !r->flame && !r->tl)
		detector__tick(r->d, now_ns);
}

static void on_summary(const struct run_summary *s, void *ctx)
{
	struct report_run *r = ctx;

	r->sum = *s;
	r->sum.end_reason = NULL;
	r->have_summary = true;
}

static FILE *open_output(const struct cli *c)
{
	int fd;
	FILE *f;

	if (!c->output || strcmp(c->output, "-") == 0)
		return stdout;
	/* with --show-values a report holds production data: owner only */
	fd = open(c->output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		  c->show_values ? 0600 : 0644);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		warn("cannot create %s: %s", c->output, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	return f;
}

int cmd_report(const struct cli *c)
{
	struct report_run r = { .c = c };
	struct replay_handlers h = {
		.meta = on_meta, .query = on_query, .conn_closed = on_close,
		.tick = on_tick, .summary = on_summary, .ctx = &r,
	};
	const char *format = c->format ? c->format : "text";
	struct report_opts ro = { .show_values = c->show_values };
	char err[512], title[512];
	FILE *out;
	int rc;

	rc = replay_capture(c->input, &h, err, sizeof(err));
	if (rc < 0) {
		warn("%s", err);
		detector__free(r.d);
		return 1;
	}
	if (rc > 0)
		warn("%s: %s", c->input, err);
	if (r.err) {
		warn("out of memory reading %s", c->input);
		detector__free(r.d);
		return 1;
	}
	if (c->show_values && !r.meta.show_values)
		info("%s was recorded without --show-values: it holds no literal values to show",
		     c->input);
	detector__finish(r.d);
	ro.dropped = r.have_summary ? run_summary_dropped(&r.sum) : 0;

	out = open_output(c);
	if (!out) {
		detector__free(r.d);
		return 1;
	}
	if (!strcmp(format, "text")) {
		report_text(out, r.d, &ro);
	} else if (!strcmp(format, "json")) {
		report_json(out, r.d, &ro);
	} else {
		/* second pass, knowing the findings */
		r.by_time = c->weight && !strcmp(c->weight, "time");
		if (!strcmp(format, "perfetto"))
			r.tl = timeline__new(out);
		else
			r.flame = flame__new();
		if ((!r.tl && !r.flame) || replay_capture(c->input, &h, err, sizeof(err)) < 0 ||
		    r.err) {
			warn("cannot read %s a second time: %s", c->input, r.err ? "out of memory" : err);
			rc = -1;
		}
		if (r.tl) {
			timeline__finish(r.tl, r.d);
		} else if (r.flame && !strcmp(format, "folded")) {
			flame__folded(r.flame, out);
		} else if (r.flame) {
			snprintf(title, sizeof(title), "pqsnoop: database %s by code path, pid %u on %s",
				 r.by_time ? "time" : "queries", r.meta.target_pid, r.host);
			flame__svg(r.flame, out, title, r.by_time ? "us" : "queries");
		}
		flame__free(r.flame);
	}
	detector__free(r.d);
	if (fflush(out) || ferror(out) || (out != stdout && fclose(out))) {
		warn("cannot write %s: %s", c->output ? c->output : "the report", strerror(errno));
		return 1;
	}
	return rc < 0 ? 1 : 0;
}
