#include "capture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- encoding ------------------------------------------------------------ */

struct enc {
	unsigned char *buf;
	size_t len, cap;
	bool oom;
};

static void enc_bytes(struct enc *e, const void *p, size_t n)
{
	if (e->oom)
		return;
	if (e->len + n > e->cap) {
		size_t cap = e->cap ? e->cap : 256;
		unsigned char *b;

		while (cap < e->len + n)
			cap *= 2;
		b = realloc(e->buf, cap);
		if (!b) {
			e->oom = true;
			return;
		}
		e->buf = b;
		e->cap = cap;
	}
	memcpy(e->buf + e->len, p, n);
	e->len += n;
}

static void enc_u64(struct enc *e, uint64_t v)
{
	unsigned char b[8];

	for (int i = 0; i < 8; i++)
		b[i] = v >> (8 * i);
	enc_bytes(e, b, 8);
}

static void enc_u32(struct enc *e, uint32_t v)
{
	unsigned char b[4] = { v, v >> 8, v >> 16, v >> 24 };

	enc_bytes(e, b, 4);
}

static void enc_u8(struct enc *e, uint8_t v)
{
	enc_bytes(e, &v, 1);
}

/* NULL and "" differ: NULL is written as length 0xffffffff */
static void enc_str_n(struct enc *e, const char *s, size_t n)
{
	if (!s) {
		enc_u32(e, 0xffffffffu);
		return;
	}
	enc_u32(e, (uint32_t)n);
	enc_bytes(e, s, n);
}

static void enc_str(struct enc *e, const char *s)
{
	enc_str_n(e, s, s ? strlen(s) : 0);
}

static int enc_put(struct enc *e, struct capfile_writer *w, uint16_t type,
		   char *err, size_t errlen)
{
	int rc;

	if (e->oom) {
		snprintf(err, errlen, "out of memory encoding a capture record");
		free(e->buf);
		return -1;
	}
	rc = capfile_writer__put(w, type, e->buf, (uint32_t)e->len, err, errlen);
	free(e->buf);
	return rc;
}

int capture_put_meta(struct capfile_writer *w, const struct capture_meta *m,
		     char *err, size_t errlen)
{
	struct enc e = {0};

	enc_str(&e, m->version);
	enc_str(&e, m->hostname);
	enc_u32(&e, m->target_pid);
	enc_str(&e, m->target_comm);
	enc_u64(&e, m->start_ns);
	enc_u8(&e, m->show_values);
	enc_str(&e, m->options);
	enc_u64(&e, m->idle_gap_ns);
	enc_u64(&e, m->pause_ns);
	enc_u64(&e, m->max_span_ns);
	enc_u32(&e, m->min_repeats);
	enc_u32(&e, m->min_duplicates);
	return enc_put(&e, w, CAP_META, err, errlen);
}

int capture_put_query(struct capfile_writer *w, const struct capture_query *cq,
		      char *err, size_t errlen)
{
	const struct pq_query *q = &cq->q;
	struct enc e = {0};
	uint8_t flags = (q->truncated ? 1 : 0) | (q->sql_len_capped ? 2 : 0) |
			(q->text_unknown ? 4 : 0) | (q->stack_truncated ? 8 : 0) |
			(cq->values_redacted ? 16 : 0);

	enc_u8(&e, q->kind);
	enc_u8(&e, q->status);
	enc_u8(&e, flags);
	enc_u32(&e, q->pid);
	enc_u32(&e, q->tid);
	enc_u64(&e, q->conn);
	enc_u64(&e, q->start_ns);
	enc_u64(&e, q->duration_ns);
	enc_u64(&e, (uint64_t)q->rows);
	enc_u32(&e, q->sql_len);
	enc_u32(&e, q->nresults);
	enc_u64(&e, cq->fp);
	enc_u64(&e, cq->values);
	enc_u8(&e, (cq->values_known ? 1 : 0) | (cq->parsed ? 2 : 0));
	enc_u8(&e, cq->cls);
	enc_str_n(&e, q->sql, q->sql_cap);
	/* the normalized text once: when the SQL is redacted, it is the SQL */
	if (cq->values_redacted)
		enc_str(&e, NULL);
	else
		enc_str_n(&e, cq->norm, cq->norm_len);
	enc_str(&e, q->stmt_name);
	enc_str(&e, q->api);
	enc_str(&e, q->result_status);
	enc_str(&e, q->cmd_status);
	enc_str(&e, q->sqlstate);
	enc_str(&e, q->error);
	enc_str(&e, q->comm);
	enc_str(&e, q->stack_error);
	enc_u32(&e, q->nframes);
	for (uint32_t i = 0; i < q->nframes; i++) {
		enc_str(&e, q->stack[i].file);
		enc_str(&e, q->stack[i].func);
		enc_u32(&e, q->stack[i].line);
	}
	return enc_put(&e, w, CAP_QUERY, err, errlen);
}

