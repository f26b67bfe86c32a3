#include "tracer.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "assemble.h"
#include "attach.h"
#include "log.h"
#include <linux/types.h>
#include "pqsnoop.h"
#include "pqsnoop.skel.h"
#include "procfs.h"
#include "stack_resolver.h"

#define MAX_LIBPQ 16
/*
 * How often the reader looks at the ring buffer.  The BPF side does not wake
 * it per record (that costs the traced process ~24 us a query); 25 ms keeps
 * live output prompt and lets stacks be symbolized while a short-lived
 * process is still there to read them from.
 */
#define POLL_MS 25

static volatile sig_atomic_t stop_requested;
static struct run *current;	/* for tracer_snapshot() */

void tracer_stop(void)
{
	stop_requested = 1;
}

struct run {
	const struct tracer_opts *opts;
	struct pqsnoop_bpf *skel;
	struct attacher *at;
	struct assembler *as;
	struct stack_resolver *sr;	/* NULL with --no-stacks */
	pid_t *pids;		/* processes traced and alive */
	size_t npids;
	uint64_t processes;	/* ever traced */
	bool said_no_stacks;
	/* processes whose interpreter is not known yet (it exec'd, or was
	 * not initialized): tried again on every tick until a deadline */
	struct { pid_t pid; double until; } *relearn;
	size_t nrelearn;
};

static void fill_summary(const struct run *r, struct run_summary *sum)
{
	sum->asm_stats = *assembler__stats(r->as);
	sum->dropped_send = r->skel->bss->counters.dropped_send;
	sum->dropped_end = r->skel->bss->counters.dropped_end;
	sum->dropped_other = r->skel->bss->counters.dropped_other;
	sum->conn_table_full = r->skel->bss->counters.conn_table_full;
	sum->dropped_stack = r->skel->bss->counters.dropped_stack;
	sum->processes = r->processes;
}

void tracer_snapshot(struct run_summary *out)
{
	memset(out, 0, sizeof(*out));
	if (current && current->skel && current->as)
		fill_summary(current, out);
}

static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t mono_to_real_offset(void)
{
	struct timespec r, m;

	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_MONOTONIC, &m);
	return (int64_t)(r.tv_sec - m.tv_sec) * 1000000000LL +
	       (r.tv_nsec - m.tv_nsec);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG && log_verbosity < 2)
		return 0;
	if (log_verbosity < 1)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static double now_mono(void);

/* Try again for a while: an interpreter that is starting up (right after
 * an exec) is not initialized yet. */
static void relearn_later(struct run *r, pid_t pid)
{
	void *p;

	for (size_t i = 0; i < r->nrelearn; i++)
		if (r->relearn[i].pid == pid)
			return;
	p = realloc(r->relearn, (r->nrelearn + 1) * sizeof(*r->relearn));
	if (!p)
		return;
	r->relearn = p;
	r->relearn[r->nrelearn].pid = pid;
	r->relearn[r->nrelearn].until = now_mono() + 10.0;
	r->nrelearn++;
}

static void forget_relearn(struct run *r, pid_t pid)
{
	for (size_t i = 0; i < r->nrelearn; i++)
		if (r->relearn[i].pid == pid) {
			r->relearn[i] = r->relearn[--r->nrelearn];
			return;
		}
}

/*
 * Tell the BPF side where pid's interpreter is.  Returns whether it is
 * known now.  An interpreter that is still starting up goes on the list to
 * try again; with quiet, a failure says nothing (the last try will);
 * otherwise say once why its queries come without stacks.
 */
static bool learn_python(struct run *r, pid_t pid, bool quiet)
{
	const struct py_offsets *off;
	__u32 key = pid;
	char why[256] = "", comm[32];

	off = stack_resolver__add(r->sr, pid, why, sizeof(why));
	if (off) {
		bpf_map__update_elem(r->skel->maps.py_procs, &key, sizeof(key),
				     off, sizeof(*off), BPF_ANY);
		forget_relearn(r, pid);
		debug("pid %d: Python %x at 0x%llx", (int)pid, off->version,
		      (unsigned long long)off->runtime);
		return true;
	}
	if (strstr(why, "not initialized"))
		relearn_later(r, pid);
	if (quiet) {
		debug("pid %d: not yet: %s", (int)pid, why);
		return false;
	}
	forget_relearn(r, pid);	/* the last word */
	/* psql or pgbench have no Python stack to miss: no warning */
	if (strstr(why, "is not a Python process")) {
		debug("pid %d: %s", (int)pid, why);
		return false;
	}
	if (!r->said_no_stacks) {
		proc_comm(pid, comm, sizeof(comm));
		info("pid %d (%s): queries are traced without Python stacks: %s",
		     (int)pid, comm, why);
		r->said_no_stacks = true;
	}
	return false;
}

