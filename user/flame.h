/*
 * Database time (or query count) by code path: a tree of Python frames with
 * the SQL statement as the leaf, written as folded stacks (flamegraph.pl's
 * input: "frame;frame;...;leaf weight" per line) or as a self-contained
 * interactive SVG (hover for details, click to zoom, search), where the
 * leaves of N+1 findings stand out in red.
 *
 * Labels come from the traced process: folded output replaces the two
 * characters the format reserves (';' and newlines) and the SVG escapes
 * everything as XML text, so a hostile query cannot inject markup or
 * script.
 */
#ifndef PQSNOOP_FLAME_H
#define PQSNOOP_FLAME_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "query.h"

struct flame;

/* NULL when out of memory. */
struct flame *flame__new(void);
void flame__free(struct flame *f);

/*
 * Add one query: its stack (outermost first in the tree), then the leaf
 * label sql (already normalized by the caller; cut to a readable length
 * here).  finding_rank > 0 marks the leaf as part of that N+1 or duplicate
 * finding.  Returns 0 or -ENOMEM.
 */
int flame__add(struct flame *f, const struct pq_query *q, const char *sql,
	       size_t sql_len, uint64_t weight, unsigned finding_rank);

/* flamegraph.pl's folded format, one line per distinct path. */
void flame__folded(const struct flame *f, FILE *out);

/* A standalone SVG; title and weight_unit ("queries", "us") are shown. */
void flame__svg(const struct flame *f, FILE *out, const char *title,
		const char *weight_unit);

#endif /* PQSNOOP_FLAME_H */
