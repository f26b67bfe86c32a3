/*
 * `pqsnoop watch` output: one line per query, as text or JSON Lines, and
 * the run's summary.  Everything from the traced process is escaped.
 */
#ifndef PQSNOOP_WATCH_OUTPUT_H
#define PQSNOOP_WATCH_OUTPUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "assemble.h"
#include "callsite.h"
#include "query.h"

/* What a run saw, for the summary line/object. */
struct run_summary {
	struct assembler_stats asm_stats;
	uint64_t dropped_send;		/* ring buffer full: SEND lost */
	uint64_t dropped_end;		/* ring buffer full: END lost */
	uint64_t dropped_other;
	uint64_t dropped_stack;		/* queries reported without their stack */
	uint64_t conn_table_full;
	uint64_t processes;		/* processes traced over the run */
	double seconds;			/* how long the run was */
	const char *end_reason;		/* "duration", "signal", "target exited" */
};

/* Total of every way a query can go missing or lose its end. */
uint64_t run_summary_dropped(const struct run_summary *s);

struct watch_out;

/* f and cs (which frames are the application's; may be NULL) are
 * borrowed.  Returns NULL when out of memory. */
struct watch_out *watch_out__new(FILE *f, bool json, const struct callsite_opts *cs);
void watch_out__free(struct watch_out *w);

void watch_out__query(struct watch_out *w, const struct pq_query *q);

/* JSON: a {"type":"summary",...} line on the output; text: a few lines on
 * the given stream (stderr, so stdout holds only queries). */
void watch_out__summary(struct watch_out *w, const struct run_summary *s,
			FILE *text_stream);

#endif /* PQSNOOP_WATCH_OUTPUT_H */
