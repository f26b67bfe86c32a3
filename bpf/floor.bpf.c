// SPDX-License-Identifier: GPL-2.0
/*
 * The floor: uprobe programs that do nothing.
 *
 * bench/floor.c attaches these to the same libpq functions pqsnoop probes
 * (each entry, and each return but PQfinish's).  What the traced process
 * pays with them attached is the cost of the probe hits themselves -- the
 * breakpoint trap, the kernel's uprobe dispatch and, for a uretprobe, the
 * return trampoline -- the price any uprobe-based tracer pays before its
 * programs do any work.  The benchmark compares pqsnoop's added cost with
 * this one.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("uprobe")
int floor_entry(void *ctx)
{
	return 0;
}

SEC("uretprobe")
int floor_return(void *ctx)
{
	return 0;
}
