#include "assemble.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>

#include "pqsnoop.h"

#define NBUCKETS 4096
/* psycopg 3 keeps at most 100 prepared statements per connection; keep
 * more than that, but bounded, for clients that never deallocate. */
#define MAX_STMTS_PER_CONN 1024

struct pending {
	struct pending *next;
	uint64_t seq;
	uint64_t start_ns;
	uint32_t kind;
	uint32_t tid;
	uint32_t sql_len;
	uint32_t sql_cap;
	uint32_t flags;
	bool text_unknown;
	char *sql;		/* NUL-terminated copy of sql_cap bytes */
	char *name;		/* statement name, or NULL */
	char comm[17];
	struct pq_frame *stack;	/* owned array; strings borrowed */
	uint32_t nframes;
	bool stack_truncated;
	const char *stack_error;
};

struct stmt {
	struct stmt *next;
	char *name;
	char *sql;
	uint32_t sql_len;
	uint32_t sql_cap;
	uint32_t flags;
};

struct conn_q {
	struct conn_q *next;	/* hash chain */
	uint32_t pid;
	uint64_t conn;
	struct pending *head, *tail;
	struct stmt *stmts;	/* most recent first */
	unsigned nstmts;
};

struct assembler {
	struct assembler_opts opts;
	struct assembler_stats stats;
	struct conn_q *buckets[NBUCKETS];
};

static const char *const status_names[] = {
	"PGRES_EMPTY_QUERY", "PGRES_COMMAND_OK", "PGRES_TUPLES_OK",
	"PGRES_COPY_OUT", "PGRES_COPY_IN", "PGRES_BAD_RESPONSE",
	"PGRES_NONFATAL_ERROR", "PGRES_FATAL_ERROR", "PGRES_COPY_BOTH",
	"PGRES_SINGLE_TUPLE", "PGRES_PIPELINE_SYNC", "PGRES_PIPELINE_ABORTED",
};

const char *pq_exec_status_name(uint32_t status)
{
	if (status < sizeof(status_names) / sizeof(status_names[0]))
		return status_names[status];
	return "PGRES_UNKNOWN";
}

const char *pq_query_status_name(enum pq_query_status status)
{
	switch (status) {
	case PQ_STATUS_OK: return "ok";
	case PQ_STATUS_ERROR: return "error";
	case PQ_STATUS_UNKNOWN: return "unknown";
	case PQ_STATUS_UNFINISHED: return "unfinished";
	}
	return "unknown";
}

static const char *api_name(uint32_t kind)
{
	switch (kind) {
	case PQ_SEND_QUERY: return "PQsendQuery";
	case PQ_SEND_QUERY_PARAMS: return "PQsendQueryParams";
	case PQ_SEND_PREPARE: return "PQsendPrepare";
	case PQ_SEND_QUERY_PREPARED: return "PQsendQueryPrepared";
	case PQ_SEND_DESCRIBE: return "PQsendDescribe";
	case PQ_SEND_CLOSE: return "PQsendClose";
	}
	return "?";
}

int64_t pq_rows_from_result(uint32_t status, int32_t ntups, const char *tag)
{
	const char *p;

	if (status == PQS_TUPLES_OK || status == PQS_SINGLE_TUPLE)
		return ntups < 0 ? 0 : ntups;
	if (!tag || !*tag)
		return 0;
	/* the count is the tag's last word, when it is a number */
	p = tag + strlen(tag);
	while (p > tag && isdigit((unsigned char)p[-1]))
		p--;
	if (!*p || (p > tag && p[-1] != ' '))
		return 0;
	return strtoll(p, NULL, 10);
}

struct assembler *assembler__new(const struct assembler_opts *opts)
{
	struct assembler *a = calloc(1, sizeof(*a));

	if (a)
		a->opts = *opts;
	return a;
}

static void pending_free(struct pending *p)
{
	if (!p)
		return;
	free(p->sql);
	free(p->name);
	free(p->stack);
	free(p);
}

static void stmts_free(struct stmt *s)
{
	while (s) {
		struct stmt *next = s->next;

		free(s->name);
		free(s->sql);
		free(s);
		s = next;
	}
}

