/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Records shared by the BPF programs (pqsnoop.bpf.c) and user space.
 *
 * The kernel side sends raw facts over one ring buffer; user space
 * (user/assemble.c) joins them into queries.  Every record starts with
 * `u32 type` so the consumer can switch on it.
 *
 * Per connection the BPF side numbers sends 0, 1, 2...; results come back in
 * the same order (libpq is FIFO per connection, pipeline mode included), so an
 * END record names the sequence number of the SEND it completes.  A send that
 * libpq refused (PQsend* returned 0) is never numbered and never reported.
 */
#ifndef PQSNOOP_H
#define PQSNOOP_H

#include "pystack.h"

/* Query text captured per query; longer text is cut, its real length kept. */
#define PQ_SQL_MAX 4096
/* Prepared statement names (psycopg 3 uses "_pg3_N"). */
#define PQ_NAME_MAX 64
/* PGresult->cmdStatus is char[64] in every libpq since 7.4. */
#define PQ_CMDSTATUS_MAX 64
#define PQ_ERRMSG_MAX 256

enum pq_rec_type {
	PQ_REC_SEND = 1,	/* a PQsend* call that libpq accepted */
	PQ_REC_END = 2,		/* the NULL after the last result of a send */
	PQ_REC_CONN_CLOSE = 3,	/* PQfinish: outstanding sends will never end */
	PQ_REC_FORK = 4,	/* a traced process forked a child, now traced */
	PQ_REC_STACK = 5,	/* the Python stack of the SEND just before */
	PQ_REC_EXEC = 6,	/* a traced process exec'd another program */
};

/* Which libpq entry point sent the query. */
enum pq_send_kind {
	PQ_SEND_QUERY = 1,		/* PQsendQuery (and PQexec inside libpq) */
	PQ_SEND_QUERY_PARAMS = 2,	/* PQsendQueryParams (PQexecParams) */
	PQ_SEND_PREPARE = 3,		/* PQsendPrepare (PQprepare): no execution */
	PQ_SEND_QUERY_PREPARED = 4,	/* PQsendQueryPrepared: name only */
	/* Not queries, but they take a place in the connection's result
	 * order (pipeline mode), so they are numbered like the others and
	 * never reported. */
	PQ_SEND_DESCRIBE = 5,		/* PQsendDescribePrepared/Portal */
	PQ_SEND_CLOSE = 6,		/* PQsendClosePrepared/Portal (libpq 17) */
};

/* libpq's ExecStatusType values we need (libpq-fe.h, stable since 14). */
enum pq_exec_status {
	PQS_EMPTY_QUERY = 0,
	PQS_COMMAND_OK = 1,
	PQS_TUPLES_OK = 2,
	PQS_COPY_OUT = 3,
	PQS_COPY_IN = 4,
	PQS_BAD_RESPONSE = 5,
	PQS_NONFATAL_ERROR = 6,
	PQS_FATAL_ERROR = 7,
	PQS_COPY_BOTH = 8,
	PQS_SINGLE_TUPLE = 9,
	PQS_PIPELINE_SYNC = 10,
	PQS_PIPELINE_ABORTED = 11,
};

struct pq_rec_send {
	__u32 type;		/* PQ_REC_SEND */
	__u32 kind;		/* enum pq_send_kind */
	__u32 pid;		/* tgid of the sending process */
	__u32 tid;		/* sending thread */
	__u64 conn;		/* PGconn address in the traced process */
	__u64 seq;		/* per-connection send number, from 0 */
	__u64 start_ns;		/* CLOCK_MONOTONIC at PQsend* entry */
	__u32 sql_len;		/* real length of the text (see flags) */
	__u32 sql_cap;		/* bytes of sql[] that are valid, <= PQ_SQL_MAX */
	__u32 flags;		/* PQ_SEND_F_* */
	__u32 name_len;		/* bytes of name[] used, without the NUL */
	char comm[16];		/* thread name */
	char name[PQ_NAME_MAX];	/* statement name for PREPARE / QUERY_PREPARED */
	/* one spare byte for the NUL bpf_probe_read_user_str() writes, and
	 * padding; only the used part of the record crosses the ring buffer */
	char sql[PQ_SQL_MAX + 8];
};