int capture_put_close(struct capfile_writer *w, uint32_t pid, uint64_t conn,
		      char *err, size_t errlen)
{
	struct enc e = {0};

	enc_u32(&e, pid);
	enc_u64(&e, conn);
	return enc_put(&e, w, CAP_CONN_CLOSE, err, errlen);
}

int capture_put_tick(struct capfile_writer *w, uint64_t now_ns, char *err, size_t errlen)
{
	struct enc e = {0};

	enc_u64(&e, now_ns);
	return enc_put(&e, w, CAP_TICK, err, errlen);
}

int capture_put_summary(struct capfile_writer *w, const struct run_summary *s,
			char *err, size_t errlen)
{
	const struct assembler_stats *a = &s->asm_stats;
	struct enc e = {0};

	enc_u64(&e, a->queries);
	enc_u64(&e, a->prepares);
	enc_u64(&e, a->errors);
	enc_u64(&e, a->unfinished);
	enc_u64(&e, a->lost_ends);
	enc_u64(&e, a->lost_sends);
	enc_u64(&e, a->forks);
	enc_u64(&e, a->bad_records);
	enc_u64(&e, s->dropped_send);
	enc_u64(&e, s->dropped_end);
	enc_u64(&e, s->dropped_other);
	enc_u64(&e, s->conn_table_full);
	enc_u64(&e, s->dropped_stack);
	enc_u64(&e, s->processes);
	enc_u64(&e, (uint64_t)(s->seconds * 1e9));
	enc_str(&e, s->end_reason);
	return enc_put(&e, w, CAP_SUMMARY, err, errlen);
}

/* --- decoding ------------------------------------------------------------ */

/* Strings decoded from one record live here, NUL-terminated. */
struct capture_arena {
	char *buf;
	size_t len, cap;
	struct pq_frame *frames;
	size_t frames_cap;
};

struct capture_arena *capture_arena__new(void)
{
	return calloc(1, sizeof(struct capture_arena));
}

void capture_arena__free(struct capture_arena *a)
{
	if (!a)
		return;
	free(a->buf);
	free(a->frames);
	free(a);
}

struct dec {
	const unsigned char *p;
	size_t left;
	bool bad;
	struct capture_arena *a;
};

static uint64_t dec_u(struct dec *d, int n)
{
	uint64_t v = 0;

	if (d->bad || d->left < (size_t)n) {
		d->bad = true;
		return 0;
	}
	for (int i = 0; i < n; i++)
		v |= (uint64_t)d->p[i] << (8 * i);
	d->p += n;
	d->left -= n;
	return v;
}

