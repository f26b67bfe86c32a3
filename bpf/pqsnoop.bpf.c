// SPDX-License-Identifier: GPL-2.0
/*
 * pqsnoop's kernel side: uprobes on libpq's send and result functions.
 *
 * Where a query starts: the PQsend* layer.  PQexec, PQexecParams, PQprepare
 * and PQexecPrepared call these inside libpq, so probing only this layer
 * sees every query exactly once, whatever API the application uses.  The
 * record is written at the uretprobe: a send libpq refused (returned 0)
 * never reached the server and is not a query.
 *
 * Where it ends: libpq answers each send with one or more results and then
 * a NULL from PQgetResult, in send order per connection (pipeline mode
 * too).  So per connection we count sends (next_seq) and completed sends
 * (done_seq); a non-NULL result belongs to the oldest outstanding send, and
 * the NULL after at least one result completes it.  A NULL with nothing
 * outstanding (PQexec drains before it sends) ends nothing, and the
 * PIPELINE_SYNC result belongs to no query.
 *
 * Only processes in traced_pids are recorded; forks of a traced process
 * are added here, in the kernel, so no query of a new worker is missed
 * while user space learns about it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "pqsnoop.h"
#include "pystack.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by user space before load. */
const volatile bool follow_forks = true;
const volatile bool want_stacks = true;
/* Wake the reader only when this much is waiting: it polls every 100 ms
 * anyway, and a wakeup per record costs the traced process more than the
 * rest of the probe (measured: +24 us of CPU per query). */
const volatile __u64 wakeup_bytes = 1 << 20;

/* Read by user space; updated with atomic adds. */
struct pq_counters counters = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);	/* resized by user space before load */
} events SEC(".maps");

/* tgid -> 1 for every process being traced */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u8);
} traced_pids SEC(".maps");

/* Arguments of a PQsend* call, from its entry to its return, per thread. */
struct send_args {
	__u64 conn;
	__u64 sql;
	__u64 name;
	__u64 start_ns;
	__u32 kind;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);		/* pid_tgid */
	__type(value, struct send_args);
} send_inflight SEC(".maps");

/* PQgetResult's conn argument, from entry to return, per thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);		/* pid_tgid */
	__type(value, __u64);
} getresult_inflight SEC(".maps");

struct conn_key {
	__u32 pid;
	__u32 pad;
	__u64 conn;
};

/* Per connection: send counters and what the oldest outstanding send's
 * results said so far. */
struct conn_state {
	__u64 next_seq;
	__u64 done_seq;
	__u64 last_result_ns;
	__u32 status;
	__u32 nresults;
	__s32 ntups;
	__u32 has_error;
	char sqlstate[8];
	char cmd_status[PQ_CMDSTATUS_MAX];
	char errmsg[PQ_ERRMSG_MAX];
};

/* LRU: connections of processes that died without PQfinish age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, struct conn_state);
} conns SEC(".maps");

/* The SEND record is built here (too big for the 512-byte BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pq_rec_send);
} send_scratch SEC(".maps");

/* The STACK record is built here. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pq_rec_stack);
} stack_scratch SEC(".maps");

/*
 * State for measuring a long text, kept in a map value rather than on the
 * stack: the verifier then treats its fields as unknown scalars, so the
 * bpf_loop callback converges instead of being explored once per length.
 */
struct scan_state {
	__u64 ptr;	/* next byte to look at */
	__u64 len;	/* bytes counted so far */
	__u32 done;	/* found the NUL */
	__u32 fault;	/* could not read on */
	char buf[4096];	/* where the chunks land; only their length matters */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scan_state);
} scan_scratch SEC(".maps");

static const struct conn_state zero_conn = {};

static __always_inline __u64 rb_flags(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ?
	       BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline bool is_traced(__u32 pid)
{
	return bpf_map_lookup_elem(&traced_pids, &pid) != NULL;
}

static __always_inline int send_enter(__u32 kind, void *conn, const char *sql,
				      const char *name)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct send_args a = {};

	if (!conn || !is_traced(id >> 32))
		return 0;
	a.conn = (__u64)conn;
	a.sql = (__u64)sql;
	a.name = (__u64)name;
	a.kind = kind;
	a.start_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&send_inflight, &id, &a, BPF_ANY);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(pq_send_query, void *conn, const char *query)
{
	return send_enter(PQ_SEND_QUERY, conn, query, NULL);
}

SEC("uprobe")
int BPF_KPROBE(pq_send_query_params, void *conn, const char *command)
{
	return send_enter(PQ_SEND_QUERY_PARAMS, conn, command, NULL);
}

