/*
 * A timeline of the queries: Chrome trace event JSON, which Perfetto UI
 * (ui.perfetto.dev, "Open trace file") and chrome://tracing open.  One track
 * per thread (named after the thread), one slice per query, and the
 * queries of N+1 and duplicate findings marked: their slices are in the
 * "n+1" category and colored, and each finding's largest run is a slice of
 * its own enclosing them.  All text goes through the JSON writer.
 */
#ifndef PQSNOOP_TIMELINE_H
#define PQSNOOP_TIMELINE_H

#include <stdint.h>
#include <stdio.h>

#include "detect.h"
#include "query.h"

struct timeline;

/* Writes the document's head to out.  NULL when out of memory. */
struct timeline *timeline__new(FILE *out);
/* One query; sql is its (normalized) text; finding_rank 0: none. */
void timeline__query(struct timeline *t, const struct pq_query *q, const char *sql,
		     size_t sql_len, unsigned finding_rank);
/* The findings' largest runs, and the end of the document; frees t. */
void timeline__finish(struct timeline *t, struct detector *d);

#endif /* PQSNOOP_TIMELINE_H */