/* Returns a handle: (size_t)-1 for NULL, else an offset into the arena. */
static size_t dec_str(struct dec *d, uint32_t *len_out)
{
	uint32_t n = (uint32_t)dec_u(d, 4);
	size_t off;

	if (len_out)
		*len_out = 0;
	if (d->bad || n == 0xffffffffu)
		return (size_t)-1;
	if (n > d->left) {
		d->bad = true;
		return (size_t)-1;
	}
	if (d->a->len + n + 1 > d->a->cap) {
		size_t cap = d->a->cap ? d->a->cap : 1024;
		char *b;

		while (cap < d->a->len + n + 1)
			cap *= 2;
		b = realloc(d->a->buf, cap);
		if (!b) {
			d->bad = true;
			return (size_t)-1;
		}
		d->a->buf = b;
		d->a->cap = cap;
	}
	off = d->a->len;
	memcpy(d->a->buf + off, d->p, n);
	d->a->buf[off + n] = 0;
	d->a->len += n + 1;
	d->p += n;
	d->left -= n;
	if (len_out)
		*len_out = n;
	return off;
}

static const char *at(const struct capture_arena *a, size_t off)
{
	return off == (size_t)-1 ? NULL : a->buf + off;
}

int capture_get_meta(const void *p, uint32_t len, struct capture_meta *m,
		     struct capture_arena *a)
{
	struct dec d = { .p = p, .left = len, .a = a };
	size_t version, host, comm, opts;

	a->len = 0;
	memset(m, 0, sizeof(*m));
	version = dec_str(&d, NULL);
	host = dec_str(&d, NULL);
	m->target_pid = (uint32_t)dec_u(&d, 4);
	comm = dec_str(&d, NULL);
	m->start_ns = dec_u(&d, 8);
	m->show_values = dec_u(&d, 1) != 0;
	opts = dec_str(&d, NULL);
	m->idle_gap_ns = dec_u(&d, 8);
	m->pause_ns = dec_u(&d, 8);
	m->max_span_ns = dec_u(&d, 8);
	m->min_repeats = (uint32_t)dec_u(&d, 4);
	m->min_duplicates = (uint32_t)dec_u(&d, 4);
	if (d.bad || d.left)
		return -1;
	m->version = at(a, version);
	m->hostname = at(a, host);
	m->target_comm = at(a, comm);
	m->options = at(a, opts);
	return 0;
}

#define MAX_FRAMES_DECODED 4096

int capture_get_query(const void *p, uint32_t len, struct capture_query *cq,
		      struct capture_arena *a)
{
	struct dec d = { .p = p, .left = len, .a = a };
	struct pq_query *q = &cq->q;
	size_t sql, norm, name, api, rst, cmd, state, error, comm, serr;
	size_t *fo = NULL;
	uint32_t sql_cap, norm_len, n;
	uint8_t flags, kind, status, fpflags;

