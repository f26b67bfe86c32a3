#include "sqllex.h"

#include "sqllex_impl.h"

void sql_lex(struct sql_lexer *lx, struct sql_token *t)
{
	sql_lex_impl(lx, t);
}

bool sql_word_is(const struct sql_token *t, const char *kw)
{
	size_t i;

	if (t->type != SQL_WORD)
		return false;
	for (i = 0; i < t->len; i++) {
		char c = t->s[i];

		if (c >= 'a' && c <= 'z')
			c -= 32;
		if (!kw[i] || kw[i] != c)
			return false;
	}
	return kw[i] == '\0';
}
