/*
 * A lexer for PostgreSQL SQL text, close enough to the server's own
 * (src/backend/parser/scan.l, PostgreSQL 15) that two texts with the same
 * token stream are the same statement to libpg_query.
 *
 * Invariants: tokens point into the caller's buffer (no copies, no
 * allocation, cannot fail); every byte of the input belongs to exactly one
 * token or to the gap (whitespace and comments) before one.  Where scan.l
 * would reject the text or where we do not model it exactly, the lexer
 * returns SQL_JUNK instead of guessing, so callers keep such bytes verbatim
 * and never treat them as a constant.
 *
 * Used by the fingerprint fast path (sqlkey.c, which inlines the body from
 * sqllex_impl.h), statement classification, Django hints and reports.
 */
#ifndef PQSNOOP_SQLLEX_H
#define PQSNOOP_SQLLEX_H

#include <stdbool.h>
#include <stddef.h>

enum sql_tok {
	SQL_EOF = 0,
	SQL_WORD,	/* identifier or keyword: users, SELECT, x$1 */
	SQL_QIDENT,	/* "quoted identifier", U&"..." */
	SQL_STRING,	/* '..', E'..', N'..', B'..', X'..', U&'..', $tag$..$tag$ */
	SQL_NUMBER,	/* 42, 4.2, .5, 5., 1e10 */
	SQL_PARAM,	/* $1 */
	SQL_OP,		/* a run of operator characters: = <> >= ->> ~* */
	SQL_PUNCT,	/* ( ) [ ] , ; . : and :: */
	SQL_JUNK,	/* bytes scan.l rejects (0x1F, unterminated quotes, \v, ...) */
};

/* sql_token.flags */
#define SQL_TF_GAP	 1u	/* whitespace or a comment comes before the token */
#define SQL_TF_NEWLINE	 2u	/* ... and the gap holds a newline */
#define SQL_TF_COMMENT	 4u	/* ... and the gap holds a comment */
#define SQL_TF_RISKY	 8u	/* a literal whose content alone can make the parse
				   fail (E'' with \digit \x \u escapes, U&''):
				   never treat it as an ordinary constant */

struct sql_token {
	enum sql_tok type;
	unsigned flags;
	const char *s;		/* the token's bytes, in the input */
	size_t len;
	const char *gap;	/* whitespace/comments before it */
	size_t gap_len;
};

struct sql_lexer {
	const char *p, *end;
};

static inline void sql_lexer_init(struct sql_lexer *lx, const char *s, size_t n)
{
	lx->p = s;
	lx->end = s + n;
}

/* Next token; SQL_EOF (with the trailing gap) at the end, again and again. */
void sql_lex(struct sql_lexer *lx, struct sql_token *t);

/* Case-insensitive comparison of an unquoted word with an upper-case keyword. */
bool sql_word_is(const struct sql_token *t, const char *kw);

/* The same for a string literal keyword, with the length test first: cheap
 * enough for every token of the fast path. */
#define SQL_WORD_IS(t, kw) \
	((t)->type == SQL_WORD && (t)->len == sizeof(kw) - 1 && sql_word_is((t), (kw)))

static inline bool sql_tok_is(const struct sql_token *t, enum sql_tok type,
			      const char *s)
{
	size_t i;

	if (t->type != type)
		return false;
	for (i = 0; i < t->len; i++)
		if (!s[i] || s[i] != t->s[i])
			return false;
	return s[i] == '\0';
}

/* A literal constant (strings and numbers; not parameters, NULL or TRUE). */
static inline bool sql_tok_is_literal(const struct sql_token *t)
{
	return t->type == SQL_STRING || t->type == SQL_NUMBER;
}

#endif /* PQSNOOP_SQLLEX_H */