	a->len = 0;
	memset(cq, 0, sizeof(*cq));
	kind = (uint8_t)dec_u(&d, 1);
	status = (uint8_t)dec_u(&d, 1);
	flags = (uint8_t)dec_u(&d, 1);
	q->pid = (uint32_t)dec_u(&d, 4);
	q->tid = (uint32_t)dec_u(&d, 4);
	q->conn = dec_u(&d, 8);
	q->start_ns = dec_u(&d, 8);
	q->duration_ns = dec_u(&d, 8);
	q->rows = (int64_t)dec_u(&d, 8);
	q->sql_len = (uint32_t)dec_u(&d, 4);
	q->nresults = (uint32_t)dec_u(&d, 4);
	cq->fp = dec_u(&d, 8);
	cq->values = dec_u(&d, 8);
	fpflags = (uint8_t)dec_u(&d, 1);
	cq->cls = (uint8_t)dec_u(&d, 1);
	sql = dec_str(&d, &sql_cap);
	norm = dec_str(&d, &norm_len);
	name = dec_str(&d, NULL);
	api = dec_str(&d, NULL);
	rst = dec_str(&d, NULL);
	cmd = dec_str(&d, NULL);
	state = dec_str(&d, NULL);
	error = dec_str(&d, NULL);
	comm = dec_str(&d, NULL);
	serr = dec_str(&d, NULL);
	n = (uint32_t)dec_u(&d, 4);
	if (d.bad || kind > PQ_KIND_PREPARE || status > PQ_STATUS_UNFINISHED ||
	    n > MAX_FRAMES_DECODED || (uint64_t)n * 12 > d.left)
		return -1;
	if (n && a->frames_cap < n) {
		struct pq_frame *f = realloc(a->frames, n * sizeof(*f));

		if (!f)
			return -1;
		a->frames = f;
		a->frames_cap = n;
	}
	/* string handles first: the arena moves while it grows */
	if (n && !(fo = malloc(sizeof(*fo) * 2 * n)))
		return -1;
	for (uint32_t i = 0; i < n && !d.bad; i++) {
		fo[2 * i] = dec_str(&d, NULL);
		fo[2 * i + 1] = dec_str(&d, NULL);
		a->frames[i].line = (uint32_t)dec_u(&d, 4);
	}
	if (d.bad || d.left != 0 || !at(a, sql) ||
	    (!(flags & 16) && norm == (size_t)-1)) {
		free(fo);
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		a->frames[i].file = at(a, fo[2 * i]);
		a->frames[i].func = at(a, fo[2 * i + 1]);
	}
	free(fo);
	q->kind = kind;
	q->status = status;
	q->truncated = flags & 1;
	q->sql_len_capped = flags & 2;
	q->text_unknown = flags & 4;
	q->stack_truncated = flags & 8;
	cq->values_redacted = flags & 16;
	cq->values_known = fpflags & 1;
	cq->parsed = fpflags & 2;
	q->sql = at(a, sql);
	q->sql_cap = sql_cap;
	cq->norm = cq->values_redacted ? q->sql : at(a, norm);
	cq->norm_len = cq->values_redacted ? sql_cap : norm_len;
	q->stmt_name = at(a, name);
	q->api = at(a, api);
	q->result_status = at(a, rst);
	q->cmd_status = at(a, cmd) ? at(a, cmd) : "";
	q->sqlstate = at(a, state) ? at(a, state) : "";
	q->error = at(a, error) ? at(a, error) : "";
	q->comm = at(a, comm) ? at(a, comm) : "";
	q->stack_error = at(a, serr);
	q->stack = n ? a->frames : NULL;
	q->nframes = n;
	return 0;
}

int capture_get_close(const void *p, uint32_t len, struct capture_close *c)
{
	struct dec d = { .p = p, .left = len };

	c->pid = (uint32_t)dec_u(&d, 4);
	c->conn = dec_u(&d, 8);
	return d.bad || d.left ? -1 : 0;
}

int capture_get_tick(const void *p, uint32_t len, struct capture_tick *t)
{
	struct dec d = { .p = p, .left = len };

	t->now_ns = dec_u(&d, 8);
	return d.bad || d.left ? -1 : 0;
}

int capture_get_summary(const void *p, uint32_t len, struct run_summary *s,
			struct capture_arena *a)
{
	struct dec d = { .p = p, .left = len, .a = a };
	struct assembler_stats *st = &s->asm_stats;
	size_t reason;

	a->len = 0;
	memset(s, 0, sizeof(*s));
	st->queries = dec_u(&d, 8);
	st->prepares = dec_u(&d, 8);
	st->errors = dec_u(&d, 8);
	st->unfinished = dec_u(&d, 8);
	st->lost_ends = dec_u(&d, 8);
	st->lost_sends = dec_u(&d, 8);
	st->forks = dec_u(&d, 8);
	st->bad_records = dec_u(&d, 8);
	s->dropped_send = dec_u(&d, 8);
	s->dropped_end = dec_u(&d, 8);
	s->dropped_other = dec_u(&d, 8);
	s->conn_table_full = dec_u(&d, 8);
	s->dropped_stack = dec_u(&d, 8);
	s->processes = dec_u(&d, 8);
	s->seconds = dec_u(&d, 8) / 1e9;
	reason = dec_str(&d, NULL);
	if (d.bad || d.left)
		return -1;
	s->end_reason = at(a, reason) ? at(a, reason) : "";
	return 0;
}