SEC("uprobe")
int BPF_KPROBE(pq_send_prepare, void *conn, const char *stmt_name,
	       const char *query)
{
	return send_enter(PQ_SEND_PREPARE, conn, query, stmt_name);
}

SEC("uprobe")
int BPF_KPROBE(pq_send_query_prepared, void *conn, const char *stmt_name)
{
	return send_enter(PQ_SEND_QUERY_PREPARED, conn, NULL, stmt_name);
}

SEC("uprobe")
int BPF_KPROBE(pq_send_describe, void *conn, const char *name)
{
	return send_enter(PQ_SEND_DESCRIBE, conn, NULL, name);
}

SEC("uprobe")
int BPF_KPROBE(pq_send_close, void *conn, const char *name)
{
	return send_enter(PQ_SEND_CLOSE, conn, NULL, name);
}

/* One bpf_loop step: read the next chunk; a short read found the NUL. */
static long scan_chunk(__u32 i, void *data)
{
	__u32 zero = 0;
	struct scan_state *sc = bpf_map_lookup_elem(&scan_scratch, &zero);
	long n;

	if (!sc)
		return 1;
	n = bpf_probe_read_user_str(sc->buf, sizeof(sc->buf), (const void *)sc->ptr);
	if (n <= 0) {
		sc->fault = 1;
		return 1;
	}
	if (n < (long)sizeof(sc->buf)) {
		sc->len += n - 1;
		sc->done = 1;
		return 1;
	}
	/* 4095 bytes and a NUL written by the helper: go on from the next */
	sc->len += sizeof(sc->buf) - 1;
	sc->ptr += sizeof(sc->buf) - 1;
	return 0;
}

/*
 * Copy the query text into rec->sql, set sql_cap, sql_len and flags.  The
 * real length of a text longer than PQ_SQL_MAX is measured by scanning on,
 * up to PQ_SQL_LEN_SCAN bytes.
 */
static __always_inline void read_sql(struct pq_rec_send *rec, const char *sql)
{
	long n;
	char next = 0;
	__u32 zero = 0;
	struct scan_state *sc;

	rec->sql_cap = 0;
	rec->sql_len = 0;
	if (!sql)
		return;
	n = bpf_probe_read_user_str(rec->sql, PQ_SQL_MAX + 1, sql);
	if (n <= 0) {
		rec->flags |= PQ_SEND_F_UNREADABLE;
		return;
	}
	rec->sql_cap = n - 1;
	rec->sql_len = n - 1;
	if (n < PQ_SQL_MAX + 1)
		return;
	/* the buffer filled up: is there more? */
	if (bpf_probe_read_user(&next, 1, sql + PQ_SQL_MAX) || !next)
		return;
	sc = bpf_map_lookup_elem(&scan_scratch, &zero);
	if (!sc) {
		rec->flags |= PQ_SEND_F_LEN_CAPPED;
		return;
	}
	sc->ptr = (__u64)sql + PQ_SQL_MAX;
	sc->len = PQ_SQL_MAX;
	sc->done = 0;
	sc->fault = 0;
	bpf_loop(PQ_SQL_LEN_SCAN / 4095, scan_chunk, NULL, 0);
	rec->sql_len = sc->len > 0xffffffffULL ? 0xffffffffU : (__u32)sc->len;
	if (!sc->done)
		rec->flags |= PQ_SEND_F_LEN_CAPPED;
}

/*
 * The Python stack of the thread sending the query.  Read at the send's
 * return: the thread is still inside the C call, so its Python frames are
 * the ones that made it.  Nothing is sent for a process that is not Python.
 */
static __always_inline void emit_stack(__u32 pid, __u64 conn, __u64 seq)
{
	struct pq_rec_stack *sr;
	__u32 zero = 0;
	__u64 n;

	sr = bpf_map_lookup_elem(&stack_scratch, &zero);
	if (!sr)
		return;
	if (py_read_stack(&sr->py) == PY_ERR_NOT_PYTHON)
		return;
	sr->type = PQ_REC_STACK;
	sr->pid = pid;
	sr->conn = conn;
	sr->seq = seq;
	n = sr->py.nframes;
	if (n > PY_MAX_FRAMES)
		n = PY_MAX_FRAMES;
	if (bpf_ringbuf_output(&events, sr, PQ_REC_STACK_HDR_SIZE + PY_STACK_SIZE(n), rb_flags()))
		__sync_fetch_and_add(&counters.dropped_stack, 1);
}

