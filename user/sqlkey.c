#include "sqlkey.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "sqllex.h"
#include "sqllex_impl.h"

#define PH 0x01			/* placeholder / escape byte */
#define MAX_FRAMES 32		/* bracket nesting we track; deeper is kept verbatim */

enum frame_kind {
	F_PLAIN,
	F_IN,		/* IN ( ... ) */
	F_ARRAY,	/* ARRAY[ ... ] */
	F_ROW,		/* one ( ... ) row of a VALUES list */
};

struct frame {
	enum frame_kind kind;
	bool values;		/* VALUES rows follow at this level */
	bool pure;		/* F_IN/F_ARRAY: each element so far a constant */
	bool broken;		/* an empty element: collapse nothing more */
	bool has_prev;
	size_t elem_start;	/* key offset of the current element/row */
	size_t prev_start, prev_end;
	size_t first_end;	/* end of the first element (truncated lists) */
};

enum name_state { N_NONE, N_NEXT, N_WAIT_TO, N_WAIT_FROM };

struct builder {
	struct sql_key *k;
	enum sql_key_mode mode;
	size_t len;
	struct frame fr[MAX_FRAMES];
	int depth;		/* index of the innermost tracked frame */
	int untracked;		/* brackets open beyond MAX_FRAMES */
	bool stmt_start;
	bool in_fetch;		/* FETCH/MOVE: the count is not a constant */
	enum name_state names;
	enum sql_tok prev_type;
	bool prev_in, prev_array, any;
	size_t last_tok;	/* key length before the last token */
	bool comments;		/* a comment marker is in the key */
	/*
	 * Source bytes whose key bytes are the same (tokens kept verbatim,
	 * single-space gaps): copied in one go when something else comes.
	 * They are already counted in len.
	 */
	const char *run;
	size_t run_len;
	uint64_t vh;
};

void sql_key_release(struct sql_key *k)
{
	free(k->buf);
	sql_key_init(k);
}

static void put(struct builder *b, const char *s, size_t n)
{
	char *o = b->k->buf + b->len;

	if (n < 32) {	/* most tokens: a loop beats two library calls */
		for (size_t i = 0; i < n; i++) {
			if (s[i] == PH)
				*o++ = PH;
			*o++ = s[i];
		}
		b->len = o - b->k->buf;
		return;
	}
	if (!memchr(s, PH, n)) {
		memcpy(o, s, n);
		b->len += n;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] == PH)
			*o++ = PH;
		*o++ = s[i];
	}
	b->len = o - b->k->buf;
}

static void flush(struct builder *b)
{
	if (b->run_len) {
		size_t n = b->run_len;

		b->len -= n;
		b->run_len = 0;
		put(b, b->run, n);
	}
}

static void put_ph(struct builder *b, char kind, const struct sql_token *t)
{
	b->k->buf[b->len++] = PH;
	b->k->buf[b->len++] = kind;
	b->vh = hash_bytes(t->s, t->len, b->vh ^ (unsigned char)kind);
}

/* Statements whose constants are all A_Const nodes (fingerprint ignores
 * them) and that hold no DefElem string option. */
static bool abstract_keyword(const struct sql_token *t)
{
	static const char *const kw[] = {
		"SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES",
		"TABLE", "DECLARE", "SET", "SHOW", "RESET", "BEGIN", "START",
		"COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE",
		"FETCH", "MOVE", "CLOSE",
	};

	if (t->type == SQL_PUNCT && t->len == 1 && t->s[0] == '(')
		return true;
	for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
		if (sql_word_is(t, kw[i]))
			return true;
	return false;
}

static void start_statement(struct builder *b, const struct sql_token *t)
{
	b->stmt_start = false;
	if (!abstract_keyword(t))
		b->k->abstract_ok = false;
	if (SQL_WORD_IS(t, "SAVEPOINT") || SQL_WORD_IS(t, "RELEASE") ||
	    SQL_WORD_IS(t, "DECLARE") || SQL_WORD_IS(t, "CLOSE"))
		b->names = N_NEXT;
	else if (SQL_WORD_IS(t, "ROLLBACK") || SQL_WORD_IS(t, "ABORT"))
		b->names = N_WAIT_TO;
	else if (SQL_WORD_IS(t, "FETCH") || SQL_WORD_IS(t, "MOVE")) {
		b->names = N_WAIT_FROM;
		b->in_fetch = true;
	}
}

/* Is key[s..e) one constant (F_ARRAY), or one constant or a tuple of
 * constants (F_IN)? */
