/*
 * libFuzzer target: a capture file -> replay_capture (user/replay.h), with
 * handlers that read every field they are given.
 *
 * The reader takes a path, so each input is written to a file in /dev/shm
 * (one per fuzzing process).  The first byte picks how:
 *   bit 0 clear: the rest is the file, as is (gzip, or plain: zlib reads
 *                a file without a gzip header transparently);
 *   bit 0 set:   the rest is records without their CRC
 *                (u32 len, u16 type, u16 flags, payload[len])*; the header
 *                and correct CRCs are added, so the fuzzer reaches the
 *                payload decoders (capture.c) instead of stopping at a CRC;
 *                bit 1 set: gzip-compressed, else plain.
 * A "len" running past the input is cut to what is left.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "replay.h"

static volatile uint64_t sink;

static void touch_str(const char *s)
{
	if (!s)
		return;
	for (; *s; s++)
		sink += (unsigned char)*s;
}

static void touch_mem(const char *s, size_t n)
{
	if (!s)
		return;
	for (size_t i = 0; i < n; i++)
		sink += (unsigned char)s[i];
}

static void on_meta(const struct capture_meta *m, void *ctx)
{
	touch_str(m->version);
	touch_str(m->hostname);
	touch_str(m->target_comm);
	touch_str(m->options);
	sink += m->target_pid + m->start_ns + m->show_values + m->idle_gap_ns +
		m->pause_ns + m->max_span_ns + m->min_repeats + m->min_duplicates;
}

static void on_query(const struct capture_query *cq, const struct fp_result *fr, void *ctx)
{
	const struct pq_query *q = &cq->q;

	sink += q->kind + q->status + q->pid + q->tid + q->conn + q->start_ns +
		q->duration_ns + (uint64_t)q->rows + q->sql_len + q->truncated +
		q->sql_len_capped + q->text_unknown + q->nresults + q->stack_truncated;
	/* sql holds sql_cap bytes (not necessarily NUL-terminated) */
	touch_mem(q->sql, q->sql_cap);
	touch_str(q->stmt_name);
	touch_str(q->api);
	touch_str(q->result_status);
	touch_str(q->cmd_status);
	touch_str(q->sqlstate);
	touch_str(q->error);
	touch_str(q->comm);
	touch_str(q->stack_error);
	touch_str(pq_query_status_name(q->status));
	for (uint32_t i = 0; i < q->nframes; i++) {
		touch_str(q->stack[i].file);
		touch_str(q->stack[i].func);
		sink += q->stack[i].line;
	}
	sink += cq->fp + cq->values + cq->values_known + cq->parsed + cq->cls +
		cq->values_redacted;
	touch_mem(cq->norm, cq->norm_len);
	if (fr) {
		sink += fr->fp + fr->values + fr->values_known + fr->parsed + fr->cls;
		if (fr->norm)
			touch_mem(fr->norm->s, fr->norm->len + 1);
	}
}

static void on_close(uint32_t pid, uint64_t conn, void *ctx)
{
	sink += pid + conn;
}

static void on_tick(uint64_t now_ns, void *ctx)
{
	sink += now_ns;
}

static void on_summary(const struct run_summary *s, void *ctx)
{
	const struct assembler_stats *a = &s->asm_stats;

	sink += a->queries + a->prepares + a->errors + a->unfinished + a->lost_ends +
		a->lost_sends + a->forks + a->describes + a->bad_records + a->pending;
	sink += s->dropped_send + s->dropped_end + s->dropped_other + s->dropped_stack +
		s->conn_table_full + s->processes + (uint64_t)s->seconds;
	touch_str(s->end_reason);
	sink += run_summary_dropped(s);
}

static char path[64];

static void put_le(unsigned char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* header + the records of data[0..size) with their CRC */
static unsigned char *frame(const uint8_t *data, size_t size, size_t *outlen)
{
	unsigned char *out = malloc(16 + size + 4 * (size / 8 + 1) + 16);
	size_t o = 0, i = 0;

	if (!out)
		return NULL;
	memcpy(out, "PQSNOOP\n", 8);
	put_le(out + 8, CAPTURE_VERSION, 4);
	put_le(out + 12, 0, 4);
	o = 16;
	while (size - i >= 8) {
		uint32_t len = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 |
			(uint32_t)data[i + 2] << 16 | (uint32_t)data[i + 3] << 24;
		if (len > size - i - 8)
			len = (uint32_t)(size - i - 8);
		put_le(out + o, len, 4);
		memcpy(out + o + 4, data + i + 4, 4);	/* type, flags */
		memcpy(out + o + 8, data + i + 8, len);
		uLong crc = crc32(0L, out + o + 4, 4);
		crc = crc32(crc, out + o + 8, len);
		put_le(out + o + 8 + len, crc, 4);
		o += 12 + len;
		i += 8 + len;
	}
	memcpy(out + o, data + i, size - i);	/* a cut tail */
	o += size - i;
	*outlen = o;
	return out;
}

static int write_file(const unsigned char *p, size_t n, int gz)
{
	if (gz) {
		gzFile g = gzopen(path, "wb");
		if (!g)
			return -1;
		if (n && gzwrite(g, p, (unsigned)n) != (int)n) {
			gzclose(g);
			return -1;
		}
		return gzclose(g) == Z_OK ? 0 : -1;
	}
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	if (n && fwrite(p, 1, n, f) != n) {
		fclose(f);
		return -1;
	}
	return fclose(f) ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct replay_handlers h = {
		.meta = on_meta, .query = on_query, .conn_closed = on_close,
		.tick = on_tick, .summary = on_summary,
	};
	char err[256];
	int rc;

	if (!path[0])
		snprintf(path, sizeof(path), "/dev/shm/pqsnoop-fuzz-capture.%d", (int)getpid());
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		size_t n;
		unsigned char *f = frame(data + 1, size - 1, &n);
		if (!f)
			return 0;
		rc = write_file(f, n, data[0] & 2);
		free(f);
	} else {
		rc = write_file(data + 1, size - 1, 0);
	}
	if (rc) {
		fprintf(stderr, "cannot write %s\n", path);
		abort();
	}
	err[0] = '\0';
	rc = replay_capture(path, &h, err, sizeof(err));
	if (rc < -1 || rc > 1 || memchr(err, '\0', sizeof(err)) == NULL)
		abort();
	unlink(path);
	return 0;
}
