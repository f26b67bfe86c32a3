#include "fingerprint.h"

#include <errno.h>
#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "sqlkey.h"

/* --- shared texts ------------------------------------------------------- */

struct fp_text *fp_text__new(const char *s, size_t len)
{
	struct fp_text *t;

	if (len > UINT32_MAX - 1)
		len = UINT32_MAX - 1;
	t = malloc(sizeof(*t) + len + 1);
	if (!t)
		return NULL;
	t->refs = 1;
	t->len = len;
	memcpy(t->s, s, len);
	t->s[len] = '\0';
	return t;
}

void fp_text__put(struct fp_text *t)
{
	if (t && --t->refs == 0)
		free(t);
}

void fp_format(uint64_t fp, char buf[17])
{
	snprintf(buf, 17, "%016llx", (unsigned long long)fp);
}

/* --- the cache ---------------------------------------------------------- */

enum entry_mode {
	E_TRUSTED,	/* the shape key decides: one fingerprint for the shape */
	E_EXACT,	/* look up the exact key instead */
};

struct fp_entry {
	uint64_t hash;
	uint64_t fp;
	uint64_t first_values;	/* constants of the text that was parsed */
	struct fp_text *norm;
	uint32_t key_len;
	uint8_t mode;
	uint8_t verified;
	uint8_t cls;
	bool parsed;
	char key[];
};

struct fp_cache {
	struct fp_entry **slots;
	size_t mask;
	size_t nentries, max_entries;
	size_t bytes;		/* keys and normalized texts held */
	struct sql_key key;	/* shape (or truncated) key of the text */
	struct sql_key xkey;	/* its exact key */
	struct sql_key nkey;	/* shape key of libpg_query's normalized text */
	char *cbuf;		/* NUL-terminated copy for libpg_query */
	size_t ccap;
	struct fp_stats st;
};

/* One parse of a text by libpg_query. */
struct parse {
	bool ok;
	uint64_t fp;
	struct fp_text *norm;	/* owned reference, NULL unless asked */
	bool constants_replaced;	/* normalize replaced every constant the key did */
};

struct fp_cache *fp_cache__new(size_t max_entries)
{
	struct fp_cache *c = calloc(1, sizeof(*c));
	size_t nslots = 16;

	if (!c)
		return NULL;
	c->max_entries = max_entries ? max_entries : FP_DEFAULT_MAX_ENTRIES;
	if (c->max_entries < 4)
		c->max_entries = 4;
	/* load factor <= 1/2 for short linear probes */
	while (nslots < 2 * c->max_entries)
		nslots *= 2;
	c->slots = calloc(nslots, sizeof(*c->slots));
	if (!c->slots) {
		free(c);
		return NULL;
	}
	c->mask = nslots - 1;
	sql_key_init(&c->key);
	sql_key_init(&c->xkey);
	sql_key_init(&c->nkey);
	return c;
}

static void reset(struct fp_cache *c)
{
	for (size_t i = 0; i <= c->mask; i++) {
		struct fp_entry *e = c->slots[i];

		if (e) {
			fp_text__put(e->norm);
			free(e);
			c->slots[i] = NULL;
		}
	}
	c->nentries = 0;
	c->bytes = 0;
}

void fp_cache__free(struct fp_cache *c)
{
	if (!c)
		return;
	reset(c);
	free(c->slots);
	sql_key_release(&c->key);
	sql_key_release(&c->xkey);
	sql_key_release(&c->nkey);
	free(c->cbuf);
	free(c);
}

void fp_cache__stats(const struct fp_cache *c, struct fp_stats *st)
{
	*st = c->st;
	st->entries = c->nentries;
}

static struct fp_entry **find(struct fp_cache *c, const struct sql_key *k)
{
	size_t i = k->hash & c->mask;

	for (;;) {
		struct fp_entry *e = c->slots[i];

		if (!e || (e->hash == k->hash && e->key_len == k->len &&
			   memcmp(e->key, k->buf, k->len) == 0))
			return &c->slots[i];
		i = (i + 1) & c->mask;
	}
}

