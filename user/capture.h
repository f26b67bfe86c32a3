/*
 * What a capture file holds (record types over capture_file.h's framing):
 *
 *   META     once, first: pqsnoop version, host, target, start, options
 *   QUERY    one per query or prepare, as struct pq_query (stack included)
 *   SUMMARY  once, last: the run's counters (absent when the run was cut)
 *
 * Fields are little-endian integers and length-prefixed strings; a decoder
 * given a damaged payload fails cleanly.  Production data: the recorder
 * stores the SQL as given; it is the caller's job to pass normalized text
 * (literals replaced by $n) unless the user asked for --show-values, and to
 * set values_redacted.
 */
#ifndef PQSNOOP_CAPTURE_H
#define PQSNOOP_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "capture_file.h"
#include "query.h"
#include "watch_output.h"

enum capture_rec_type {
	CAP_META = 1,
	CAP_QUERY = 2,
	CAP_SUMMARY = 3,
};

struct capture_meta {
	const char *version;	/* pqsnoop's */
	const char *hostname;
	uint32_t target_pid;
	const char *target_comm;
	uint64_t start_ns;	/* CLOCK_REALTIME */
	bool show_values;	/* the SQL in this capture keeps its literals */
	const char *options;	/* the command line, for the report's header */
};

/* A query as stored, with what only a capture needs on top. */
struct capture_query {
	struct pq_query q;
	uint64_t values_hash;	/* tells duplicates apart when the SQL is redacted */
	bool values_redacted;	/* q.sql is normalized: literals are gone */
};

/* Encode and append; return 0 or -1 with err filled. */
int capture_put_meta(struct capfile_writer *w, const struct capture_meta *m,
		     char *err, size_t errlen);
int capture_put_query(struct capfile_writer *w, const struct capture_query *cq,
		      char *err, size_t errlen);
int capture_put_summary(struct capfile_writer *w, const struct run_summary *s,
			char *err, size_t errlen);

/*
 * Decoders.  Strings in the results point into a decoder-owned arena that
 * stays valid until the next decode with the same arena, or its free.
 * Return 0, or -1 when the payload is malformed.
 */
struct capture_arena;
struct capture_arena *capture_arena__new(void);
void capture_arena__free(struct capture_arena *a);

int capture_get_meta(const void *p, uint32_t len, struct capture_meta *m,
		     struct capture_arena *a);
int capture_get_query(const void *p, uint32_t len, struct capture_query *cq,
		      struct capture_arena *a);
int capture_get_summary(const void *p, uint32_t len, struct run_summary *s,
			struct capture_arena *a);

#endif /* PQSNOOP_CAPTURE_H */