static void conn_free(struct conn_q *c)
{
	struct pending *p = c->head;

	while (p) {
		struct pending *next = p->next;

		pending_free(p);
		p = next;
	}
	stmts_free(c->stmts);
	free(c);
}

void assembler__free(struct assembler *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < NBUCKETS; i++) {
		struct conn_q *c = a->buckets[i];

		while (c) {
			struct conn_q *next = c->next;

			conn_free(c);
			c = next;
		}
	}
	free(a);
}

static size_t bucket_of(uint32_t pid, uint64_t conn)
{
	uint64_t h = (conn ^ ((uint64_t)pid << 32)) * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> 52) % NBUCKETS;
}

static struct conn_q *conn_find(struct assembler *a, uint32_t pid,
				uint64_t conn, bool create)
{
	size_t b = bucket_of(pid, conn);
	struct conn_q *c;

	for (c = a->buckets[b]; c; c = c->next)
		if (c->pid == pid && c->conn == conn)
			return c;
	if (!create)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->pid = pid;
	c->conn = conn;
	c->next = a->buckets[b];
	a->buckets[b] = c;
	return c;
}

static void conn_remove(struct assembler *a, struct conn_q *c)
{
	struct conn_q **pp = &a->buckets[bucket_of(c->pid, c->conn)];

	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp)
		*pp = c->next;
	conn_free(c);
}