#define PQ_SEND_F_LEN_CAPPED	1	/* longer than PQ_SQL_LEN_SCAN: sql_len is a lower bound */
#define PQ_SEND_F_UNREADABLE	2	/* the text could not be read (page not present) */
#define PQ_SEND_F_NAME_UNREADABLE 4

/* The BPF side sends the header and sql_cap bytes of text (+1 for a NUL). */
#define PQ_REC_SEND_HDR_SIZE (sizeof(struct pq_rec_send) - (PQ_SQL_MAX + 8))

/* How far past PQ_SQL_MAX the BPF side looks for the end of a long text. */
#define PQ_SQL_LEN_SCAN (4u << 20)

struct pq_rec_end {
	__u32 type;		/* PQ_REC_END */
	__u32 pid;
	__u32 tid;		/* thread that received the final NULL */
	__u32 status;		/* worst status seen among the results */
	__u64 conn;
	__u64 seq;		/* the send this completes */
	__u64 end_ns;		/* CLOCK_MONOTONIC when the last result came */
	__u32 nresults;		/* non-NULL results seen for this send */
	__s32 ntups;		/* rows of all results carrying tuples, summed */
	char sqlstate[8];	/* of the first error result, NUL-terminated */
	char cmd_status[PQ_CMDSTATUS_MAX];	/* of the last result */
	char errmsg[PQ_ERRMSG_MAX];	/* of the first error result */
};

struct pq_rec_conn_close {
	__u32 type;		/* PQ_REC_CONN_CLOSE */
	__u32 pid;
	__u64 conn;
	__u64 next_seq;		/* sends numbered so far on this connection */
	__u64 ts_ns;
};

/* Sent right after the SEND it belongs to (same pid, conn, seq), with only
 * the used frames: PQ_REC_STACK_HDR_SIZE + PY_STACK_SIZE(py.nframes). */
struct pq_rec_stack {
	__u32 type;		/* PQ_REC_STACK */
	__u32 pid;
	__u64 conn;
	__u64 seq;
	struct py_stack py;
};

#define PQ_REC_STACK_HDR_SIZE (sizeof(struct pq_rec_stack) - sizeof(struct py_stack))

struct pq_rec_fork {
	__u32 type;		/* PQ_REC_FORK */
	__u32 parent_pid;
	__u32 child_pid;
	__u32 pad;
};

struct pq_rec_exec {
	__u32 type;		/* PQ_REC_EXEC */
	__u32 pid;
};

/* Byte offsets in libpq's private struct pg_result (libpq-int.h); the same in
 * every libpq from 10 to 17.  tests/unit/test_pgresult_layout.c checks them
 * against the installed libpq-int.h. */
#define PGRES_OFF_NTUPS		0
#define PGRES_OFF_STATUS	40
#define PGRES_OFF_CMDSTATUS	44
#define PGRES_OFF_ERRMSG	160
#define PGRES_OFF_ERRFIELDS	168
/* struct pgMessageField { next; char code; char contents[]; } */
#define PGMSGF_OFF_NEXT		0
#define PGMSGF_OFF_CODE		8
#define PGMSGF_OFF_CONTENTS	9

/* Counters the BPF side keeps in .bss; user space reads them at exit. */
struct pq_counters {
	__u64 dropped_send;	/* SEND records the ring buffer had no room for */
	__u64 dropped_end;	/* END records the ring buffer had no room for */
	__u64 dropped_other;	/* CONN_CLOSE / FORK records lost */
	__u64 dropped_stack;	/* STACK records lost (the query is still reported) */
	__u64 conn_table_full;	/* sends not tracked: connection table full */
	__u64 orphan_results;	/* results with no outstanding send (ignored) */
};

#endif /* PQSNOOP_H */
