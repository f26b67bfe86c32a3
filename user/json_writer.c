#include "json_writer.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"

struct json_writer {
	FILE *f;
	int depth;
	/* per level: has a value been written (so the next one needs a comma) */
	bool has_item[JW_MAX_DEPTH + 1];
	bool after_key;		/* a key was just written: no comma before value */
	size_t replaced;
};

struct json_writer *jw__new(FILE *f)
{
	struct json_writer *jw = calloc(1, sizeof(*jw));

	if (jw)
		jw->f = f;
	return jw;
}

void jw__free(struct json_writer *jw)
{
	free(jw);
}

/* Called before every value or key: writes the separating comma. */
static void jw_sep(struct json_writer *jw)
{
	if (jw->after_key) {
		jw->after_key = false;
		return;
	}
	if (jw->has_item[jw->depth])
		fputc(',', jw->f);
	jw->has_item[jw->depth] = true;
}

static void jw_push(struct json_writer *jw, char c)
{
	jw_sep(jw);
	if (jw->depth >= JW_MAX_DEPTH)
		abort();
	fputc(c, jw->f);
	jw->has_item[++jw->depth] = false;
}

static void jw_pop(struct json_writer *jw, char c)
{
	if (jw->depth <= 0)
		abort();
	jw->depth--;
	fputc(c, jw->f);
}

void jw_start_object(struct json_writer *jw) { jw_push(jw, '{'); }
void jw_end_object(struct json_writer *jw) { jw_pop(jw, '}'); }
void jw_start_array(struct json_writer *jw) { jw_push(jw, '['); }
void jw_end_array(struct json_writer *jw) { jw_pop(jw, ']'); }

void jw_newline(struct json_writer *jw)
{
	fputc('\n', jw->f);
	jw->has_item[0] = false;
	jw->after_key = false;
}

void jw_key(struct json_writer *jw, const char *key)
{
	jw_sep(jw);
	fputc('"', jw->f);
	jw->replaced += esc_json(jw->f, key, strlen(key));
	fputs("\":", jw->f);
	jw->after_key = true;
}

void jw_string_n(struct json_writer *jw, const char *s, size_t n)
{
	jw_sep(jw);
	fputc('"', jw->f);
	jw->replaced += esc_json(jw->f, s, n);
	fputc('"', jw->f);
}

void jw_string(struct json_writer *jw, const char *s)
{
	if (!s) {
		jw_null(jw);
		return;
	}
	jw_string_n(jw, s, strlen(s));
}

void jw_int(struct json_writer *jw, int64_t v)
{
	jw_sep(jw);
	fprintf(jw->f, "%" PRId64, v);
}

void jw_uint(struct json_writer *jw, uint64_t v)
{
	jw_sep(jw);
	fprintf(jw->f, "%" PRIu64, v);
}

void jw_double(struct json_writer *jw, double v)
{
	jw_sep(jw);
	if (isfinite(v))
		fprintf(jw->f, "%.17g", v);
	else
		fputs("null", jw->f);
}

void jw_bool(struct json_writer *jw, bool v)
{
	jw_sep(jw);
	fputs(v ? "true" : "false", jw->f);
}

void jw_null(struct json_writer *jw)
{
	jw_sep(jw);
	fputs("null", jw->f);
}

void jw_hex(struct json_writer *jw, uint64_t v)
{
	jw_sep(jw);
	fprintf(jw->f, "\"0x%" PRIx64 "\"", v);
}

void jw_kv_string(struct json_writer *jw, const char *key, const char *s)
{
	jw_key(jw, key);
	jw_string(jw, s);
}

void jw_kv_int(struct json_writer *jw, const char *key, int64_t v)
{
	jw_key(jw, key);
	jw_int(jw, v);
}

void jw_kv_uint(struct json_writer *jw, const char *key, uint64_t v)
{
	jw_key(jw, key);
	jw_uint(jw, v);
}

void jw_kv_bool(struct json_writer *jw, const char *key, bool v)
{
	jw_key(jw, key);
	jw_bool(jw, v);
}

void jw_kv_double(struct json_writer *jw, const char *key, double v)
{
	jw_key(jw, key);
	jw_double(jw, v);
}

void jw_frame(struct json_writer *jw, const char *file, const char *func, uint32_t line)
{
	jw_start_object(jw);
	jw_kv_string(jw, "file", file);
	jw_kv_string(jw, "func", func);
	jw_kv_uint(jw, "line", line);
	jw_end_object(jw);
}

size_t jw_replaced(const struct json_writer *jw)
{
	return jw->replaced;
}
