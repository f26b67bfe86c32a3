/*
 * N+1 and duplicate query detection.
 *
 * Queries (query.h) arrive per thread in start order.  Statements that do
 * no work of their own (transaction control, SET/SHOW, connection setup and
 * pool pings, cursor FETCH/MOVE/CLOSE; see sqltext.h) are neither counted
 * nor allowed to end a run.
 *
 * Units of work.  Each thread's queries are cut into units of work, the
 * requests (or tasks) it serves.  A unit ends:
 *   - when the connection of its last query closes (detector__conn_closed:
 *     Django closes its connection at the end of every request by default,
 *     so this is exact there);
 *   - when the thread was idle for idle_gap (100 ms) between two queries,
 *     unless both have their whole Python stack: stacks tell a slow
 *     iteration (a loaded machine, a slow database, a web service called per
 *     row) from the next request (below), so then only a long idle,
 *     idle_gap + DETECT_TICK_GRACE_NS (1.1 s), ends the unit;
 *   - on detector__tick(), once the thread was idle for that long idle: a
 *     query in flight is only seen when it ends, and a slow query must not
 *     end its unit;
 *   - softly every max_span (10 s) or max_unit_queries: the loops so far are
 *     folded into findings and go on into the next unit, so a batch job
 *     running for minutes shows up as it goes.
 * No short pause ends a unit (pause_ns, off by default, brings back the
 * old 1 ms rule): under load the queries of one loop are easily
 * milliseconds apart, and a loop must not be missed because the database
 * or the ORM is slow.  Detection is by count, never by time.
 *
 * Statements.  A statement is a fingerprint sent from one callsite (the
 * application's innermost frame, callsite.h): the same SQL from two lines is
 * two statements, and a loop is repeated executions of one statement.
 * Without stacks (not Python, --no-stacks) the fingerprint alone.
 *
 * Runs.  Within a unit, each statement's executions form runs, its loops.
 * A run starts after a parent and goes on while its loop does.  The parent
 * is the latest statement before it that the same code sent: with stacks,
 * one whose stack parts from the run's inside a function (at another line:
 * the view that fetched the rows and loops over them, a template's for tag,
 * DRF's list()) or below an application line (a comprehension), not below a
 * library line (the server handing the thread its next request, middleware
 * calling the next one): another request's last query is no parent.  When
 * that parent is the last statement of a loop that just ran (a loop over the
 * same rows, one after the other), the loops' common parent is reported.
 * A run ends when the query the loop hangs on (its anchor, at first the
 * parent) runs again and was not itself part of the loop since the run's
 * last execution -- the outer loop or the next request started over -- or,
 * with stacks, when any query is sent from where the anchor was sent (the
 * anchor's frame at the line where its stack parts from the loop's, under
 * the same callers): the code that fetched what the loop iterates over ran
 * again, say the next request through the same middleware.  So
 *   P A A A A A          one run of A (5), parent P
 *   P A C A C A C        one run of A and one of C, both after P (interleaved)
 *   P A C U U A C U      A, C and U (nested) all after P
 *   P A A P A A          two runs of A: the same finding seen twice
 * A run with no parent in its unit never makes a finding: a thread that
 * serves one-query requests back to back is not a loop.  Nor does a run
 * that repeats more than twice per row its parent SELECT returned: a loop
 * over a query's rows cannot, and requests that run back to back (each
 * sending the statement once) after a query of another request can.  (So a
 * loop over data that did not come from the previous query, say ids from
 * the request, is not reported when that query returned fewer rows.)
 *
 * A run of at least min_repeats executions with at least two different
 * constants (or unknown ones: $n parameters) is an N+1; a run in which the
 * same constants come back at least min_duplicates times, without enough
 * different ones to be an N+1, is a duplicate.  Runs of the same kind,
 * fingerprint, callsite and parent fingerprint fold into one finding,
 * whichever unit or thread they come from.  Detection is by count; findings
 * are ranked by the database time a fix would save (wasted_ns).
 *
 * Limits.  Without stacks, requests served back to back on a persistent
 * connection (CONN_MAX_AGE > 0) less than idle_gap apart are one unit; the
 * anchors still end most loops, but the same statement looped over in two
 * such requests with nothing of the first request's code re-running in
 * between is one run.  With stacks, a loop over rows that a request did not
 * fetch (a cache hit) continues the previous request's loop if no
 * connection close or long idle came in between.
 *
 * Memory stays bounded: a closed unit is folded into findings and freed; a
 * unit tracks at most max_fps_per_unit statements (past that, the ones that
 * ran once some time ago are forgotten; totals.untracked counts what still
 * did not fit) and at most 16384 stack prefixes; at most
 * max_findings findings are kept (the rest are counted in
 * totals.findings_dropped).
 *
 * Not thread-safe.  The detector owns its fingerprint cache.
 */
