/*
 * The application's own line behind a query: the innermost Python frame
 * that is not library code.
 *
 * Library code is what an application imports rather than writes: frames
 * whose file lies under a site-packages or dist-packages folder (Django,
 * psycopg, installed packages), in the standard library (a .../lib/pythonX.Y/
 * folder), or that is synthetic ("<frozen ...>", "<string>").  Everything else
 * is the application's.  Users whose code is installed as a package (so it
 * lives under site-packages) name its folders with --app-prefix: a frame
 * under one of those is always application code.
 */
#ifndef PQSNOOP_CALLSITE_H
#define PQSNOOP_CALLSITE_H

#include <stdbool.h>
#include <stddef.h>

#include "query.h"

#define CALLSITE_MAX_PREFIXES 16

struct callsite_opts {
	const char *app_prefixes[CALLSITE_MAX_PREFIXES];
	size_t n_app_prefixes;
};

/* Whether a frame's file is library code (see above). */
bool callsite_is_library(const char *file, const struct callsite_opts *o);

/* The innermost application frame of q's stack, or NULL when there is no
 * stack or every frame is library code. */
const struct pq_frame *callsite_of(const struct pq_query *q,
				   const struct callsite_opts *o);

#endif /* PQSNOOP_CALLSITE_H */
