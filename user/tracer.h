/*
 * The tracer: loads the BPF programs, attaches to a process's libpq, and
 * streams completed queries to a callback until the run ends.
 *
 * The straight line: check privileges and target -> open/configure/load
 * the skeleton -> mark the target and its descendants traced -> wait for
 * libpq -> attach -> poll.  It ends after opts->duration seconds, on
 * tracer_stop() (a signal handler may call it), or when every traced
 * process has exited; then it drains the ring buffer, reports sends still
 * open as unfinished and fills the summary.
 */
#ifndef PQSNOOP_TRACER_H
#define PQSNOOP_TRACER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "query.h"
#include "watch_output.h"

struct tracer_opts {
	pid_t pid;
	bool follow_forks;
	bool stacks;		/* record the Python stack of each query */
	double duration;	/* seconds; 0 = until stopped */
	double wait_libpq;	/* seconds to wait for libpq to be loaded */
	size_t ringbuf_bytes;	/* power of two, >= page size */
	void (*on_query)(const struct pq_query *q, void *ctx);
	/* Called about every 100 ms with the current CLOCK_REALTIME in ns, so
	 * consumers can close idle work (may be NULL). */
	void (*on_tick)(unsigned long long now_ns, void *ctx);
	/* A connection was closed (PQfinish), after its queries were
	 * delivered: a unit of work ends there (may be NULL). */
	void (*on_conn_closed)(unsigned pid, unsigned long long conn, void *ctx);
	/* Called once with the run's summary when it ended normally, before
	 * the probes are removed (which takes about a second). */
	void (*on_end)(const struct run_summary *summary, void *ctx);
	void *ctx;
};

/*
 * Runs a whole trace.  Returns 0 when the run ended normally (summary
 * filled), or 1 after printing a one-line error saying what to do.
 */
int tracer_run(const struct tracer_opts *opts, struct run_summary *summary);

/* The counters of the run in progress so far (drops, processes...), for
 * callbacks that report on part of a run; zeros outside a run. */
void tracer_snapshot(struct run_summary *out);

/* Ask a running tracer_run() to end; async-signal-safe. */
void tracer_stop(void);

#endif /* PQSNOOP_TRACER_H */
