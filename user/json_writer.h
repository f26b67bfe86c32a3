/*
 * A small streaming JSON writer (after bpftool's json_writer.h): it tracks
 * nesting and commas so callers only say what comes next.
 *
 *	struct json_writer *jw = jw__new(stdout);
 *	jw_start_object(jw);
 *	jw_key(jw, "sql"); jw_string_n(jw, text, len);
 *	jw_end_object(jw);
 *	jw_newline(jw);		// one JSON Lines record done
 *	jw__free(jw);
 *
 * Strings go through esc_json() (escape.h): hostile text stays inert.  Nesting
 * deeper than JW_MAX_DEPTH is a programming error and aborts.  The writer
 * never owns the FILE.  jw__new() returns NULL only when out of memory.
 */
#ifndef PQSNOOP_JSON_WRITER_H
#define PQSNOOP_JSON_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JW_MAX_DEPTH 32

struct json_writer;

struct json_writer *jw__new(FILE *f);
void jw__free(struct json_writer *jw);

void jw_start_object(struct json_writer *jw);
void jw_end_object(struct json_writer *jw);
void jw_start_array(struct json_writer *jw);
void jw_end_array(struct json_writer *jw);
/* Ends a top-level value with "\n" (JSON Lines) and resets comma state. */
void jw_newline(struct json_writer *jw);

void jw_key(struct json_writer *jw, const char *key);
void jw_string(struct json_writer *jw, const char *s);	/* NULL writes null */
void jw_string_n(struct json_writer *jw, const char *s, size_t n);
void jw_int(struct json_writer *jw, int64_t v);
void jw_uint(struct json_writer *jw, uint64_t v);
void jw_double(struct json_writer *jw, double v);	/* non-finite: null */
void jw_bool(struct json_writer *jw, bool v);
void jw_null(struct json_writer *jw);
/* "0x..." hexadecimal as a string (addresses). */
void jw_hex(struct json_writer *jw, uint64_t v);

/* key + value in one call */
void jw_kv_string(struct json_writer *jw, const char *key, const char *s);
void jw_kv_int(struct json_writer *jw, const char *key, int64_t v);
void jw_kv_uint(struct json_writer *jw, const char *key, uint64_t v);
void jw_kv_bool(struct json_writer *jw, const char *key, bool v);
void jw_kv_double(struct json_writer *jw, const char *key, double v);

/* A Python frame as {"file":..,"func":..,"line":..}; NULL strings are null.
 * Every output that shows stacks writes frames with this. */
void jw_frame(struct json_writer *jw, const char *file, const char *func, uint32_t line);

/* Bytes of string data replaced by U+FFFD so far (invalid UTF-8). */
size_t jw_replaced(const struct json_writer *jw);

#endif /* PQSNOOP_JSON_WRITER_H */
