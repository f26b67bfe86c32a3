#include "detect.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hash.h"
#include "u64map.h"

#define MAX_VALUES 256		/* distinct constants tracked per run */
#define MAX_THREADS_SEEN 65536
#define MAX_ANCHOR_HOPS 8
#define MAX_LIB_FILES 65536	/* "is this file library code" answers cached */
#define RECENT 32		/* work statements a new run looks back on */
#define MAX_POSITIONS 16384	/* stack prefixes remembered per unit */

const char *finding_kind_name(enum finding_kind k)
{
	return k == FINDING_DUPLICATE ? "duplicate" : "n+1";
}

/* A query's stack, reduced to what comparing two stacks needs. */
struct sig_frame {
	uint64_t fn;		/* hash of the file and function name */
	uint32_t line;
	bool lib;		/* library code (callsite.h) */
};

struct stack_sig {
	uint32_t refs;
	uint32_t n;
	bool partial;		/* truncated or unreadable: outer frames missing */
	struct sig_frame f[];	/* innermost first, as in pq_query.stack */
};

static struct stack_sig *sig_get(struct stack_sig *s)
{
	if (s)
		s->refs++;
	return s;
}

static void sig_put(struct stack_sig *s)
{
	if (s && --s->refs == 0)
		free(s);
}

/* A statement a run refers to: its parent or its anchor. */
struct qref {
	bool set;
	bool parsed;
	uint64_t fp;
	uint64_t key;		/* its run's key: fingerprint and callsite */
	struct fp_text *norm;
	struct fp_text *raw;	/* keep_examples only */
	struct stack_sig *sig;	/* NULL without a stack */
	int64_t rows;
	uint64_t start_ns;
};

static void qref_clear(struct qref *q)
{
	fp_text__put(q->norm);
	fp_text__put(q->raw);
	sig_put(q->sig);
	memset(q, 0, sizeof(*q));
}

static void qref_copy(struct qref *dst, const struct qref *src)
{
	if (dst == src)
		return;
	fp_text__get(src->norm);
	fp_text__get(src->raw);
	sig_get(src->sig);
	qref_clear(dst);
	*dst = *src;
}

/* The constants seen in a run. */
struct valset {
	struct u64map m;	/* values hash -> count */
	uint32_t distinct;
	uint32_t max_same;
};

static void valset_add(struct valset *v, uint64_t values)
{
	void **slot = u64map_get(&v->m, values);
	uintptr_t n;

	if (slot) {
		n = (uintptr_t)*slot + 1;
		*slot = (void *)n;
	} else {
		/* past the cap (or out of memory) a new value is still a
		 * new value; only its later repeats go unseen */
		v->distinct++;
		n = 1;
		if (v->m.n < MAX_VALUES)
			u64map_put(&v->m, values, (void *)n);
	}
	if (n > v->max_same)
		v->max_same = n;
}

static void valset_clear(struct valset *v)
{
	u64map_release(&v->m);
	v->distinct = v->max_same = 0;
}

/* One statement's state in a unit (a fingerprint sent from one callsite),
 * and its current run. */
struct run {
	uint64_t key;		/* fingerprint and callsite */
	uint64_t fp;
	struct fp_text *norm;
	bool parsed;
	int64_t last_idx;	/* last execution (unit index), -1: none */
	bool open;
	int64_t run_start;
	uint32_t count;
	uint32_t parent_hits;	/* the parent ran again between two repeats */
	int64_t parent_rows;	/* rows of the parent, summed over those runs;
				   -1 unknown */
	int64_t last_rows;	/* rows of this statement's last execution */
	int cont_kind;		/* -1, or the kind of the run it continues
				   across a unit cut */
	struct qref parent;	/* just before the run's first execution */
	struct qref anchor;	/* what the loop hangs on (unset: unit start) */
	struct qref before;	/* when the parent was a loop's statement: that
				   loop's parent (the loops may run one after
				   the other over the same rows) */
	bool interleaved;
	bool values_known;
	bool truncated;
	uint64_t db_ns, first_start, last_end;
	struct fp_text *example;
	struct valset vals;
	struct finding_frame *stack;	/* of the run's first execution */
	uint32_t nstack;
	int site_index;			/* its application frame, -1: none */
	struct stack_sig *sig;		/* of the run's first execution */
};

struct unit {
	uint32_t pid, tid;
	uint64_t first_start, last_end;
	uint64_t fold_start;	/* since the last max_span cut (pauses do not count) */
	uint32_t nqueries;
	uint64_t conn;		/* connection of the last query */
	bool stacks;		/* the last query had its whole stack */
	int64_t idx;		/* next index of a work statement */
	struct u64map runs;	/* run key -> struct run * */
	struct qref prev;	/* the last work statement */
	struct qref recent[RECENT];	/* the last ones, recent[idx % RECENT] */
	struct u64map positions;	/* stack prefix -> 1 + index of the last
					   query sent through it */
	struct u64map touched;	/* findings fed by this unit */
};

struct detector {
	struct detect_opts o;
	struct fp_cache *fpc;
	struct u64map units;	/* pid << 32 | tid -> struct unit * */
	struct u64map threads;	/* seen */
	struct u64map findex;	/* finding key -> struct finding * */
	struct finding **findings;
	size_t nfindings, cap;
	struct finding **ranked;
	bool ranked_ok;
	struct detect_totals t;
	struct fp_text *unknown;	/* norm text of the last text_unknown query */
	struct u64map libfiles;	/* file name hash -> 1 application, 2 library */
	uint64_t rng;
};

/* --- lifecycle ------------------------------------------------------------- */

