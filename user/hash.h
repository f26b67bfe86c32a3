/*
 * A small, fast 64-bit hash for hash tables and "same text" checks
 * (multiply-rotate per 8-byte word, murmur3's finaliser at the end).
 *
 * Not cryptographic: an adversary can make collisions.  Hash tables built on
 * it compare the keys themselves, so a collision costs time, never a wrong
 * answer; where only the hash is kept (duplicate detection) a collision
 * makes two different statements look like duplicates, which needs a
 * process that wants to hide its own queries from us.
 */
#ifndef PQSNOOP_HASH_H
#define PQSNOOP_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HASH_K1 0x9e3779b97f4a7c15ULL
#define HASH_K2 0xc2b2ae3d27d4eb4fULL

static inline uint64_t hash_rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t hash_fmix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static inline uint64_t hash_bytes(const void *data, size_t n, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t h = seed ^ (n * HASH_K1), w;

	while (n >= 8) {
		memcpy(&w, p, 8);
		h = hash_rotl(h ^ (w * HASH_K2), 31) * HASH_K1;
		p += 8;
		n -= 8;
	}
	if (n) {
		w = 0;
		memcpy(&w, p, n);
		h = hash_rotl(h ^ (w * HASH_K2), 31) * HASH_K1;
	}
	return hash_fmix(h);
}

static inline uint64_t hash_u64(uint64_t a, uint64_t b)
{
	return hash_fmix(hash_rotl(a ^ (b * HASH_K2), 31) * HASH_K1 + b);
}

#endif /* PQSNOOP_HASH_H */