/* A traced process exec'd: forget its old interpreter, learn the new one
 * (right away if it is there, else as soon as it has started). */
static void on_exec(struct run *r, pid_t pid)
{
	__u32 key = pid;

	debug("pid %d exec'd", (int)pid);
	bpf_map__delete_elem(r->skel->maps.py_procs, &key, sizeof(key), 0);
	stack_resolver__remove(r->sr, pid);
	/* A new Python is not readable until its libpython is mapped and its
	 * runtime initialized, a few ms from now: keep trying.  Anything else
	 * (psql) gets its answer at once. */
	if (proc_exe_mentions(pid, "_PyRuntime") || proc_exe_mentions(pid, "libpython"))
		relearn_later(r, pid);
	else
		learn_python(r, pid, false);
}

static void relearn_due(struct run *r)
{
	double now = now_mono();

	for (size_t i = 0; i < r->nrelearn;) {
		pid_t pid = r->relearn[i].pid;
		bool last = now >= r->relearn[i].until;

		if (!proc_alive(pid) || learn_python(r, pid, !last) || last) {
			forget_relearn(r, pid);
			continue;	/* the list changed: look at slot i again */
		}
		i++;
	}
}

static int track_pid(struct run *r, pid_t pid)
{
	__u8 one = 1;
	__u32 key = pid;
	pid_t *p;

	for (size_t i = 0; i < r->npids; i++)
		if (r->pids[i] == pid)
			return 0;
	p = realloc(r->pids, (r->npids + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	r->pids = p;
	r->pids[r->npids++] = pid;
	r->processes++;
	/* the fork tracepoint added it already when it came from a fork */
	bpf_map__update_elem(r->skel->maps.traced_pids, &key, sizeof(key),
			     &one, sizeof(one), BPF_ANY);
	if (r->sr)
		learn_python(r, pid, false);
	return 0;
}

/* Attach to every libpq copy any traced process maps; returns how many
 * mappings were found (0: no traced process has libpq loaded). */
static int scan_libpq(struct run *r)
{
	struct libpq_map *maps = calloc(MAX_LIBPQ, sizeof(*maps));
	int n, found = 0;

	if (!maps)
		return 0;
	for (size_t i = 0; i < r->npids; i++) {
		n = proc_find_libpq(r->pids[i], maps, MAX_LIBPQ);
		for (int j = 0; j < n; j++) {
			found++;
			if (attacher__add(r->at, &maps[j]) > 0)
				info("tracing %s in pid %d", maps[j].shown, (int)r->pids[i]);
		}
	}
	free(maps);
	return found;
}

/*
 * Before a process loads libpq, put the probes on the libpq files it is
 * likely to load: a uprobe on a file is armed in every process that maps
 * the file later, so the first query after the load is seen too.
 */
static void preattach_system_libpq(struct run *r)
{
	static const char *const dirs[] = {
		"/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64",
		"/lib64", "/usr/lib", "/usr/local/lib", "/usr/local/pgsql/lib",
	};
	struct libpq_map m;
	struct stat st;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		memset(&m, 0, sizeof(m));
		snprintf(m.shown, sizeof(m.shown), "%s/libpq.so.5", dirs[i]);
		snprintf(m.path, sizeof(m.path), "/proc/%d/root%s",
			 (int)r->opts->pid, m.shown);
		if (stat(m.path, &st) != 0)
			continue;
		m.dev = st.st_dev;
		m.ino = st.st_ino;
		if (attacher__add(r->at, &m) > 0)
			debug("probes armed on %s before it is loaded", m.shown);
	}
}

static bool saw_queries(const struct run *r)
{
	const struct assembler_stats *st = assembler__stats(r->as);

	return st->queries || st->prepares || st->pending;
}

/* Forget processes that exited; their open sends become unfinished. */
static void reap(struct run *r)
{
	for (size_t i = 0; i < r->npids;) {
		if (proc_alive(r->pids[i])) {
			i++;
			continue;
		}
		debug("pid %d exited", (int)r->pids[i]);
		assembler__flush_pid(r->as, r->pids[i]);
		if (r->sr)
			stack_resolver__remove(r->sr, r->pids[i]);
		r->pids[i] = r->pids[--r->npids];
	}
}

/* Symbolize a STACK record now, while its process is alive, and give it
 * to the query it belongs to. */
static void on_stack(struct run *r, const struct pq_rec_stack *s, size_t size)
{
	struct pq_frame frames[PY_MAX_FRAMES];
	const char *error = NULL;
	uint32_t n;

	if (!r->sr || size < PQ_REC_STACK_HDR_SIZE + PY_STACK_SIZE(0) ||
	    s->py.nframes > PY_MAX_FRAMES ||
	    size < PQ_REC_STACK_HDR_SIZE + PY_STACK_SIZE(s->py.nframes))
		return;
	n = stack_resolver__resolve(r->sr, s->pid, &s->py, frames, &error);
	/* no such query: its SEND record was dropped (counted there) */
	assembler__attach_stack(r->as, s->pid, s->conn, s->seq, frames, n,
				s->py.truncated, error);
}

/* A query sent while its process's interpreter is still being learned
 * (it just exec'd or started): say why it has no stack. */
static void mark_unknown_interpreter(struct run *r, const struct pq_rec_send *s)
{
	for (size_t i = 0; i < r->nrelearn; i++)
		if (r->relearn[i].pid == (pid_t)s->pid)
			assembler__attach_stack(r->as, s->pid, s->conn, s->seq, NULL, 0, false,
						"the interpreter was not known yet (the process had just started)");
}

static int on_record(void *ctx, void *data, size_t size)
{
	struct run *r = ctx;
	uint32_t child = 0;

	if (size >= sizeof(__u32) && *(__u32 *)data == PQ_REC_STACK) {
		on_stack(r, data, size);
		return 0;
	}
	if (size >= sizeof(struct pq_rec_exec) && *(__u32 *)data == PQ_REC_EXEC) {
		if (r->sr)
			on_exec(r, ((const struct pq_rec_exec *)data)->pid);
		return 0;
	}

	switch (assembler__record(r->as, data, size, &child)) {
	case PQ_REC_SEND:
		if (r->nrelearn)
			mark_unknown_interpreter(r, data);
		break;
	case PQ_REC_FORK:
		debug("following forked child %u", child);
		track_pid(r, (pid_t)child);
		break;
	case PQ_REC_CONN_CLOSE:
		if (r->opts->on_conn_closed) {
			const struct pq_rec_conn_close *c = data;

			r->opts->on_conn_closed(c->pid, c->conn, r->opts->ctx);
		}
		break;
	}
	return 0;
}

/* PQSNOOP_TEST_BTF_PATH lets the tests play a kernel without BTF. */
static const char *kernel_btf_path(void)
{
	const char *p = getenv("PQSNOOP_TEST_BTF_PATH");

	return p && *p ? p : "/sys/kernel/btf/vmlinux";
}

int tracer_run(const struct tracer_opts *o, struct run_summary *sum)
{
	struct run r = { .opts = o };
	struct ring_buffer *rb = NULL;
	struct assembler_opts ao = {
		.on_query = o->on_query, .ctx = o->ctx,
		.mono_to_real_ns = mono_to_real_offset(),
	};
	char comm[64];
	double start, next_scan, next_reap, deadline;
	pid_t *desc = NULL;
	size_t ndesc = 0;
	int err, rc = 1;

	memset(sum, 0, sizeof(*sum));
	if (!proc_self_can_trace()) {
		warn("needs root (or CAP_BPF and CAP_PERFMON) to load BPF programs: run it with sudo");
		return 1;
	}
	if (o->pid <= 0 || !proc_alive(o->pid)) {
		warn("no such process: %d (check the PID with ps or pgrep)", (int)o->pid);
		return 1;
	}
	if (access(kernel_btf_path(), R_OK) != 0) {
		warn("this kernel has no BTF (%s is missing): pqsnoop needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (5.8 or later)",
		     kernel_btf_path());
		return 1;
	}
	proc_comm(o->pid, comm, sizeof(comm));
	libbpf_set_print(libbpf_print);

	r.skel = pqsnoop_bpf__open();
	if (!r.skel) {
		warn("failed to open BPF programs: %s", strerror(errno));
		goto cleanup;
	}
	r.skel->rodata->follow_forks = o->follow_forks;
	r.skel->rodata->want_stacks = o->stacks;
	/* wake the reader at an eighth full, well before anything is lost */
	r.skel->rodata->wakeup_bytes = o->ringbuf_bytes / 8;
	err = bpf_map__set_max_entries(r.skel->maps.events, o->ringbuf_bytes);
	if (err) {
		warn("failed to size the ring buffer to %zu bytes: %s", o->ringbuf_bytes,
		     strerror(-err));
		goto cleanup;
	}
	err = pqsnoop_bpf__load(r.skel);
	if (err) {
		warn("failed to load BPF programs: %s (pqsnoop needs kernel 5.17 or later with BTF and BPF ring buffers; run with -v for the verifier's log)",
		     strerror(-err));
		goto cleanup;
	}
	current = &r;
	r.at = attacher__new(r.skel);
	r.as = assembler__new(&ao);
	if (o->stacks)
		r.sr = stack_resolver__new();
	if (!r.at || !r.as || (o->stacks && !r.sr)) {
		warn("out of memory");
		goto cleanup;
	}

	/* the process, and the workers it already forked (a pre-fork server) */
	if (track_pid(&r, o->pid)) {
		warn("out of memory");
		goto cleanup;
	}
	err = proc_descendants(o->pid, &desc, &ndesc);
	if (err)
		warn("cannot list the children of pid %d: %s; tracing it alone",
		     (int)o->pid, strerror(-err));
	for (size_t i = 0; i < ndesc; i++)
		track_pid(&r, desc[i]);
	free(desc);
	desc = NULL;

	/* follow forks from now on, before waiting for or attaching to libpq */
	err = pqsnoop_bpf__attach(r.skel);
	if (err) {
		warn("failed to attach the fork and exit tracepoints: %s", strerror(-err));
		goto cleanup;
	}

	rb = ring_buffer__new(bpf_map__fd(r.skel->maps.events), on_record, &r, NULL);
	if (!rb) {
		warn("failed to create the ring buffer reader: %s", strerror(errno));
		goto cleanup;
	}

	start = now_mono();
	if (!scan_libpq(&r)) {
		preattach_system_libpq(&r);
		info("pid %d (%s) has not loaded libpq yet: waiting up to %g s for it (--wait-libpq)",
		     (int)o->pid, comm, o->wait_libpq);
		deadline = start + o->wait_libpq;
		while (!stop_requested) {
			/* loaded: seen in its maps, or the armed probes fired
			 * (a short script may load, query and exit between
			 * two looks at its maps) */
			if (scan_libpq(&r) || ring_buffer__consume(rb) > 0 ||
			    saw_queries(&r))
				break;
			if (r.nrelearn)
				relearn_due(&r);
			reap(&r);
			if (!r.npids) {
				warn("pid %d (%s) exited before it loaded libpq", (int)o->pid, comm);
				goto cleanup;
			}
			if (now_mono() >= deadline) {
				warn("no libpq in pid %d (%s) after %g s: pqsnoop traces PostgreSQL clients that use libpq (psycopg2, psycopg 3, psql, pgbench...); check the PID or raise --wait-libpq",
				     (int)o->pid, comm, o->wait_libpq);
				goto cleanup;
			}
			usleep(50 * 1000);
		}
		if (stop_requested)
			goto cleanup;
	}

	info("attached to pid %d (%s) and %zu child process(es); Ctrl-C to stop",
	     (int)o->pid, comm, r.npids - 1);

	start = now_mono();
	next_scan = start + 1.0;
	next_reap = start + 0.2;
	sum->end_reason = "signal";
	while (!stop_requested) {
		double now;

		/* an interpreter starting up is learned within a few ms, before
		 * its first query */
		err = ring_buffer__poll(rb, r.nrelearn ? 5 : POLL_MS);
		if (err < 0 && err != -EINTR) {
			warn("failed to read the ring buffer: %s", strerror(-err));
			goto cleanup;
		}
		now = now_mono();
		if (r.nrelearn)
			relearn_due(&r);
		if (o->on_tick) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			o->on_tick(ts.tv_sec * 1000000000ULL + ts.tv_nsec, o->ctx);
		}
		if (o->duration > 0 && now - start >= o->duration) {
			sum->end_reason = "duration";
			break;
		}
		if (now >= next_reap) {
			/* read what is queued first: a fork record may name a
			 * child that outlives its parent */
			ring_buffer__consume(rb);
			reap(&r);
			next_reap = now + 0.2;
			if (!r.npids) {
				sum->end_reason = "target exited";
				break;
			}
		}
		if (now >= next_scan) {
			scan_libpq(&r);	/* a libpq loaded later, another copy */
			next_scan = now + 1.0;
		}
	}
	ring_buffer__consume(rb);
	assembler__flush(r.as);

	fill_summary(&r, sum);
	sum->seconds = now_mono() - start;
	rc = 0;
	if (o->on_end)
		o->on_end(sum, o->ctx);
cleanup:
	current = NULL;
	free(desc);
	ring_buffer__free(rb);
	attacher__free(r.at);	/* probes first: nothing new arrives */
	assembler__free(r.as);
	stack_resolver__free(r.sr);	/* after the queries that point at its strings */
	pqsnoop_bpf__destroy(r.skel);
	free(r.pids);
	free(r.relearn);
	return rc;
}
