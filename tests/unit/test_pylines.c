/*
 * Line-table decoders (user/pylines.c) against CPython itself: the fixtures
 * hold real tables from CPython 3.8-3.13 and, for every instruction offset,
 * the line PyCode_Addr2Line() gave (tests/unit/gen_pylines_fixtures.py).
 * Plus hand-made tables for the corner cases a real interpreter rarely makes
 * and for garbage input.
 */
#include <stdint.h>
#include <stdlib.h>

#include "unit.h"
#include "pylines.h"
#include "pylines_fixtures.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static void test_fixtures_match_cpython(void)
{
	size_t i, k, checked = 0;

	for (i = 0; i < ARRAY_SIZE(pylines_fixtures); i++) {
		const struct pylines_fixture *fx = &pylines_fixtures[i];
		enum pylines_format fmt = pylines_format(fx->major, fx->minor);
		int bad = 0;

		CHECK(fmt != PYLINES_NONE);
		for (k = 0; k < fx->nlines; k++) {
			int got = pylines_addr2line(fmt, fx->table, fx->table_len,
						    fx->firstlineno, (int)(2 * k));
			if (got != fx->lines[k] && bad++ < 3)
				fprintf(stderr, "%s %s offset %zu: line %d, CPython says %d\n",
					fx->version, fx->name, 2 * k, got, fx->lines[k]);
			checked++;
		}
		CHECK_INT(bad, 0);
		/* a frame that has not started */
		CHECK_INT(pylines_addr2line(fmt, fx->table, fx->table_len,
					    fx->firstlineno, -2), fx->firstlineno);
	}
	CHECK(checked > 5000);
}

/* The fixtures must exercise every branch of every decoder. */
static void test_fixtures_cover_formats(void)
{
	int lnotab_neg = 0, lnotab_big_addr = 0, lnotab_big_line = 0;
	int lt_noline = 0, lt_neg = 0, lt_empty = 0;
	int kinds[16] = { 0 }, neg_varint = 0, big_varint = 0;
	size_t i, j;
	int k;

	for (i = 0; i < ARRAY_SIZE(pylines_fixtures); i++) {
		const struct pylines_fixture *fx = &pylines_fixtures[i];
		const uint8_t *t = fx->table;

		switch (pylines_format(fx->major, fx->minor)) {
		case PYLINES_LNOTAB:
			for (j = 0; j + 1 < fx->table_len; j += 2) {
				lnotab_neg |= (int8_t)t[j + 1] < 0;
				lnotab_big_addr |= t[j] == 255;
				lnotab_big_line |= t[j + 1] == 127;
			}
			break;
		case PYLINES_LINETABLE:
			for (j = 0; j + 1 < fx->table_len; j += 2) {
				lt_noline |= (int8_t)t[j + 1] == -128;
				lt_neg |= (int8_t)t[j + 1] < 0 && (int8_t)t[j + 1] != -128;
				lt_empty |= t[j] == 0;
			}
			break;
		case PYLINES_LOCATIONS:
			for (j = 0; j < fx->table_len; j++) {
				if (!(t[j] & 0x80))
					continue;
				k = (t[j] >> 3) & 15;
				kinds[k]++;
				if ((k == 13 || k == 14) && j + 1 < fx->table_len) {
					neg_varint |= t[j + 1] & 1;
					big_varint |= (t[j + 1] & 64) && j + 2 < fx->table_len &&
						      (t[j + 2] & 64);
				}
			}
			break;
		case PYLINES_NONE:
			break;
		}
	}
	CHECK(lnotab_neg);
	CHECK(lnotab_big_addr);
	CHECK(lnotab_big_line);
	CHECK(lt_noline);
	CHECK(lt_neg);
	CHECK(lt_empty);
	for (k = 10; k <= 15; k++)
		if (!kinds[k])
			fprintf(stderr, "no location entry of kind %d in the fixtures\n", k);
	CHECK(kinds[0] + kinds[1] + kinds[2] + kinds[9] > 0);
	CHECK(kinds[10] && kinds[11] && kinds[12] && kinds[13] && kinds[14] && kinds[15]);
	CHECK(neg_varint);
	CHECK(big_varint);
}

