/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reading the calling thread's Python stack from a uprobe.
 *
 * Include after vmlinux.h, bpf_helpers.h, bpf_core_read.h and bpf_tracing.h.
 * User space puts a struct py_offsets (user/pyprocess.c) into py_procs under
 * the tgid of every Python process it traces; py_read_stack() then fills a
 * struct py_stack for the current thread.
 *
 * Why not the interpreter's "current thread state": psycopg2 and ctypes
 * release the GIL around libpq calls, so at the probe it is NULL.  The
 * thread's PyThreadState is still alive and still points at the frame that
 * made the call.  It is found through Python's own pthread TSS slot
 * (pthread_getspecific(autoTSSkey)), or else by walking every interpreter's
 * thread list; either way it must carry thread_id == this thread's fs base
 * (pthread_self()), so another thread's state is never used.
 *
 * Loops are plain bounded for loops whose bound the verifier sees.
 * (A bpf_loop() variant with its counter in a stack struct had its bound
 * check optimized away on kernel 6.18.)  `out` must not be on the BPF stack
 * (1 KB): point it into a per-CPU array or a ring-buffer reservation.
 */
#ifndef PQSNOOP_PYSTACK_BPF_H
#define PQSNOOP_PYSTACK_BPF_H

#include "pystack.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PY_MAX_PROCS);
	__type(key, __u32);
	__type(value, struct py_offsets);
} py_procs SEC(".maps");

/* Per-CPU room for one frame's bytes (read once, fields picked out). */
struct py_frame_win {
	__u8 b[PY_FRAME_WIN + 8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct py_frame_win);
} py_scratch SEC(".maps");

static __always_inline int py_rd64(__u64 addr, __u64 *val)
{
	return bpf_probe_read_user(val, sizeof(*val), (const void *)addr);
}

/* pthread_getspecific(autoTSSkey) of the thread whose fs base is `fs`; 0 if none. */
static __always_inline __u64 py_tss_tstate(const struct py_offsets *o, __u64 fs)
{
	struct {
		__s32 initialized;
		__u32 key;
	} tss;
	__u64 slot, blk, ts;

	if (!o->tss)
		return 0;
	if (bpf_probe_read_user(&tss, sizeof(tss), (const void *)o->tss))
		return 0;
	if (tss.initialized != 1 || tss.key >= PY_MAX_PTHREAD_KEY)
		return 0;
	if (tss.key < 32) {
		slot = fs + o->pth_1stblock + 16 * (__u64)tss.key + 8;
	} else {
		if (py_rd64(fs + o->pth_blocks + 8 * (__u64)(tss.key / 32), &blk) || !blk)
			return 0;
		slot = blk + 16 * (__u64)(tss.key % 32) + 8;
	}
	if (py_rd64(slot, &ts))
		return 0;
	return ts;
}

static __always_inline int py_tstate_is(const struct py_offsets *o, __u64 ts, __u64 fs)
{
	__u64 tid;

	return ts && !py_rd64(ts + o->ts_thread_id, &tid) && tid == fs;
}

/*
 * Walks interpreters and their thread lists for thread_id == fs; 0 if none.
 * Two nested loops rather than one flat loop: in a flat loop the verifier
 * explored every way of spreading the interpreter switches over the
 * iterations (and gave up at 1M instructions).
 */
static __always_inline __u64 py_walk_tstate(const struct py_offsets *o, __u64 fs)
{
	__u64 interp = 0, ts, tid;
	int i, j;

	if (py_rd64(o->runtime + o->rt_interp_head, &interp))
		return 0;
	for (j = 0; j < PY_MAX_INTERPS; j++) {
		if (!interp)
			break;
		if (py_rd64(interp + o->is_threads_head, &ts))
			return 0;
		for (i = 0; i < PY_MAX_THREADS; i++) {
			if (!ts)
				break;
			if (py_rd64(ts + o->ts_thread_id, &tid))
				return 0;
			if (tid == fs)
				return ts;
			if (py_rd64(ts + o->ts_next, &ts))
				return 0;
		}
		if (py_rd64(interp + o->is_next, &interp))
			return 0;
	}
	return 0;
}

/*
 * Fills out->{nframes, truncated, method, err} and out->frames[0..nframes)
 * for the current thread, innermost frame first, skipping frames owned by
 * the C stack (3.12+ shim frames).  Returns out->err (enum py_stack_err).
 * Cost: one read per frame, 4-5 to find the thread state.
 */
