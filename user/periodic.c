#include "periodic.h"

#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "detect.h"
#include "log.h"
#include "recorder.h"
#include "report.h"

#define PREFIX "pqsnoop-"

struct periodic {
	const struct cli *c;
	periodic_snapshot_fn snap;
	uint64_t period_ns;
	/* the current period, when one is open */
	struct detector *d;
	struct recorder *rec;
	char base[4096];	/* output_dir/pqsnoop-YYYYmmdd-HHMMSS */
	uint64_t start_ns, end_ns;
	uint64_t periods;
	/* what earlier periods took of the run's counters */
	struct run_summary taken;
	uint64_t queries_in_period;
};

struct periodic *periodic__new(const struct cli *c, periodic_snapshot_fn snap,
			       char *err, size_t errlen)
{
	struct periodic *p;

	if (mkdir(c->output_dir, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", c->output_dir, strerror(errno));
		return NULL;
	}
	if (access(c->output_dir, W_OK)) {
		snprintf(err, errlen, "cannot write in %s: %s", c->output_dir, strerror(errno));
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->c = c;
	p->snap = snap;
	p->period_ns = (uint64_t)(c->every * 1e9);
	return p;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Remove the oldest periods beyond --keep: every file of theirs. */
static void rotate(struct periodic *p)
{
	DIR *dir = opendir(p->c->output_dir);
	char **names = NULL, **tmp;
	size_t n = 0, cap = 0;
	struct dirent *de;

	if (!dir)
		return;
	while ((de = readdir(dir))) {
		size_t len = strlen(de->d_name);

		if (strncmp(de->d_name, PREFIX, strlen(PREFIX)) || len < 5 ||
		    strcmp(de->d_name + len - 4, ".pqs"))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			tmp = realloc(names, cap * sizeof(*names));
			if (!tmp)
				break;
			names = tmp;
		}
		if (!(names[n] = strndup(de->d_name, len - 4)))
			break;
		n++;
	}
	closedir(dir);
	qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 0; n > p->c->keep && i < n - p->c->keep; i++) {
		static const char *const exts[] = { ".pqs", ".txt", ".json" };
		char path[4200];

		for (size_t k = 0; k < sizeof(exts) / sizeof(exts[0]); k++) {
			snprintf(path, sizeof(path), "%s/%s%s", p->c->output_dir, names[i], exts[k]);
			if (unlink(path) && errno != ENOENT)
				warn("cannot remove %s: %s", path, strerror(errno));
		}
		debug("removed period %s (--keep %u)", names[i], p->c->keep);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static void start(struct periodic *p, uint64_t now_ns)
{
	struct detect_opts o = {0};
	struct capture_meta m;
	char host[256], err[512], stamp[32], path[4200];
	time_t t = (time_t)(now_ns / 1000000000ULL);
	struct tm tm;

	cli_detect_opts(p->c, &o);
	p->d = detector__new(&o);
	p->start_ns = now_ns;
	p->end_ns = (now_ns / p->period_ns + 1) * p->period_ns;
	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	snprintf(p->base, sizeof(p->base), "%s/" PREFIX "%s", p->c->output_dir, stamp);
	snprintf(path, sizeof(path), "%s.pqs", p->base);
	cli_capture_meta(p->c, &m, host, sizeof(host));
	m.start_ns = now_ns;
	p->rec = recorder__open(path, 0600, &m, err, sizeof(err));
	if (!p->rec)
		warn("%s: this period is not recorded", err);
	p->queries_in_period = 0;
}

static void write_report(struct periodic *p, const char *ext, bool json,
			 const struct report_opts *ro)
{
	char path[4200];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "%s%s", p->base, ext);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		warn("cannot write %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	if (json)
		report_json(f, p->d, ro);
	else
		report_text(f, p->d, ro);
	if (fclose(f))
		warn("cannot write %s: %s", path, strerror(errno));
}

/* This period's part of the run's counters: what the run has counted so
 * far, less what earlier periods took. */
static void period_summary(struct periodic *p, const struct run_summary *run,
			   struct run_summary *out, const char *reason)
{
	*out = *run;
	out->asm_stats.queries = p->queries_in_period;
	out->dropped_send -= p->taken.dropped_send;
	out->dropped_end -= p->taken.dropped_end;
	out->dropped_other -= p->taken.dropped_other;
	out->dropped_stack -= p->taken.dropped_stack;
	out->conn_table_full -= p->taken.conn_table_full;
	out->end_reason = reason;
	p->taken = *run;
}

static void finish(struct periodic *p, const struct run_summary *run, const char *reason,
		   uint64_t now_ns)
{
	struct report_opts ro = { .show_values = p->c->show_values };
	struct run_summary sum;

	if (!p->d)
		return;
	detector__finish(p->d);
	period_summary(p, run, &sum, reason);
	sum.seconds = (now_ns - p->start_ns) / 1e9;
	ro.dropped = run_summary_dropped(&sum);
	if (p->rec && recorder__close(p->rec, &sum))
		warn("capture %s.pqs: %s", p->base, recorder__error(p->rec));
	recorder__free(p->rec);
	p->rec = NULL;
	write_report(p, ".txt", false, &ro);
	write_report(p, ".json", true, &ro);
	detector__free(p->d);
	p->d = NULL;
	p->periods++;
	info("period %s: %llu queries", p->base, (unsigned long long)sum.asm_stats.queries);
	rotate(p);
}

void periodic__tick(struct periodic *p, uint64_t now_ns)
{
	if (p->d && now_ns >= p->end_ns) {
		struct run_summary run = p->taken;

		if (p->snap)
			p->snap(&run);
		finish(p, &run, "period", now_ns);
	}
	if (!p->d)
		start(p, now_ns);
	if (p->rec)
		recorder__tick(p->rec, now_ns);
	detector__tick(p->d, now_ns);
}

void periodic__query(struct periodic *p, const struct pq_query *q)
{
	struct fp_result fr;

	if (!p->d)
		start(p, q->start_ns);
	if (!p->d || detector__fingerprint(p->d, q, &fr))
		return;
	if (p->rec)
		recorder__query(p->rec, q, &fr);
	detector__add_fp(p->d, q, &fr);
	p->queries_in_period += q->kind == PQ_KIND_QUERY;
}

void periodic__conn_closed(struct periodic *p, uint32_t pid, uint64_t conn)
{
	if (!p->d)
		return;
	if (p->rec)
		recorder__conn_closed(p->rec, pid, conn);
	detector__conn_closed(p->d, pid, conn);
}

void periodic__end(struct periodic *p, const struct run_summary *sum)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	finish(p, sum, sum->end_reason, ts.tv_sec * 1000000000ULL + ts.tv_nsec);
}

uint64_t periodic__periods(const struct periodic *p)
{
	return p->periods;
}

void periodic__free(struct periodic *p)
{
	if (!p)
		return;
	recorder__free(p->rec);
	detector__free(p->d);
	free(p);
}
