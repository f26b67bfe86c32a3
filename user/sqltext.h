/*
 * What a statement is and how to show it without its data.
 *
 * sql_classify() sorts statements into the ones detection counts and the
 * ones it skips (transaction control, session settings, connection setup,
 * cursor fetches).  sql_render() writes the text the reports show: comments
 * dropped, whitespace collapsed, constants replaced by $n.
 *
 * Both work on any bytes (hostile text included) and allocate nothing but
 * sql_render()'s result.
 */
#ifndef PQSNOOP_SQLTEXT_H
#define PQSNOOP_SQLTEXT_H

#include <stdbool.h>
#include <stddef.h>

enum stmt_class {
	STMT_WORK = 0,	/* a statement that does work: counted by detection */
	STMT_TXN,	/* BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE, ... */
	STMT_SESSION,	/* SET, SHOW, RESET, DISCARD, connection setup and
			   pool pings: SELECT 1, set_config(), catalog lookups */
	STMT_CURSOR,	/* FETCH, MOVE, CLOSE: chunked reads of one query */
	STMT_EMPTY,	/* no statement at all */
};

/* Neither counted nor allowed to break a run of repeats. */
static inline bool stmt_class_neutral(enum stmt_class c)
{
	return c != STMT_WORK;
}

const char *stmt_class_name(enum stmt_class c);

/* Class of the first statement in s[0..n). */
enum stmt_class sql_classify(const char *s, size_t n);

/* sql_render() flags */
#define SQL_RENDER_CONSTANTS	1u	/* every constant becomes $n */
#define SQL_RENDER_STRINGS	2u	/* string constants become $n (numbers stay) */
#define SQL_RENDER_TRUNCATED	4u	/* the text was cut: drop its last token, end in "..." */

/*
 * Display form of s[0..n): tokens as they are, one space where the text had
 * whitespace or comments, constants replaced as flags ask (numbered after
 * the highest $n already in the text).  Returns a NUL-terminated malloc()ed
 * string (*len set when len is not NULL), or NULL when out of memory.
 */
char *sql_render(const char *s, size_t n, unsigned flags, size_t *len);

#endif /* PQSNOOP_SQLTEXT_H */
