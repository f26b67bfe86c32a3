#include "sqltext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqllex.h"

const char *stmt_class_name(enum stmt_class c)
{
	switch (c) {
	case STMT_WORK: return "work";
	case STMT_TXN: return "transaction";
	case STMT_SESSION: return "session";
	case STMT_CURSOR: return "cursor";
	case STMT_EMPTY: return "empty";
	}
	return "?";
}

static bool word_in(const struct sql_token *t, const char *const *list)
{
	for (; *list; list++)
		if (sql_word_is(t, *list))
			return true;
	return false;
}

/* Functions drivers and pools call when they connect or check a connection. */
static const char *const setup_funcs[] = {
	"SET_CONFIG", "CURRENT_SETTING", "VERSION", "PG_BACKEND_PID",
	"CURRENT_SCHEMA", "CURRENT_SCHEMAS", "PG_IS_IN_RECOVERY",
	"PG_ADVISORY_UNLOCK_ALL", NULL,
};

/* A relation name of the system catalogs: pg_type, pg_catalog.x,
 * information_schema.x. */
static bool catalog_name(const struct sql_token *t)
{
	const char *s = t->s;
	size_t n = t->len;

	if (t->type == SQL_QIDENT && n >= 2) {
		s++;
		n -= 2;
	} else if (t->type != SQL_WORD) {
		return false;
	}
	return (n >= 3 && strncasecmp(s, "pg_", 3) == 0) ||
	       (n == 18 && strncasecmp(s, "information_schema", 18) == 0);
}

static const char *const const_words[] = {
	"AS", "TRUE", "FALSE", "NULL", NULL,
};

/*
 * SELECT ... : connection setup when it reads only system catalogs, or has
 * no FROM and computes nothing but constants and setup functions.
 */
static enum stmt_class classify_select(struct sql_lexer *lx)
{
	struct sql_token t, prev = { 0 };
	int depth = 0;
	bool from = false, expect_rel = false, catalog_only = true, any_rel = false;
	bool only_consts = true, setup_call = false;

	for (;;) {
		sql_lex(lx, &t);
		if (t.type == SQL_EOF)
			break;
		if (t.type == SQL_PUNCT && t.len == 1) {
			char c = t.s[0];

			if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			else if (c == ';' && depth <= 0)
				break;
			else if (c == ',' && depth == 0 && from)
				expect_rel = true;
			if (c == '(' && prev.type == SQL_WORD && word_in(&prev, setup_funcs))
				setup_call = true;
			prev = t;
			continue;
		}
		if (depth == 0 && sql_word_is(&t, "FROM")) {
			from = true;
			expect_rel = true;
		} else if (depth == 0 && from && (sql_word_is(&t, "JOIN"))) {
			expect_rel = true;
		} else if (expect_rel && (t.type == SQL_WORD || t.type == SQL_QIDENT)) {
			/* schema.table: the schema decides */
			any_rel = true;
			if (!catalog_name(&t))
				catalog_only = false;
			expect_rel = false;
		} else if (expect_rel) {
			expect_rel = false;	/* a subquery or function in FROM */
			catalog_only = false;
		}
		if (!from && t.type == SQL_WORD && !word_in(&t, const_words) &&
		    !word_in(&t, setup_funcs) &&
		    !(prev.type == SQL_WORD && sql_word_is(&prev, "AS")))
			only_consts = false;
		if (!from && (t.type == SQL_QIDENT || t.type == SQL_OP) &&
		    !(prev.type == SQL_WORD && sql_word_is(&prev, "AS")))
			only_consts = false;
		prev = t;
	}
	if (from)
		return any_rel && catalog_only ? STMT_SESSION : STMT_WORK;
	if (only_consts || setup_call)
		return STMT_SESSION;
	return STMT_WORK;
}

