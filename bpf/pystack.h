/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Python stacks: types shared by the BPF side (pystack.bpf.h) and user space
 * (user/pyprocess.c fills struct py_offsets, user/pysym.c turns frames into
 * file:function:line).
 *
 * The BPF side reads raw facts only: for each Python frame of the thread that
 * hit the probe, the code object's address and the raw instruction value.
 * Everything that needs strings or line tables is done later in user space,
 * while the process is still alive.  Nothing here is ever guessed: when the
 * thread's stack cannot be read, `err` says why and no frame is reported.
 */
#ifndef PQSNOOP_PYSTACK_H
#define PQSNOOP_PYSTACK_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Frames kept per stack, innermost first; deeper stacks are cut. */
#define PY_MAX_FRAMES 64
/* Frame records looked at per stack, skipped C-stack shim frames included. */
#define PY_MAX_WALK (PY_MAX_FRAMES + 32)
/* Thread states looked at per interpreter when the TSS slot fails. */
#define PY_MAX_THREADS 128
/* Interpreters looked at (the main one and up to 3 subinterpreters). */
#define PY_MAX_INTERPS 4
/* Processes whose offsets the BPF map holds (py_procs). */
#define PY_MAX_PROCS 1024
/* glibc: PTHREAD_KEYS_MAX; pthread keys at or over it are ignored. */
#define PY_MAX_PTHREAD_KEY 1024

/* Most bytes of a frame read at once (py_offsets.fr_read <= PY_FRAME_WIN). */
#define PY_FRAME_WIN 128

/* An offset that does not exist in this Python version. */
#define PY_OFF_NONE 0xffffffffu
/* py_offsets.owner_cstack when no frame is to be skipped (no u8 equals it). */
#define PY_OWNER_NONE 0x100

/*
 * Where things are in one traced process.  Filled by py_process__new(),
 * stored in the py_procs map under the process's tgid.  Offsets are in bytes.
 */
struct py_offsets {
	__u64 runtime;		/* address of _PyRuntime */
	__u64 tss;		/* address of the autoTSSkey Py_tss_t, 0: unusable */
	__u32 version;		/* PY_VERSION_HEX, e.g. 0x030b07f0 for 3.11.7 */
	__u32 flags;		/* PY_F_* */

	/*
	 * glibc's struct pthread, from the thread pointer (fs base):
	 * pthread_getspecific(k) is the `data` (at +8) of 16-byte {seq, data}
	 * entries; keys 0..31 are inline at pth_1stblock, key k >= 32 is entry
	 * k % 32 of the block pointed to by pth_blocks[k / 32].
	 */
	__u32 pth_1stblock;	/* specific_1stblock: 0x310 (glibc 2.36, x86_64) */
	__u32 pth_blocks;	/* specific: 0x510 */

	/* _PyRuntimeState, PyInterpreterState, PyThreadState */
	__u32 rt_interp_head;
	__u32 is_next;
	__u32 is_threads_head;
	__u32 ts_next;
	__u32 ts_thread_id;	/* pthread_self() == fs base on x86_64 */
	__u32 ts_native_thread_id; /* the kernel tid, PY_OFF_NONE before 3.11 */
	__u32 ts_frame;		/* ->frame (<=3.10), ->cframe (3.11, 3.12), ->current_frame */
	__u32 cf_frame;		/* _PyCFrame.current_frame, PY_OFF_NONE: no cframe */

	/* PyFrameObject (<=3.10) or _PyInterpreterFrame (3.11+) */
	__u32 fr_code;		/* f_code / f_executable */
	__u32 fr_back;		/* f_back / previous */
	__u32 fr_instr;		/* f_lasti (int) / prev_instr / instr_ptr (pointer) */
	__u32 fr_owner;		/* owner (char), PY_OFF_NONE before 3.11 */
				/* (all four below PY_FRAME_WIN - 8) */
	__u8 instr_size;	/* 4: f_lasti, an int; 8: a pointer */
	__u8 pad0;
	__u16 owner_cstack;	/* owner of frames to skip (3 on 3.12+), PY_OWNER_NONE */
	__u16 fr_read;		/* bytes read per frame: every field above is inside */
	__u8 pad[2];

	/* The rest is for user space only (symbolization). */
	__u64 code_type;	/* address of PyCode_Type */
	__u32 co_filename;
	__u32 co_name;
	__u32 co_qualname;	/* PY_OFF_NONE before 3.11 */
	__u32 co_firstlineno;	/* int */
	__u32 co_linetable;	/* co_lnotab (3.8, 3.9) / co_linetable (bytes) */
	__u32 co_code_adaptive;	/* PY_OFF_NONE before 3.11 */
	__u32 str_ascii_size;	/* sizeof(PyASCIIObject): compact ASCII data */
	__u32 str_compact_size;	/* sizeof(PyCompactUnicodeObject): other compact data */
};

/* py_offsets.flags */
#define PY_F_TSS_VERIFIED 1	/* the TSS slot was checked against a live thread */
#define PY_F_DEBUG_OFFSETS 2	/* offsets read from _Py_DebugOffsets (3.13+) */

/* Why a stack could not be read (py_stack.err). */
enum py_stack_err {
	PY_OK = 0,
	PY_ERR_NOT_PYTHON = 1,	/* no py_procs entry for this process */
	PY_ERR_NO_THREAD = 2,	/* no PyThreadState for this thread: not a Python thread */
	PY_ERR_READ = 3,	/* a read failed mid-walk: frames[] holds what came before */
	PY_ERR_TASK = 4,	/* the thread pointer could not be read */
};

/* How the thread state was found (py_stack.method). */
enum py_stack_method {
	PY_METHOD_NONE = 0,
	PY_METHOD_TSS = 1,	/* pthread_getspecific(autoTSSkey) */
	PY_METHOD_WALK = 2,	/* interp->threads, matched on thread_id */
};

struct py_frame {
	__u64 code;		/* PyCodeObject address */
	__u64 instr;		/* 3.11+: instruction pointer; <=3.10: f_lasti, sign-extended */
};

/*
 * One thread's Python stack, innermost frame first.  Only frames[0..nframes)
 * are meaningful.  truncated: the stack went on past PY_MAX_FRAMES (or
 * PY_MAX_WALK records).  On PY_ERR_READ, frames[] is a correct prefix.
 */
struct py_stack {
	__u16 nframes;
	__u8 truncated;
	__u8 method;		/* enum py_stack_method */
	__u32 err;		/* enum py_stack_err */
	struct py_frame frames[PY_MAX_FRAMES];
};

/* Bytes of a py_stack that hold n frames (to send only the used part). */
#define PY_STACK_SIZE(n) (8 + 16 * (n))

/* Both sides must agree on these layouts (BPF map values, ring buffer). */
_Static_assert(sizeof(struct py_offsets) == 128, "struct py_offsets layout");
_Static_assert(sizeof(struct py_stack) == PY_STACK_SIZE(PY_MAX_FRAMES), "struct py_stack layout");

#endif /* PQSNOOP_PYSTACK_H */
