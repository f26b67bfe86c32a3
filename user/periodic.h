/*
 * record --every: one capture and one report set per period, for a run that
 * goes on for days.
 *
 * Periods are aligned on the wall clock (every 600 s: at :00, :10, ...; the
 * first one is shorter).  Each period gets its own detector and capture,
 * both freed when it ends, so memory stays flat.  Files are named by the
 * period's start, in UTC: pqsnoop-20261126-120000.pqs, and beside it the
 * reports .txt and .json; created 0600 in a folder created 0700.  After each
 * period the oldest periods beyond --keep are removed, all their files.
 */
#ifndef PQSNOOP_PERIODIC_H
#define PQSNOOP_PERIODIC_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "query.h"
#include "watch_output.h"

struct periodic;

/* The run's counters so far (tracer_snapshot()), to give each period its
 * own share of the drops. */
typedef void (*periodic_snapshot_fn)(struct run_summary *out);

/* Creates the output folder.  NULL with err filled. */
struct periodic *periodic__new(const struct cli *c, periodic_snapshot_fn snap,
			       char *err, size_t errlen);
void periodic__free(struct periodic *p);

void periodic__query(struct periodic *p, const struct pq_query *q);
void periodic__conn_closed(struct periodic *p, uint32_t pid, uint64_t conn);
/* Ends the period when its time is up, and starts the next. */
void periodic__tick(struct periodic *p, uint64_t now_ns);
/* The run is over: end the current period.  sum holds the whole run's
 * counters; each period's summary gets its own share of them. */
void periodic__end(struct periodic *p, const struct run_summary *sum);

/* Periods completed so far (for tests). */
uint64_t periodic__periods(const struct periodic *p);

#endif /* PQSNOOP_PERIODIC_H */
