/*
 * Python frame symbolization: (process, code object, raw instruction) ->
 * file, function, line, read from the live process.
 *
 * The BPF side only records code object addresses (struct py_frame); names
 * and line tables are read here, through /proc/PID/mem, while the process is
 * alive.  Results are cached per (pid, code address).  A code object can be
 * freed and its memory reused, so every lookup rereads the object's header
 * (one read) and checks that it is still a code object (ob_type ==
 * PyCode_Type) with the same co_filename, co_name, co_linetable and
 * co_firstlineno; otherwise the entry is rebuilt.  If the process is gone, a
 * cached entry is still returned, marked unverified.
 *
 * Strings returned are interned in the cache: they stay valid until
 * py_syms__free(), whatever else is called meanwhile.
 */
#ifndef PQSNOOP_PYSYM_H
#define PQSNOOP_PYSYM_H

#include <stdbool.h>
#include <sys/types.h>

#include "pyprocess.h"

struct py_syms;

struct py_sym {
	const char *file;	/* co_filename; "?" if it could not be read */
	const char *func;	/* co_qualname on 3.11+, co_name before; "?" likewise */
	int line;		/* -1: unknown (no line, or an instruction outside the code) */
	int firstlineno;	/* co_firstlineno: the def line */
	bool verified;		/* the code object was checked in the live process now */
};

/* Returns NULL when out of memory. */
struct py_syms *py_syms__new(void);

/* Accepts NULL. */
void py_syms__free(struct py_syms *s);

/*
 * Symbolizes one frame read from process p.  Returns 0 and fills *out, or:
 * -EINVAL  the address is not (or no longer) a code object: the frame is
 *          stale, say so rather than guess;
 * -ESRCH   the process is gone and the code object was never cached;
 * -ENOMEM  out of memory;
 * -ENOTSUP the offsets put code object fields beyond what is read;
 * another -errno when the process's memory cannot be read.
 */
int py_syms__resolve(struct py_syms *s, const struct py_process *p,
		     const struct py_frame *frame, struct py_sym *out);

/* Drops the cached code objects of pid (it exited or exec'd). */
void py_syms__forget(struct py_syms *s, pid_t pid);

/* Cached code objects, for tests and statistics. */
size_t py_syms__size(const struct py_syms *s);

#endif /* PQSNOOP_PYSYM_H */
