/*
 * A Python process as seen from outside: where its interpreter lives and
 * the offsets the BPF side (bpf/pystack.bpf.h) and the symbolizer
 * (pysym.h) need to read its threads' stacks.
 *
 * py_process__new() finds libpython3.X.so* in /proc/PID/maps (or else the
 * executable itself, as in Debian's python3), resolves _PyRuntime through
 * the ELF symbol tables plus the load bias, tells the version (Py_Version on
 * 3.11+, _Py_DebugOffsets on 3.13+, else the file name), and fills a
 * struct py_offsets: from _Py_DebugOffsets where the interpreter has them
 * (3.13), from a table verified against each version's own headers
 * otherwise (3.8-3.12).  The autoTSSkey offset is decoded from the
 * interpreter's PyGILState_GetThisThreadState (the table is the fallback),
 * and the glibc thread-specific slot it names is checked against the live
 * threads before the BPF side is told to trust it.
 *
 * Files are opened through /proc/PID/map_files, /proc/PID/exe or
 * /proc/PID/root, so processes in containers work.  Memory is read through
 * /proc/PID/mem, whose descriptor stays tied to the process it was opened
 * for: a recycled PID never answers for the old process.
 *
 * Supported: CPython 3.8-3.13 on x86_64, GIL builds.  Needs root (or
 * ptrace rights over the process).
 */
#ifndef PQSNOOP_PYPROCESS_H
#define PQSNOOP_PYPROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pystack.h"

struct py_process;

/*
 * Inspects process `pid`.  Returns NULL on failure with a message in
 * err[errlen] that names the process and the reason, for example
 * "process 42 is not a Python process: no libpython in its maps and no
 * _PyRuntime in its executable" or "process 42 runs Python 3.14, which
 * pqsnoop does not support (3.8 to 3.13)".
 */
struct py_process *py_process__new(pid_t pid, char *err, size_t errlen);

/* Accepts NULL. */
void py_process__free(struct py_process *p);

pid_t py_process__pid(const struct py_process *p);

/* What goes into the BPF map py_procs under the process's tgid. */
const struct py_offsets *py_process__offsets(const struct py_process *p);

/* "3.11.7", or "3.9" when only the file name told the version. */
const char *py_process__version(const struct py_process *p);
unsigned py_process__minor(const struct py_process *p);

/* The ELF file that holds _PyRuntime, as /proc/PID/maps names it. */
const char *py_process__path(const struct py_process *p);

/*
 * Copies len bytes at addr of the process into buf.  Returns 0, or -errno
 * (-ESRCH once the process is gone, -EIO/-EFAULT for unmapped memory).
 */
int py_process__read(const struct py_process *p, uint64_t addr, void *buf, size_t len);

/*
 * How the autoTSSkey slot was found and whether live threads confirmed it,
 * for verbose output ("autoTSSkey at +592 (decoded from ...), key 0, slot at
 * fs+0x318: 1 of 1 threads agree").
 */
const char *py_process__tss_note(const struct py_process *p);

/* py_process__read_stack() flags */
#define PY_READ_WALK_ONLY 1	/* ignore the TSS slot: test the thread walk */

/*
 * What the BPF side does, from user space: fills *out with the Python stack
 * of the thread whose thread pointer (fs base, pthread_self()) is fsbase.
 * The thread should be stopped or blocked, or the result is a race.  For
 * tests and diagnostics; returns out->err.
 */
int py_process__read_stack(const struct py_process *p, uint64_t fsbase, unsigned flags,
			   struct py_stack *out);

#endif /* PQSNOOP_PYPROCESS_H */