#ifndef PQSNOOP_DETECT_H
#define PQSNOOP_DETECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "callsite.h"
#include "fingerprint.h"
#include "hint.h"
#include "query.h"

/* Defaults (the README explains them). */
#define DETECT_DEFAULT_IDLE_GAP_NS	(100ULL * 1000 * 1000)		/* 100 ms */
#define DETECT_DEFAULT_PAUSE_NS		0				/* off */
#define DETECT_DEFAULT_MAX_SPAN_NS	(10ULL * 1000 * 1000 * 1000)	/* 10 s */
#define DETECT_DEFAULT_MIN_REPEATS	5
#define DETECT_DEFAULT_MIN_DUPLICATES	3
#define DETECT_DEFAULT_MAX_UNIT_QUERIES	10000
#define DETECT_DEFAULT_MAX_FPS_PER_UNIT	1024
#define DETECT_DEFAULT_MAX_FINDINGS	10000
/* detector__tick() closes a unit idle for idle_gap plus this: a query in
 * flight is only seen when it ends, and a slow one must not end its unit. */
#define DETECT_TICK_GRACE_NS		(1ULL * 1000 * 1000 * 1000)	/* 1 s */

struct finding;

/* Called once per finding, when its first run closes.  The finding is
 * valid until detector__free(). */
typedef void (*detect_cb)(const struct finding *f, void *ctx);

/* Zero fields take the defaults above. */
struct detect_opts {
	uint64_t idle_gap_ns;	/* idle this long: the unit of work is over */
	uint64_t pause_ns;	/* 0: off (default); else a gap this long starts
				   a new unit, loops go on, statements that ran
				   once are forgotten (the old rule) */
	uint64_t max_span_ns;	/* longer units are cut (loops reported so far) */
	uint32_t min_repeats;	/* N+1: executions in one run, at least 2 */
	uint32_t min_duplicates;	/* duplicate: same constants, at least 2 */
	uint32_t max_unit_queries;
	uint32_t max_fps_per_unit;	/* statements tracked per unit */
	uint32_t max_findings;
	/* Keep one raw example text per finding (literal values: only for
	 * --show-values; without it no query text with data is kept). */
	bool keep_examples;
	/* Which stack frames are the application's (NULL: the defaults). */
	const struct callsite_opts *callsite;
	detect_cb on_finding;
	void *ctx;
};

enum finding_kind {
	FINDING_NPLUSONE,
	FINDING_DUPLICATE,
};

const char *finding_kind_name(enum finding_kind k);	/* "n+1", "duplicate" */

/* One statement a finding talks about. */
struct finding_stmt {
	uint64_t fp;
	bool parsed;		/* fp is libpg_query's (see fingerprint.h) */
	struct fp_text *norm;	/* normalized text ($n for constants) */
	struct fp_text *example;	/* a raw text, only with keep_examples */
};

/* A Python frame kept by a finding (strings shared, reference-counted). */
struct finding_frame {
	struct fp_text *file;
	struct fp_text *func;
	uint32_t line;
};

#define FINDING_SAMPLES 64	/* per-run counts kept for the median */

struct finding {
	enum finding_kind kind;
	struct finding_stmt stmt;	/* the repeated statement */
	bool has_parent;
	struct finding_stmt parent;	/* the query the loop runs after */
	int64_t parent_rows;	/* rows it returned (worst run), -1 unknown */

	uint64_t occurrences;	/* runs folded in */
	uint64_t units;		/* units of work they came from */
	uint64_t queries;	/* executions of the repeated statement, all runs */
	uint64_t db_ns;		/* their database time */
	uint64_t wasted_ns;	/* what a fix would save: all but one execution
				   per N+1 run, the repeats per duplicate run */
	uint32_t count_max;	/* executions in the largest run */
	uint32_t count_typical;	/* median over runs (sampled) */
	uint32_t distinct_max;	/* different constants in the largest run
				   (0 when unknown; an upper bound past 256) */
	bool values_known;	/* false: some run used $n parameters */
	bool interleaved;	/* other statements ran between the repeats */
	bool truncated;		/* some text was cut by the capture */