static bool elem_pure(const char *key, size_t s, size_t e, enum frame_kind kind)
{
	bool seen = false;

	if (s < e && key[s] == ' ')
		s++;
	while (s < e) {
		char c = key[s];

		if (c == PH && s + 1 < e && strchr("sdeNbxifp", key[s + 1]) && key[s + 1]) {
			if (kind == F_ARRAY && seen)
				return false;
			seen = true;
			s += 2;
			/* a cast of the constant ('..'::uuid): ignored too */
			if (s + 2 < e && key[s] == ':' && key[s + 1] == ':') {
				s += 2;
				while (s < e && (isalnum((unsigned char)key[s]) || key[s] == '_'))
					s++;
			}
		} else if (kind == F_IN && (c == '(' || c == ')' || c == ',' || c == ' ')) {
			s++;
		} else {
			return false;
		}
	}
	return seen;
}

static bool same_bytes(const char *key, size_t a, size_t ae, size_t b, size_t be)
{
	if (a < ae && key[a] == ' ')
		a++;
	if (b < be && key[b] == ' ')
		b++;
	return ae - a == be - b && memcmp(key + a, key + b, ae - a) == 0;
}

/* An element of an IN/ARRAY list ends (at ',' or the closing bracket). */
static void end_element(struct builder *b, struct frame *f)
{
	const char *key = b->k->buf;
	size_t s, e;

	flush(b);
	s = f->elem_start;
	e = b->len;

	if (s == e || (e == s + 1 && key[s] == ' ')) {
		f->broken = true;	/* "(1,,2)": a syntax error, keep it all */
		return;
	}
	if (f->broken || !elem_pure(key, s, e, f->kind)) {
		f->pure = false;
	} else if (f->has_prev && same_bytes(key, f->prev_start, f->prev_end, s, e)) {
		b->len = f->prev_end;	/* drop ", element" */
		return;
	}
	if (!f->has_prev)
		f->first_end = e;
	f->has_prev = true;
	f->prev_start = s;
	f->prev_end = e;
}

/* A VALUES row closed: drop it when it repeats the previous row. */
static void end_row(struct builder *b, struct frame *parent, size_t start)
{
	const char *key = b->k->buf;
	size_t e;

	flush(b);
	e = b->len;

	if (parent->has_prev) {
		size_t i = parent->prev_end, commas = 0;

		/* rows must be separated by exactly one comma */
		for (; i < start && (key[i] == ',' || key[i] == ' '); i++)
			commas += key[i] == ',';
		if (i == start && commas == 1 &&
		    same_bytes(key, parent->prev_start, parent->prev_end, start, e)) {
			b->len = parent->prev_end;
			return;
		}
	}
	parent->has_prev = true;
	parent->prev_start = start;
	parent->prev_end = e;
}

static void open_bracket(struct builder *b, char c, size_t start)
{
	struct frame *parent = &b->fr[b->depth], *f;

	if (b->untracked || b->depth + 1 >= MAX_FRAMES) {
		b->untracked++;
		return;
	}
	f = &b->fr[++b->depth];
	*f = (struct frame){ .kind = F_PLAIN, .pure = true };
	if (b->mode == SQL_KEY_EXACT)
		return;
	if (c == '(' && b->prev_in)
		f->kind = F_IN;
	else if (c == '[' && b->prev_array)
		f->kind = F_ARRAY;
	else if (c == '(' && parent->values)
		f->kind = F_ROW;
	f->elem_start = f->kind == F_ROW ? start : b->len;
}

/* Called before the closing bracket is written. */
static void close_bracket_before(struct builder *b)
{
	struct frame *f = &b->fr[b->depth];

	if (b->untracked || b->depth == 0)
		return;
	if (f->kind == F_IN || f->kind == F_ARRAY)
		end_element(b, f);
}

static void close_bracket_after(struct builder *b)
{
	struct frame *f;

	if (b->untracked) {
		b->untracked--;
		return;
	}
	if (b->depth == 0)
		return;	/* unbalanced: nothing to track */
	f = &b->fr[b->depth--];
	if (f->kind == F_ROW)
		end_row(b, &b->fr[b->depth], f->elem_start);
}

/* Truncated text: an unfinished constant list keeps its first element. */
static void cut_open_lists(struct builder *b)
{
	flush(b);
	for (int i = 1; i <= b->depth; i++) {
		struct frame *f = &b->fr[i];

		if ((f->kind == F_IN || f->kind == F_ARRAY) && f->pure && f->has_prev &&
		    f->first_end <= b->len) {
			b->len = f->first_end;
			return;
		}
		if (f->kind == F_ROW && b->fr[i - 1].has_prev &&
		    b->fr[i - 1].prev_end <= b->len) {
			b->len = b->fr[i - 1].prev_end;
			return;
		}
	}
}

