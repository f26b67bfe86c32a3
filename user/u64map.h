/*
 * A hash map from 64-bit keys to pointers: open addressing, linear probing,
 * backward-shift deletion (no tombstones), grows at half load.
 *
 * Invariants: keys are unique; a NULL value is allowed (use as a set).
 * Pointers returned by u64map_get() are valid until the next put or del.
 * Functions that allocate return -ENOMEM and leave the map as it was.
 */
#ifndef PQSNOOP_U64MAP_H
#define PQSNOOP_U64MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct u64map {
	uint64_t *keys;
	void **vals;
	unsigned char *used;
	size_t cap;		/* 0 or a power of two */
	size_t n;
};

static inline void u64map_init(struct u64map *m)
{
	*m = (struct u64map){ 0 };
}

void u64map_release(struct u64map *m);

/* Slot of key's value, or NULL. */
void **u64map_get(const struct u64map *m, uint64_t key);
/* Inserts or replaces. */
int u64map_put(struct u64map *m, uint64_t key, void *val);
/* Removes key if present. */
void u64map_del(struct u64map *m, uint64_t key);

/* for (size_t i = 0; i < m->cap; i++) if (m->used[i]) ... m->keys[i] */

#endif /* PQSNOOP_U64MAP_H */
