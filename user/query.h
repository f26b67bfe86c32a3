/*
 * One completed query, as every consumer (watch output, detection, reports)
 * sees it.  Built by user/assemble.c from the BPF records; needs no kernel,
 * so synthetic queries can be made in unit tests.
 *
 * Invariants: `sql` points at `sql_cap` bytes (NUL-terminated for
 * convenience, but the text itself may contain anything but NUL: escape it
 * before printing).  `sql_len >= sql_cap`; truncated == (sql_len > sql_cap).
 * The struct and its strings are owned by the producer and valid only during
 * the callback that receives them: copy what you keep.
 */
#ifndef PQSNOOP_QUERY_H
#define PQSNOOP_QUERY_H

#include <stdbool.h>
#include <stdint.h>

enum pq_query_status {
	PQ_STATUS_OK = 0,	/* every result was a success */
	PQ_STATUS_ERROR,	/* at least one result was an error */
	PQ_STATUS_UNKNOWN,	/* the end was lost (dropped record) */
	PQ_STATUS_UNFINISHED,	/* still running, or its connection closed first */
};

enum pq_query_kind {
	PQ_KIND_QUERY = 0,	/* an execution the server runs */
	PQ_KIND_PREPARE,	/* PQprepare: parses, executes nothing */
};

/* One Python frame, innermost first in pq_query.stack. */
struct pq_frame {
	const char *file;	/* co_filename */
	const char *func;	/* co_qualname (3.11+) or co_name */
	uint32_t line;		/* 0 when unknown */
};

struct pq_query {
	enum pq_query_kind kind;
	enum pq_query_status status;
	uint32_t pid;
	uint32_t tid;
	uint64_t conn;		/* PGconn address in the traced process */
	uint64_t start_ns;	/* CLOCK_REALTIME, ns since the epoch */
	uint64_t duration_ns;	/* send to last result; 0 when not finished */
	int64_t rows;		/* rows returned or affected; -1 when unknown */
	const char *sql;	/* text as sent (for prepared executions, as prepared) */
	uint32_t sql_len;	/* real length of the text */
	uint32_t sql_cap;	/* bytes of sql captured */
	bool truncated;		/* sql_len > sql_cap */
	bool sql_len_capped;	/* the text was too long even to measure: sql_len is a lower bound */
	bool text_unknown;	/* prepared before pqsnoop attached: only the name is known */
	const char *stmt_name;	/* prepared statement name, or NULL */
	const char *api;	/* "PQsendQuery", "PQsendQueryParams", ... */
	const char *result_status;	/* "PGRES_TUPLES_OK", ...; NULL when unknown */
	const char *cmd_status;	/* "SELECT 1", "INSERT 0 5", ...; "" when unknown */
	const char *sqlstate;	/* "22012", or "" */
	const char *error;	/* server's primary message, or "" */
	const char *comm;	/* thread name */
	uint32_t nresults;	/* results the query produced (several for "a; b") */

	/* The Python stack that sent the query (Stacks issue); nframes == 0
	 * when there is none: not Python, --no-stacks, or unreadable
	 * (stack_error then says why). */
	const struct pq_frame *stack;
	uint32_t nframes;
	bool stack_truncated;	/* deeper than what was captured */
	const char *stack_error;	/* NULL, or why there is no stack */
};

const char *pq_query_status_name(enum pq_query_status status);

#endif /* PQSNOOP_QUERY_H */
