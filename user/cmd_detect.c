/*
 * pqsnoop [detect]: findings printed as they are found, then the ranked
 * report when the run ends (text), or only the report (--json); with -o,
 * also a capture of the run.
 * pqsnoop record: the same run, quietly, into a capture (or, with --every,
 * one capture and report set per period: periodic.c).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "log.h"
#include "periodic.h"
#include "recorder.h"
#include "report.h"
#include "tracer.h"

struct detect_run {
	const struct cli *c;
	struct detector *d;
	struct recorder *rec;
	struct periodic *per;	/* record --every */
	struct report_opts ro;
	bool quiet;		/* record: no live findings, no report */
	bool failed;
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

void cli_capture_meta(const struct cli *c, struct capture_meta *m, char *host, size_t hostlen)
{
	struct timespec ts;

	memset(m, 0, sizeof(*m));
	if (gethostname(host, hostlen))
		snprintf(host, hostlen, "?");
	host[hostlen - 1] = 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	m->version = PQSNOOP_VERSION;
	m->hostname = host;
	m->target_pid = c->pid;
	m->start_ns = ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	m->show_values = c->show_values;
	m->options = c->argv_text;
	m->idle_gap_ns = c->idle_gap_ns;
	m->pause_ns = c->pause_ns;
	m->max_span_ns = c->max_span_ns;
	m->min_repeats = c->min_repeats;
	m->min_duplicates = c->min_duplicates;
}

static void record_failed(struct detect_run *r)
{
	if (!r->failed && r->rec && recorder__error(r->rec)) {
		warn("capture: %s; tracing goes on without it", recorder__error(r->rec));
		r->failed = true;
	}
}

static void on_query(const struct pq_query *q, void *ctx)
{
	struct detect_run *r = ctx;
	struct fp_result fr;

	if (r->per) {
		periodic__query(r->per, q);
		return;
	}
	if (detector__fingerprint(r->d, q, &fr)) {
		warn("out of memory: a query is missing from detection");
		return;
	}
	if (r->rec && !r->failed) {
		recorder__query(r->rec, q, &fr);
		record_failed(r);
	}
	detector__add_fp(r->d, q, &fr);
}

static void on_tick(unsigned long long now_ns, void *ctx)
{
	struct detect_run *r = ctx;

	if (r->per) {
		periodic__tick(r->per, now_ns);
		return;
	}
	if (r->rec && !r->failed) {
		recorder__tick(r->rec, now_ns);
		record_failed(r);
	}
	detector__tick(r->d, now_ns);
}

static void on_conn_closed(unsigned pid, unsigned long long conn, void *ctx)
{
	struct detect_run *r = ctx;

	if (r->per) {
		periodic__conn_closed(r->per, pid, conn);
		return;
	}
	if (r->rec && !r->failed) {
		recorder__conn_closed(r->rec, pid, conn);
		record_failed(r);
	}
	detector__conn_closed(r->d, pid, conn);
}

static void on_finding(const struct finding *f, void *ctx)
{
	struct detect_run *r = ctx;

	if (!r->c->json && !r->quiet)
		report_live(stdout, f, &r->ro);
}

static void on_end(const struct run_summary *sum, void *ctx)
{
	struct detect_run *r = ctx;

	if (r->per) {
		periodic__end(r->per, sum);
		return;
	}
	detector__finish(r->d);
	r->ro.dropped = run_summary_dropped(sum);
	if (r->quiet) {
		/* record: say what was written */
	} else if (r->c->json) {
		report_json(stdout, r->d, &r->ro);
	} else {
		fputs("\n", stdout);
		report_text(stdout, r->d, &r->ro);
	}
	fflush(stdout);
	if (r->rec) {
		if (recorder__close(r->rec, sum) && !r->failed)
			warn("capture %s: %s", r->c->output, recorder__error(r->rec));
		else if (!r->failed)
			info("wrote %llu queries to %s (read it with: pqsnoop report %s)",
			     (unsigned long long)recorder__queries(r->rec), r->c->output,
			     r->c->output);
	}
}

int cmd_detect(const struct cli *c)
{
	struct detect_run r = { .c = c, .ro = { .show_values = c->show_values },
				.quiet = c->command == CMD_RECORD };
	struct detect_opts dopts = { .on_finding = on_finding, .ctx = &r };
	struct tracer_opts o = {
		.pid = c->pid, .follow_forks = c->follow_forks, .stacks = c->stacks,
		.duration = c->duration, .wait_libpq = c->wait_libpq,
		.ringbuf_bytes = c->ringbuf_mb << 20,
		.on_query = on_query, .on_tick = on_tick,
		.on_conn_closed = on_conn_closed, .on_end = on_end, .ctx = &r,
	};
	struct run_summary sum;
	char err[512], host[256];
	int rc = 1;

	cli_detect_opts(c, &dopts);
	if (c->every) {
		r.per = periodic__new(c, tracer_snapshot, err, sizeof(err));
		if (!r.per) {
			warn("%s", err);
			return 1;
		}
	} else {
		r.d = detector__new(&dopts);
		if (!r.d) {
			warn("out of memory");
			return 1;
		}
	}
	if (c->output) {
		struct capture_meta m;

		cli_capture_meta(c, &m, host, sizeof(host));
		/* root only: a capture holds what the application queried */
		r.rec = recorder__open(c->output, 0600, &m, err, sizeof(err));
		if (!r.rec) {
			warn("%s", err);
			goto out;
		}
	}
	rc = tracer_run(&o, &sum);
out:
	recorder__free(r.rec);
	detector__free(r.d);
	periodic__free(r.per);
	if (fflush(stdout) || ferror(stdout))
		return 1;
	return rc;
}
