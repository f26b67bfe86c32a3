/*
 * user/pyprocess.c and user/pysym.c.
 *
 * Without arguments: the checks that need no Python process (a unit test
 * like the others).  With arguments it is the probe that
 * tests/test_pystacks_user.py drives against live interpreters (as root):
 *
 *   test_pyprocess info PID
 *	version, file, offsets, how the TSS slot was found
 *   test_pyprocess stack [--walk] PID TID...
 *	stops each thread for a moment (ptrace) to learn its fs base, reads
 *	its Python stack as the BPF side would (--walk: without the TSS
 *	slot), and symbolizes every frame
 *   test_pyprocess sym PID CODE OFFSET...
 *	symbolizes the code object at CODE (hex) at each byte OFFSET, by
 *	building the raw instruction value the BPF side would have read
 *
 * Output is one record a line, fields separated by tabs:
 *   stack	TID	METHOD	ERR	TRUNCATED	NFRAMES
 *   frame	CODE	ADDR	FILE	FUNC	LINE
 *   sym	OFFSET	FILE	FUNC	LINE		(or "sym OFFSET error NAME")
 * ADDR is the instruction's byte offset in the code (-1 if unusable).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"
#include "pylines.h"
#include "pyprocess.h"
#include "pysym.h"

/* ---- unit mode ---------------------------------------------------------- */

static void test_not_python(void)
{
	char err[512] = "";
	struct py_process *p = py_process__new(getpid(), err, sizeof(err));

	CHECK(p == NULL);
	CHECK(strstr(err, "is not a Python process") != NULL);
	CHECK(strstr(err, "test_pyprocess") != NULL);
	py_process__free(p);
}

static void test_no_such_process(void)
{
	char err[512] = "";
	/* above any pid_max (4194304) */
	struct py_process *p = py_process__new(0x3fffffff, err, sizeof(err));

	CHECK(p == NULL);
	CHECK_STR(err, "process 1073741823 does not exist");
}

static void test_syms_lifecycle(void)
{
	struct py_syms *s = py_syms__new();

	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_INT(py_syms__size(s), 0);
	py_syms__forget(s, 1);
	py_syms__free(s);
	py_syms__free(NULL);
	py_process__free(NULL);
}

static int unit_main(void)
{
	RUN(test_not_python);
	RUN(test_no_such_process);
	RUN(test_syms_lifecycle);
	return unit_summary();
}

/* ---- probe mode ----------------------------------------------------------- */

static const char *method_name(unsigned m)
{
	return m == PY_METHOD_TSS ? "tss" : m == PY_METHOD_WALK ? "walk" : "none";
}

