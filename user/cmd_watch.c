/* pqsnoop watch: one line (or JSON object) per query. */
#include <stdio.h>

#include "commands.h"
#include "log.h"
#include "tracer.h"
#include "watch_output.h"

static void print_query(const struct pq_query *q, void *ctx)
{
	watch_out__query(ctx, q);
}

/* Records come in batches (every 100 ms at most): one write per batch,
 * not per line, into a pipe or file. */
static void flush_batch(unsigned long long now_ns, void *ctx)
{
	fflush(stdout);
}

static void print_summary(const struct run_summary *sum, void *ctx)
{
	watch_out__summary(ctx, sum, stderr);
	fflush(stdout);
}

int cmd_watch(const struct cli *c)
{
	struct tracer_opts o = {
		.pid = c->pid, .follow_forks = c->follow_forks, .stacks = c->stacks,
		.duration = c->duration, .wait_libpq = c->wait_libpq,
		.ringbuf_bytes = c->ringbuf_mb << 20,
		.on_query = print_query, .on_tick = flush_batch, .on_end = print_summary,
	};
	struct run_summary sum;
	struct watch_out *w;
	int rc;

	w = watch_out__new(stdout, c->json, &c->callsite);
	if (!w) {
		warn("out of memory");
		return 1;
	}
	o.ctx = w;
	rc = tracer_run(&o, &sum);
	watch_out__free(w);
	if (fflush(stdout) || ferror(stdout))
		return 1;
	return rc;
}
