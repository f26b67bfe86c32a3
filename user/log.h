/*
 * Messages to the user: one line each on stderr, prefixed "pqsnoop: ".
 * warn() is for problems, info() for progress the user should see (attached,
 * waiting), debug() only with -v.  In JSON mode (log_json), warnings are also
 * written to stdout as {"type":"error","message":...} lines so a consumer
 * reading only stdout still learns why a run failed.
 */
#ifndef PQSNOOP_LOG_H
#define PQSNOOP_LOG_H

#include <stdbool.h>
#include <stdio.h>

extern int log_verbosity;	/* 0 default, 1 with -v */
extern bool log_json;

/* For the command line parser: one more -v. */
void log_verbosity_inc(void);

void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* PQSNOOP_LOG_H */
