#include "pysym.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "pylines.h"

/* Limits on what is read from a traced process. */
#define MAX_FILE_CHARS 4096
#define MAX_NAME_CHARS 1024
#define MAX_TABLE_BYTES (1u << 20)
/* Bytes of a code object's header read per lookup (every offset is below). */
#define CODE_HDR 256
/* Entries kept before the cache is emptied (interned strings stay). */
#define MAX_ENTRIES (1u << 16)

struct entry {
	struct entry *next;
	pid_t pid;
	uint64_t code;
	/* what identifies the object, compared on every lookup */
	uint64_t filename_ptr, name_ptr, linetable_ptr;
	int firstlineno;
	uint64_t ncodeunits;	/* Py_SIZE(code) on 3.11+, 0 before */
	const char *file, *func;	/* interned */
	uint8_t *table;
	size_t table_len;
};

struct istr {
	struct istr *next;
	uint64_t hash;
	char s[];
};

struct py_syms {
	struct entry **buckets;
	size_t nbuckets, nentries;
	struct istr **strs;
	size_t nstrs_buckets, nstrs;
};

static size_t entry_bucket(const struct py_syms *s, pid_t pid, uint64_t code)
{
	return (size_t)hash_u64(code, (uint64_t)(uint32_t)pid) & (s->nbuckets - 1);
}

struct py_syms *py_syms__new(void)
{
	struct py_syms *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->nbuckets = 1024;
	s->nstrs_buckets = 1024;
	s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
	s->strs = calloc(s->nstrs_buckets, sizeof(*s->strs));
	if (!s->buckets || !s->strs) {
		py_syms__free(s);
		return NULL;
	}
	return s;
}

static void entry_free(struct entry *e)
{
	free(e->table);
	free(e);
}

static void drop_entries(struct py_syms *s, bool all, pid_t pid)
{
	size_t i;

	for (i = 0; i < s->nbuckets; i++) {
		struct entry **pp = &s->buckets[i];

		while (*pp) {
			struct entry *e = *pp;

			if (all || e->pid == pid) {
				*pp = e->next;
				entry_free(e);
				s->nentries--;
			} else {
				pp = &e->next;
			}
		}
	}
}

void py_syms__free(struct py_syms *s)
{
	size_t i;

	if (!s)
		return;
	if (s->buckets)
		drop_entries(s, true, 0);
	for (i = 0; s->strs && i < s->nstrs_buckets; i++) {
		struct istr *x = s->strs[i], *next;

		for (; x; x = next) {
			next = x->next;
			free(x);
		}
	}
	free(s->strs);
	free(s->buckets);
	free(s);
}

void py_syms__forget(struct py_syms *s, pid_t pid)
{
	drop_entries(s, false, pid);
}

size_t py_syms__size(const struct py_syms *s)
{
	return s->nentries;
}

/* The interned copy of s[0..n); NULL when out of memory. */
static const char *intern(struct py_syms *s, const char *str, size_t n)
{
	uint64_t h = hash_bytes(str, n, 0);
	struct istr *x;
	size_t b;

	if (s->nstrs >= 2 * s->nstrs_buckets) {
		size_t nb = s->nstrs_buckets * 4, i;
		struct istr **nbk = calloc(nb, sizeof(*nbk));

		if (nbk) {
			for (i = 0; i < s->nstrs_buckets; i++) {
				struct istr *y = s->strs[i], *next;

				for (; y; y = next) {
					next = y->next;
					y->next = nbk[y->hash & (nb - 1)];
					nbk[y->hash & (nb - 1)] = y;
				}
			}
			free(s->strs);
			s->strs = nbk;
			s->nstrs_buckets = nb;
		}
	}
	b = h & (s->nstrs_buckets - 1);
	for (x = s->strs[b]; x; x = x->next)
		if (x->hash == h && !strncmp(x->s, str, n) && x->s[n] == 0)
			return x->s;
	x = malloc(sizeof(*x) + n + 1);
	if (!x)
		return NULL;
	x->hash = h;
	memcpy(x->s, str, n);
	x->s[n] = 0;
	x->next = s->strs[b];
	s->strs[b] = x;
	s->nstrs++;
	return x->s;
}

