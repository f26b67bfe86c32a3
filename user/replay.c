#include "replay.h"

#include <stdio.h>

int replay_capture(const char *path, const struct replay_handlers *h,
		   char *err, size_t errlen)
{
	struct capfile_reader *rd = capfile_reader__open(path, err, errlen);
	struct capture_arena *a;
	const void *p;
	uint32_t len;
	uint16_t type;
	int rc, result = 1;
	bool meta = false, summary = false;

	if (!rd)
		return -1;
	a = capture_arena__new();
	if (!a) {
		snprintf(err, errlen, "out of memory");
		capfile_reader__close(rd);
		return -1;
	}
	while ((rc = capfile_reader__next(rd, &type, &p, &len, err, errlen)) == 1) {
		uint64_t rec = capfile_reader__count(rd);
		bool bad = false;

		if (!meta && type != CAP_META) {
			snprintf(err, errlen, "%s: capture damaged: it does not start with its description", path);
			break;
		}
		switch (type) {
		case CAP_META: {
			struct capture_meta m;

			bad = meta || capture_get_meta(p, len, &m, a);
			if (!bad && h->meta)
				h->meta(&m, h->ctx);
			meta = true;
			break;
		}
		case CAP_QUERY: {
			struct capture_query cq;
			struct fp_result fr = {0};

			bad = capture_get_query(p, len, &cq, a) != 0;
			if (bad)
				break;
			fr.fp = cq.fp;
			fr.values = cq.values;
			fr.values_known = cq.values_known;
			fr.parsed = cq.parsed;
			fr.cls = cq.cls;
			fr.norm = fp_text__new(cq.norm ? cq.norm : "", cq.norm ? cq.norm_len : 0);
			if (!fr.norm) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			if (h->query)
				h->query(&cq, &fr, h->ctx);
			fp_text__put(fr.norm);
			break;
		}
		case CAP_CONN_CLOSE: {
			struct capture_close c;

			bad = capture_get_close(p, len, &c) != 0;
			if (!bad && h->conn_closed)
				h->conn_closed(c.pid, c.conn, h->ctx);
			break;
		}
		case CAP_TICK: {
			struct capture_tick t;

			bad = capture_get_tick(p, len, &t) != 0;
			if (!bad && h->tick)
				h->tick(t.now_ns, h->ctx);
			break;
		}
		case CAP_SUMMARY: {
			struct run_summary s;

			bad = capture_get_summary(p, len, &s, a) != 0;
			if (!bad && h->summary)
				h->summary(&s, h->ctx);
			summary = !bad;
			break;
		}
		default:
			/* a newer pqsnoop's record: skip it, it has a length */
			break;
		}
		if (bad) {
			snprintf(err, errlen, "capture damaged at record %llu (malformed contents)",
				 (unsigned long long)rec);
			goto out;
		}
		if (summary) {
			/* the summary is the last record: the stream must end
			 * cleanly right after it (gzip's trailer included) */
			rc = capfile_reader__next(rd, &type, &p, &len, err, errlen);
			if (rc == 1)
				snprintf(err, errlen, "capture damaged: records after its summary");
			if (rc != 0)
				summary = false;
			break;
		}
	}
	if (rc == 0 || summary) {
		if (!meta)
			snprintf(err, errlen, "%s holds no records", path);
		else if (!summary)
			snprintf(err, errlen, "capture has no summary: the recording run did not finish (killed?); what it recorded is reported");
		else
			result = 0;
	}
out:
	if (!meta)
		result = -1;	/* nothing of it could be used */
	capture_arena__free(a);
	capfile_reader__close(rd);
	return result;
}
