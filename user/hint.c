#include "hint.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqllex.h"

#define NAME HINT_NAME_MAX
#define MAX_COLS 96
#define MAX_WHERE 8
#define MAX_JOINS 4
#define MAX_SET 8
#define MAX_TOKENS 4096

const char *hint_kind_name(enum hint_kind k)
{
	switch (k) {
	case HINT_NONE: return "none";
	case HINT_SELECT_RELATED: return "select_related";
	case HINT_PREFETCH_RELATED: return "prefetch_related";
	case HINT_ANNOTATE_COUNT: return "annotate_count";
	case HINT_ANNOTATE_EXISTS: return "annotate_exists";
	case HINT_BULK_CREATE: return "bulk_create";
	case HINT_BULK_UPDATE: return "bulk_update";
	case HINT_BULK_DELETE: return "bulk_delete";
	case HINT_REUSE: return "reuse";
	}
	return "?";
}

/* --- a statement's shape -------------------------------------------------- */

struct col {
	char t[NAME];		/* table (or alias), "" when unqualified */
	char c[NAME];
};

enum verb { V_OTHER, V_SELECT, V_INSERT, V_UPDATE, V_DELETE };

struct shape {
	enum verb verb;
	char table[NAME];	/* FROM / INTO / UPDATE target */
	char joins[MAX_JOINS][NAME];
	int njoins;
	struct col where[MAX_WHERE];	/* col = $n */
	int nwhere;
	struct col cols[MAX_COLS];	/* qualified columns of the select list */
	int ncols;
	char set[MAX_SET][NAME];	/* UPDATE ... SET columns */
	int nset;
	bool set_self;		/* SET "c" = ("t"."c" + $1) */
	bool count_star;	/* SELECT COUNT(*) */
	bool select_const;	/* SELECT ($1) AS "a" */
	bool limit, order;
};

struct toks {
	struct sql_token *t;
	int n;
};

/* A name usable in Python code and in our messages: [A-Za-z0-9_]. */
static bool tok_name(const struct sql_token *t, char out[NAME])
{
	const char *s = t->s;
	size_t n = t->len, i;

	if (t->type == SQL_QIDENT && n >= 2 && s[0] == '"') {
		s++;
		n -= 2;
	} else if (t->type != SQL_WORD) {
		return false;
	}
	if (n == 0 || n >= NAME)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!(isalnum((unsigned char)c) || c == '_') || (unsigned char)c >= 0x80)
			return false;
		/* unquoted names fold to lower case, as PostgreSQL does */
		out[i] = t->type == SQL_WORD ? tolower((unsigned char)c) : c;
	}
	out[i] = '\0';
	return true;
}

static bool is_punct(const struct toks *k, int i, char c)
{
	return i < k->n && k->t[i].type == SQL_PUNCT && k->t[i].len == 1 && k->t[i].s[0] == c;
}

static bool is_word(const struct toks *k, int i, const char *w)
{
	return i < k->n && sql_word_is(&k->t[i], w);
}

static bool is_op(const struct toks *k, int i, const char *op)
{
	return i < k->n && sql_tok_is(&k->t[i], SQL_OP, op);
}

/* NAME or NAME.NAME (schema.table or table.column) at i; returns the index
 * after it, or -1.  With one part, first is "". */
static int qname(const struct toks *k, int i, char first[NAME], char last[NAME])
{
	char a[NAME], b[NAME];

	if (i >= k->n || !tok_name(&k->t[i], a))
		return -1;
	if (is_punct(k, i + 1, '.') && i + 2 < k->n && tok_name(&k->t[i + 2], b)) {
		strcpy(first, a);
		strcpy(last, b);
		return i + 3;
	}
	first[0] = '\0';
	strcpy(last, a);
	return i + 1;
}

/* Index of the next token at depth 0 (relative to i) matching one of the
 * clause keywords, or k->n. */
static int clause_end(const struct toks *k, int i)
{
	static const char *const stop[] = {
		"FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET",
		"FOR", "RETURNING", "WINDOW", "UNION", "EXCEPT", "INTERSECT",
		"SET", "VALUES", NULL,
	};
	int depth = 0;

	for (; i < k->n; i++) {
		if (is_punct(k, i, '(') || is_punct(k, i, '['))
			depth++;
		else if (is_punct(k, i, ')') || is_punct(k, i, ']'))
			depth--;
		else if (depth <= 0 && is_punct(k, i, ';'))
			return i;
		else if (depth <= 0)
			for (int s = 0; stop[s]; s++)
				if (is_word(k, i, stop[s]))
					return i;
	}
	return k->n;
}

