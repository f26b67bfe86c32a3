/*
 * The lexer's body, for sqllex.c and for the one hot loop that wants it
 * inlined (sqlkey.c: a call per token costs about as much as the token).
 * Include only from those two files; everyone else calls sql_lex().
 */
#ifndef PQSNOOP_SQLLEX_IMPL_H
#define PQSNOOP_SQLLEX_IMPL_H

#include <string.h>

#include "sqllex.h"

/*
 * Character classes from scan.l.  PostgreSQL 15's `space` is [ \t\n\r\f]:
 * \v is not whitespace there, so it is junk here too.
 */
enum {
	C_SPACE = 1, C_IDSTART = 2, C_IDCONT = 4, C_DIGIT = 8, C_OP = 16,
	C_PUNCT = 32,
};

/* generated from the rules above: [ \t\n\r\f] space, [A-Za-z_\x80-\xff]
 * identifier start, [0-9$] identifier continuation, the operator characters
 * of scan.l's op_chars, and ( ) [ ] , ; . : punctuation */
static const unsigned char cls[256] = {
	 0,  0,  0,  0,  0,  0,  0,  0,  0,  1,  1,  0,  1,  1,  0,  0,	/* 0x00 */
	 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,	/* 0x10 */
	 1, 16,  0, 16,  4, 16, 16,  0, 32, 32, 16, 16, 32, 16, 32, 16,	/* 0x20 */
	12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 32, 32, 16, 16, 16, 16,	/* 0x30 */
	16,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,	/* 0x40 */
	 6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6, 32,  0, 32, 16,  6,	/* 0x50 */
	16,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,	/* 0x60 */
	 6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  0, 16,  0, 16,  0,	/* 0x70 */
	 6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,	/* 0x80 */
	 6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,	/* 0x90 */
	 6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,	/* 0xa0 */
	 6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,	/* 0xb0 */
	 6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,	/* 0xc0 */
	 6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,	/* 0xd0 */
	 6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,	/* 0xe0 */
	 6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,  6,	/* 0xf0 */
};

static inline unsigned ccls(const char *p)
{
	return cls[(unsigned char)*p];
}

/* Whitespace and comments.  Returns false on an unterminated block comment,
 * leaving lx->p at its start. */
static bool skip_gap(struct sql_lexer *lx, unsigned *flags)
{
	const char *p = lx->p, *end = lx->end;

	while (p < end) {
		if (ccls(p) & C_SPACE) {
			if (*p == '\n' || *p == '\r')
				*flags |= SQL_TF_NEWLINE;
			p++;
		} else if (*p == '-' && p + 1 < end && p[1] == '-') {
			*flags |= SQL_TF_COMMENT;
			while (p < end && *p != '\n' && *p != '\r')
				p++;
		} else if (*p == '/' && p + 1 < end && p[1] == '*') {
			/* block comments nest in PostgreSQL */
			const char *q = p + 2;
			int depth = 1;

			while (q < end && depth) {
				if (*q == '/' && q + 1 < end && q[1] == '*') {
					depth++;
					q += 2;
				} else if (*q == '*' && q + 1 < end && q[1] == '/') {
					depth--;
					q += 2;
				} else {
					q++;
				}
			}
			if (depth) {
				lx->p = p;
				return false;
			}
			*flags |= SQL_TF_COMMENT;
			p = q;
		} else {
			break;
		}
	}
	lx->p = p;
	return true;
}

/* '...' with '' as the escaped quote; p is after the opening quote. */
static const char *end_quoted(const char *p, const char *end, char q)
{
	for (;;) {
		while (p < end && *p != q)	/* short: no call to memchr */
			p++;
		if (p >= end)
			return NULL;
		if (p + 1 < end && p[1] == q) {
			p += 2;
			continue;
		}
		return p + 1;
	}
}

/* E'...': backslash escapes anything; p is after the opening quote. */
static const char *end_estring(const char *p, const char *end, bool *risky)
{
	while (p < end) {
		if (*p == '\\') {
			if (p + 1 < end) {
				char c = p[1];

				/* octal, hex and Unicode escapes can produce
				 * invalid text: the parse then fails */
				if ((c >= '0' && c <= '7') || c == 'x' ||
				    c == 'u' || c == 'U')
					*risky = true;
			}
			p += 2;
		} else if (*p == '\'') {
			if (p + 1 < end && p[1] == '\'') {
				p += 2;
				continue;
			}
			return p + 1;
		} else {
			p++;
		}
	}
	return NULL;
}

/* $tag$...$tag$; p at the first '$'.  NULL: not a dollar quote or
 * unterminated (*unterminated tells which). */
static const char *end_dollar(const char *p, const char *end, bool *unterminated)
{
	const char *q = p + 1, *body;
	size_t taglen;

	*unterminated = false;
	if (q < end && (ccls(q) & C_IDSTART)) {
		q++;
		while (q < end && (ccls(q) & (C_IDSTART | C_DIGIT)))
			q++;
	}
	if (q >= end || *q != '$')
		return NULL;
	taglen = q + 1 - p;
	body = q + 1;
	for (const char *s = body; s < end; s++) {
		s = memchr(s, '$', end - s);
		if (!s)
			break;
		if ((size_t)(end - s) >= taglen && memcmp(s, p, taglen) == 0)
			return s + taglen;
	}
	*unterminated = true;
	return NULL;
}