struct detector *detector__new(const struct detect_opts *opts)
{
	struct detector *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	if (opts)
		d->o = *opts;
	if (!d->o.idle_gap_ns)
		d->o.idle_gap_ns = DETECT_DEFAULT_IDLE_GAP_NS;
	if (!d->o.max_span_ns)
		d->o.max_span_ns = DETECT_DEFAULT_MAX_SPAN_NS;
	if (!d->o.min_repeats)
		d->o.min_repeats = DETECT_DEFAULT_MIN_REPEATS;
	if (!d->o.min_duplicates)
		d->o.min_duplicates = DETECT_DEFAULT_MIN_DUPLICATES;
	if (!d->o.max_unit_queries)
		d->o.max_unit_queries = DETECT_DEFAULT_MAX_UNIT_QUERIES;
	if (!d->o.max_fps_per_unit)
		d->o.max_fps_per_unit = DETECT_DEFAULT_MAX_FPS_PER_UNIT;
	if (!d->o.max_findings)
		d->o.max_findings = DETECT_DEFAULT_MAX_FINDINGS;
	/* a repeat needs two executions */
	if (d->o.min_repeats < 2)
		d->o.min_repeats = 2;
	if (d->o.min_duplicates < 2)
		d->o.min_duplicates = 2;
	d->fpc = fp_cache__new(0);
	if (!d->fpc) {
		free(d);
		return NULL;
	}
	d->rng = 0x853c49e6748fea9bULL;
	return d;
}

static void frames_free(struct finding_frame *f, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		fp_text__put(f[i].file);
		fp_text__put(f[i].func);
	}
	free(f);
}

/* A copy of q's stack; NULL (and *n 0) without one or out of memory. */
static struct finding_frame *frames_of(const struct pq_query *q, uint32_t *n)
{
	struct finding_frame *f;

	*n = 0;
	if (!q->nframes || !(f = calloc(q->nframes, sizeof(*f))))
		return NULL;
	for (uint32_t i = 0; i < q->nframes; i++) {
		const char *file = q->stack[i].file ? q->stack[i].file : "?";
		const char *func = q->stack[i].func ? q->stack[i].func : "?";

		f[i].file = fp_text__new(file, strlen(file));
		f[i].func = fp_text__new(func, strlen(func));
		f[i].line = q->stack[i].line;
		if (!f[i].file || !f[i].func) {
			frames_free(f, i + 1);
			return NULL;
		}
	}
	*n = q->nframes;
	return f;
}

static struct finding_frame *frames_share(const struct finding_frame *src, uint32_t n)
{
	struct finding_frame *f;

	if (!n || !(f = calloc(n, sizeof(*f))))
		return NULL;
	for (uint32_t i = 0; i < n; i++) {
		f[i].file = fp_text__get(src[i].file);
		f[i].func = fp_text__get(src[i].func);
		f[i].line = src[i].line;
	}
	return f;
}

static void run_free(struct run *r)
{
	frames_free(r->stack, r->nstack);
	sig_put(r->sig);
	fp_text__put(r->norm);
	fp_text__put(r->example);
	qref_clear(&r->parent);
	qref_clear(&r->anchor);
	qref_clear(&r->before);
	valset_clear(&r->vals);
	free(r);
}

static void unit_free(struct unit *u)
{
	for (size_t i = 0; i < u->runs.cap; i++)
		if (u->runs.used[i])
			run_free(u->runs.vals[i]);
	u64map_release(&u->runs);
	u64map_release(&u->touched);
	u64map_release(&u->positions);
	qref_clear(&u->prev);
	for (int i = 0; i < RECENT; i++)
		qref_clear(&u->recent[i]);
	free(u);
}

static void finding_free(struct finding *f)
{
	frames_free(f->stack, f->nstack);
	fp_text__put(f->stmt.norm);
	fp_text__put(f->stmt.example);
	fp_text__put(f->parent.norm);
	fp_text__put(f->parent.example);
	free(f);
}

void detector__free(struct detector *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->units.cap; i++)
		if (d->units.used[i])
			unit_free(d->units.vals[i]);
	u64map_release(&d->units);
	u64map_release(&d->threads);
	u64map_release(&d->findex);
	u64map_release(&d->libfiles);
	for (size_t i = 0; i < d->nfindings; i++)
		finding_free(d->findings[i]);
	free(d->findings);
	free(d->ranked);
	fp_text__put(d->unknown);
	fp_cache__free(d->fpc);
	free(d);
}

const struct detect_opts *detector__opts(const struct detector *d)
{
	return &d->o;
}

/* --- findings -------------------------------------------------------------- */

static const struct finding_frame *run_site(const struct run *r)
{
	return r->site_index >= 0 ? &r->stack[r->site_index] : NULL;
}

static uint64_t site_hash(const struct finding_frame *site)
{
	if (!site)
		return 0;
	return hash_u64(hash_bytes(site->file->s, site->file->len, site->line), 2);
}

static uint64_t finding_key(enum finding_kind kind, uint64_t fp, const struct qref *par,
			    const struct finding_frame *site)
{
	return hash_u64(hash_u64(hash_u64(kind + 1, fp), par->set ? hash_u64(par->fp, 1) : 0),
			site_hash(site));
}

static bool same_site(const struct finding_frame *a, const struct finding_frame *b)
{
	if (!a || !b)
		return a == b;
	return a->line == b->line && strcmp(a->file->s, b->file->s) == 0;
}

