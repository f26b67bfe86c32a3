#include "u64map.h"

#include <errno.h>
#include <stdlib.h>

#include "hash.h"

void u64map_release(struct u64map *m)
{
	free(m->keys);
	free(m->vals);
	free(m->used);
	u64map_init(m);
}

static size_t slot_of(const struct u64map *m, uint64_t key)
{
	return hash_fmix(key) & (m->cap - 1);
}

void **u64map_get(const struct u64map *m, uint64_t key)
{
	size_t i;

	if (!m->cap)
		return NULL;
	for (i = slot_of(m, key); m->used[i]; i = (i + 1) & (m->cap - 1))
		if (m->keys[i] == key)
			return &m->vals[i];
	return NULL;
}

static void place(struct u64map *m, uint64_t key, void *val)
{
	size_t i = slot_of(m, key);

	while (m->used[i])
		i = (i + 1) & (m->cap - 1);
	m->used[i] = 1;
	m->keys[i] = key;
	m->vals[i] = val;
	m->n++;
}

static int grow(struct u64map *m)
{
	struct u64map old = *m;
	size_t cap = m->cap ? m->cap * 2 : 8;

	m->keys = malloc(cap * sizeof(*m->keys));
	m->vals = malloc(cap * sizeof(*m->vals));
	m->used = calloc(cap, 1);
	if (!m->keys || !m->vals || !m->used) {
		free(m->keys);
		free(m->vals);
		free(m->used);
		*m = old;
		return -ENOMEM;
	}
	m->cap = cap;
	m->n = 0;
	for (size_t i = 0; i < old.cap; i++)
		if (old.used[i])
			place(m, old.keys[i], old.vals[i]);
	u64map_release(&old);
	return 0;
}

int u64map_put(struct u64map *m, uint64_t key, void *val)
{
	void **v = u64map_get(m, key);

	if (v) {
		*v = val;
		return 0;
	}
	if ((m->n + 1) * 2 > m->cap && grow(m))
		return -ENOMEM;
	place(m, key, val);
	return 0;
}

void u64map_del(struct u64map *m, uint64_t key)
{
	size_t i, j, mask = m->cap - 1;

	if (!m->cap)
		return;
	for (i = slot_of(m, key); m->used[i]; i = (i + 1) & mask)
		if (m->keys[i] == key)
			break;
	if (!m->used[i])
		return;
	/* backward shift: move later entries of the probe chain up */
	for (j = (i + 1) & mask; m->used[j]; j = (j + 1) & mask) {
		size_t home = slot_of(m, m->keys[j]);

		/* can the entry at j live at i?  yes if its home is not in
		 * the (cyclic) range (i, j] */
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			i = j;
		}
	}
	m->used[i] = 0;
	m->n--;
}