/* One item of a select list, tokens [i, e). */
static void select_item(struct shape *sh, const struct toks *k, int i, int e)
{
	struct col c;
	int j = i;

	if (is_word(k, i, "COUNT") && is_punct(k, i + 1, '(') &&
	    i + 2 < e && sql_tok_is(&k->t[i + 2], SQL_OP, "*") && is_punct(k, i + 3, ')')) {
		sh->count_star = true;
		return;
	}
	while (j < e && is_punct(k, j, '('))
		j++;
	if (j < e && (k->t[j].type == SQL_PARAM || k->t[j].type == SQL_NUMBER)) {
		int m = j + 1;

		while (m < e && is_punct(k, m, ')'))
			m++;
		if (m == e || is_word(k, m, "AS"))
			sh->select_const = true;
		return;
	}
	j = qname(k, j, c.t, c.c);
	if (j > 0 && c.t[0] && sh->ncols < MAX_COLS)
		sh->cols[sh->ncols++] = c;
}

static void where_clause(struct shape *sh, const struct toks *k, int i, int e)
{
	struct col c;

	for (; i < e; i++) {
		int j = qname(k, i, c.t, c.c);

		if (j < 0 || !c.t[0])
			continue;
		/* "t"."c" = $1, maybe with a cast */
		if (is_op(k, j, "=") && j + 1 < e && k->t[j + 1].type == SQL_PARAM &&
		    sh->nwhere < MAX_WHERE)
			sh->where[sh->nwhere++] = c;
		i = j - 1;
	}
}

static void parse_select(struct shape *sh, const struct toks *k, int i)
{
	int e = clause_end(k, i), depth = 0, item = i;
	char schema[NAME];

	sh->verb = V_SELECT;
	for (int j = i; j <= e; j++) {
		if (j == e || (depth == 0 && is_punct(k, j, ','))) {
			select_item(sh, k, item, j);
			item = j + 1;
		} else if (is_punct(k, j, '(')) {
			depth++;
		} else if (is_punct(k, j, ')')) {
			depth--;
		}
	}
	if (!is_word(k, e, "FROM"))
		return;
	i = qname(k, e + 1, schema, sh->table);
	if (i < 0)
		return;
	/* the rest at depth 0: joins, WHERE, ORDER BY, LIMIT */
	depth = 0;
	for (; i < k->n; i++) {
		if (is_punct(k, i, '('))
			depth++;
		else if (is_punct(k, i, ')'))
			depth--;
		if (depth != 0)
			continue;
		if (is_word(k, i, "JOIN") && sh->njoins < MAX_JOINS &&
		    qname(k, i + 1, schema, sh->joins[sh->njoins]) > 0)
			sh->njoins++;
		else if (is_word(k, i, "WHERE"))
			where_clause(sh, k, i + 1, clause_end(k, i + 1));
		else if (is_word(k, i, "ORDER"))
			sh->order = true;
		else if (is_word(k, i, "LIMIT") || is_word(k, i, "FETCH"))
			sh->limit = true;
		else if (is_punct(k, i, ';'))
			break;
	}
}

static void parse_update(struct shape *sh, const struct toks *k, int i)
{
	char schema[NAME], t[NAME], c[NAME];
	int depth = 0;

	sh->verb = V_UPDATE;
	i = qname(k, i, schema, sh->table);
	if (i < 0 || !is_word(k, i, "SET"))
		return;
	i++;
	/* SET a = expr, b = expr ... WHERE */
	while (i < k->n && !is_word(k, i, "WHERE") && !is_word(k, i, "RETURNING")) {
		int j = qname(k, i, t, c);

		if (j > 0 && depth == 0 && is_op(k, j, "=") && sh->nset < MAX_SET) {
			strcpy(sh->set[sh->nset++], c);
			/* the value expression up to the next ',' at depth 0 */
			for (i = j + 1; i < k->n; i++) {
				char t2[NAME], c2[NAME];
				int m;

				if (is_punct(k, i, '('))
					depth++;
				else if (is_punct(k, i, ')'))
					depth--;
				else if (depth == 0 && (is_punct(k, i, ',') || is_word(k, i, "WHERE")))
					break;
				else if ((m = qname(k, i, t2, c2)) > 0 && strcmp(c2, c) == 0)
					sh->set_self = true;
			}
			if (is_punct(k, i, ','))
				i++;
			continue;
		}
		i++;
	}
	if (is_word(k, i, "WHERE"))
		where_clause(sh, k, i + 1, clause_end(k, i + 1));
}

