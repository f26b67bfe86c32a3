/*
 * pqsnoop [detect]: findings printed as they are found, then the ranked
 * report when the run ends (text), or only the report (--json).
 */
#include <stdio.h>

#include "commands.h"
#include "log.h"
#include "report.h"
#include "tracer.h"

struct detect_run {
	const struct cli *c;
	struct detector *d;
	struct report_opts ro;
};

void cli_detect_opts(const struct cli *c, struct detect_opts *o)
{
	o->idle_gap_ns = c->idle_gap_ns;
	o->pause_ns = c->pause_ns;
	o->max_span_ns = c->max_span_ns;
	o->min_repeats = c->min_repeats;
	o->min_duplicates = c->min_duplicates;
	o->keep_examples = c->show_values;
	o->callsite = &c->callsite;
}

static void on_query(const struct pq_query *q, void *ctx)
{
	struct detect_run *r = ctx;

	if (detector__add(r->d, q))
		warn("out of memory: a query is missing from detection");
}

static void on_tick(unsigned long long now_ns, void *ctx)
{
	struct detect_run *r = ctx;

	detector__tick(r->d, now_ns);
}

static void on_conn_closed(unsigned pid, unsigned long long conn, void *ctx)
{
	struct detect_run *r = ctx;

	detector__conn_closed(r->d, pid, conn);
}

static void on_finding(const struct finding *f, void *ctx)
{
	struct detect_run *r = ctx;

	if (!r->c->json)
		report_live(stdout, f, &r->ro);
}

static void on_end(const struct run_summary *sum, void *ctx)
{
	struct detect_run *r = ctx;

	detector__finish(r->d);
	r->ro.dropped = run_summary_dropped(sum);
	if (r->c->json) {
		report_json(stdout, r->d, &r->ro);
	} else {
		fputs("\n", stdout);
		report_text(stdout, r->d, &r->ro);
	}
	fflush(stdout);
}

int cmd_detect(const struct cli *c)
{
	struct detect_run r = { .c = c, .ro = { .show_values = c->show_values } };
	struct detect_opts dopts = { .on_finding = on_finding, .ctx = &r };
	struct tracer_opts o = {
		.pid = c->pid, .follow_forks = c->follow_forks, .stacks = c->stacks,
		.duration = c->duration, .wait_libpq = c->wait_libpq,
		.ringbuf_bytes = c->ringbuf_mb << 20,
		.on_query = on_query, .on_tick = on_tick,
		.on_conn_closed = on_conn_closed, .on_end = on_end, .ctx = &r,
	};
	struct run_summary sum;
	int rc;

	cli_detect_opts(c, &dopts);
	r.d = detector__new(&dopts);
	if (!r.d) {
		warn("out of memory");
		return 1;
	}
	rc = tracer_run(&o, &sum);
	detector__free(r.d);
	if (fflush(stdout) || ferror(stdout))
		return 1;
	return rc;
}
