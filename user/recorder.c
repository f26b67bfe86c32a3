#include "recorder.h"

#include <stdlib.h>
#include <string.h>

#define FLUSH_EVERY_NS 1000000000ULL

struct recorder {
	struct capfile_writer *w;
	bool show_values;
	bool failed;
	char err[256];
	uint64_t last_flush_ns;
	uint64_t queries;
};

struct recorder *recorder__open(const char *path, unsigned mode,
				const struct capture_meta *meta,
				char *err, size_t errlen)
{
	struct recorder *r = calloc(1, sizeof(*r));

	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->show_values = meta->show_values;
	r->w = capfile_writer__open(path, mode, err, errlen);
	if (!r->w || capture_put_meta(r->w, meta, err, errlen) ||
	    capfile_writer__flush(r->w)) {
		capfile_writer__close(r->w);
		free(r);
		return NULL;
	}
	return r;
}

static int failed(struct recorder *r, int rc)
{
	if (rc)
		r->failed = true;
	return rc;
}

int recorder__query(struct recorder *r, const struct pq_query *q,
		    const struct fp_result *fr)
{
	struct capture_query cq = { .q = *q };

	if (r->failed)
		return -1;
	if (fr) {
		cq.fp = fr->fp;
		cq.values = fr->values;
		cq.values_known = fr->values_known;
		cq.parsed = fr->parsed;
		cq.cls = fr->cls;
		cq.norm = fr->norm ? fr->norm->s : "";
		cq.norm_len = fr->norm ? fr->norm->len : 0;
	}
	if (!r->show_values) {
		/* the text without its values; a prepare keeps it as it is
		 * ($n parameters hold no values) */
		if (fr) {
			cq.q.sql = cq.norm;
			cq.q.sql_cap = cq.norm_len;
			cq.values_redacted = true;
		}
		cq.q.error = "";	/* messages can quote values */
	}
	r->queries++;
	return failed(r, capture_put_query(r->w, &cq, r->err, sizeof(r->err)));
}

int recorder__conn_closed(struct recorder *r, uint32_t pid, uint64_t conn)
{
	if (r->failed)
		return -1;
	return failed(r, capture_put_close(r->w, pid, conn, r->err, sizeof(r->err)));
}

int recorder__tick(struct recorder *r, uint64_t now_ns)
{
	if (r->failed)
		return -1;
	if (failed(r, capture_put_tick(r->w, now_ns, r->err, sizeof(r->err))))
		return -1;
	if (now_ns - r->last_flush_ns >= FLUSH_EVERY_NS) {
		r->last_flush_ns = now_ns;
		if (capfile_writer__flush(r->w)) {
			snprintf(r->err, sizeof(r->err), "cannot write the capture");
			return failed(r, -1);
		}
	}
	return 0;
}

int recorder__close(struct recorder *r, const struct run_summary *s)
{
	int rc = r->failed ? -1 : 0;

	if (!rc && s)
		rc = failed(r, capture_put_summary(r->w, s, r->err, sizeof(r->err)));
	if (capfile_writer__close(r->w) && !rc) {
		snprintf(r->err, sizeof(r->err), "cannot finish the capture file");
		rc = failed(r, -1);
	}
	r->w = NULL;
	return rc;
}

const char *recorder__error(const struct recorder *r)
{
	return r->failed ? r->err : NULL;
}

uint64_t recorder__queries(const struct recorder *r)
{
	return r->queries;
}

void recorder__free(struct recorder *r)
{
	if (!r)
		return;
	capfile_writer__close(r->w);
	free(r);
}