/*
 * What a token becomes in the key: 0 to keep it verbatim, else the
 * placeholder letter.  Also advances the name state machine.
 */
static char token_kind(struct builder *b, const struct sql_token *t, bool shape)
{
	switch (t->type) {
	case SQL_STRING:
		if (!shape || (t->flags & SQL_TF_RISKY))
			return 0;
		/* dollar quotes are strings too, but no quote continuation
		 * joins them: a kind of their own */
		if (t->s[0] == '$')
			return 'd';
		if (t->s[0] == '\'')
			return 's';
		switch (t->s[0] | 0x20) {
		case 'e': return 'e';
		case 'n': return 'N';
		case 'b': return 'b';
		default: return 'x';
		}
	case SQL_NUMBER:
		if (!shape || b->in_fetch)	/* FETCH 100: not a constant */
			return 0;
		for (size_t i = 0; i < t->len; i++)
			if (t->s[i] == '.' || t->s[i] == 'e' || t->s[i] == 'E')
				return 'f';
		return 'i';
	case SQL_PARAM:
		b->k->has_params = true;
		return shape ? 'p' : 0;
	case SQL_WORD:
	case SQL_QIDENT:
		if (b->names == N_NEXT) {
			if (SQL_WORD_IS(t, "SAVEPOINT"))
				return 0;
			b->names = N_NONE;
			return shape && !SQL_WORD_IS(t, "ALL") ? 'c' : 0;
		}
		if (b->names == N_WAIT_TO && SQL_WORD_IS(t, "TO"))
			b->names = N_NEXT;
		else if (b->names == N_WAIT_FROM &&
			 (SQL_WORD_IS(t, "FROM") || SQL_WORD_IS(t, "IN")))
			b->names = N_NEXT;
		return 0;
	default:
		if (b->names == N_NEXT)
			b->names = N_NONE;
		return 0;
	}
}

/*
 * The common token of ORM SQL, a quoted identifier after a single space or
 * nothing, in no special state: only the run of verbatim bytes grows.
 * Returns false when the general path must handle it.
 */
static inline bool emit_quick(struct builder *b, const struct sql_token *t)
{
	size_t n;

	if (t->type != SQL_QIDENT || b->stmt_start || b->names != N_NONE ||
	    !b->run_len || b->run + b->run_len != t->gap ||
	    !(t->gap_len == 0 || (t->gap_len == 1 && t->gap[0] == ' ')))
		return false;
	b->fr[b->depth].values = false;
	n = t->gap_len + t->len;
	b->last_tok = b->len;
	b->run_len += n;
	b->len += n;
	b->prev_type = SQL_QIDENT;
	b->prev_in = b->prev_array = false;
	return true;
}

