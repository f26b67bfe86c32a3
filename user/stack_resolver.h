/*
 * Turns the raw Python stacks the BPF side records (code object addresses
 * and instructions, struct py_stack) into file, function and line, for the
 * processes being traced.
 *
 * One py_process per traced pid (pyprocess.h: where the interpreter's
 * structures are, how to read its memory) and one symbol cache shared by
 * all (pysym.h).  Frame strings stay valid until stack_resolver__free(),
 * even after their process is removed, so queries still waiting for their
 * end can keep pointing at them.
 */
#ifndef PQSNOOP_STACK_RESOLVER_H
#define PQSNOOP_STACK_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/types.h>

#include "pystack.h"
#include "query.h"

struct stack_resolver;

/* NULL when out of memory. */
struct stack_resolver *stack_resolver__new(void);
void stack_resolver__free(struct stack_resolver *r);

/*
 * Learn where pid's interpreter keeps its state.  Returns the offsets to
 * give the BPF side (py_procs map), or NULL with why (e.g. "is not a Python
 * process", "runs Python 3.7 ...") in why: its queries are then traced
 * without stacks.
 */
const struct py_offsets *stack_resolver__add(struct stack_resolver *r, pid_t pid,
					     char *why, size_t whylen);

/* The process exited or exec'd: forget it. */
void stack_resolver__remove(struct stack_resolver *r, pid_t pid);

/*
 * Symbolize raw (read from pid) into out[0..PY_MAX_FRAMES); returns how many
 * frames.  *error is NULL, or a fixed string saying why the stack is
 * missing or partial.  A frame that can no longer be read is reported as
 * file "?" and function "[unreadable frame]", never guessed.
 */
uint32_t stack_resolver__resolve(struct stack_resolver *r, pid_t pid,
				 const struct py_stack *raw, struct pq_frame *out,
				 const char **error);

#endif /* PQSNOOP_STACK_RESOLVER_H */