/* Tokenizes and reads the shape.  DECLARE c CURSOR FOR <query> reads the
 * query. */
static void parse(struct shape *sh, const char *sql)
{
	struct toks k = { 0 };
	struct sql_lexer lx;
	char schema[NAME];
	int i = 0;

	memset(sh, 0, sizeof(*sh));
	if (!sql)
		return;
	k.t = malloc(MAX_TOKENS * sizeof(*k.t));
	if (!k.t)
		return;
	sql_lexer_init(&lx, sql, strlen(sql));
	while (k.n < MAX_TOKENS) {
		sql_lex(&lx, &k.t[k.n]);
		if (k.t[k.n].type == SQL_EOF)
			break;
		k.n++;
	}
	if (is_word(&k, 0, "DECLARE")) {
		while (i < k.n && !is_word(&k, i, "FOR"))
			i++;
		i++;
	}
	if (is_word(&k, i, "SELECT"))
		parse_select(sh, &k, i + 1);
	else if (is_word(&k, i, "INSERT") && is_word(&k, i + 1, "INTO")) {
		sh->verb = V_INSERT;
		qname(&k, i + 2, schema, sh->table);
	} else if (is_word(&k, i, "UPDATE"))
		parse_update(sh, &k, i + 1);
	else if (is_word(&k, i, "DELETE") && is_word(&k, i + 1, "FROM")) {
		int j = qname(&k, i + 2, schema, sh->table);

		sh->verb = V_DELETE;
		for (; j > 0 && j < k.n; j++)
			if (is_word(&k, j, "WHERE")) {
				where_clause(sh, &k, j + 1, clause_end(&k, j + 1));
				break;
			}
	}
	free(k.t);
}

/* --- names ----------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && strcmp(s + n - m, suffix) == 0;
}

/* Length of the app label prefix ("blog_") of table, using another table of
 * the same app when there is one. */
static size_t app_prefix(const char *table, const char *other)
{
	size_t i, last = 0;
	const char *u;

	if (other && other[0]) {
		for (i = 0; table[i] && table[i] == other[i]; i++)
			if (table[i] == '_')
				last = i + 1;
		if (last && table[last] && other[last])
			return last;
	}
	u = strchr(table, '_');
	return u && u[1] ? (size_t)(u - table) + 1 : 0;
}

/* "blog_post" -> "post": the model's lower-case name, as Django derives
 * table names and reverse accessors from it. */
static void model_lower(const char *table, const char *other, char out[NAME])
{
	snprintf(out, NAME, "%s", table + app_prefix(table, other));
}

/* "blog_post" -> "Post", "django_content_type" -> "ContentType". */
static void model_class(const char *table, const char *other, char out[NAME])
{
	static const char *const known[][2] = {
		{ "auth_user", "User" }, { "auth_group", "Group" },
		{ "auth_permission", "Permission" },
		{ "django_content_type", "ContentType" }, { "django_site", "Site" },
		{ "django_session", "Session" }, { "django_admin_log", "LogEntry" },
	};
	const char *s;
	size_t n = 0;
	bool up = true;

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(table, known[i][0]) == 0) {
			snprintf(out, NAME, "%s", known[i][1]);
			return;
		}
	for (s = table + app_prefix(table, other); *s && n + 1 < NAME; s++) {
		if (*s == '_') {
			up = true;
			continue;
		}
		out[n++] = up ? toupper((unsigned char)*s) : *s;
		up = false;
	}
	out[n] = '\0';
}

/* "post" (a foreign key column without _id) -> "Post" */
static void capitalize(const char *name, char out[NAME])
{
	model_class(name, NULL, out);
	if (!out[0])
		snprintf(out, NAME, "%s", name);
}

static void strip_id(const char *col, char out[NAME])
{
	size_t n = strlen(col);

	snprintf(out, NAME, "%.*s", (int)(n > 3 ? n - 3 : n), col);
}

