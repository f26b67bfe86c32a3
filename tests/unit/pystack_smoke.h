/* SPDX-License-Identifier: GPL-2.0 */
/* The record pystack_compile.bpf.c sends and pystack_smoke.c reads. */
#ifndef PQSNOOP_PYSTACK_SMOKE_H
#define PQSNOOP_PYSTACK_SMOKE_H

#include "pystack.h"

struct pystack_smoke_rec {
	__u32 pid;
	__u32 tid;
	struct py_stack stack;
};

#endif /* PQSNOOP_PYSTACK_SMOKE_H */