	struct {		/* the largest run */
		uint32_t count;
		uint32_t pid, tid;
		uint64_t start_ns;	/* parent's start (or the first repeat's) */
		uint64_t span_ns;	/* from there to the last repeat's end */
		uint64_t db_ns;
	} worst;
	uint32_t pid, tid;	/* where it was first seen */
	uint32_t threads;	/* different threads it was seen on (saturates at 64) */
	uint64_t first_ns, last_ns;	/* first repeat's start, last one's end */

	struct hint hint;

	/* Where the application sends the repeated statement: the innermost
	 * application frame (callsite.h) of its first execution, part of
	 * what makes a finding (the same statement looped over from two lines
	 * is two findings); and that execution's whole stack.  site_index is
	 * -1 and nstack 0 without stacks. */
	int site_index;			/* into stack[], -1: none */
	struct finding_frame *stack;
	uint32_t nstack;

	/* private */
	uint32_t samples[FINDING_SAMPLES];
	uint32_t nsamples;
	uint32_t tids[64];
	uint64_t key;
};

struct detect_totals {
	uint64_t queries;	/* executions seen (PREPARE excluded) */
	uint64_t prepares;	/* PQprepare calls: not executions, ignored */
	uint64_t neutral;	/* executions that do no work of their own */
	uint64_t db_ns;		/* database time of all executions */
	uint64_t units;		/* units of work closed */
	uint64_t threads;	/* different threads seen (saturates) */
	uint64_t findings;	/* findings kept */
	uint64_t findings_dropped;	/* findings over max_findings */
	uint64_t untracked;	/* executions over max_fps_per_unit */
	uint64_t not_loops;	/* runs longer than their parent's rows allow */
	uint64_t unrelated_parents;	/* runs whose parent's stack shows another
					   piece of work (another request) */
	uint64_t first_ns, last_ns;	/* first start, last end */
	struct fp_stats fp;	/* the fingerprint cache */
};

struct detector;

/* opts may be NULL (all defaults).  Returns NULL when out of memory. */
struct detector *detector__new(const struct detect_opts *opts);
/* Frees the detector and its findings.  NULL is fine. */
void detector__free(struct detector *d);

/*
 * The fingerprint detection uses for q; r->norm is borrowed (valid until
 * the next call).  Returns 0 or -ENOMEM.  With detector__add_fp() this lets
 * a capture store what detection needs without the literal values, and a
 * report replay it exactly.
 */
int detector__fingerprint(struct detector *d, const struct pq_query *q,
			  struct fp_result *r);
/* Adds q with its fingerprint r (NULL only for a PREPARE).  Returns 0 or
 * -ENOMEM. */
int detector__add_fp(struct detector *d, const struct pq_query *q,
		     const struct fp_result *r);

/* Adds one completed query.  Returns 0 or -ENOMEM (the query is then
 * counted but may be missing from detection). */
int detector__add(struct detector *d, const struct pq_query *q);
/* Closes the units idle since before now_ns - idle_gap (CLOCK_REALTIME). */
void detector__tick(struct detector *d, uint64_t now_ns);
/*
 * The traced process closed a connection (PQfinish): the units of work of
 * the threads whose last query used it end here.  Django closes its
 * connection at the end of every request (CONN_MAX_AGE=0, the default), so
 * this separates requests that follow each other closer than idle_gap.
 */
void detector__conn_closed(struct detector *d, uint32_t pid, uint64_t conn);
/* Closes every unit: call before the final report. */
void detector__finish(struct detector *d);

/* The options in effect (defaults filled in). */
const struct detect_opts *detector__opts(const struct detector *d);
const struct detect_totals *detector__totals(struct detector *d);
size_t detector__nfindings(const struct detector *d);
/* Findings ranked by wasted time, most first; NULL past the end.  A
 * finding stays valid until detector__free(); its rank may change with the
 * next add/tick/finish. */
const struct finding *detector__finding(struct detector *d, size_t rank);

#endif /* PQSNOOP_DETECT_H */