static const char *end_number(const char *p, const char *end, enum sql_tok *type,
			      bool *is_float)
{
	const char *q;

	*type = SQL_NUMBER;
	*is_float = false;
	while (p < end && (ccls(p) & C_DIGIT))
		p++;
	/* "1..2" is 1 then ".." (decimalfail) */
	if (p < end && *p == '.' && !(p + 1 < end && p[1] == '.')) {
		*is_float = true;
		p++;
		while (p < end && (ccls(p) & C_DIGIT))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		q = p + 1;
		if (q < end && (*q == '+' || *q == '-'))
			q++;
		if (q < end && (ccls(q) & C_DIGIT)) {
			*is_float = true;
			p = q;
			while (p < end && (ccls(p) & C_DIGIT))
				p++;
		} else {
			/* 1e, 1e+: trailing junk in PostgreSQL 15 */
			*type = SQL_JUNK;
			p = q;
		}
	}
	/* 0x1F, 1_000, 12abc: "trailing junk after numeric literal" */
	if (p < end && (ccls(p) & C_IDSTART)) {
		*type = SQL_JUNK;
		while (p < end && (ccls(p) & C_IDCONT))
			p++;
	}
	return p;
}

static inline void sql_lex_impl(struct sql_lexer *lx, struct sql_token *t)
{
	const char *start = lx->p, *p, *end = lx->end, *q;
	bool risky = false, unterminated, is_float;

	t->flags = 0;
	if (!skip_gap(lx, &t->flags)) {
		/* unterminated comment: the rest is junk */
		t->gap = start;
		t->gap_len = lx->p - start;
		if (t->gap_len)
			t->flags |= SQL_TF_GAP;
		t->type = SQL_JUNK;
		t->s = lx->p;
		t->len = end - lx->p;
		lx->p = end;
		return;
	}
	t->gap = start;
	t->gap_len = lx->p - start;
	if (t->gap_len)
		t->flags |= SQL_TF_GAP;
	p = lx->p;
	t->s = p;
	if (p >= end) {
		t->type = SQL_EOF;
		t->len = 0;
		return;
	}

	unsigned c = ccls(p);
	char ch = *p;

	if (c & C_IDSTART) {
		char l = ch | 0x20;	/* ASCII lower case */

		if (p + 1 < end && p[1] == '\'') {
			if (l == 'e') {
				q = end_estring(p + 2, end, &risky);
				goto string;
			}
			if (l == 'n') {
				q = end_quoted(p + 2, end, '\'');
				goto string;
			}
			if (l == 'b' || l == 'x') {
				/* no doubled quotes inside bit strings */
				q = memchr(p + 2, '\'', end - p - 2);
				q = q ? q + 1 : NULL;
				goto string;
			}
		}
		if (l == 'u' && p + 2 < end && p[1] == '&') {
			if (p[2] == '\'') {
				risky = true;	/* \XXXX escapes are checked */
				q = end_quoted(p + 3, end, '\'');
				goto string;
			}
			if (p[2] == '"') {
				q = end_quoted(p + 3, end, '"');
				goto qident;
			}
		}
		q = p + 1;
		while (q < end && (ccls(q) & C_IDCONT))
			q++;
		t->type = SQL_WORD;
		goto done;
	}
	if ((c & C_DIGIT) || (ch == '.' && p + 1 < end && (ccls(p + 1) & C_DIGIT))) {
		q = end_number(p, end, &t->type, &is_float);
		goto done;
	}
	switch (ch) {
	case '\'':
		q = end_quoted(p + 1, end, '\'');
		goto string;
	case '"':
		q = end_quoted(p + 1, end, '"');
		goto qident;
	case '$':
		if (p + 1 < end && (ccls(p + 1) & C_DIGIT)) {
			q = p + 1;
			while (q < end && (ccls(q) & C_DIGIT))
				q++;
			t->type = SQL_PARAM;
			if (q < end && (ccls(q) & C_IDSTART)) {
				t->type = SQL_JUNK;
				while (q < end && (ccls(q) & C_IDCONT))
					q++;
			}
			goto done;
		}
		q = end_dollar(p, end, &unterminated);
		if (q || unterminated)
			goto string;
		q = p + 1;
		t->type = SQL_JUNK;
		goto done;
	}
	if (c & C_OP) {
		/* an operator ends where a comment starts */
		q = p;
		while (q < end && (ccls(q) & C_OP)) {
			if (q > p && q + 1 < end &&
			    ((q[0] == '-' && q[1] == '-') || (q[0] == '/' && q[1] == '*')))
				break;
			q++;
		}
		t->type = SQL_OP;
		goto done;
	}
	if (c & C_PUNCT) {
		q = p + 1;
		if (ch == ':' && q < end && *q == ':')
			q++;
		t->type = SQL_PUNCT;
		goto done;
	}
	q = p + 1;
	t->type = SQL_JUNK;
	goto done;

qident:
	t->type = q ? SQL_QIDENT : SQL_JUNK;
	if (!q)
		q = end;	/* unterminated: the rest is junk */
	goto done;
string:
	if (!q) {	/* unterminated */
		t->type = SQL_JUNK;
		q = end;
	} else {
		t->type = SQL_STRING;
		if (risky)
			t->flags |= SQL_TF_RISKY;
	}
done:
	t->len = q - p;
	lx->p = q;
}

#endif /* PQSNOOP_SQLLEX_IMPL_H */