static __always_inline int py_read_stack(struct py_stack *out)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	const struct py_offsets *o;
	struct task_struct *task;
	struct py_frame_win *win;
	__u64 fs, ts, frame = 0, code, instr;
	__u32 n = 0, i, slot, cstack, shift, zero = 0;
	__u32 rd, off_code, off_back, off_instr, off_owner;
	__u8 owner;

	out->nframes = 0;
	out->truncated = 0;
	out->method = PY_METHOD_NONE;
	out->err = PY_OK;

	o = bpf_map_lookup_elem(&py_procs, &tgid);
	if (!o) {
		out->err = PY_ERR_NOT_PYTHON;
		return out->err;
	}
	task = (struct task_struct *)bpf_get_current_task();
	fs = BPF_CORE_READ(task, thread.fsbase);
	if (!fs) {
		out->err = PY_ERR_TASK;
		return out->err;
	}

	ts = py_tss_tstate(o, fs);
	if (py_tstate_is(o, ts, fs)) {
		out->method = PY_METHOD_TSS;
	} else {
		ts = py_walk_tstate(o, fs);
		if (!ts) {
			out->err = PY_ERR_NO_THREAD;
			return out->err;
		}
		out->method = PY_METHOD_WALK;
	}

	if (py_rd64(ts + o->ts_frame, &frame))
		goto read_error;
	if (o->cf_frame != PY_OFF_NONE && frame && py_rd64(frame + o->cf_frame, &frame))
		goto read_error;

	/*
	 * One read per frame: fr_read bytes into a per-CPU window, fields
	 * picked out at their offsets (masked so the verifier sees them in
	 * the window).  Four reads per frame cost ~350 ns a frame here.
	 *
	 * The loop body has no branch on what it reads, so the verifier sees
	 * one path per iteration (with branches on `owner` and instr_size it
	 * explored every (i, n) pair and hit its 1M instruction limit):
	 * - f_lasti is loaded as 8 bytes and sign-extended from 32 bits by
	 *   shifts (the 4 bytes after f_lasti are still in the frame object);
	 * - before 3.11 there is no owner: load any byte and compare with
	 *   0x100, which no byte equals;
	 * - a frame is always written at slot n, and n only moves on when the
	 *   frame is kept, so a skipped frame is overwritten by the next one.
	 */
	win = bpf_map_lookup_elem(&py_scratch, &zero);
	if (!win)
		goto read_error;
	rd = o->fr_read & (PY_FRAME_WIN - 1);
	off_code = o->fr_code & (PY_FRAME_WIN - 1);
	off_back = o->fr_back & (PY_FRAME_WIN - 1);
	off_instr = o->fr_instr & (PY_FRAME_WIN - 1);
	off_owner = o->fr_owner & (PY_FRAME_WIN - 1);
	shift = o->instr_size == 4 ? 32 : 0;
	cstack = o->fr_owner == PY_OFF_NONE ? PY_OWNER_NONE : o->owner_cstack;
	for (i = 0; i < PY_MAX_WALK; i++) {
		if (!frame || n >= PY_MAX_FRAMES)
			break;
		if (bpf_probe_read_user(win->b, rd, (const void *)frame))
			goto read_error;
		code = *(__u64 *)(win->b + off_code);
		instr = *(__u64 *)(win->b + off_instr);
		owner = win->b[off_owner];
		/* n < PY_MAX_FRAMES already, but the verifier loses that
		 * check when clang copies n; barrier_var() keeps clang from
		 * dropping the mask as redundant */
		slot = n;
		barrier_var(slot);
		slot &= PY_MAX_FRAMES - 1;
		out->frames[slot].code = code;
		out->frames[slot].instr = (__u64)((__s64)(instr << shift) >> shift);
		/* 1 unless owner == cstack; both are below 0x200 */
		n += (((__u32)owner ^ cstack) + 0x1ff) >> 9 & 1;
		frame = *(__u64 *)(win->b + off_back);
	}
	if (i == PY_MAX_WALK && frame)
		out->truncated = 1;
	/*
	 * All 64 slots used: the stack is cut only if a frame that would be
	 * kept remains.  On 3.12+ every thread's stack ends in a C-stack
	 * frame, which is skipped anyway: look past a few of those.
	 */
	for (i = 0; i < 4 && n >= PY_MAX_FRAMES && frame && !out->truncated; i++) {
		if (bpf_probe_read_user(win->b, rd, (const void *)frame)) {
			out->truncated = 1;	/* cannot tell: say it may go on */
			break;
		}
		owner = win->b[off_owner];
		if ((__u32)owner != cstack)
			out->truncated = 1;
		frame = *(__u64 *)(win->b + off_back);
	}
	if (n >= PY_MAX_FRAMES && frame)
		out->truncated = 1;
	out->nframes = n;
	return out->err;

read_error:
	out->nframes = n;
	out->err = PY_ERR_READ;
	return out->err;
}

/*
 * A traced process forked: the child has the same mappings, so the same
 * offsets.  Call from the fork handler so the child's first query already
 * has a stack.  Returns 0, or a negative error from the map update.
 */
static __always_inline long py_proc_fork(__u32 parent_tgid, __u32 child_tgid)
{
	const struct py_offsets *o = bpf_map_lookup_elem(&py_procs, &parent_tgid);

	if (!o)
		return 0;
	return bpf_map_update_elem(&py_procs, &child_tgid, o, BPF_ANY);
}

#endif /* PQSNOOP_PYSTACK_BPF_H */