static bool finding_is(const struct finding *f, enum finding_kind kind, uint64_t fp,
		       const struct qref *par, const struct finding_frame *site)
{
	const struct finding_frame *fsite = f->site_index >= 0 ? &f->stack[f->site_index] : NULL;

	return f->kind == kind && f->stmt.fp == fp && f->has_parent == par->set &&
	       (!par->set || f->parent.fp == par->fp) && same_site(fsite, site);
}

static uint32_t median(const uint32_t *s, uint32_t n)
{
	uint32_t tmp[FINDING_SAMPLES];

	memcpy(tmp, s, n * sizeof(*s));
	/* insertion sort: n <= 64 */
	for (uint32_t i = 1; i < n; i++) {
		uint32_t v = tmp[i], j = i;

		while (j > 0 && tmp[j - 1] > v) {
			tmp[j] = tmp[j - 1];
			j--;
		}
		tmp[j] = v;
	}
	return n ? tmp[(n - 1) / 2] : 0;
}

static struct finding *new_finding(struct detector *d, uint64_t key, enum finding_kind kind,
				   const struct run *r, const struct qref *par,
				   const struct qref *alt)
{
	struct finding *f;

	if (d->nfindings >= d->o.max_findings) {
		d->t.findings_dropped++;
		return NULL;
	}
	if (d->nfindings == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct finding **nf = realloc(d->findings, cap * sizeof(*nf));

		if (!nf)
			return NULL;
		d->findings = nf;
		nf = realloc(d->ranked, cap * sizeof(*nf));
		if (!nf)
			return NULL;
		d->ranked = nf;
		d->cap = cap;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	if (u64map_put(&d->findex, key, f)) {
		free(f);
		return NULL;
	}
	f->key = key;
	f->kind = kind;
	f->stmt.fp = r->fp;
	f->stmt.parsed = r->parsed;
	f->stmt.norm = fp_text__get(r->norm);
	f->stmt.example = fp_text__get(r->example);
	f->has_parent = par->set;
	if (par->set) {
		f->parent.fp = par->fp;
		f->parent.parsed = par->parsed;
		f->parent.norm = fp_text__get(par->norm);
		f->parent.example = fp_text__get(par->raw);
	}
	f->parent_rows = -1;
	f->values_known = true;
	f->first_ns = UINT64_MAX;
	f->stack = frames_share(r->stack, r->nstack);
	f->nstack = f->stack ? r->nstack : 0;
	f->site_index = f->stack ? r->site_index : -1;
	hint_derive(&f->hint, kind == FINDING_DUPLICATE, r->norm ? r->norm->s : "",
		    par->set && par->norm ? par->norm->s : NULL,
		    alt && alt->set && alt->norm ? alt->norm->s : NULL);
	d->findings[d->nfindings++] = f;
	d->t.findings++;
	return f;
}

static void add_thread(struct finding *f, uint32_t tid)
{
	uint32_t n = f->threads < 64 ? f->threads : 64;

	for (uint32_t i = 0; i < n; i++)
		if (f->tids[i] == tid)
			return;
	if (f->threads < 64)
		f->tids[f->threads] = tid;
	if (f->threads < 64)
		f->threads++;
}

/* A closed run that qualifies becomes (part of) a finding. */
static void fold(struct detector *d, struct unit *u, struct run *r,
		 enum finding_kind kind, const struct qref *par, const struct qref *alt)
{
	uint64_t key = finding_key(kind, r->fp, par, run_site(r)), start, wasted;
	void **slot;
	struct finding *f = NULL;
	bool fresh = false;

	/* a 64-bit key collision: probe on */
	for (int i = 0; i < 4; i++, key = hash_u64(key, 0x636f6c6c)) {
		slot = u64map_get(&d->findex, key);
		if (!slot)
			break;
		if (finding_is(*slot, kind, r->fp, par, run_site(r))) {
			f = *slot;
			break;
		}
	}
	if (!f) {
		f = new_finding(d, key, kind, r, par, alt);
		if (!f)
			return;
		fresh = true;
	}

	if (kind == FINDING_NPLUSONE)
		wasted = r->db_ns - r->db_ns / r->count;	/* all but one */
	else
		wasted = r->db_ns / r->count * (r->count - r->vals.distinct);
	f->occurrences++;
	f->queries += r->count;
	f->db_ns += r->db_ns;
	f->wasted_ns += wasted;
	if (f->nsamples < FINDING_SAMPLES) {
		f->samples[f->nsamples++] = r->count;
	} else {
		/* reservoir sampling, deterministic */
		d->rng = d->rng * 6364136223846793005ULL + 1442695040888963407ULL;
		uint64_t j = (d->rng >> 33) % f->occurrences;

		if (j < FINDING_SAMPLES)
			f->samples[j] = r->count;
	}
	f->count_typical = median(f->samples, f->nsamples);
	start = par->set && par->start_ns && par->start_ns <= r->first_start ?
		par->start_ns : r->first_start;
	if (r->count > f->count_max || (r->count == f->count_max && r->db_ns > f->worst.db_ns)) {
		f->count_max = r->count;
		f->distinct_max = r->values_known ? r->vals.distinct : 0;
		f->worst.count = r->count;
		f->worst.pid = u->pid;
		f->worst.tid = u->tid;
		f->worst.start_ns = start;
		f->worst.span_ns = r->last_end > start ? r->last_end - start : 0;
		f->worst.db_ns = r->db_ns;
		f->parent_rows = par->set ? par->rows : -1;
	}
	if (fresh) {
		f->pid = u->pid;
		f->tid = u->tid;
	}
	add_thread(f, u->tid);
	f->values_known &= r->values_known;
	f->interleaved |= r->interleaved;
	f->truncated |= r->truncated;
	if (r->first_start < f->first_ns)
		f->first_ns = r->first_start;
	if (r->last_end > f->last_ns)
		f->last_ns = r->last_end;
	if (!u64map_get(&u->touched, key) && u64map_put(&u->touched, key, NULL) == 0)
		f->units++;
	d->ranked_ok = false;
	if (fresh && d->o.on_finding)
		d->o.on_finding(f, d->o.ctx);
}

/* --- stacks ---------------------------------------------------------------- */

/* A stack read whole: its outer frames are there to compare. */
static bool whole_stack(const struct pq_query *q)
{
	return q->nframes && !q->stack_truncated && !(q->stack_error && q->stack_error[0]);
}

static bool file_is_library(struct detector *d, const char *file, uint64_t h)
{
	void **slot = u64map_get(&d->libfiles, h);
	bool lib;

	if (slot)
		return (uintptr_t)*slot == 2;
	lib = callsite_is_library(file, d->o.callsite);
	if (d->libfiles.n < MAX_LIB_FILES)
		u64map_put(&d->libfiles, h, (void *)(uintptr_t)(lib ? 2 : 1));
	return lib;
}

/* q's stack signature (NULL without a stack, or out of memory) and the
 * index of its application frame in q->stack (-1: none). */
static struct stack_sig *sig_new(struct detector *d, const struct pq_query *q, int *site)
{
	struct stack_sig *s;

	*site = -1;
	if (!q->nframes)
		return NULL;
	s = malloc(sizeof(*s) + q->nframes * sizeof(s->f[0]));
	if (!s) {
		const struct pq_frame *f = callsite_of(q, d->o.callsite);

		*site = f ? (int)(f - q->stack) : -1;
		return NULL;
	}
	s->refs = 1;
	s->n = q->nframes;
	s->partial = !whole_stack(q);
	for (uint32_t i = 0; i < q->nframes; i++) {
		const char *file = q->stack[i].file ? q->stack[i].file : "";
		const char *func = q->stack[i].func ? q->stack[i].func : "";
		uint64_t hf = hash_bytes(file, strlen(file), 0x66696c65);

		s->f[i].fn = hash_u64(hf, hash_bytes(func, strlen(func), 0x66756e63));
		s->f[i].line = q->stack[i].line;
		s->f[i].lib = file_is_library(d, q->stack[i].file, hf);
		if (*site < 0 && !s->f[i].lib)
			*site = (int)i;
	}
	return s;
}

/*
 * Could the query with stack p be the parent of a loop whose first
 * execution has stack l, in the same piece of code?  Read from the
 * outermost frame, two stacks of one thread agree down to some frame and
 * then part:
 *   - inside one function, at two of its lines: the function that fetched
 *     the rows and then loops over them (a view, a template's for tag, a
 *     paginator, DRF's list()): a parent;
 *   - below an application line that called two different functions (a
 *     comprehension that fetches and loops on one line): a parent;
 *   - below a library line that called two different functions: the
 *     server's loop handing the thread its next request (gunicorn, Django's
 *     handler calling another view), or middleware calling the next one:
 *     two pieces of work that only follow each other, not a parent.
 * Without both stacks, or with a partial one, there is nothing to say.
 */
static bool related_stacks(const struct stack_sig *p, const struct stack_sig *l)
{
	uint32_t n;

	if (!p || !l || p->partial || l->partial)
		return true;
	n = p->n < l->n ? p->n : l->n;
	for (uint32_t i = 0; i < n; i++) {
		const struct sig_frame *pf = &p->f[p->n - 1 - i], *lf = &l->f[l->n - 1 - i];

		if (pf->fn == lf->fn && pf->line == lf->line)
			continue;
		if (pf->fn == lf->fn)
			return true;
		/* the frame both were called from */
		return i > 0 && !p->f[p->n - i].lib;
	}
	return true;
}

/* What tells one statement from another in a unit: the fingerprint, and
 * the line of the application that sends it. */
static uint64_t run_key(uint64_t fp, const struct pq_frame *site)
{
	const char *file;

	if (!site)
		return fp;
	file = site->file ? site->file : "?";
	return hash_u64(fp, hash_u64(hash_bytes(file, strlen(file), site->line), 2));
}

/* --- runs ------------------------------------------------------------------ */

/* One query as the runs see it. */
struct qinfo {
	const struct pq_query *q;
	const struct fp_result *fr;
	uint64_t key;
	struct stack_sig *sig;	/* borrowed */
	int site;		/* index in q->stack, -1: none */
};

static struct run *run_find(const struct unit *u, uint64_t key)
{
	void **slot = u64map_get(&u->runs, key);

	return slot ? *slot : NULL;
}

/* A SELECT (not a cursor's DECLARE, not a write): its row count tells how
 * many times a loop over its rows can turn. */
static bool returns_rows(const struct qref *q)
{
	const char *s = q->norm ? q->norm->s : "";

	while (*s == '(' || *s == ' ')
		s++;
	return q->rows >= 0 && (strncasecmp(s, "SELECT", 6) == 0 || strncasecmp(s, "WITH", 4) == 0);
}

/* Folds r into a finding if it qualifies; returns the kind, or -1. */
static int close_run(struct detector *d, struct unit *u, struct run *r)
{
	int kind = -1;

	if (r->open && r->count && r->parent.set && r->anchor.set) {
		const struct detect_opts *o = &d->o;
		uint32_t c = r->count;

		if (r->cont_kind >= 0) {
			kind = r->cont_kind;	/* the rest of a loop cut in two */
		} else if (!r->values_known) {
			if (c >= o->min_repeats)
				kind = FINDING_NPLUSONE;	/* same or not: unknown */
		} else if (r->vals.distinct >= 2 && c >= o->min_repeats) {
			kind = FINDING_NPLUSONE;
		} else if (r->vals.max_same >= o->min_duplicates) {
			kind = FINDING_DUPLICATE;
		}
		if (kind >= 0) {
			/*
			 * The parent to report: the statement just before the
			 * run, unless that one ran about as often as the repeats
			 * (a sibling in the loop body, like the author query
			 * before each category query): then the loop's anchor;
			 * or it was the last of another loop that did not run
			 * again (two loops over the same rows, one after the
			 * other): then that loop's parent.  With stacks, a
			 * parent the loop's code did not send is none.
			 */
			const struct qref *par = &r->parent, *alt = NULL;
			int64_t rows = r->parent_rows;

			if (r->anchor.key != r->parent.key) {
				if ((uint64_t)r->parent_hits * 4 >= 3 * ((uint64_t)c - 1)) {
					par = &r->anchor;
					alt = &r->parent;
					rows = r->anchor.rows;
				} else {
					alt = &r->anchor;
				}
			} else if (!r->parent_hits && r->before.set) {
				/* after another loop that never ran again: both
				 * loops turn over that loop's parent's rows */
				par = &r->before;
				alt = &r->parent;
				rows = r->before.rows;
			}
			if (r->cont_kind < 0 && !related_stacks(par->sig, r->sig) &&
			    alt && related_stacks(alt->sig, r->sig)) {
				const struct qref *t = par;

				par = alt;
				alt = t;
				rows = par == &r->parent ? r->parent_rows : par->rows;
			}
			if (r->cont_kind >= 0) {
				fold(d, u, r, kind, par, alt);
			} else if (!related_stacks(par->sig, r->sig)) {
				/* the query before is another request's */
				d->t.unrelated_parents++;
				kind = -1;
			} else if (returns_rows(par) && rows >= 0 && (uint64_t)c > 2 * (uint64_t)rows) {
				/*
				 * A loop over a query's rows turns at most once
				 * per row (twice, for slack).  More repeats than
				 * that after a SELECT mean the repeats are not its
				 * loop: typically requests sent back to back, each
				 * running the statement once, after some other
				 * request's last query.
				 */
				d->t.not_loops++;
				kind = -1;
			} else {
				fold(d, u, r, kind, par, alt);
			}
		}
	}
	r->open = false;
	r->count = 0;
	r->parent_hits = 0;
	r->cont_kind = -1;
	qref_clear(&r->parent);
	qref_clear(&r->anchor);
	qref_clear(&r->before);
	fp_text__put(r->example);
	r->example = NULL;
	valset_clear(&r->vals);
	return kind;
}

/*
 * Where the anchor a of a loop whose executions have stack l was sent from:
 * the outer frames a and l share, and a's frame where they part (a hash of
 * that prefix of a's stack, as record_positions() makes them).  False when
 * there is no such place: a stack missing or partial, or no frame where
 * they part.
 */
static bool anchor_position(const struct stack_sig *a, const struct stack_sig *l, uint64_t *pos)
{
	uint64_t h = 0x706f73;
	uint32_t n;

	if (!a || !l || a->partial || l->partial)
		return false;
	n = a->n < l->n ? a->n : l->n;
	for (uint32_t i = 0; i < n; i++) {
		const struct sig_frame *af = &a->f[a->n - 1 - i], *lf = &l->f[l->n - 1 - i];

		h = hash_u64(h, hash_u64(af->fn, af->line));
		if (af->fn != lf->fn || af->line != lf->line) {
			*pos = h;
			return true;
		}
	}
	return false;
}

/* Notes that the query at idx went through every prefix of its stack. */
static void record_positions(struct unit *u, const struct stack_sig *s, int64_t idx)
{
	uint64_t h = 0x706f73;

	if (!s || s->partial)
		return;
	for (uint32_t i = 0; i < s->n; i++) {
		const struct sig_frame *f = &s->f[s->n - 1 - i];
		void **slot;

		h = hash_u64(h, hash_u64(f->fn, f->line));
		slot = u64map_get(&u->positions, h);
		if (slot)
			*slot = (void *)(uintptr_t)(idx + 1);
		else if (u->positions.n < MAX_POSITIONS)
			u64map_put(&u->positions, h, (void *)(uintptr_t)(idx + 1));
	}
}

/*
 * Has r's loop ended?  Unanchored runs (no parent in the unit) last while
 * they are contiguous.  Otherwise the loop is over when its anchor's code
 * runs again: the anchor statement itself, not as part of the same loop
 * (its own run started after r's last execution: the outer loop or the
 * next request began again), or, with stacks, any statement sent from the
 * place the anchor was sent from (the line of the function the loop runs
 * in, or of one of its callers, that fetched what the loop iterates over:
 * the function was called again, by the next request through the same
 * middleware, say).  An anchor that is part of the loop hands over to its
 * own anchor.
 */
static bool run_broken(struct unit *u, struct run *r, int64_t idx)
{
	for (int hop = 0; hop < MAX_ANCHOR_HOPS; hop++) {
		struct run *a;
		uint64_t pos;
		void **slot;

		if (!r->anchor.set)
			return r->last_idx != idx - 1;
		a = run_find(u, r->anchor.key);
		if (a && a != r && a->last_idx > r->last_idx) {
			if (!a->open || a->run_start > r->last_idx)
				return true;
			qref_copy(&r->anchor, &a->anchor);
			continue;
		}
		if (!anchor_position(r->anchor.sig, r->sig, &pos))
			return false;
		slot = u64map_get(&u->positions, pos);
		return slot && (int64_t)(uintptr_t)*slot - 1 > r->last_idx;
	}
	return false;
}

static void run_add(struct detector *d, struct unit *u, struct run *r,
		    const struct qinfo *qi, int64_t idx)
{
	const struct pq_query *q = qi->q;
	const struct fp_result *fr = qi->fr;

	if (r->count == 0) {
		frames_free(r->stack, r->nstack);
		r->stack = frames_of(q, &r->nstack);
		r->site_index = qi->site >= 0 && r->stack ? qi->site : -1;
		sig_put(r->sig);
		r->sig = sig_get(qi->sig);
		r->first_start = q->start_ns;
		r->values_known = true;
		r->interleaved = false;
		r->truncated = false;
		r->db_ns = 0;
	} else {
		struct run *p = r->parent.set ? run_find(u, r->parent.key) : NULL;

		if (r->last_idx != idx - 1)
			r->interleaved = true;
		if (p && p != r && p->last_idx > r->last_idx) {
			r->parent_hits++;
			/* a nested loop: it turns over every parent's rows */
			if (r->parent_rows >= 0 && p->last_rows >= 0)
				r->parent_rows += p->last_rows;
			else
				r->parent_rows = -1;
		}
	}
	r->count++;
	r->last_idx = idx;
	r->db_ns += q->duration_ns;
	if (q->start_ns + q->duration_ns > r->last_end || r->count == 1)
		r->last_end = q->start_ns + q->duration_ns;
	r->values_known &= fr->values_known;
	r->truncated |= q->truncated;
	if (fr->values_known)
		valset_add(&r->vals, fr->values);
	if (!r->example && d->o.keep_examples && q->sql)
		r->example = fp_text__new(q->sql, q->sql_cap);
}

/*
 * The parent of a run starting at idx: the latest work statement before it
 * that the same piece of code sent (related_stacks()), never the statement
 * itself.  Without stacks that is the statement just before.  NULL: none in
 * the last RECENT, so the run is unanchored.
 */
static const struct qref *parent_for(const struct unit *u, const struct qinfo *qi, int64_t idx)
{
	for (int64_t i = idx - 1; i >= 0 && i >= idx - RECENT; i--) {
		const struct qref *c = &u->recent[i % RECENT];

		if (!c->set || c->key == qi->key)
			continue;
		if (related_stacks(c->sig, qi->sig))
			return c;
	}
	return NULL;
}

static void run_start(struct detector *d, struct unit *u, struct run *r,
		      const struct qinfo *qi, int64_t idx)
{
	const struct qref *par;

	r->open = true;
	r->count = 0;
	r->parent_hits = 0;
	r->cont_kind = -1;
	r->run_start = idx;
	par = parent_for(u, qi, idx);
	r->parent_rows = par ? par->rows : -1;
	if (par) {
		const struct run *p = run_find(u, par->key);

		qref_copy(&r->parent, par);
		qref_copy(&r->anchor, par);
		if (p && p != r && p->open && p->count >= 2 && p->parent.set)
			qref_copy(&r->before, p->before.set ? &p->before : &p->parent);
	}
	valset_clear(&r->vals);
	run_add(d, u, r, qi, idx);
}

static struct run *run_new(struct unit *u, const struct qinfo *qi)
{
	struct run *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	if (u64map_put(&u->runs, qi->key, r)) {
		free(r);
		return NULL;
	}
	r->key = qi->key;
	r->fp = qi->fr->fp;
	r->norm = fp_text__get(qi->fr->norm);
	r->parsed = qi->fr->parsed;
	r->last_idx = -1;
	r->run_start = -1;
	r->last_rows = -1;
	r->cont_kind = -1;
	r->site_index = -1;
	return r;
}

/* Drops the runs in u that match `drop` (closing them first). */
static void drop_runs(struct detector *d, struct unit *u,
		      bool (*drop)(const struct unit *u, const struct run *r))
{
	uint64_t *keys = malloc((u->runs.n ? u->runs.n : 1) * sizeof(*keys));
	size_t n = 0;

	if (!keys)
		return;
	for (size_t i = 0; i < u->runs.cap; i++)
		if (u->runs.used[i] && drop(u, u->runs.vals[i]))
			keys[n++] = u->runs.keys[i];
	for (size_t i = 0; i < n; i++) {
		void **slot = u64map_get(&u->runs, keys[i]);
		struct run *r = *slot;

		close_run(d, u, r);
		run_free(r);
		u64map_del(&u->runs, keys[i]);
	}
	free(keys);
}

/* A statement that ran once, some time ago: no loop yet, and the queries
 * since show it does not start one. */
static bool stale_single(const struct unit *u, const struct run *r)
{
	return (!r->open || (r->count <= 1 && r->cont_kind < 0)) &&
	       !(u->prev.set && u->prev.key == r->key) &&
	       r->last_idx < u->idx - (int64_t)u->runs.n / 2;
}

/* --- units ----------------------------------------------------------------- */

static uint64_t thread_key(uint32_t pid, uint32_t tid)
{
	return (uint64_t)pid << 32 | tid;
}

static void close_unit(struct detector *d, struct unit *u)
{
	for (size_t i = 0; i < u->runs.cap; i++)
		if (u->runs.used[i])
			close_run(d, u, u->runs.vals[i]);
	u64map_del(&d->units, thread_key(u->pid, u->tid));
	d->t.units++;
	unit_free(u);
}

static struct unit *unit_new(struct detector *d, uint32_t pid, uint32_t tid, uint64_t start)
{
	struct unit *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	if (u64map_put(&d->units, thread_key(pid, tid), u)) {
		free(u);
		return NULL;
	}
	u->pid = pid;
	u->tid = tid;
	u->first_start = u->last_end = u->fold_start = start;
	return u;
}

/* Kept across a soft cut: a loop in progress, or the statement just
 * before the cut (it may be the first iteration of a slow loop). */
static bool not_in_progress(const struct unit *u, const struct run *r)
{
	return !(r->open && (r->count >= 2 || r->cont_kind >= 0 ||
			     (u->prev.set && u->prev.key == r->key)));
}

/*
 * A new unit of work on the same thread, without losing the loops in
 * progress: a long loop (a batch job) may outlast max_span, and with
 * pause_ns set a pause may be a slow iteration.  Runs that repeated already
 * go on, and so does the statement just before the cut; other statements
 * that ran once are forgotten.  With fold_pieces (max_span,
 * max_unit_queries), the loops so far are folded into findings now and go
 * on as continuations, so a loop that runs for minutes shows up every
 * max_span.
 */
static void soft_cut(struct detector *d, struct unit *u, uint64_t start, bool fold_pieces)
{
	drop_runs(d, u, not_in_progress);
	for (size_t i = 0; fold_pieces && i < u->runs.cap; i++) {
		struct run *r;
		struct qref par = { 0 }, anc = { 0 }, bef = { 0 };
		int64_t rows;
		int kind;

		if (!u->runs.used[i])
			continue;
		r = u->runs.vals[i];
		rows = r->parent_rows;
		qref_copy(&par, &r->parent);
		qref_copy(&anc, &r->anchor);
		qref_copy(&bef, &r->before);
		kind = close_run(d, u, r);
		r->open = true;	/* goes on, with no repeats yet */
		r->cont_kind = kind;
		r->parent_rows = rows;
		r->run_start = u->idx;
		qref_copy(&r->parent, &par);
		qref_copy(&r->anchor, &anc);
		qref_copy(&r->before, &bef);
		qref_clear(&par);
		qref_clear(&anc);
		qref_clear(&bef);
	}
	u64map_release(&u->touched);
	d->t.units++;
	u->first_start = start;
	if (fold_pieces) {
		u->fold_start = start;
		u->nqueries = 0;
	}
}

static struct unit *unit_for(struct detector *d, const struct pq_query *q)
{
	void **slot = u64map_get(&d->units, thread_key(q->pid, q->tid));
	struct unit *u = slot ? *slot : NULL;

	if (u) {
		uint64_t gap = q->start_ns > u->last_end ? q->start_ns - u->last_end : 0;
		bool stacks = u->stacks && whole_stack(q);

		/*
		 * Idle for idle_gap: the work is over, unless both queries
		 * have whole stacks, which tell a loop's slow iteration (a
		 * web service called per row, a template that takes its time,
		 * a loaded machine) from the next request; then only a long
		 * idle ends the unit.
		 */
		if (gap > d->o.idle_gap_ns + (stacks ? DETECT_TICK_GRACE_NS : 0)) {
			close_unit(d, u);
			u = NULL;
		} else if ((q->start_ns > u->fold_start &&
			    q->start_ns - u->fold_start > d->o.max_span_ns) ||
			   u->nqueries >= d->o.max_unit_queries) {
			soft_cut(d, u, q->start_ns, true);
		} else if (d->o.pause_ns && gap > d->o.pause_ns) {
			soft_cut(d, u, q->start_ns, false);
		}
	}
	if (!u)
		u = unit_new(d, q->pid, q->tid, q->start_ns);
	return u;
}

/* --- adding queries -------------------------------------------------------- */

/* A prepared statement whose text we never saw: its name (per connection)
 * is all there is. */
static int unknown_text(struct detector *d, const struct pq_query *q, struct fp_result *r)
{
	const char *name = q->stmt_name ? q->stmt_name : "";
	char buf[200];
	int n = snprintf(buf, sizeof(buf), "EXECUTE %s -- prepared before pqsnoop attached: text unknown",
			 name[0] ? name : "(unnamed)");
	struct fp_text *t = fp_text__new(buf, n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1);

	if (!t)
		return -ENOMEM;
	fp_text__put(d->unknown);
	d->unknown = t;
	memset(r, 0, sizeof(*r));
	r->fp = hash_u64(hash_bytes(name, strlen(name), 0x756e6b6e), q->conn);
	r->values_known = false;
	r->cls = STMT_WORK;
	r->norm = t;
	return 0;
}

int detector__fingerprint(struct detector *d, const struct pq_query *q,
			  struct fp_result *fr)
{
	if (q->text_unknown || !q->sql)
		return unknown_text(d, q, fr);
	return fp_cache__lookup(d->fpc, q->sql, q->sql_cap, q->truncated, fr);
}

int detector__add(struct detector *d, const struct pq_query *q)
{
	struct fp_result fr;
	int err;

	if (q->kind == PQ_KIND_PREPARE)
		return detector__add_fp(d, q, NULL);
	err = detector__fingerprint(d, q, &fr);
	if (err) {
		d->t.queries++;	/* counted, though missing from detection */
		return err;
	}
	return detector__add_fp(d, q, &fr);
}

int detector__add_fp(struct detector *d, const struct pq_query *q,
		     const struct fp_result *frp)
{
	struct fp_result fr;
	struct qinfo qi;
	struct unit *u;
	struct run *r;
	uint64_t end = q->start_ns + q->duration_ns;
	int64_t idx;

	if (q->kind == PQ_KIND_PREPARE) {
		d->t.prepares++;
		return 0;
	}
	d->t.queries++;
	d->t.db_ns += q->duration_ns;
	if (!d->t.first_ns || q->start_ns < d->t.first_ns)
		d->t.first_ns = q->start_ns;
	if (end > d->t.last_ns)
		d->t.last_ns = end;
	if (!u64map_get(&d->threads, thread_key(q->pid, q->tid)) &&
	    d->threads.n < MAX_THREADS_SEEN &&
	    u64map_put(&d->threads, thread_key(q->pid, q->tid), NULL) == 0)
		d->t.threads++;
	fr = *frp;

	u = unit_for(d, q);
	if (!u)
		return -ENOMEM;
	u->nqueries++;
	u->conn = q->conn;
	u->stacks = whole_stack(q);
	if (end > u->last_end)
		u->last_end = end;
	if (stmt_class_neutral(fr.cls)) {
		d->t.neutral++;
		return 0;
	}

	qi.q = q;
	qi.fr = &fr;
	qi.sig = sig_new(d, q, &qi.site);
	qi.key = run_key(fr.fp, qi.site >= 0 ? &q->stack[qi.site] : NULL);

	idx = u->idx++;
	r = run_find(u, qi.key);
	if (!r && u->runs.n >= d->o.max_fps_per_unit)
		drop_runs(d, u, stale_single);
	if (!r && u->runs.n < d->o.max_fps_per_unit)
		r = run_new(u, &qi);
	if (!r) {
		d->t.untracked++;
	} else if (!r->open) {
		run_start(d, u, r, &qi, idx);
	} else if (run_broken(u, r, idx)) {
		close_run(d, u, r);
		run_start(d, u, r, &qi, idx);
	} else {
		run_add(d, u, r, &qi, idx);
	}
	if (r)
		r->last_rows = q->rows;

	/* the parent of whatever runs next */
	qref_clear(&u->prev);
	u->prev.set = true;
	u->prev.parsed = fr.parsed;
	u->prev.fp = fr.fp;
	u->prev.key = qi.key;
	u->prev.norm = fp_text__get(fr.norm);
	u->prev.sig = qi.sig;	/* the reference sig_new() gave */
	if (d->o.keep_examples && q->sql)
		u->prev.raw = fp_text__new(q->sql, q->sql_cap);
	u->prev.rows = q->rows;
	u->prev.start_ns = q->start_ns;
	qref_copy(&u->recent[idx % RECENT], &u->prev);
	record_positions(u, qi.sig, idx);
	return 0;
}

static void close_where(struct detector *d, bool all, uint64_t now_ns)
{
	struct unit **list;
	size_t n = 0;

	if (!d->units.n)
		return;
	list = malloc(d->units.n * sizeof(*list));
	if (!list)
		return;
	for (size_t i = 0; i < d->units.cap; i++) {
		struct unit *u;

		if (!d->units.used[i])
			continue;
		u = d->units.vals[i];
		if (all || (now_ns > u->last_end &&
			    now_ns - u->last_end > d->o.idle_gap_ns + DETECT_TICK_GRACE_NS))
			list[n++] = u;
	}
	for (size_t i = 0; i < n; i++)
		close_unit(d, list[i]);
	free(list);
}

void detector__tick(struct detector *d, uint64_t now_ns)
{
	close_where(d, false, now_ns);
}

void detector__conn_closed(struct detector *d, uint32_t pid, uint64_t conn)
{
	struct unit *list[16];
	size_t n = 0;

	/* a thread's unit of work ends with its connection; more than a
	 * few threads on one connection would be odd: close the first 16 */
	for (size_t i = 0; i < d->units.cap && n < 16; i++) {
		struct unit *u;

		if (!d->units.used[i])
			continue;
		u = d->units.vals[i];
		if (u->pid == pid && u->conn == conn)
			list[n++] = u;
	}
	for (size_t i = 0; i < n; i++)
		close_unit(d, list[i]);
}

void detector__finish(struct detector *d)
{
	close_where(d, true, 0);
}

/* --- results --------------------------------------------------------------- */

const struct detect_totals *detector__totals(struct detector *d)
{
	fp_cache__stats(d->fpc, &d->t.fp);
	return &d->t;
}

size_t detector__nfindings(const struct detector *d)
{
	return d->nfindings;
}

static int by_rank(const void *pa, const void *pb)
{
	const struct finding *a = *(struct finding *const *)pa;
	const struct finding *b = *(struct finding *const *)pb;

	if (a->wasted_ns != b->wasted_ns)
		return a->wasted_ns > b->wasted_ns ? -1 : 1;
	if (a->queries != b->queries)
		return a->queries > b->queries ? -1 : 1;
	if (a->kind != b->kind)
		return a->kind < b->kind ? -1 : 1;
	if (a->stmt.fp != b->stmt.fp)
		return a->stmt.fp < b->stmt.fp ? -1 : 1;
	return a->parent.fp < b->parent.fp ? -1 : a->parent.fp > b->parent.fp;
}

const struct finding *detector__finding(struct detector *d, size_t rank)
{
	if (rank >= d->nfindings)
		return NULL;
	if (!d->ranked_ok) {
		memcpy(d->ranked, d->findings, d->nfindings * sizeof(*d->ranked));
		qsort(d->ranked, d->nfindings, sizeof(*d->ranked), by_rank);
		d->ranked_ok = true;
	}
	return d->ranked[rank];
}