static void test_lnotab_by_hand(void)
{
	/* line 10: 0-5, +3 at 6, -1 at 10, then +300 in three steps at 400 */
	static const uint8_t t[] = { 6, 3, 4, (uint8_t)-1, 255, 0, 135, 127, 0, 127, 0, 46 };

	CHECK_INT(pylines_lnotab(t, sizeof(t), 10, 0), 10);
	CHECK_INT(pylines_lnotab(t, sizeof(t), 10, 4), 10);
	CHECK_INT(pylines_lnotab(t, sizeof(t), 10, 6), 13);
	CHECK_INT(pylines_lnotab(t, sizeof(t), 10, 10), 12);
	CHECK_INT(pylines_lnotab(t, sizeof(t), 10, 398), 12);
	CHECK_INT(pylines_lnotab(t, sizeof(t), 10, 400), 312);
	CHECK_INT(pylines_lnotab(t, sizeof(t), 10, 100000), 312);
	CHECK_INT(pylines_lnotab(t, sizeof(t), 10, -1), 10);
	/* an odd trailing byte is ignored */
	CHECK_INT(pylines_lnotab(t, 3, 10, 100), 13);
	CHECK_INT(pylines_lnotab(NULL, 0, 7, 100), 7);
}

static void test_linetable_by_hand(void)
{
	/* [0,4) line 5, [4,8) no line, empty +2, [8,10) line 7, [10,12) line 6 */
	static const uint8_t t[] = { 4, 0, 4, 0x80, 0, 2, 2, 0, 2, (uint8_t)-1 };

	CHECK_INT(pylines_linetable(t, sizeof(t), 5, 0), 5);
	CHECK_INT(pylines_linetable(t, sizeof(t), 5, 2), 5);
	CHECK_INT(pylines_linetable(t, sizeof(t), 5, 4), -1);
	CHECK_INT(pylines_linetable(t, sizeof(t), 5, 6), -1);
	CHECK_INT(pylines_linetable(t, sizeof(t), 5, 8), 7);
	CHECK_INT(pylines_linetable(t, sizeof(t), 5, 10), 6);
	CHECK_INT(pylines_linetable(t, sizeof(t), 5, 12), -1);
	CHECK_INT(pylines_linetable(t, sizeof(t), 5, -2), 5);
	CHECK_INT(pylines_linetable(NULL, 0, 5, 0), -1);
}

static void test_locations_by_hand(void)
{
	static const uint8_t t[] = {
		0x80 | (0 << 3) | 1, 0x05,		/* short form: 2 units, same line */
		0x80 | (11 << 3) | 0, 4, 9,		/* one line form: +1, 1 unit */
		0x80 | (13 << 3) | 2, 64 | 16, 1,	/* no columns: +40 (varint 80), 3 units */
		0x80 | (14 << 3) | 0, 2 * 3 + 1, 0, 1, 2, /* long: -3, 1 unit */
		0x80 | (15 << 3) | 1,			/* no location: 2 units */
		/* long: +100000 (varint 200000: groups 0, 53, 48) */
		0x80 | (14 << 3) | 0, 64 | 0, 64 | 53, 48, 0, 0, 0,
		0x80 | (10 << 3) | 0, 1, 2,		/* one line form: +0 */
	};

	CHECK_INT(pylines_locations(t, sizeof(t), 20, 0), 20);
	CHECK_INT(pylines_locations(t, sizeof(t), 20, 2), 20);
	CHECK_INT(pylines_locations(t, sizeof(t), 20, 4), 21);
	CHECK_INT(pylines_locations(t, sizeof(t), 20, 6), 61);
	CHECK_INT(pylines_locations(t, sizeof(t), 20, 10), 61);
	CHECK_INT(pylines_locations(t, sizeof(t), 20, 12), 58);
	CHECK_INT(pylines_locations(t, sizeof(t), 20, 14), -1);
	CHECK_INT(pylines_locations(t, sizeof(t), 20, 16), -1);
	CHECK_INT(pylines_locations(t, sizeof(t), 20, 18), 100058);
	CHECK_INT(pylines_locations(t, sizeof(t), 20, 20), 100058);
	CHECK_INT(pylines_locations(t, sizeof(t), 20, 22), -1);
	CHECK_INT(pylines_locations(t, sizeof(t), 20, -2), 20);
}

