/*
 * floor: attach do-nothing BPF programs (bpf/floor.bpf.c) to the libpq
 * functions pqsnoop probes, and stay attached until SIGTERM or SIGINT.
 *
 *   floor LIBPQ_PATH [PID]
 *
 * The same probe points as pqsnoop, in its order (user/attach.c; keep the
 * two tables in step): the entry and the return of PQgetResult, the
 * PQsend* functions that start a query (PQsendQuery, PQsendQueryParams,
 * PQsendPrepare, PQsendQueryPrepared) and those that hold a place in the
 * result order (PQsendDescribePrepared/Portal, and PQsendClosePrepared/
 * Portal where this libpq has them, 17 and later), and the entry of
 * PQfinish.  Without PID the probes are on the file for every process that
 * maps it (pid -1, as pqsnoop attaches); with PID, for that process only.
 *
 * Prints "floor: attached N probes ..." on stderr once every probe is live,
 * so the benchmark knows when to start measuring.  Exits 0 after the
 * signal, 1 on any failure, with "floor: failed to <step>: <reason>".
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "floor.skel.h"

struct probe_spec {
	const char *func;
	bool retprobe;
	bool optional;		/* not in every libpq: skipped when absent */
};

/* pqsnoop's probe points, in its attach order (user/attach.c) */
static const struct probe_spec probes[] = {
	{ "PQgetResult", true, false },
	{ "PQgetResult", false, false },
	{ "PQfinish", false, false },
	{ "PQsendQuery", true, false },
	{ "PQsendQueryParams", true, false },
	{ "PQsendPrepare", true, false },
	{ "PQsendQueryPrepared", true, false },
	{ "PQsendDescribePrepared", true, false },
	{ "PQsendDescribePortal", true, false },
	{ "PQsendClosePrepared", true, true },
	{ "PQsendClosePortal", true, true },
	{ "PQsendQuery", false, false },
	{ "PQsendQueryParams", false, false },
	{ "PQsendPrepare", false, false },
	{ "PQsendQueryPrepared", false, false },
	{ "PQsendDescribePrepared", false, false },
	{ "PQsendDescribePortal", false, false },
	{ "PQsendClosePrepared", false, true },
	{ "PQsendClosePortal", false, true },
};

#define NPROBES (sizeof(probes) / sizeof(probes[0]))

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	stop_requested = 1;
}

static void __attribute__((format(printf, 1, 2))) warn(const char *fmt, ...)
{
	va_list ap;

	fputs("floor: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* libbpf's own messages would include the missing optional symbols of an
 * older libpq; failures are reported by warn() with errno */
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t stops, old;
	struct bpf_link *links[NPROBES] = { 0 };
	struct floor_bpf *skel = NULL;
	const char *lib;
	pid_t pid = -1;
	int nattached = 0, rc = 1;

	if (argc < 2 || argc > 3 || argv[1][0] == '-') {
		fprintf(stderr, "usage: floor LIBPQ_PATH [PID]\n");
		return 2;
	}
	lib = argv[1];
	if (argc == 3) {
		char *end;
		long v;

		errno = 0;
		v = strtol(argv[2], &end, 10);
		if (errno || end == argv[2] || *end || v < 1 || v > INT_MAX) {
			fprintf(stderr, "floor: invalid PID '%s'\n", argv[2]);
			return 2;
		}
		pid = (pid_t)v;
	}
	if (access(lib, R_OK)) {
		warn("cannot open %s: %s", lib, strerror(errno));
		return 1;
	}
	/* blocked until we wait for them: a signal cannot slip in between the
	 * check and the wait */
	sigemptyset(&stops);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGTERM);
	sigprocmask(SIG_BLOCK, &stops, &old);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	libbpf_set_print(libbpf_print);

	skel = floor_bpf__open_and_load();
	if (!skel) {
		warn("failed to load BPF programs: %s", strerror(errno));
		goto cleanup;
	}
	for (size_t i = 0; i < NPROBES; i++) {
		LIBBPF_OPTS(bpf_uprobe_opts, uo, .func_name = probes[i].func,
			    .retprobe = probes[i].retprobe);
		struct bpf_program *prog = probes[i].retprobe ?
			skel->progs.floor_return : skel->progs.floor_entry;

		links[i] = bpf_program__attach_uprobe_opts(prog, pid, lib, 0, &uo);
		if (!links[i] && probes[i].optional)
			continue;	/* an older libpq: pqsnoop skips it too */
		if (!links[i]) {
			warn("failed to attach %s%s in %s: %s", probes[i].func,
			     probes[i].retprobe ? " (return)" : "", lib, strerror(errno));
			goto cleanup;
		}
	}
	for (size_t i = 0; i < NPROBES; i++)
		nattached += links[i] != NULL;
	fprintf(stderr, "floor: attached %d probes to %s (pid %d)\n", nattached, lib,
		(int)pid);

	while (!stop_requested)
		sigsuspend(&old);
	rc = 0;
cleanup:
	for (size_t i = 0; i < NPROBES; i++)
		bpf_link__destroy(links[i]);
	floor_bpf__destroy(skel);
	return rc;
}
