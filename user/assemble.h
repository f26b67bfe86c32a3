/*
 * Joins the BPF side's raw records (bpf/pqsnoop.h) into complete queries.
 *
 * A SEND record opens a query on its connection; the END record with the
 * same (pid, conn, seq) completes it.  Records of one connection arrive in
 * order (one thread uses a connection at a time, and the ring buffer keeps
 * order), so a missing sequence number means a record was dropped:
 *   - an END whose SEND was lost: counted as lost_sends (no text, no event);
 *   - a SEND whose END was lost (a later END came first): reported with
 *     status "unknown" and counted as lost_ends.
 * Prepared statements: the text of PQsendPrepare is remembered per
 * connection by name, so a PQsendQueryPrepared reports the statement text.
 *
 * Needs no kernel: unit tests feed it synthetic records.
 */
#ifndef PQSNOOP_ASSEMBLE_H
#define PQSNOOP_ASSEMBLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "query.h"

struct assembler_opts {
	/* Called once per query or prepare, in completion order. */
	void (*on_query)(const struct pq_query *q, void *ctx);
	void *ctx;
	/* Added to the BPF side's CLOCK_MONOTONIC to get CLOCK_REALTIME. */
	int64_t mono_to_real_ns;
};

struct assembler_stats {
	uint64_t queries;	/* query events delivered (any status) */
	uint64_t prepares;	/* prepare events delivered */
	uint64_t errors;	/* queries or prepares with status error */
	uint64_t unfinished;	/* delivered as unfinished (see assembler__flush) */
	uint64_t lost_ends;	/* delivered as unknown: their END was dropped */
	uint64_t lost_sends;	/* ENDs whose SEND was dropped: not delivered */
	uint64_t forks;		/* FORK records seen */
	uint64_t describes;	/* describes/closes completed (not queries) */
	uint64_t bad_records;	/* records too short or of unknown type */
	uint64_t pending;	/* sends waiting for their END right now */
};

struct assembler;

/* Returns NULL when out of memory. */
struct assembler *assembler__new(const struct assembler_opts *opts);
/* Frees everything; pending sends are discarded without callbacks. */
void assembler__free(struct assembler *a);

/*
 * Feed one record as it came from the ring buffer.  Returns the record's
 * type (enum pq_rec_type), or -1 when it is malformed (counted in
 * bad_records).  For PQ_REC_FORK, *child_pid is set when child_pid is not
 * NULL.
 */
int assembler__record(struct assembler *a, const void *data, size_t size,
		      uint32_t *child_pid);

/*
 * Give the pending send (pid, conn, seq) its Python stack: frames (copied;
 * their strings are borrowed and must outlive the assembler), whether it
 * was cut, and why it is missing or partial (error may be NULL; borrowed
 * likewise).  Returns 0, or -1 when no such send is pending (its SEND was
 * dropped).
 */
int assembler__attach_stack(struct assembler *a, uint32_t pid, uint64_t conn,
			    uint64_t seq, const struct pq_frame *frames, uint32_t n,
			    bool truncated, const char *error);

/* Deliver every pending send as unfinished (end of a run). */
void assembler__flush(struct assembler *a);

/* Deliver the pending sends of process pid as unfinished (it exited). */
void assembler__flush_pid(struct assembler *a, uint32_t pid);

const struct assembler_stats *assembler__stats(const struct assembler *a);

/*
 * Rows from the result: tuples for a SELECT, else the count in the command
 * tag ("INSERT 0 5" -> 5, "UPDATE 3" -> 3, "COPY 10" -> 10); 0 when the tag
 * carries none.  Exposed for tests.
 */
int64_t pq_rows_from_result(uint32_t status, int32_t ntups, const char *cmd_status);

/* "PGRES_TUPLES_OK" etc.; "PGRES_UNKNOWN" for values libpq does not define. */
const char *pq_exec_status_name(uint32_t status);

#endif /* PQSNOOP_ASSEMBLE_H */