/* Garbage never makes a decoder read past the table or overflow. */
static void test_garbage(void)
{
	uint8_t buf[257];
	unsigned seed = 12345;
	int round, addr, fmt;
	size_t len, i;

	for (round = 0; round < 2000; round++) {
		len = (size_t)(seed % sizeof(buf));
		for (i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			buf[i] = (uint8_t)(seed >> 16);
		}
		/* a copy exactly `len` long, so ASan sees any overread */
		uint8_t *t = malloc(len ? len : 1);
		if (!t)
			return;
		memcpy(t, buf, len);
		for (fmt = PYLINES_LNOTAB; fmt <= PYLINES_LOCATIONS; fmt++)
			for (addr = -4; addr < 600; addr += 37)
				(void)pylines_addr2line((enum pylines_format)fmt, t, len,
							round & 1 ? 2147483000 : 1, addr);
		free(t);
		seed = seed * 1103515245u + 12345u;
	}
	/* a long run of continuation bytes must not shift past 64 bits */
	memset(buf, 0x7f, sizeof(buf));
	buf[0] = 0x80 | (14 << 3);
	CHECK(pylines_locations(buf, sizeof(buf), 1, 0) != 0);
	/* line sums outside int are "no line" */
	{
		static const uint8_t up[] = { 2, 127 };
		CHECK_INT(pylines_lnotab(up, sizeof(up), 2147483600, 4), -1);
	}
}

static void test_format(void)
{
	CHECK_INT(pylines_format(3, 7), PYLINES_NONE);
	CHECK_INT(pylines_format(3, 8), PYLINES_LNOTAB);
	CHECK_INT(pylines_format(3, 9), PYLINES_LNOTAB);
	CHECK_INT(pylines_format(3, 10), PYLINES_LINETABLE);
	CHECK_INT(pylines_format(3, 11), PYLINES_LOCATIONS);
	CHECK_INT(pylines_format(3, 13), PYLINES_LOCATIONS);
	CHECK_INT(pylines_format(2, 7), PYLINES_NONE);
	CHECK_INT(pylines_addr2line(PYLINES_NONE, NULL, 0, 1, 0), -1);
}

static void test_frame_addr(void)
{
	int addr = 12345;

	/* 3.8/3.9: f_lasti in bytes */
	CHECK(pylines_frame_addr(8, 10, 0, 0, 0, &addr));
	CHECK_INT(addr, 10);
	CHECK(!pylines_frame_addr(9, 11, 0, 0, 0, &addr));
	CHECK(pylines_frame_addr(9, (uint64_t)-1, 0, 0, 0, &addr));
	CHECK(addr < 0);
	CHECK(!pylines_frame_addr(9, (uint64_t)-2, 0, 0, 0, &addr));
	CHECK(!pylines_frame_addr(9, 40, 0, 0, 20, &addr));
	CHECK(pylines_frame_addr(9, 38, 0, 0, 20, &addr));
	CHECK_INT(addr, 38);
	/* 3.10: f_lasti in code units */
	CHECK(pylines_frame_addr(10, 7, 0, 0, 0, &addr));
	CHECK_INT(addr, 14);
	CHECK(!pylines_frame_addr(10, 20, 0, 0, 20, &addr));
	/* 3.11+: a pointer into co_code_adaptive */
	CHECK(pylines_frame_addr(11, 0x1000 + 184 + 6, 0x1000, 184, 10, &addr));
	CHECK_INT(addr, 6);
	CHECK(pylines_frame_addr(12, 0x1000 + 192 - 2, 0x1000, 192, 10, &addr));
	CHECK(addr < 0);
	CHECK(!pylines_frame_addr(12, 0x1000 + 192 - 4, 0x1000, 192, 10, &addr));
	CHECK(!pylines_frame_addr(13, 0x1000 + 200 + 20, 0x1000, 200, 10, &addr));
	CHECK(!pylines_frame_addr(13, 0x1000 + 200 + 3, 0x1000, 200, 10, &addr));
	CHECK(!pylines_frame_addr(13, 0, 0x1000, 200, 10, &addr));
	CHECK(!pylines_frame_addr(13, UINT64_MAX, 0x1000, 200, 10, &addr));
}

int main(void)
{
	RUN(test_fixtures_match_cpython);
	RUN(test_fixtures_cover_formats);
	RUN(test_lnotab_by_hand);
	RUN(test_linetable_by_hand);
	RUN(test_locations_by_hand);
	RUN(test_garbage);
	RUN(test_format);
	RUN(test_frame_addr);
	return unit_summary();
}