static struct fp_entry *insert(struct fp_cache *c, struct fp_entry **slot,
			       const struct sql_key *k)
{
	struct fp_entry *e = calloc(1, sizeof(*e) + k->len);

	if (!e)
		return NULL;
	e->hash = k->hash;
	e->key_len = k->len;
	memcpy(e->key, k->buf, k->len);
	*slot = e;
	c->nentries++;
	/* the key, and about as much again for the normalized text */
	c->bytes += sizeof(*e) + 2 * k->len;
	return e;
}

static const char *cstr(struct fp_cache *c, const char *s, size_t n)
{
	if (n + 1 > c->ccap) {
		char *nb = realloc(c->cbuf, n + 1);

		if (!nb)
			return NULL;
		c->cbuf = nb;
		c->ccap = n + 1;
	}
	memcpy(c->cbuf, s, n);
	c->cbuf[n] = '\0';
	return c->cbuf;
}

/*
 * Parses sql with libpg_query.  With want_norm, also normalizes it and
 * checks which constants normalization replaced.  Returns -ENOMEM or 0
 * (p->ok false when libpg_query rejects the text).
 */
static int parse_text(struct fp_cache *c, const char *sql, size_t len,
		      bool want_norm, struct parse *p)
{
	const char *s;
	PgQueryFingerprintResult fr;
	PgQueryNormalizeResult nr;

	*p = (struct parse){ 0 };
	/* libpg_query reads up to a NUL: a text holding one is another text */
	if (memchr(sql, '\0', len))
		return 0;
	s = cstr(c, sql, len);
	if (!s)
		return -ENOMEM;
	c->st.parses++;
	fr = pg_query_fingerprint(s);
	p->ok = !fr.error;
	p->fp = fr.fingerprint;
	pg_query_free_fingerprint_result(fr);
	if (!p->ok || !want_norm)
		return 0;

	nr = pg_query_normalize(s);
	if (nr.error || !nr.normalized_query) {
		pg_query_free_normalize_result(nr);
		return 0;	/* parsed but no normalized text: trust nothing */
	}
	size_t nlen = strlen(nr.normalized_query), rlen;
	char *r = sql_render(nr.normalized_query, nlen, SQL_RENDER_STRINGS, &rlen);

	if (r)
		p->norm = fp_text__new(r, rlen);
	free(r);
	/* a constant normalization kept is one the fingerprint may depend
	 * on: the shape key must not hide it */
	if (p->norm && sql_key_build(&c->nkey, nr.normalized_query, nlen, SQL_KEY_SHAPE) == 0)
		p->constants_replaced = c->nkey.nconst == 0;
	pg_query_free_normalize_result(nr);
	if (!p->norm)
		return -ENOMEM;
	return 0;
}

/* Normalized text when libpg_query cannot help. */
static struct fp_text *lexical_norm(const char *sql, size_t len, bool truncated)
{
	size_t n;
	char *r = sql_render(sql, len, SQL_RENDER_CONSTANTS |
			     (truncated ? SQL_RENDER_TRUNCATED : 0), &n);
	struct fp_text *t = r ? fp_text__new(r, n) : NULL;

	free(r);
	return t;
}

static uint64_t lexical_fp(const struct sql_key *k)
{
	return hash_bytes(k->buf, k->len, 0x6c657869636c6670ULL);
}

static void fill(struct fp_result *r, const struct fp_entry *e, const struct sql_key *k)
{
	r->fp = e->fp;
	r->values = k->values;
	r->values_known = !k->has_params;
	r->parsed = e->parsed;
	r->cls = e->cls;
	r->norm = e->norm;
}

static int lookup_truncated(struct fp_cache *c, const char *sql, size_t len,
			    struct fp_result *r)
{
	struct fp_entry **slot, *e;

	if (sql_key_build(&c->key, sql, len, SQL_KEY_TRUNCATED))
		return -ENOMEM;
	slot = find(c, &c->key);
	if (*slot) {
		c->st.hits++;
	} else {
		struct fp_text *norm = lexical_norm(sql, len, true);

		e = norm ? insert(c, slot, &c->key) : NULL;
		if (!e) {
			fp_text__put(norm);
			return -ENOMEM;
		}
		e->fp = lexical_fp(&c->key);
		e->norm = norm;
		e->mode = E_TRUSTED;
		e->cls = sql_classify(sql, len);
	}
	c->st.unparsed++;
	fill(r, *slot, &c->key);
	return 0;
}

