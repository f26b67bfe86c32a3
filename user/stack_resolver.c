#include "stack_resolver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyprocess.h"
#include "pysym.h"

struct proc_entry {
	pid_t pid;
	struct py_process *pp;	/* NULL: not Python (remembered, not retried) */
};

struct stack_resolver {
	struct py_syms *syms;
	struct proc_entry *procs;
	size_t n, cap;
};

struct stack_resolver *stack_resolver__new(void)
{
	struct stack_resolver *r = calloc(1, sizeof(*r));

	if (r && !(r->syms = py_syms__new())) {
		free(r);
		return NULL;
	}
	return r;
}

void stack_resolver__free(struct stack_resolver *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		py_process__free(r->procs[i].pp);
	free(r->procs);
	py_syms__free(r->syms);
	free(r);
}

static struct proc_entry *find(struct stack_resolver *r, pid_t pid)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->procs[i].pid == pid)
			return &r->procs[i];
	return NULL;
}

const struct py_offsets *stack_resolver__add(struct stack_resolver *r, pid_t pid,
					     char *why, size_t whylen)
{
	struct proc_entry *e = find(r, pid);

	if (!e) {
		if (r->n == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 16;
			struct proc_entry *p = realloc(r->procs, cap * sizeof(*p));

			if (!p) {
				snprintf(why, whylen, "out of memory");
				return NULL;
			}
			r->procs = p;
			r->cap = cap;
		}
		e = &r->procs[r->n++];
		e->pid = pid;
		e->pp = NULL;
	}
	if (!e->pp)
		e->pp = py_process__new(pid, why, whylen);
	return e->pp ? py_process__offsets(e->pp) : NULL;
}

void stack_resolver__remove(struct stack_resolver *r, pid_t pid)
{
	struct proc_entry *e = find(r, pid);

	if (!e)
		return;
	py_syms__forget(r->syms, pid);
	py_process__free(e->pp);
	*e = r->procs[--r->n];
}

static const char *err_text(uint32_t err)
{
	switch (err) {
	case PY_OK: return NULL;
	case PY_ERR_NOT_PYTHON: return "not a Python process";
	case PY_ERR_NO_THREAD: return "the thread runs no Python code";
	case PY_ERR_READ: return "stack cut short: the interpreter's memory could not be read";
	case PY_ERR_TASK: return "the thread's state could not be read";
	}
	return "unknown stack error";
}

uint32_t stack_resolver__resolve(struct stack_resolver *r, pid_t pid,
				 const struct py_stack *raw, struct pq_frame *out,
				 const char **error)
{
	struct proc_entry *e = find(r, pid);
	uint32_t n = raw->nframes;

	*error = err_text(raw->err);
	if (n > PY_MAX_FRAMES)
		n = PY_MAX_FRAMES;
	if (!e || !e->pp) {
		*error = "the process's interpreter is not known";
		return 0;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct py_sym sym;

		if (py_syms__resolve(r->syms, e->pp, &raw->frames[i], &sym) == 0) {
			out[i].file = sym.file;
			out[i].func = sym.func;
			out[i].line = sym.line > 0 ? (uint32_t)sym.line : 0;
		} else {
			out[i].file = "?";
			out[i].func = "[unreadable frame]";
			out[i].line = 0;
		}
	}
	return n;
}