static char *dup_bytes(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

static struct stmt *stmt_find(struct conn_q *c, const char *name)
{
	for (struct stmt *s = c->stmts; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

/* Remember a prepared statement's text under its name (replacing any). */
static void stmt_remember(struct conn_q *c, const struct pending *p)
{
	struct stmt *s = stmt_find(c, p->name), **pp;

	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return;
		s->name = strdup(p->name);
		if (!s->name) {
			free(s);
			return;
		}
		s->next = c->stmts;
		c->stmts = s;
		if (++c->nstmts > MAX_STMTS_PER_CONN) {
			/* drop the oldest (the list's tail) */
			for (pp = &c->stmts; (*pp)->next; pp = &(*pp)->next)
				;
			stmts_free(*pp);
			*pp = NULL;
			c->nstmts--;
		}
	}
	free(s->sql);
	s->sql = dup_bytes(p->sql ? p->sql : "", p->sql ? p->sql_cap : 0);
	s->sql_len = p->sql_len;
	s->sql_cap = s->sql ? p->sql_cap : 0;
	s->flags = p->flags;
}

static void deliver(struct assembler *a, const struct conn_q *c,
		    const struct pending *p, const struct pq_rec_end *e,
		    enum pq_query_status status)
{
	struct pq_query q = {0};
	char sqlstate[sizeof(e->sqlstate) + 1] = "";
	char cmd[sizeof(e->cmd_status) + 1] = "";
	char err[sizeof(e->errmsg) + 1] = "";
	size_t n;

	if (p->kind == PQ_SEND_DESCRIBE || p->kind == PQ_SEND_CLOSE) {
		a->stats.describes++;	/* took its place in the order; not a query */
		return;
	}
	q.kind = p->kind == PQ_SEND_PREPARE ? PQ_KIND_PREPARE : PQ_KIND_QUERY;
	q.pid = c->pid;
	q.tid = p->tid;
	q.conn = c->conn;
	q.start_ns = p->start_ns + a->opts.mono_to_real_ns;
	q.rows = -1;
	q.sql = p->sql ? p->sql : "";
	q.sql_len = p->sql_len;
	q.sql_cap = p->sql ? p->sql_cap : 0;
	q.truncated = q.sql_len > q.sql_cap;
	q.sql_len_capped = p->flags & PQ_SEND_F_LEN_CAPPED;
	q.text_unknown = p->text_unknown;
	q.stmt_name = p->name;
	q.api = api_name(p->kind);
	q.result_status = NULL;
	q.cmd_status = cmd;
	q.sqlstate = sqlstate;
	q.error = err;
	q.comm = p->comm;
	q.stack = p->stack;
	q.nframes = p->nframes;
	q.stack_truncated = p->stack_truncated;
	q.stack_error = p->stack_error;
	if (e) {
		memcpy(sqlstate, e->sqlstate, sizeof(e->sqlstate));
		memcpy(cmd, e->cmd_status, sizeof(e->cmd_status));
		memcpy(err, e->errmsg, sizeof(e->errmsg));
		/* libpq ends its messages with a newline */
		n = strlen(err);
		while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
			err[--n] = 0;
		if (strncmp(err, "ERROR:  ", 8) == 0)
			memmove(err, err + 8, strlen(err + 8) + 1);
		q.duration_ns = e->end_ns > p->start_ns ? e->end_ns - p->start_ns : 0;
		q.result_status = pq_exec_status_name(e->status);
		q.nresults = e->nresults;
		if (e->status == PQS_FATAL_ERROR || e->status == PQS_BAD_RESPONSE ||
		    e->status == PQS_PIPELINE_ABORTED) {
			status = PQ_STATUS_ERROR;
			q.rows = 0;
		} else {
			q.rows = pq_rows_from_result(e->status, e->ntups, cmd);
		}
	}
	q.status = status;

	if (q.kind == PQ_KIND_PREPARE)
		a->stats.prepares++;
	else
		a->stats.queries++;
	if (status == PQ_STATUS_ERROR)
		a->stats.errors++;
	else if (status == PQ_STATUS_UNFINISHED)
		a->stats.unfinished++;
	else if (status == PQ_STATUS_UNKNOWN)
		a->stats.lost_ends++;
	if (a->opts.on_query)
		a->opts.on_query(&q, a->opts.ctx);
}

/* Take the head of c's queue (caller checked it exists). */
static struct pending *pop(struct assembler *a, struct conn_q *c)
{
	struct pending *p = c->head;

	c->head = p->next;
	if (!c->head)
		c->tail = NULL;
	a->stats.pending--;
	return p;
}

static int on_send(struct assembler *a, const struct pq_rec_send *r, size_t size)
{
	struct conn_q *c;
	struct pending *p;
	struct stmt *s;
	uint32_t cap = r->sql_cap;

	if (size < PQ_REC_SEND_HDR_SIZE || cap > PQ_SQL_MAX ||
	    PQ_REC_SEND_HDR_SIZE + cap > size || r->name_len >= PQ_NAME_MAX)
		return -1;
	c = conn_find(a, r->pid, r->conn, true);
	p = calloc(1, sizeof(*p));
	if (!c || !p) {
		free(p);
		return -1;
	}
	p->seq = r->seq;
	p->start_ns = r->start_ns;
	p->kind = r->kind;
	p->tid = r->tid;
	p->flags = r->flags;
	memcpy(p->comm, r->comm, sizeof(r->comm));
	p->comm[sizeof(r->comm)] = 0;
	if (r->kind < PQ_SEND_QUERY || r->kind > PQ_SEND_CLOSE) {
		free(p);
		return -1;
	}
	if (r->kind != PQ_SEND_QUERY && r->kind != PQ_SEND_QUERY_PARAMS)
		p->name = dup_bytes(r->name, r->name_len);
	if (r->kind == PQ_SEND_QUERY_PREPARED) {
		s = p->name ? stmt_find(c, p->name) : NULL;
		if (s) {
			p->sql = dup_bytes(s->sql, s->sql_cap);
			p->sql_cap = s->sql_cap;
			p->sql_len = s->sql_len;
			p->flags |= s->flags & PQ_SEND_F_LEN_CAPPED;
		} else {
			p->text_unknown = true;	/* prepared before we attached */
		}
	} else if (r->kind != PQ_SEND_DESCRIBE && r->kind != PQ_SEND_CLOSE) {
		p->sql = dup_bytes(r->sql, cap);
		p->sql_cap = cap;
		p->sql_len = r->sql_len < cap ? cap : r->sql_len;
	}
	if (r->kind == PQ_SEND_PREPARE && p->name)
		stmt_remember(c, p);

	if (c->tail)
		c->tail->next = p;
	else
		c->head = p;
	c->tail = p;
	a->stats.pending++;
	return PQ_REC_SEND;
}

static int on_end(struct assembler *a, const struct pq_rec_end *e, size_t size)
{
	struct conn_q *c;
	struct pending *p;

	if (size < sizeof(*e))
		return -1;
	c = conn_find(a, e->pid, e->conn, false);
	/* sends before this one whose END never came: those ENDs were lost */
	while (c && c->head && c->head->seq < e->seq) {
		p = pop(a, c);
		deliver(a, c, p, NULL, PQ_STATUS_UNKNOWN);
		pending_free(p);
	}
	if (!c || !c->head || c->head->seq != e->seq) {
		a->stats.lost_sends++;	/* its SEND was dropped */
		return PQ_REC_END;
	}
	p = pop(a, c);
	deliver(a, c, p, e, PQ_STATUS_OK);
	pending_free(p);
	return PQ_REC_END;
}

static void flush_conn(struct assembler *a, struct conn_q *c)
{
	while (c->head) {
		struct pending *p = pop(a, c);

		deliver(a, c, p, NULL, PQ_STATUS_UNFINISHED);
		pending_free(p);
	}
}

static int on_close(struct assembler *a, const struct pq_rec_conn_close *r,
		    size_t size)
{
	struct conn_q *c;

	if (size < sizeof(*r))
		return -1;
	c = conn_find(a, r->pid, r->conn, false);
	if (c) {
		flush_conn(a, c);
		conn_remove(a, c);
	}
	return PQ_REC_CONN_CLOSE;
}

int assembler__record(struct assembler *a, const void *data, size_t size,
		      uint32_t *child_pid)
{
	uint32_t type;
	int ret = -1;

	if (size < sizeof(type)) {
		a->stats.bad_records++;
		return -1;
	}
	memcpy(&type, data, sizeof(type));
	switch (type) {
	case PQ_REC_SEND:
		ret = on_send(a, data, size);
		break;
	case PQ_REC_END:
		ret = on_end(a, data, size);
		break;
	case PQ_REC_CONN_CLOSE:
		ret = on_close(a, data, size);
		break;
	case PQ_REC_FORK:
		if (size >= sizeof(struct pq_rec_fork)) {
			const struct pq_rec_fork *f = data;

			if (child_pid)
				*child_pid = f->child_pid;
			a->stats.forks++;
			ret = PQ_REC_FORK;
		}
		break;
	}
	if (ret < 0)
		a->stats.bad_records++;
	return ret;
}

int assembler__attach_stack(struct assembler *a, uint32_t pid, uint64_t conn,
			    uint64_t seq, const struct pq_frame *frames, uint32_t n,
			    bool truncated, const char *error)
{
	struct conn_q *c = conn_find(a, pid, conn, false);
	struct pending *p;

	if (!c)
		return -1;
	/* the stack follows its SEND at once: it is almost always the tail */
	p = c->tail;
	if (p && p->seq != seq)
		for (p = c->head; p && p->seq != seq; p = p->next)
			;
	if (!p)
		return -1;
	free(p->stack);
	p->stack = NULL;
	p->nframes = 0;
	if (n) {
		p->stack = malloc(n * sizeof(*frames));
		if (p->stack) {
			memcpy(p->stack, frames, n * sizeof(*frames));
			p->nframes = n;
		}
	}
	p->stack_truncated = truncated;
	p->stack_error = error;
	return 0;
}

void assembler__flush(struct assembler *a)
{
	for (size_t i = 0; i < NBUCKETS; i++)
		for (struct conn_q *c = a->buckets[i]; c; c = c->next)
			flush_conn(a, c);
}

void assembler__flush_pid(struct assembler *a, uint32_t pid)
{
	for (size_t i = 0; i < NBUCKETS; i++) {
		struct conn_q *c = a->buckets[i], *next;

		for (; c; c = next) {
			next = c->next;
			if (c->pid != pid)
				continue;
			flush_conn(a, c);
			conn_remove(a, c);
		}
	}
}

const struct assembler_stats *assembler__stats(const struct assembler *a)
{
	return &a->stats;
}