enum stmt_class sql_classify(const char *s, size_t n)
{
	static const char *const txn[] = {
		"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT",
		"SAVEPOINT", "RELEASE", NULL,
	};
	static const char *const session[] = {
		"SET", "RESET", "SHOW", "DISCARD", "DEALLOCATE", "LISTEN",
		"UNLISTEN", NULL,
	};
	static const char *const cursor[] = { "FETCH", "MOVE", "CLOSE", NULL };
	struct sql_lexer lx;
	struct sql_token t, t2;

	sql_lexer_init(&lx, s, n);
	do {
		sql_lex(&lx, &t);	/* empty statements: ";;" */
	} while (t.type == SQL_PUNCT && t.len == 1 && t.s[0] == ';');
	if (t.type == SQL_EOF)
		return STMT_EMPTY;
	if (word_in(&t, txn))
		return STMT_TXN;
	if (word_in(&t, session))
		return STMT_SESSION;
	if (word_in(&t, cursor))
		return STMT_CURSOR;
	if (sql_word_is(&t, "PREPARE")) {
		sql_lex(&lx, &t2);
		return sql_word_is(&t2, "TRANSACTION") ? STMT_TXN : STMT_WORK;
	}
	if (sql_word_is(&t, "SELECT"))
		return classify_select(&lx);
	return STMT_WORK;
}

/* --- rendering ---------------------------------------------------------- */

static unsigned long max_param(const char *s, size_t n)
{
	struct sql_lexer lx;
	struct sql_token t;
	unsigned long max = 0;

	sql_lexer_init(&lx, s, n);
	for (sql_lex(&lx, &t); t.type != SQL_EOF; sql_lex(&lx, &t)) {
		if (t.type != SQL_PARAM || t.len > 10)
			continue;
		unsigned long v = strtoul(t.s + 1, NULL, 10);	/* stops at the first non-digit */

		if (v > max)
			max = v;
	}
	return max;
}

char *sql_render(const char *s, size_t n, unsigned flags, size_t *lenp)
{
	struct sql_lexer lx;
	struct sql_token t;
	unsigned long next = 0;
	size_t cap = n + n / 2 + 16, len = 0, last = 0;
	char *out = malloc(cap);
	bool any = false;

	if (!out)
		return NULL;
	if (flags & (SQL_RENDER_CONSTANTS | SQL_RENDER_STRINGS))
		next = max_param(s, n) + 1;
	sql_lexer_init(&lx, s, n);
	for (sql_lex(&lx, &t); t.type != SQL_EOF; sql_lex(&lx, &t)) {
		char num[24];
		const char *w = t.s;
		size_t wl = t.len;
		bool repl = (t.type == SQL_STRING &&
			     (flags & (SQL_RENDER_CONSTANTS | SQL_RENDER_STRINGS))) ||
			    (t.type == SQL_NUMBER && (flags & SQL_RENDER_CONSTANTS));

		if (repl) {
			wl = snprintf(num, sizeof(num), "$%lu", next++);
			w = num;
		} else if (t.type == SQL_JUNK && t.len >= 2 && t.s[0] == '/' && t.s[1] == '*') {
			continue;	/* an unterminated comment */
		} else if (t.type == SQL_JUNK && (flags & SQL_RENDER_CONSTANTS) &&
			   (t.s[0] == '\'' || t.s[0] == '$' || (t.len > 1 && t.s[1] == '\''))) {
			/* an unterminated (cut) string: still data */
			w = "$?";
			wl = 2;
		}
		if (len + wl + 8 > cap) {
			char *nb;

			cap = (len + wl + 8) * 2;
			nb = realloc(out, cap);
			if (!nb) {
				free(out);
				return NULL;
			}
			out = nb;
		}
		last = len;
		if (any && (t.flags & SQL_TF_GAP))
			out[len++] = ' ';
		memcpy(out + len, w, wl);
		len += wl;
		any = true;
	}
	if (flags & SQL_RENDER_TRUNCATED) {
		len = last;	/* the last token may be cut */
		memcpy(out + len, len ? " ..." : "...", len ? 4 : 3);
		len += len ? 4 : 3;
	}
	out[len] = '\0';
	if (lenp)
		*lenp = len;
	return out;
}