SEC("uretprobe")
int BPF_KRETPROBE(pq_send_exit, int ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct send_args *a = bpf_map_lookup_elem(&send_inflight, &id);
	struct conn_key key = {};
	struct conn_state *st;
	struct pq_rec_send *rec;
	__u32 zero = 0;
	long n;

	if (!a)
		return 0;
	if (ret != 1)	/* refused by libpq: nothing was sent */
		goto out;

	key.pid = id >> 32;
	key.conn = a->conn;
	st = bpf_map_lookup_elem(&conns, &key);
	if (!st) {
		bpf_map_update_elem(&conns, &key, &zero_conn, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&conns, &key);
		if (!st) {
			__sync_fetch_and_add(&counters.conn_table_full, 1);
			goto out;
		}
	}

	rec = bpf_map_lookup_elem(&send_scratch, &zero);
	if (!rec)
		goto out;
	rec->type = PQ_REC_SEND;
	rec->kind = a->kind;
	rec->pid = id >> 32;
	rec->tid = (__u32)id;
	rec->conn = a->conn;
	rec->seq = st->next_seq++;
	rec->start_ns = a->start_ns;
	rec->flags = 0;
	rec->name_len = 0;
	rec->name[0] = 0;
	bpf_get_current_comm(rec->comm, sizeof(rec->comm));
	if (a->name) {
		n = bpf_probe_read_user_str(rec->name, sizeof(rec->name),
					    (const void *)a->name);
		if (n > 0)
			rec->name_len = n - 1;
		else
			rec->flags |= PQ_SEND_F_NAME_UNREADABLE;
	}
	read_sql(rec, (const char *)a->sql);

	n = PQ_REC_SEND_HDR_SIZE + rec->sql_cap + 1;
	if (n > sizeof(*rec))
		n = sizeof(*rec);
	if (bpf_ringbuf_output(&events, rec, n, rb_flags())) {
		__sync_fetch_and_add(&counters.dropped_send, 1);
		goto out;
	}
	if (want_stacks && a->kind != PQ_SEND_DESCRIBE && a->kind != PQ_SEND_CLOSE)
		emit_stack(key.pid, key.conn, rec->seq);
out:
	bpf_map_delete_elem(&send_inflight, &id);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(pq_get_result_enter, void *conn)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct conn_key key = {};
	struct conn_state *st;
	__u64 c = (__u64)conn;

	if (!conn || !is_traced(id >> 32))
		return 0;
	key.pid = id >> 32;
	key.conn = c;
	st = bpf_map_lookup_elem(&conns, &key);
	/* Nothing outstanding: this call can complete nothing; the return
	 * probe then finds no entry and does no work. */
	if (!st || st->next_seq == st->done_seq)
		return 0;
	bpf_map_update_elem(&getresult_inflight, &id, &c, BPF_ANY);
	return 0;
}

static __always_inline bool is_error_status(__u32 status)
{
	return status == PQS_FATAL_ERROR || status == PQS_BAD_RESPONSE ||
	       status == PQS_PIPELINE_ABORTED;
}

/* Copy the SQLSTATE ('C' field) of an error result; bounded walk. */
static __always_inline void read_sqlstate(struct conn_state *st, const void *res)
{
	const void *f = NULL;
	char code = 0;

	bpf_probe_read_user(&f, sizeof(f), res + PGRES_OFF_ERRFIELDS);
	for (int i = 0; i < 24 && f; i++) {
		if (bpf_probe_read_user(&code, 1, f + PGMSGF_OFF_CODE))
			return;
		if (code == 'C') {
			bpf_probe_read_user_str(st->sqlstate, sizeof(st->sqlstate),
						f + PGMSGF_OFF_CONTENTS);
			return;
		}
		if (bpf_probe_read_user(&f, sizeof(f), f + PGMSGF_OFF_NEXT))
			return;
	}
}

static __always_inline void emit_end(struct conn_state *st, __u64 id, __u64 conn)
{
	struct pq_rec_end *e;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&counters.dropped_end, 1);
		return;
	}
	e->type = PQ_REC_END;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->status = st->status;
	e->conn = conn;
	e->seq = st->done_seq;
	e->end_ns = st->last_result_ns;
	e->nresults = st->nresults;
	e->ntups = st->ntups;
	__builtin_memcpy(e->sqlstate, st->sqlstate, sizeof(e->sqlstate));
	__builtin_memcpy(e->cmd_status, st->cmd_status, sizeof(e->cmd_status));
	__builtin_memcpy(e->errmsg, st->errmsg, sizeof(e->errmsg));
	bpf_ringbuf_submit(e, rb_flags());
}