/* fs base of thread tid, which is stopped for the duration. */
static int thread_fsbase(pid_t tid, uint64_t *fs)
{
	struct user_regs_struct regs;
	int status, ret = 0;

	if (ptrace(PTRACE_SEIZE, tid, 0, 0) || ptrace(PTRACE_INTERRUPT, tid, 0, 0))
		return -errno;
	if (waitpid(tid, &status, __WALL) != tid) {
		ret = -errno;
		goto out;
	}
	if (ptrace(PTRACE_GETREGS, tid, 0, &regs))
		ret = -errno;
	else
		*fs = regs.fs_base;
out:
	ptrace(PTRACE_DETACH, tid, 0, 0);
	return ret;
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

static int cmd_info(struct py_process *p)
{
	const struct py_offsets *o = py_process__offsets(p);

	printf("version\t%s\n", py_process__version(p));
	printf("path\t%s\n", py_process__path(p));
	printf("runtime\t0x%" PRIx64 "\n", (uint64_t)o->runtime);
	printf("tss\t0x%" PRIx64 "\n", (uint64_t)o->tss);
	printf("tss_offset\t%" PRId64 "\n", o->tss ? (int64_t)(o->tss - o->runtime) : -1);
	printf("tss_verified\t%d\n", !!(o->flags & PY_F_TSS_VERIFIED));
	printf("debug_offsets\t%d\n", !!(o->flags & PY_F_DEBUG_OFFSETS));
	printf("tss_note\t%s\n", py_process__tss_note(p));
	printf("offsets\t%u %u %u %u %u %u %u %u %u %u %u %u %u\n",
	       o->rt_interp_head, o->is_threads_head, o->ts_thread_id, o->ts_frame,
	       o->cf_frame, o->fr_code, o->fr_back, o->fr_instr, o->fr_owner,
	       o->co_filename, o->co_name, o->co_firstlineno, o->co_code_adaptive);
	return 0;
}

static int cmd_stack(struct py_process *p, struct py_syms *syms, unsigned flags,
		     int argc, char **argv)
{
	static struct py_stack st;
	int i, rc = 0;
	unsigned k;

	for (i = 0; i < argc; i++) {
		pid_t tid = (pid_t)strtol(argv[i], NULL, 10);
		uint64_t fs = 0;
		int err = thread_fsbase(tid, &fs);

		if (err) {
			fprintf(stderr, "cannot stop thread %d: %s\n", (int)tid, strerror(-err));
			rc = 1;
			continue;
		}
		py_process__read_stack(p, fs, flags, &st);
		printf("stack\t%d\t%s\t%u\t%u\t%u\n", (int)tid, method_name(st.method),
		       st.err, st.truncated, st.nframes);
		for (k = 0; k < st.nframes; k++) {
			struct py_sym sym;
			int r = py_syms__resolve(syms, p, &st.frames[k], &sym);

			if (r) {
				printf("frame\t0x%" PRIx64 "\t-1\terror\t%s\t-1\n",
				       (uint64_t)st.frames[k].code, strerror(-r));
				continue;
			}
			printf("frame\t0x%" PRIx64 "\t%d\t%s\t%s\t%d\n", (uint64_t)st.frames[k].code,
			       frame_addr(p, &st.frames[k]), sym.file, sym.func, sym.line);
		}
	}
	return rc;
}

static int cmd_sym(struct py_process *p, struct py_syms *syms, int argc, char **argv)
{
	const struct py_offsets *o = py_process__offsets(p);
	unsigned minor = py_process__minor(p);
	struct py_frame f;
	int i;

	if (argc < 1)
		return 2;
	f.code = strtoull(argv[0], NULL, 16);
	for (i = 1; i < argc; i++) {
		long off = strtol(argv[i], NULL, 10);
		struct py_sym sym;
		int r;

		if (minor <= 9)
			f.instr = (uint64_t)(int64_t)off;
		else if (minor == 10)
			f.instr = (uint64_t)(int64_t)(off < 0 ? -1 : off / 2);
		else
			f.instr = f.code + o->co_code_adaptive + (uint64_t)(int64_t)off;
		r = py_syms__resolve(syms, p, &f, &sym);
		if (r)
			printf("sym\t%ld\terror\t%s\n", off, r == -EINVAL ? "EINVAL" : strerror(-r));
		else
			printf("sym\t%ld\t%s\t%s\t%d\t%d\t%d\n", off, sym.file, sym.func, sym.line,
			       sym.firstlineno, sym.verified);
	}
	return 0;
}

static int probe_main(int argc, char **argv)
{
	struct py_process *p;
	struct py_syms *syms;
	unsigned flags = 0;
	char err[512];
	int rc, a = 2;

	if (argc > a && !strcmp(argv[a], "--walk")) {
		flags |= PY_READ_WALK_ONLY;
		a++;
	}
	if (argc <= a) {
		fprintf(stderr, "usage: %s info|stack|sym [--walk] PID ...\n", argv[0]);
		return 2;
	}
	p = py_process__new((pid_t)strtol(argv[a], NULL, 10), err, sizeof(err));
	if (!p) {
		printf("error\t%s\n", err);
		return 1;
	}
	syms = py_syms__new();
	if (!syms) {
		py_process__free(p);
		return 1;
	}
	if (!strcmp(argv[1], "info"))
		rc = cmd_info(p);
	else if (!strcmp(argv[1], "stack"))
		rc = cmd_stack(p, syms, flags, argc - a - 1, argv + a + 1);
	else if (!strcmp(argv[1], "sym"))
		rc = cmd_sym(p, syms, argc - a - 1, argv + a + 1);
	else
		rc = 2;
	py_syms__free(syms);
	py_process__free(p);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 1)
		return unit_main();
	return probe_main(argc, argv);
}