static void emit(struct builder *b, const struct sql_token *t)
{
	bool shape = b->mode != SQL_KEY_EXACT;
	struct frame *top = &b->fr[b->depth];
	bool punct1 = t->type == SQL_PUNCT && t->len == 1;
	char p = punct1 ? t->s[0] : 0, kind;
	bool two_strings;
	size_t start;

	if (emit_quick(b, t))
		return;

	if (b->stmt_start && !(punct1 && p == ';'))
		start_statement(b, t);

	if (shape) {
		/* a VALUES list ends at anything but ',' or '(' */
		if (top->values && !(punct1 && (p == ',' || p == '(')))
			top->values = false;
		if (punct1 && p == ',' && !b->untracked &&
		    (top->kind == F_IN || top->kind == F_ARRAY))
			end_element(b, top);
		if (punct1 && (p == ')' || p == ']'))
			close_bracket_before(b);
	}

	kind = token_kind(b, t, shape);
	two_strings = b->prev_type == SQL_STRING && t->type == SQL_STRING;
	b->last_tok = b->len;
	if (!kind && !two_strings &&
	    (!(t->flags & SQL_TF_GAP) ||
	     (b->any && t->gap_len == 1 && t->gap[0] == ' '))) {
		/* the key bytes are the source bytes: extend the run */
		size_t n = t->gap_len + t->len;

		if (!b->run_len || b->run + b->run_len != t->gap) {
			flush(b);
			b->run = t->gap;
		}
		b->run_len += n;
		b->len += n;
		start = b->len - t->len;
	} else {
		flush(b);
		if (b->any && (t->flags & SQL_TF_GAP)) {
			if (two_strings) {
				/* "'a'\n'b'" is one constant, "'a' 'b'" an
				 * error: the gap between two strings matters */
				b->k->buf[b->len++] = PH;
				b->k->buf[b->len++] = 'g';
				put(b, t->gap, t->gap_len);
				b->k->buf[b->len++] = PH;
				b->k->buf[b->len++] = 'g';
			} else if (t->flags & SQL_TF_COMMENT) {
				/* libpg_query's lookahead (NOT IN, NULLS FIRST,
				 * WITH ORDINALITY) fails across a comment:
				 * "NOT -- c\n IN" is a syntax error, "NOT IN"
				 * is not */
				b->k->buf[b->len++] = PH;
				b->k->buf[b->len++] = 'm';
				b->comments = true;
			} else {
				b->k->buf[b->len++] = ' ';
			}
		}
		start = b->len;
		if (kind) {
			put_ph(b, kind, t);
			if (kind != 'p' && kind != 'c')
				b->k->nconst++;
		} else {
			put(b, t->s, t->len);
		}
	}
	b->any = true;

	if (shape && SQL_WORD_IS(t, "VALUES")) {
		top->values = true;
		top->has_prev = false;
	}
	if (punct1) {
		if (p == '(' || p == '[')
			open_bracket(b, p, start);
		else if (p == ')' || p == ']')
			close_bracket_after(b);
		else if (p == ';' && b->depth == 0 && !b->untracked) {
			b->stmt_start = true;
			b->in_fetch = false;
			b->names = N_NONE;
		}
		if (shape && p == ',' && !b->untracked &&
		    (top->kind == F_IN || top->kind == F_ARRAY))
			top->elem_start = b->len;
	}
	b->prev_type = t->type;
	b->prev_in = SQL_WORD_IS(t, "IN");
	b->prev_array = SQL_WORD_IS(t, "ARRAY");
}

/* Comments matter to the parse but not to "the same constants": hash the
 * key with each comment marker read as the space it replaced. */
static uint64_t hash_without_comments(const struct sql_key *k)
{
	char *tmp = malloc(k->len ? k->len : 1);
	size_t i = 0, n = 0;
	uint64_t h;

	if (!tmp)
		return k->hash;	/* duplicates then need the same comments */
	while (i < k->len) {
		if (k->buf[i] == PH && i + 1 < k->len) {
			if (k->buf[i + 1] == 'm') {
				tmp[n++] = ' ';
			} else {
				tmp[n++] = PH;
				tmp[n++] = k->buf[i + 1];
			}
			i += 2;
		} else {
			tmp[n++] = k->buf[i++];
		}
	}
	h = hash_bytes(tmp, n, 0);
	free(tmp);
	return h;
}

int sql_key_build(struct sql_key *k, const char *s, size_t n, enum sql_key_mode mode)
{
	/* frames are set up as brackets open: zeroing them all would cost
	 * more than the rest of a short key */
	struct builder b;
	struct sql_lexer lx;
	struct sql_token t;
	/* worst case per input byte: a 1-byte constant after a space becomes
	 * 3 bytes; a gap between strings gains 4 marker bytes */
	size_t need = 3 * n + 16;

	if (need > k->cap) {
		char *nb = realloc(k->buf, need);

		if (!nb)
			return -ENOMEM;
		k->buf = nb;
		k->cap = need;
	}
	k->nconst = 0;
	k->has_params = false;
	k->abstract_ok = true;
	b.k = k;
	b.mode = mode;
	b.len = 0;
	b.depth = 0;
	b.untracked = 0;
	b.stmt_start = true;
	b.in_fetch = false;
	b.names = N_NONE;
	b.prev_type = SQL_EOF;
	b.prev_in = b.prev_array = b.any = false;
	b.last_tok = 0;
	b.comments = false;
	b.run = NULL;
	b.run_len = 0;
	b.vh = 0;
	b.fr[0] = (struct frame){ .kind = F_PLAIN };
	k->buf[b.len++] = mode == SQL_KEY_SHAPE ? 'A' : mode == SQL_KEY_EXACT ? 'X' : 'T';

	sql_lexer_init(&lx, s, n);
	for (;;) {
		sql_lex_impl(&lx, &t);
		if (t.type == SQL_EOF)
			break;
		emit(&b, &t);
	}
	flush(&b);
	if (mode == SQL_KEY_TRUNCATED) {
		if (b.any)
			b.len = b.last_tok;
		cut_open_lists(&b);
	}
	k->len = b.len;
	k->hash = hash_bytes(k->buf, k->len, 0);
	k->values = hash_u64(b.comments ? hash_without_comments(k) : k->hash, b.vh);
	return 0;
}
