#include "attach.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>

#include "log.h"
#include <linux/types.h>
#include "pqsnoop.h"
#include "pqsnoop.skel.h"

#define MAX_COPIES 64

/*
 * The probes, in attach order.  The order matters while a busy process is
 * being attached: result probes go first and send probes last, each return
 * probe before its entry probe.  A result probe on its own sees no
 * outstanding send and does nothing; if a send were recorded before the
 * result probes were live, its results would be missed and every later
 * result on that connection credited to the previous query.
 */
struct probe_spec {
	const char *func;
	bool retprobe;
	size_t prog_off;	/* offset of the program pointer in skel->progs */
	bool optional;		/* not in every libpq: skipped when absent */
};

#define PROG(name) offsetof(struct pqsnoop_bpf, progs.name)

static const struct probe_spec probes[] = {
	{ "PQgetResult", true, PROG(pq_get_result_exit), false },
	{ "PQgetResult", false, PROG(pq_get_result_enter), false },
	{ "PQfinish", false, PROG(pq_finish), false },
	{ "PQsendQuery", true, PROG(pq_send_exit), false },
	{ "PQsendQueryParams", true, PROG(pq_send_exit), false },
	{ "PQsendPrepare", true, PROG(pq_send_exit), false },
	{ "PQsendQueryPrepared", true, PROG(pq_send_exit), false },
	{ "PQsendDescribePrepared", true, PROG(pq_send_exit), false },
	{ "PQsendDescribePortal", true, PROG(pq_send_exit), false },
	{ "PQsendClosePrepared", true, PROG(pq_send_exit), true },
	{ "PQsendClosePortal", true, PROG(pq_send_exit), true },
	{ "PQsendQuery", false, PROG(pq_send_query), false },
	{ "PQsendQueryParams", false, PROG(pq_send_query_params), false },
	{ "PQsendPrepare", false, PROG(pq_send_prepare), false },
	{ "PQsendQueryPrepared", false, PROG(pq_send_query_prepared), false },
	/* describes and closes hold a place in the result order (pipeline
	 * mode) but are not queries: numbered, never reported */
	{ "PQsendDescribePrepared", false, PROG(pq_send_describe), false },
	{ "PQsendDescribePortal", false, PROG(pq_send_describe), false },
	{ "PQsendClosePrepared", false, PROG(pq_send_close), true },
	{ "PQsendClosePortal", false, PROG(pq_send_close), true },
};

#define NPROBES (sizeof(probes) / sizeof(probes[0]))

struct copy {
	uint64_t dev, ino;
	struct bpf_link *links[NPROBES];
};

struct attacher {
	struct pqsnoop_bpf *skel;
	struct copy copies[MAX_COPIES];
	int n;
};

struct attacher *attacher__new(struct pqsnoop_bpf *skel)
{
	struct attacher *at = calloc(1, sizeof(*at));

	if (at)
		at->skel = skel;
	return at;
}

static void copy_detach(struct copy *c)
{
	for (size_t i = 0; i < NPROBES; i++) {
		bpf_link__destroy(c->links[i]);
		c->links[i] = NULL;
	}
}

/* Removing each uprobe waits for an RCU grace period under a kernel-wide
 * lock (~90 ms each here, so about 1.4 s for all): callers report results
 * before freeing the attacher. */
void attacher__free(struct attacher *at)
{
	if (!at)
		return;
	for (int i = 0; i < at->n; i++)
		copy_detach(&at->copies[i]);
	free(at);
}

int attacher__count(const struct attacher *at)
{
	return at->n;
}

int attacher__add(struct attacher *at, const struct libpq_map *m)
{
	struct copy *c;
	int err;

	for (int i = 0; i < at->n; i++)
		if (at->copies[i].dev == m->dev && at->copies[i].ino == m->ino)
			return 0;
	if (at->n >= MAX_COPIES) {
		warn("too many libpq copies (%d): not tracing %s", MAX_COPIES, m->shown);
		return -E2BIG;
	}
	c = &at->copies[at->n];
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NPROBES; i++) {
		LIBBPF_OPTS(bpf_uprobe_opts, uo, .func_name = probes[i].func,
			    .retprobe = probes[i].retprobe);
		struct bpf_program *prog =
			*(struct bpf_program **)((char *)at->skel + probes[i].prog_off);

		/* pid -1: every process mapping this file; BPF filters by pid */
		c->links[i] = bpf_program__attach_uprobe_opts(prog, -1, m->path, 0, &uo);
		if (!c->links[i] && probes[i].optional) {
			debug("%s not in %s (older libpq): not probed", probes[i].func, m->shown);
			continue;
		}
		if (!c->links[i]) {
			err = -errno;
			warn("failed to attach %s%s in %s: %s", probes[i].func,
			     probes[i].retprobe ? " (return)" : "", m->shown,
			     strerror(-err));
			copy_detach(c);
			return err;
		}
	}
	c->dev = m->dev;
	c->ino = m->ino;
	at->n++;
	debug("attached %zu probes to %s", NPROBES, m->shown);
	return 1;
}