static uint64_t get64(const uint8_t *b, uint32_t off)
{
	uint64_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

static int32_t get32(const uint8_t *b, uint32_t off)
{
	int32_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

/* Appends code point cp as UTF-8 (lone surrogates as U+FFFD). */
static size_t put_utf8(char *out, uint32_t cp)
{
	if (cp >= 0xd800 && cp <= 0xdfff)
		cp = 0xfffd;
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	if (cp > 0x10ffff)
		cp = 0xfffd;
	if (cp < 0x10000)
		return put_utf8(out, cp);
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Reads the str at addr as interned UTF-8.  Only compact strings (all that
 * code objects hold); NULL when unreadable, not compact, or too long.
 */
static const char *read_str(struct py_syms *s, const struct py_process *p, uint64_t addr,
			    size_t max_chars)
{
	const struct py_offsets *o = py_process__offsets(p);
	uint8_t hdr[48];
	int64_t len;
	uint32_t state, kind;
	uint8_t *raw = NULL;
	char *utf8 = NULL;
	const char *res = NULL;
	size_t i, n = 0;

	if (!addr || py_process__read(p, addr, hdr, sizeof(hdr)))
		return NULL;
	len = (int64_t)get64(hdr, 16);
	state = (uint32_t)get32(hdr, 32);
	kind = (state >> 2) & 7;
	if (len < 0 || (size_t)len > max_chars || !(state & (1u << 5)))
		return NULL;
	if (state & (1u << 6))
		kind = 1;
	else if (kind != 1 && kind != 2 && kind != 4)
		return NULL;
	raw = malloc((size_t)len * kind + 1);
	utf8 = malloc((size_t)len * 4 + 1);
	if (!raw || !utf8)
		goto out;
	if (py_process__read(p, addr + (state & (1u << 6) ? o->str_ascii_size : o->str_compact_size),
			     raw, (size_t)len * kind))
		goto out;
	for (i = 0; i < (size_t)len; i++) {
		uint32_t cp;

		if (kind == 1) {
			cp = raw[i];
		} else if (kind == 2) {
			uint16_t u;

			memcpy(&u, raw + 2 * i, 2);
			cp = u;
		} else {
			memcpy(&cp, raw + 4 * i, 4);
		}
		n += put_utf8(utf8 + n, cp);
	}
	res = intern(s, utf8, n);
out:
	free(raw);
	free(utf8);
	return res;
}

/* Reads the bytes object at addr into a new buffer. */
static int read_bytes(const struct py_process *p, uint64_t addr, uint8_t **out, size_t *len)
{
	uint8_t hdr[32];
	int64_t n;
	int err;

	*out = NULL;
	*len = 0;
	if (!addr)
		return -EINVAL;
	if ((err = py_process__read(p, addr, hdr, sizeof(hdr))))
		return err;
	n = (int64_t)get64(hdr, 16);
	if (n < 0 || n > MAX_TABLE_BYTES)
		return -EINVAL;
	*out = malloc(n ? (size_t)n : 1);
	if (!*out)
		return -ENOMEM;
	if ((err = py_process__read(p, addr + 32, *out, (size_t)n))) {
		free(*out);
		*out = NULL;
		return err;
	}
	*len = (size_t)n;
	return 0;
}

/* Bytes of the code object header that hold every field read. */
static size_t code_hdr_len(const struct py_offsets *o)
{
	uint32_t offs[] = { 24, o->co_filename, o->co_name, o->co_qualname,
			    o->co_firstlineno, o->co_linetable };
	uint32_t max = 0;
	size_t i;

	for (i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		if (offs[i] != PY_OFF_NONE && offs[i] > max)
			max = offs[i];
	return max + 8 <= CODE_HDR ? max + 8 : 0;
}

static struct entry *lookup(struct py_syms *s, pid_t pid, uint64_t code, struct entry ***where)
{
	struct entry **pp = &s->buckets[entry_bucket(s, pid, code)];

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->pid == pid && (*pp)->code == code)
			break;
	*where = pp;
	return *pp;
}

static void unlink_entry(struct py_syms *s, struct entry **pp)
{
	struct entry *e = *pp;

	*pp = e->next;
	entry_free(e);
	s->nentries--;
}

static void rehash_entries(struct py_syms *s)
{
	size_t nb = s->nbuckets * 4, i;
	struct entry **nbk = calloc(nb, sizeof(*nbk)), **old = s->buckets;
	size_t oldn = s->nbuckets;

	if (!nbk)
		return;
	s->buckets = nbk;
	s->nbuckets = nb;
	for (i = 0; i < oldn; i++) {
		struct entry *e = old[i], *next;

		for (; e; e = next) {
			size_t b = entry_bucket(s, e->pid, e->code);

			next = e->next;
			e->next = nbk[b];
			nbk[b] = e;
		}
	}
	free(old);
}

/*
 * Fills *out from entry e.  On 3.11+ the instruction is a pointer that must
 * fall inside this code object: if it does not, the object at this address
 * is not the one the frame ran (freed and reused), and -EINVAL says so.
 */
static int answer(const struct entry *e, const struct py_process *p,
		  const struct py_frame *frame, struct py_sym *out)
{
	const struct py_offsets *o = py_process__offsets(p);
	unsigned minor = py_process__minor(p);
	int addr;

	out->file = e->file;
	out->func = e->func;
	out->firstlineno = e->firstlineno;
	if (!pylines_frame_addr(minor, frame->instr, frame->code, o->co_code_adaptive,
				e->ncodeunits, &addr))
		return minor >= 11 ? -EINVAL : 0;
	if (e->table)
		out->line = pylines_addr2line(pylines_format(3, minor), e->table,
					      e->table_len, e->firstlineno, addr);
	return 0;
}

int py_syms__resolve(struct py_syms *s, const struct py_process *p,
		     const struct py_frame *frame, struct py_sym *out)
{
	const struct py_offsets *o = py_process__offsets(p);
	uint8_t hdr[CODE_HDR];
	struct entry *e, **pp;
	uint64_t fname, name, table, ncodeunits = 0;
	int firstlineno, err;
	size_t hdr_len;
	pid_t pid = py_process__pid(p);

	out->file = out->func = "?";
	out->line = -1;
	out->firstlineno = 0;
	out->verified = false;

	hdr_len = code_hdr_len(o);
	if (!hdr_len)
		return -ENOTSUP;
	e = lookup(s, pid, frame->code, &pp);
	err = py_process__read(p, frame->code, hdr, hdr_len);
	if (err) {
		if (!e)
			return err;
		/* gone: the cached answer is the best there is */
		return answer(e, p, frame, out);
	}
	if (get64(hdr, 8) != o->code_type) {
		if (e)
			unlink_entry(s, pp);
		return -EINVAL;
	}
	out->verified = true;
	fname = get64(hdr, o->co_filename);
	name = get64(hdr, o->co_qualname != PY_OFF_NONE ? o->co_qualname : o->co_name);
	table = get64(hdr, o->co_linetable);
	firstlineno = get32(hdr, o->co_firstlineno);
	if (o->co_code_adaptive != PY_OFF_NONE)
		ncodeunits = get64(hdr, 16);	/* ob_size: code units on 3.11+ */

	if (e && (e->filename_ptr != fname || e->name_ptr != name ||
		  e->linetable_ptr != table || e->firstlineno != firstlineno)) {
		unlink_entry(s, pp);
		e = NULL;
		lookup(s, pid, frame->code, &pp);
	}
	if (!e) {
		const char *file = read_str(s, p, fname, MAX_FILE_CHARS);
		const char *func = read_str(s, p, name, MAX_NAME_CHARS);

		if (s->nentries >= MAX_ENTRIES)
			drop_entries(s, true, 0);
		else if (s->nentries >= 2 * s->nbuckets)
			rehash_entries(s);
		lookup(s, pid, frame->code, &pp);
		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		e->pid = pid;
		e->code = frame->code;
		e->filename_ptr = fname;
		e->name_ptr = name;
		e->linetable_ptr = table;
		e->firstlineno = firstlineno;
		e->ncodeunits = ncodeunits;
		e->file = file ? file : "?";
		e->func = func ? func : "?";
		err = read_bytes(p, table, &e->table, &e->table_len);
		if (err == -ENOMEM) {
			free(e);
			return err;
		}
		if (file && func && !err) {
			e->next = *pp;
			*pp = e;
			s->nentries++;
		} else {
			/* answer with what could be read, but try again next time */
			err = answer(e, p, frame, out);
			entry_free(e);
			return err;
		}
	}
	return answer(e, p, frame, out);
}