SEC("uretprobe")
int BPF_KRETPROBE(pq_get_result_exit, void *res)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 *connp = bpf_map_lookup_elem(&getresult_inflight, &id);
	struct conn_key key = {};
	struct conn_state *st;
	__u32 status = 0;
	__s32 ntups = 0;

	if (!connp)
		return 0;
	key.pid = id >> 32;
	key.conn = *connp;
	bpf_map_delete_elem(&getresult_inflight, &id);
	st = bpf_map_lookup_elem(&conns, &key);
	if (!st || st->next_seq == st->done_seq)
		return 0;

	if (res) {
		bpf_probe_read_user(&status, sizeof(status), res + PGRES_OFF_STATUS);
		if (status == PQS_PIPELINE_SYNC)	/* belongs to no query */
			return 0;
		st->nresults++;
		st->last_result_ns = bpf_ktime_get_ns();
		if (status == PQS_TUPLES_OK || status == PQS_SINGLE_TUPLE) {
			bpf_probe_read_user(&ntups, sizeof(ntups), res + PGRES_OFF_NTUPS);
			st->ntups += ntups;
		}
		bpf_probe_read_user_str(st->cmd_status, sizeof(st->cmd_status),
					res + PGRES_OFF_CMDSTATUS);
		if (is_error_status(status)) {
			if (!st->has_error) {
				const char *msg = NULL;

				st->has_error = 1;
				st->status = status;
				read_sqlstate(st, res);
				bpf_probe_read_user(&msg, sizeof(msg), res + PGRES_OFF_ERRMSG);
				if (msg)
					bpf_probe_read_user_str(st->errmsg,
								sizeof(st->errmsg), msg);
			}
		} else if (!st->has_error) {
			st->status = status;
		}
		return 0;
	}

	/* NULL: the oldest outstanding send is complete, if it had results */
	if (!st->nresults)
		return 0;
	emit_end(st, id, key.conn);
	st->done_seq++;
	st->nresults = 0;
	st->ntups = 0;
	st->status = 0;
	st->has_error = 0;
	st->sqlstate[0] = 0;
	st->cmd_status[0] = 0;
	st->errmsg[0] = 0;
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(pq_finish, void *conn)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct conn_key key = {};
	struct conn_state *st;
	struct pq_rec_conn_close *r;

	if (!conn || !is_traced(id >> 32))
		return 0;
	key.pid = id >> 32;
	key.conn = (__u64)conn;
	st = bpf_map_lookup_elem(&conns, &key);
	if (!st)
		return 0;
	/* Sends still outstanding will never complete, and the statement
	 * names prepared on this connection die with it: tell user space.
	 * A freed PGconn's address may be reused by the next connection:
	 * forget this one. */
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (r) {
		r->type = PQ_REC_CONN_CLOSE;
		r->pid = key.pid;
		r->conn = key.conn;
		r->next_seq = st->next_seq;
		r->ts_ns = bpf_ktime_get_ns();
		bpf_ringbuf_submit(r, rb_flags());
	} else {
		__sync_fetch_and_add(&counters.dropped_other, 1);
	}
	bpf_map_delete_elem(&conns, &key);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ppid = BPF_CORE_READ(parent, tgid);
	__u32 cpid = BPF_CORE_READ(child, tgid);
	struct pq_rec_fork *r;
	__u8 one = 1;

	/* a new thread shares its tgid: nothing to do */
	if (!follow_forks || cpid == ppid || !is_traced(ppid))
		return 0;
	bpf_map_update_elem(&traced_pids, &cpid, &one, BPF_ANY);
	/* the child runs the same interpreter at the same addresses */
	py_proc_fork(ppid, cpid);
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&counters.dropped_other, 1);
		return 0;
	}
	r->type = PQ_REC_FORK;
	r->parent_pid = ppid;
	r->child_pid = cpid;
	r->pad = 0;
	/* rare: user space starts reading the child's memory at once */
	bpf_ringbuf_submit(r, BPF_RB_FORCE_WAKEUP);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *task)
{
	__u32 pid = BPF_CORE_READ(task, tgid);
	struct pq_rec_exec *r;

	if (!is_traced(pid))
		return 0;
	/* another program now: its interpreter (if any) is elsewhere, and
	 * user space learns it anew */
	bpf_map_delete_elem(&py_procs, &pid);
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&counters.dropped_other, 1);
		return 0;
	}
	r->type = PQ_REC_EXEC;
	r->pid = pid;
	/* rare, and user space must learn the new interpreter before the
	 * program's first query: wake it now */
	bpf_ringbuf_submit(r, BPF_RB_FORCE_WAKEUP);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *task)
{
	__u32 pid = BPF_CORE_READ(task, tgid);

	/* only when the whole process is gone: its PID may be reused */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	bpf_map_delete_elem(&traced_pids, &pid);
	bpf_map_delete_elem(&py_procs, &pid);
	return 0;
}
