/*
 * Cache keys for SQL text: the fingerprint fast path (fingerprint.c).
 *
 * A key is the token stream of the text (sqllex.h) with every run of
 * whitespace reduced to one space and every run holding a comment to a mark
 * of its own (libpg_query's lookahead fails across a comment: "x NOT -- c\n
 * IN (1)" is a syntax error, "x NOT IN (1)" is not; the gap between two
 * string constants is kept whole: "'a'\n'b'" is one constant).  Tokens stay
 * verbatim, so two texts with the same key are the same statement to
 * PostgreSQL's lexer, with these exceptions, each one a difference
 * libpg_query's fingerprint ignores (checked against libpg_query on a corpus
 * and by fuzzing in tests/unit/test_fingerprint.c):
 *
 *   SQL_KEY_SHAPE: constants become a placeholder of their kind (string,
 *     E'', N'', B'', X'', integer, decimal; $n parameters their own kind);
 *     an IN (...) or ARRAY[...] list of single constants, and identical
 *     consecutive rows of a VALUES list, keep one element; cursor and
 *     savepoint names become a placeholder.  Constants whose content alone
 *     can make the parse fail (U&'', E'' with numeric escapes) stay verbatim.
 *   SQL_KEY_EXACT: nothing is replaced.
 *   SQL_KEY_TRUNCATED: SHAPE for a text cut short by the capture: the last
 *     token (maybe cut) is dropped and an unfinished list keeps one element,
 *     so texts cut at different places of the same list share a key.
 *
 * A SHAPE key is only as good as the positions of its constants: whether a
 * constant is one that libpg_query ignores (an A_Const) depends on where it
 * stands, which only a parse tells.  fingerprint.c therefore trusts a SHAPE
 * key only after checking one parse of it (sql_key.abstract_ok and nconst).
 *
 * The three modes start with different bytes ('A', 'X', 'T'), so their keys
 * never collide.  Placeholders are byte 0x01 and a letter; a 0x01 in the text
 * is written twice, so placeholders cannot be forged.
 */
#ifndef PQSNOOP_SQLKEY_H
#define PQSNOOP_SQLKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sql_key_mode {
	SQL_KEY_SHAPE,
	SQL_KEY_EXACT,
	SQL_KEY_TRUNCATED,
};

struct sql_key {
	char *buf;		/* the key; owned, reused between builds */
	size_t len, cap;
	uint64_t hash;		/* of buf[0..len) */
	/*
	 * Hash of the key (comments read as spaces) and every replaced
	 * constant's text: equal values (and equal fingerprints) mean the same
	 * statement with the same constants.
	 */
	uint64_t values;
	unsigned nconst;	/* constants replaced (parameters and names not counted) */
	bool has_params;	/* $n parameters: the values are not in the text */
	/*
	 * Every statement starts with a keyword (SELECT INSERT UPDATE DELETE
	 * WITH VALUES TABLE DECLARE, transaction control, SET/SHOW/RESET,
	 * FETCH/MOVE/CLOSE) whose constants are all A_Const to libpg_query.
	 * Others (CREATE ROLE ... PASSWORD 'x', COPY 'file', NOTIFY c, 'x') keep
	 * constants that change the fingerprint.
	 */
	bool abstract_ok;
};

static inline void sql_key_init(struct sql_key *k)
{
	*k = (struct sql_key){ 0 };
}

void sql_key_release(struct sql_key *k);

/* Builds the key of s[0..n) into k.  Returns 0, or -ENOMEM (k is then
 * unusable until the next successful build). */
int sql_key_build(struct sql_key *k, const char *s, size_t n, enum sql_key_mode mode);

#endif /* PQSNOOP_SQLKEY_H */
