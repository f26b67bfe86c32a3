// SPDX-License-Identifier: GPL-2.0
/*
 * bpf/pystack.bpf.h in a minimal uprobe program, so that it can be checked
 * without the tracer: `bpftool prog loadall` runs the verifier on it, and
 * tests/test_pystacks_bpf.py (with tests/unit/pystack_smoke.c as loader)
 * attaches it to PQsendQuery in Python processes and compares the stacks it
 * sends with what the interpreters themselves say.
 *
 * Only processes with a py_procs entry are reported; each hit sends one
 * struct pystack_smoke_rec over `events`.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "pystack.bpf.h"
#include "pystack_smoke.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pystack_smoke_rec);
} scratch SEC(".maps");

__u64 dropped = 0;

SEC("uprobe")
int BPF_KPROBE(pystack_probe)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, zero = 0;
	struct pystack_smoke_rec *rec;

	if (!bpf_map_lookup_elem(&py_procs, &tgid))
		return 0;
	rec = bpf_map_lookup_elem(&scratch, &zero);
	if (!rec)
		return 0;
	rec->pid = tgid;
	rec->tid = (__u32)id;
	py_read_stack(&rec->stack);
	if (bpf_ringbuf_output(&events, rec, sizeof(*rec), 0))
		__sync_fetch_and_add(&dropped, 1);
	return 0;
}
