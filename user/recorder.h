/*
 * Writing a capture while tracing: what the live detector sees, in the
 * order it sees it (capture.h), flushed at least every second so a run cut
 * short still leaves a readable file.
 *
 * Production data: unless show_values, a query's SQL is replaced by its
 * normalized text ($n for constants) and its error message by nothing (the
 * SQLSTATE stays): no literal value reaches the file.  Files are created
 * 0600 (root only) unless the caller asks otherwise.
 */
#ifndef PQSNOOP_RECORDER_H
#define PQSNOOP_RECORDER_H

#include <stdbool.h>
#include <stdint.h>

#include "capture.h"
#include "fingerprint.h"

struct recorder;

/* Creates path and writes the META record.  NULL with err filled. */
struct recorder *recorder__open(const char *path, unsigned mode,
				const struct capture_meta *meta,
				char *err, size_t errlen);
/* Each returns 0, or -1 with a message in the recorder's error (the first
 * error sticks; later calls do nothing). */
int recorder__query(struct recorder *r, const struct pq_query *q,
		    const struct fp_result *fr);
int recorder__conn_closed(struct recorder *r, uint32_t pid, uint64_t conn);
int recorder__tick(struct recorder *r, uint64_t now_ns);
/* Writes SUMMARY (when s is not NULL) and closes.  Returns 0 or -1. */
int recorder__close(struct recorder *r, const struct run_summary *s);
/* The first error, or NULL. */
const char *recorder__error(const struct recorder *r);
uint64_t recorder__queries(const struct recorder *r);
void recorder__free(struct recorder *r);

#endif /* PQSNOOP_RECORDER_H */
