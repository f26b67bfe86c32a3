/*
 * A minimal unit-test harness: each tests/unit/test_*.c is one program.
 *
 *	static void test_something(void) { CHECK(x == 1); CHECK_STR(a, "b"); }
 *	int main(void) { RUN(test_something); return unit_summary(); }
 *
 * A failed CHECK prints file:line and the expression and marks the current
 * test failed (the test goes on, so one run shows every failure).
 * unit_summary() prints "N passed, N failed" and returns the exit status.
 */
#ifndef PQSNOOP_UNIT_H
#define PQSNOOP_UNIT_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed, unit_cur_failed;
static const char *unit_cur_name;

#define CHECK(expr) do { \
	if (!(expr)) { \
		fprintf(stderr, "%s:%d: %s: CHECK(%s) failed\n", \
			__FILE__, __LINE__, unit_cur_name, #expr); \
		unit_cur_failed = 1; \
	} } while (0)

#define CHECK_INT(a, b) do { \
	long long _a = (long long)(a), _b = (long long)(b); \
	if (_a != _b) { \
		fprintf(stderr, "%s:%d: %s: %s == %lld, expected %s == %lld\n", \
			__FILE__, __LINE__, unit_cur_name, #a, _a, #b, _b); \
		unit_cur_failed = 1; \
	} } while (0)

#define CHECK_STR(a, b) do { \
	const char *_a = (a), *_b = (b); \
	if (!_a || !_b || strcmp(_a, _b) != 0) { \
		fprintf(stderr, "%s:%d: %s: %s is \"%s\", expected \"%s\"\n", \
			__FILE__, __LINE__, unit_cur_name, #a, \
			_a ? _a : "(null)", _b ? _b : "(null)"); \
		unit_cur_failed = 1; \
	} } while (0)

#define RUN(fn) do { \
	unit_cur_name = #fn; unit_cur_failed = 0; \
	fn(); \
	if (unit_cur_failed) { unit_failed++; fprintf(stderr, "FAIL %s\n", #fn); } \
	else unit_passed++; \
	} while (0)

static inline int unit_summary(void)
{
	printf("%d passed, %d failed\n", unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}

/* Capture what a writer prints: open_memstream wrapper. */
struct unit_buf { char *data; size_t len; FILE *f; };

static inline FILE *unit_buf_open(struct unit_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->f = open_memstream(&b->data, &b->len);
	return b->f;
}

/* Closes the stream; b->data stays valid until free(b->data). */
static inline const char *unit_buf_close(struct unit_buf *b)
{
	fclose(b->f);
	b->f = NULL;
	return b->data;
}

#endif /* PQSNOOP_UNIT_H */
