/*
 * Loader for the BPF stack smoke test (tests/test_pystacks_bpf.py): loads
 * pystack_compile.bpf.o, registers one Python process in py_procs (offsets
 * from user/pyprocess.c), attaches the probe to FUNC in LIB for that process,
 * and prints every stack the BPF side sends, symbolized by user/pysym.c, in
 * the format of `test_pyprocess stack`:
 *
 *   stack	TID	METHOD	ERR	TRUNCATED	NFRAMES
 *   frame	CODE	ADDR	FILE	FUNC	LINE
 *
 * Prints "attached" once the probe is in place and exits after N stacks
 * (status 0) or after TIMEOUT seconds (status 1).
 *
 *   pystack_smoke BPF_OBJECT PID LIB FUNC N TIMEOUT
 *
 * Built by the test itself (it needs libbpf, which the unit tests do not
 * link): cc -Ibpf -Iuser -Itests/unit tests/unit/pystack_smoke.c
 * user/pyprocess.c user/pysym.c user/pylines.c -lbpf -lelf
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/libbpf.h>

#include "pylines.h"
#include "pyprocess.h"
#include "pysym.h"
#include "pystack_smoke.h"

struct ctx {
	struct py_process *proc;
	struct py_syms *syms;
	int seen;
};

static const char *method_name(unsigned m)
{
	return m == PY_METHOD_TSS ? "tss" : m == PY_METHOD_WALK ? "walk" : "none";
}

static int frame_addr(const struct py_process *p, const struct py_frame *f)
{
	const struct py_offsets *o = py_process__offsets(p);
	uint64_t n = 0;
	int addr = -1;

	if (o->co_code_adaptive != PY_OFF_NONE &&
	    py_process__read(p, f->code + 16, &n, sizeof(n)))
		return -1;
	if (!pylines_frame_addr(py_process__minor(p), f->instr, f->code,
				o->co_code_adaptive, n, &addr))
		return -1;
	return addr;
}

static int on_event(void *arg, void *data, size_t size)
{
	struct ctx *c = arg;
	const struct pystack_smoke_rec *r = data;
	unsigned k;

	if (size < sizeof(*r)) {
		fprintf(stderr, "short record: %zu bytes\n", size);
		return 0;
	}
	printf("stack\t%u\t%s\t%u\t%u\t%u\n", r->tid, method_name(r->stack.method),
	       r->stack.err, r->stack.truncated, r->stack.nframes);
	for (k = 0; k < r->stack.nframes && k < PY_MAX_FRAMES; k++) {
		struct py_sym sym;
		int err = py_syms__resolve(c->syms, c->proc, &r->stack.frames[k], &sym);

		if (err)
			printf("frame\t0x%" PRIx64 "\t-1\terror\t%s\t-1\n",
			       (uint64_t)r->stack.frames[k].code, strerror(-err));
		else
			printf("frame\t0x%" PRIx64 "\t%d\t%s\t%s\t%d\n",
			       (uint64_t)r->stack.frames[k].code,
			       frame_addr(c->proc, &r->stack.frames[k]), sym.file, sym.func, sym.line);
	}
	fflush(stdout);
	c->seen++;
	return 0;
}

int main(int argc, char **argv)
{
	struct bpf_object *obj = NULL;
	struct bpf_program *prog;
	struct bpf_link *link = NULL;
	struct ring_buffer *rb = NULL;
	struct bpf_map *procs, *events;
	struct ctx c = { 0 };
	char err[512];
	__u32 key;
	int want, rc = 1;
	time_t deadline;

	if (argc != 7) {
		fprintf(stderr, "usage: %s BPF_OBJECT PID LIB FUNC N TIMEOUT\n", argv[0]);
		return 2;
	}
	key = (__u32)strtoul(argv[2], NULL, 10);
	want = atoi(argv[5]);
	deadline = time(NULL) + atoi(argv[6]);

	c.proc = py_process__new((pid_t)key, err, sizeof(err));
	if (!c.proc) {
		fprintf(stderr, "failed to inspect the process: %s\n", err);
		return 1;
	}
	c.syms = py_syms__new();
	obj = bpf_object__open_file(argv[1], NULL);
	if (!c.syms || !obj) {
		fprintf(stderr, "failed to open %s\n", argv[1]);
		goto cleanup;
	}
	if (bpf_object__load(obj)) {
		fprintf(stderr, "failed to load %s\n", argv[1]);
		goto cleanup;
	}
	procs = bpf_object__find_map_by_name(obj, "py_procs");
	events = bpf_object__find_map_by_name(obj, "events");
	prog = bpf_object__find_program_by_name(obj, "pystack_probe");
	if (!procs || !events || !prog) {
		fprintf(stderr, "failed to find py_procs, events or pystack_probe\n");
		goto cleanup;
	}
	if (bpf_map__update_elem(procs, &key, sizeof(key), py_process__offsets(c.proc),
				 sizeof(struct py_offsets), BPF_ANY)) {
		fprintf(stderr, "failed to fill py_procs: %s\n", strerror(errno));
		goto cleanup;
	}
	{
		LIBBPF_OPTS(bpf_uprobe_opts, uopts, .func_name = argv[4]);

		link = bpf_program__attach_uprobe_opts(prog, (pid_t)key, argv[3], 0, &uopts);
	}
	if (!link) {
		fprintf(stderr, "failed to attach to %s:%s: %s\n", argv[3], argv[4],
			strerror(errno));
		goto cleanup;
	}
	rb = ring_buffer__new(bpf_map__fd(events), on_event, &c, NULL);
	if (!rb) {
		fprintf(stderr, "failed to open the ring buffer\n");
		goto cleanup;
	}
	printf("attached\n");
	fflush(stdout);
	while (c.seen < want && time(NULL) < deadline)
		ring_buffer__poll(rb, 100);
	rc = c.seen >= want ? 0 : 1;
	if (rc)
		fprintf(stderr, "timed out with %d of %d stacks\n", c.seen, want);
cleanup:
	ring_buffer__free(rb);
	bpf_link__destroy(link);
	bpf_object__close(obj);
	py_syms__free(c.syms);
	py_process__free(c.proc);
	return rc;
}