static void say(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

/* --- the rules ------------------------------------------------------------- */

/* A parent column "<x>_id" naming the repeated table's model. */
static const struct col *fk_column(const struct shape *p, const char *model)
{
	char want[NAME + 4];

	if (!p || p->verb != V_SELECT)
		return NULL;
	snprintf(want, sizeof(want), "%s_id", model);
	for (int i = 0; i < p->ncols; i++)
		if (strcmp(p->cols[i].c, want) == 0)
			return &p->cols[i];
	return NULL;
}

/* The only "<x>_id" column of the parent, if it has exactly one. */
static const struct col *only_fk_column(const struct shape *p)
{
	const struct col *found = NULL;

	if (!p || p->verb != V_SELECT)
		return NULL;
	for (int i = 0; i < p->ncols; i++)
		if (ends_with(p->cols[i].c, "_id")) {
			if (found && strcmp(found->c, p->cols[i].c) != 0)
				return NULL;
			found = &p->cols[i];
		}
	return found;
}

static const char *table_of(const struct shape *p)
{
	return p && p->table[0] ? p->table : NULL;
}

static void forward_fk(struct hint *h, const struct shape *r,
		       const struct shape *p, const struct shape *a)
{
	char model[NAME], field[NAME];
	const struct col *fk;
	const char *owner;

	model_lower(r->table, table_of(p), model);
	fk = fk_column(p, model);
	if (!fk)
		fk = fk_column(a, model);
	if (fk) {
		strip_id(fk->c, field);
		owner = fk->t;
	} else if ((fk = only_fk_column(p))) {
		strip_id(fk->c, field);
		owner = fk->t;
		h->guessed = true;
	} else {
		snprintf(field, NAME, "%s", model);
		owner = table_of(p);
		h->guessed = true;
	}
	h->kind = HINT_SELECT_RELATED;
	snprintf(h->field, NAME, "%s", field);
	if (owner && owner[0])
		model_class(owner, r->table, h->model);
	if (h->model[0]) {
		say(h->fix, sizeof(h->fix), "%s.objects.select_related(\"%s\")", h->model, field);
		say(h->why, sizeof(h->why),
		    "each %s loads its %s with one more query by primary key on \"%s\"; "
		    "select_related(\"%s\") joins it into the query that loads the %s rows",
		    h->model, field, r->table, field, h->model);
	} else {
		say(h->fix, sizeof(h->fix), ".select_related(\"%s\")", field);
		say(h->why, sizeof(h->why),
		    "each row loads its %s with one more query by primary key on \"%s\"; "
		    "add select_related(\"%s\") to the queryset the loop iterates",
		    field, r->table, field);
	}
}

/* The model on the "one" side of a reverse relation: the parent's table
 * when it is the table the column points to, else the column's name. */
static void reverse_owner(struct hint *h, const char *x, const struct shape *r,
			  const struct shape *p, const struct shape *a)
{
	char m[NAME];
	const struct shape *cand[2] = { p, a };

	for (int i = 0; i < 2; i++) {
		if (!table_of(cand[i]))
			continue;
		model_lower(cand[i]->table, r->table, m);
		if (strcmp(m, x) == 0) {
			model_class(cand[i]->table, r->table, h->model);
			return;
		}
	}
	capitalize(x, h->model);
	h->guessed = true;
}

static bool many_to_many(struct hint *h, const struct shape *r,
			 const struct shape *p, const struct shape *a)
{
	for (int j = 0; j < r->njoins; j++) {
		const char *jt = r->joins[j];

		for (int w = 0; w < r->nwhere; w++) {
			char x[NAME], pat[NAME + 2];
			const char *at;

			if (strcmp(r->where[w].t, jt) != 0 || !ends_with(r->where[w].c, "_id"))
				continue;
			/* "blog_post_tags"."post_id": Post's field "tags" */
			strip_id(r->where[w].c, x);
			snprintf(pat, sizeof(pat), "_%s_", x);
			at = strstr(jt, pat);
			reverse_owner(h, x, r, p, a);
			if (at && at[strlen(pat)]) {
				snprintf(h->field, NAME, "%s", at + strlen(pat));
			} else {
				/* the other side of the relation: the default
				 * reverse accessor */
				model_lower(r->table, table_of(p), h->field);
				strncat(h->field, "_set", NAME - strlen(h->field) - 1);
				h->guessed = true;
			}
			if (r->count_star) {
				h->kind = HINT_ANNOTATE_COUNT;
				say(h->fix, sizeof(h->fix), "%s.objects.annotate(Count(\"%s\"))",
				    h->model, h->field);
				say(h->why, sizeof(h->why),
				    "each %s counts its %s through \"%s\" with one query; "
				    "annotate(Count(\"%s\")) counts them in the query that loads the %s rows",
				    h->model, h->field, jt, h->field, h->model);
			} else {
				h->kind = HINT_PREFETCH_RELATED;
				say(h->fix, sizeof(h->fix), "%s.objects.prefetch_related(\"%s\")",
				    h->model, h->field);
				say(h->why, sizeof(h->why),
				    "each %s loads its %s through \"%s\" with one query; "
				    "prefetch_related(\"%s\") loads them for all rows in one more query",
				    h->model, h->field, jt, h->field);
			}
			return true;
		}
	}
	return false;
}

static bool reverse_fk(struct hint *h, const struct shape *r,
		       const struct shape *p, const struct shape *a)
{
	char x[NAME], rel[NAME], rmodel[NAME];

	for (int w = 0; w < r->nwhere; w++) {
		if (strcmp(r->where[w].t, r->table) != 0 || !ends_with(r->where[w].c, "_id"))
			continue;
		strip_id(r->where[w].c, x);
		reverse_owner(h, x, r, p, a);
		model_lower(r->table, table_of(p), rel);
		model_class(r->table, table_of(p), rmodel);
		if (r->count_star) {
			h->kind = HINT_ANNOTATE_COUNT;
			snprintf(h->field, NAME, "%s", rel);
			say(h->fix, sizeof(h->fix), "%s.objects.annotate(Count(\"%s\"))", h->model, rel);
			say(h->why, sizeof(h->why),
			    "each %s counts its %s rows with one COUNT(*) query on \"%s\"; "
			    "annotate(Count(\"%s\")) counts them in the query that loads the %s rows",
			    h->model, rel, r->table, rel, h->model);
		} else if (r->select_const && r->limit) {
			h->kind = HINT_ANNOTATE_EXISTS;
			snprintf(h->field, NAME, "%s", rel);
			say(h->fix, sizeof(h->fix),
			    "%s.objects.annotate(has_%s=Exists(%s.objects.filter(%s=OuterRef(\"pk\"))))",
			    h->model, rel, rmodel, x);
			say(h->why, sizeof(h->why),
			    "each %s asks with one exists() query whether it has a %s; an Exists() "
			    "annotation answers it in the query that loads the %s rows (or use exists() "
			    "on a prefetched set)", h->model, rel, h->model);
		} else if (r->limit && !r->order) {
			/* get() on the reverse side of a one-to-one */
			h->kind = HINT_SELECT_RELATED;
			snprintf(h->field, NAME, "%s", rel);
			say(h->fix, sizeof(h->fix), "%s.objects.select_related(\"%s\")", h->model, rel);
			say(h->why, sizeof(h->why),
			    "each %s loads its %s (a one-to-one to %s) with one query on \"%s\"; "
			    "select_related(\"%s\") joins it into the query that loads the %s rows",
			    h->model, rel, h->model, r->table, rel, h->model);
		} else {
			h->kind = HINT_PREFETCH_RELATED;
			snprintf(h->field, NAME, "%.59s_set", rel);
			h->guessed = true;	/* related_name may differ */
			say(h->fix, sizeof(h->fix), "%s.objects.prefetch_related(\"%s\")", h->model, h->field);
			say(h->why, sizeof(h->why),
			    "each %s loads its %s rows (\"%s\".\"%s\" = the %s) with one query; "
			    "prefetch_related(\"%s\") loads them for all rows in one more query",
			    h->model, rel, r->table, r->where[w].c, x, h->field);
		}
		return true;
	}
	return false;
}

static void bulk(struct hint *h, const struct shape *r, const struct shape *p)
{
	model_class(r->table, table_of(p), h->model);
	switch (r->verb) {
	case V_INSERT:
		h->kind = HINT_BULK_CREATE;
		say(h->fix, sizeof(h->fix), "%s.objects.bulk_create([...])", h->model);
		say(h->why, sizeof(h->why),
		    "one INSERT into \"%s\" per row; bulk_create() inserts them all in one statement",
		    r->table);
		break;
	case V_UPDATE: {
		char fields[200] = "";

		h->kind = HINT_BULK_UPDATE;
		for (int i = 0; i < r->nset; i++) {
			size_t n = strlen(fields);

			snprintf(fields + n, sizeof(fields) - n, "%s\"%s\"", i ? ", " : "", r->set[i]);
		}
		if (r->nset)
			snprintf(h->field, NAME, "%s", r->set[0]);
		if (r->set_self && r->nset == 1)
			say(h->fix, sizeof(h->fix), "%s.objects.filter(...).update(%s=F(\"%s\") + ...)",
			    h->model, r->set[0], r->set[0]);
		else
			say(h->fix, sizeof(h->fix), "%s.objects.bulk_update(objs, [%s])",
			    h->model, fields);
		say(h->why, sizeof(h->why),
		    "one UPDATE of \"%s\" per row; bulk_update() writes them in one statement, and "
		    "when every row gets the same change QuerySet.update() with F() expressions "
		    "needs no loop at all", r->table);
		break;
	}
	default:
		h->kind = HINT_BULK_DELETE;
		say(h->fix, sizeof(h->fix), "%s.objects.filter(pk__in=...).delete()", h->model);
		say(h->why, sizeof(h->why),
		    "one DELETE from \"%s\" per row; deleting through one filtered queryset "
		    "takes one statement", r->table);
		break;
	}
}

void hint_derive(struct hint *h, bool duplicate, const char *sql,
		 const char *parent, const char *alt_parent)
{
	struct shape *sh = malloc(3 * sizeof(*sh));
	struct shape *r, *p, *a;

	memset(h, 0, sizeof(*h));
	if (!sh) {
		say(h->why, sizeof(h->why), "the same query shape runs again and again");
		return;
	}
	r = &sh[0];
	p = parent ? &sh[1] : NULL;
	a = alt_parent ? &sh[2] : NULL;
	parse(r, sql);
	if (p)
		parse(p, parent);
	if (a)
		parse(a, alt_parent);

	if (!r->table[0]) {
		/* not a statement on a table we can name */
	} else if (r->verb == V_INSERT || r->verb == V_UPDATE || r->verb == V_DELETE) {
		bulk(h, r, p);
	} else if (r->verb == V_SELECT) {
		bool pk = false;

		for (int w = 0; w < r->nwhere; w++)
			if (strcmp(r->where[w].t, r->table) == 0 && strcmp(r->where[w].c, "id") == 0)
				pk = true;
		if (!many_to_many(h, r, p, a) && !reverse_fk(h, r, p, a) &&
		    pk && !r->count_star && !r->select_const)
			forward_fk(h, r, p, a);
	}

	/* a duplicate is fixed by select_related only when the parent really
	 * holds the foreign key */
	if (duplicate && !(h->kind == HINT_SELECT_RELATED && !h->guessed)) {
		char model[NAME] = "";

		if (r->table[0])
			model_class(r->table, table_of(p), model);
		memset(h, 0, sizeof(*h));
		h->kind = HINT_REUSE;
		snprintf(h->model, NAME, "%s", model);
		if (model[0])
			say(h->fix, sizeof(h->fix),
			    "load the %s once, before the loop, and reuse it", model);
		else
			say(h->fix, sizeof(h->fix), "run the query once, before the loop, and reuse the result");
		say(h->why, sizeof(h->why),
		    "the same statement with the same values ran again and again in one unit of work; "
		    "its result cannot have changed in between unless the loop writes it");
	} else if (h->kind == HINT_NONE) {
		if (r->table[0] && p && p->table[0])
			say(h->why, sizeof(h->why),
			    "the same query on \"%s\" runs once per row of \"%s\"; pqsnoop does not "
			    "recognise the ORM pattern: load these rows for all parent rows in one "
			    "query (e.g. filter(<column>__in=[...])) and match them in Python",
			    r->table, p->table);
		else if (r->table[0])
			say(h->why, sizeof(h->why),
			    "the same query on \"%s\" runs again and again with other values; pqsnoop "
			    "does not recognise the ORM pattern: load the rows in one query "
			    "(e.g. filter(<column>__in=[...]))", r->table);
		else
			say(h->why, sizeof(h->why),
			    "the same statement runs again and again with other values; pqsnoop "
			    "does not recognise its shape");
	}
	if (h->guessed && h->kind != HINT_NONE && h->kind != HINT_REUSE) {
		size_t n = strlen(h->why);

		snprintf(h->why + n, sizeof(h->why) - n,
			 " (names follow Django's defaults: use the model's related_name or "
			 "field name if it sets one)");
	}
	free(sh);
}
