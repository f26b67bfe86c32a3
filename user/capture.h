/*
 * What a capture file holds (record types over capture_file.h's framing):
 *
 *   META     once, first: pqsnoop version, host, target, start, options
 *   QUERY    one per query or prepare, as struct pq_query (stack included)
 *            with the fingerprint detection computed for it
 *   CONN_CLOSE, TICK   what else the live detector was told, in order
 *   SUMMARY  once, last: the run's counters (absent when the run was cut)
 *
 * Replaying QUERY, CONN_CLOSE and TICK in order into a detector with the
 * same options gives exactly the live run's findings.
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
	CAP_CONN_CLOSE = 4,	/* a connection closed: a unit of work ends */
	CAP_TICK = 5,		/* the detector's clock moved (idle units close) */
};

struct capture_meta {
	const char *version;	/* pqsnoop's */
	const char *hostname;
	uint32_t target_pid;
	const char *target_comm;
	uint64_t start_ns;	/* CLOCK_REALTIME */
	bool show_values;	/* the SQL in this capture keeps its literals */
	const char *options;	/* the command line, for the report's header */
	/* the detection options of the live run (0: defaults) */
	uint64_t idle_gap_ns, pause_ns, max_span_ns;
	uint32_t min_repeats, min_duplicates;
};

/* A query as stored, with the fingerprint detection computed for it (so a
 * capture without literal values still tells duplicates from N+1s). */
struct capture_query {
	struct pq_query q;
	uint64_t fp;
	uint64_t values;	/* hash of the constants */
	bool values_known;
	bool parsed;
	uint8_t cls;		/* enum stmt_class */
	const char *norm;	/* normalized text ($n for constants) */
	uint32_t norm_len;
	bool values_redacted;	/* q.sql is the normalized text: literals are gone */
};

struct capture_tick {
	uint64_t now_ns;
};

struct capture_close {
	uint32_t pid;
	uint64_t conn;
};

/* Encode and append; return 0 or -1 with err filled. */
int capture_put_meta(struct capfile_writer *w, const struct capture_meta *m,
		     char *err, size_t errlen);
int capture_put_query(struct capfile_writer *w, const struct capture_query *cq,
		      char *err, size_t errlen);
int capture_put_summary(struct capfile_writer *w, const struct run_summary *s,
			char *err, size_t errlen);
int capture_put_close(struct capfile_writer *w, uint32_t pid, uint64_t conn,
		      char *err, size_t errlen);
int capture_put_tick(struct capfile_writer *w, uint64_t now_ns, char *err, size_t errlen);

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
int capture_get_close(const void *p, uint32_t len, struct capture_close *c);
int capture_get_tick(const void *p, uint32_t len, struct capture_tick *t);

#endif /* PQSNOOP_CAPTURE_H */
