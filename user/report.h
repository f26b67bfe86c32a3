/*
 * Reports of the detector's findings: text for a terminal, one JSON
 * document, and the few lines printed live when a finding is first seen.
 *
 * Every byte that came from the traced process (SQL, names) goes through
 * esc_text() or the JSON writer: hostile text stays inert.  Without
 * show_values no literal value is printed: statements appear in their
 * normalized form ($1 for constants), the raw examples not at all.
 *
 * The writers cannot fail except through the FILE (check ferror()).
 */
#ifndef PQSNOOP_REPORT_H
#define PQSNOOP_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "detect.h"

struct report_opts {
	bool show_values;	/* print example texts, with their values */
	unsigned sql_width;	/* text: longest SQL shown per line, 0 = 240 */
	uint64_t dropped;	/* events the tracer lost (counts are then lower bounds) */
};

/*
 * The ranked report: a summary line, then one block per finding, most
 * wasted database time first:
 *
 *   #1 N+1  101 queries in 38 ms on tid 4243, 12 times in 60 s, 1.1 s of database time (1.0 s wasted)
 *        SELECT ... FROM "blog_author" WHERE "blog_author"."id" = $1 LIMIT $2   x100, 10 different values
 *        after: SELECT ... FROM "blog_post" ORDER BY "blog_post"."id" ASC   (100 rows)
 *        fix:   Post.objects.select_related("author")
 *               each Post loads its author with one more query ...
 */
void report_text(FILE *f, struct detector *d, const struct report_opts *o);

/* The same as one JSON document (and a newline): totals, options, every
 * finding. */
void report_json(FILE *f, struct detector *d, const struct report_opts *o);

/* One finding's block, without rank: for printing findings as they come. */
void report_live(FILE *f, const struct finding *fi, const struct report_opts *o);

/* "850 us", "38 ms", "1.1 s", "2.5 min": durations in reports. */
void report_fmt_duration(char *buf, size_t size, uint64_t ns);

#endif /* PQSNOOP_REPORT_H */