/* The exact-key path.  have: a parse of this very text, if already made. */
static int lookup_exact(struct fp_cache *c, const char *sql, size_t len,
			struct parse *have, struct fp_result *r)
{
	struct fp_entry **slot, *e;
	struct parse p;
	int err;

	if (sql_key_build(&c->xkey, sql, len, SQL_KEY_EXACT))
		return -ENOMEM;
	slot = find(c, &c->xkey);
	if (*slot) {
		if (!have)
			c->st.hits++;
		if (!(*slot)->parsed)
			c->st.unparsed++;
		fill(r, *slot, &c->key);
		return 0;
	}
	if (have) {
		p = *have;
		p.norm = fp_text__get(have->norm);
	} else {
		err = parse_text(c, sql, len, true, &p);
		if (err)
			return err;
	}
	e = insert(c, slot, &c->xkey);
	if (!e) {
		fp_text__put(p.norm);
		return -ENOMEM;
	}
	e->mode = E_TRUSTED;
	e->cls = sql_classify(sql, len);
	if (p.ok) {
		e->fp = p.fp;
		e->parsed = true;
		e->norm = p.norm;
	} else {
		/* shape key, not exact key: rejected texts of one shape
		 * (say, syntax libpg_query 15 does not know) group together */
		e->fp = lexical_fp(&c->key);
		fp_text__put(p.norm);
		e->norm = NULL;
	}
	if (!e->norm)
		e->norm = lexical_norm(sql, len, false);
	if (!e->norm) {
		*slot = NULL;
		c->nentries--;
		free(e);
		return -ENOMEM;
	}
	if (!e->parsed)
		c->st.unparsed++;
	fill(r, e, &c->key);
	return 0;
}

int fp_cache__lookup(struct fp_cache *c, const char *sql, size_t len,
		     bool truncated, struct fp_result *r)
{
	struct fp_entry **slot, *e;
	struct parse p;
	int err;

	c->st.lookups++;
	/* room for a shape and an exact entry without a reset in between */
	if (c->nentries + 2 > c->max_entries || c->bytes > FP_MAX_BYTES) {
		reset(c);
		c->st.resets++;
	}
	if (truncated)
		return lookup_truncated(c, sql, len, r);

	if (sql_key_build(&c->key, sql, len, SQL_KEY_SHAPE))
		return -ENOMEM;
	slot = find(c, &c->key);
	e = *slot;
	if (!e) {
		err = parse_text(c, sql, len, true, &p);
		if (err)
			return err;
		e = insert(c, slot, &c->key);
		if (!e) {
			fp_text__put(p.norm);
			return -ENOMEM;
		}
		e->first_values = c->key.values;
		e->cls = sql_classify(sql, len);
		if (p.ok && p.norm && p.constants_replaced && c->key.abstract_ok) {
			e->mode = E_TRUSTED;
			e->fp = p.fp;
			e->parsed = true;
			e->norm = p.norm;
			fill(r, e, &c->key);
			return 0;
		}
		e->mode = E_EXACT;
		c->st.exact_shapes++;
		err = lookup_exact(c, sql, len, &p, r);
		fp_text__put(p.norm);
		return err;
	}
	if (e->mode == E_EXACT)
		return lookup_exact(c, sql, len, NULL, r);

	if (e->verified < FP_VERIFY && c->key.values != e->first_values) {
		e->verified++;
		c->st.verifies++;
		err = parse_text(c, sql, len, false, &p);
		if (err)
			return err;
		if (!p.ok || p.fp != e->fp) {
			/* the key merged what libpg_query keeps apart */
			e->mode = E_EXACT;
			c->st.mismatches++;
			c->st.exact_shapes++;
			return lookup_exact(c, sql, len, NULL, r);
		}
	} else {
		c->st.hits++;
	}
	fill(r, e, &c->key);
	return 0;
}
