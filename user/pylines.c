#include "pylines.h"

#include <limits.h>

/* Lines are summed in 64 bits; a sum outside int means a corrupt table. */
static int line_or_none(int64_t line)
{
	return line < INT_MIN || line > INT_MAX ? -1 : (int)line;
}

enum pylines_format pylines_format(unsigned major, unsigned minor)
{
	if (major != 3 || minor < 8)
		return PYLINES_NONE;
	if (minor <= 9)
		return PYLINES_LNOTAB;
	if (minor == 10)
		return PYLINES_LINETABLE;
	return PYLINES_LOCATIONS;
}

/*
 * 3.8/3.9 (Objects/lnotab_notes.txt): the line changes by the signed second
 * byte once the address passes the first; a line stays in force until the
 * next pair whose address is past addr.
 */
int pylines_lnotab(const uint8_t *tab, size_t len, int firstlineno, int addr)
{
	int64_t line = firstlineno, a = 0;
	size_t i;

	if (addr < 0)
		return firstlineno;
	for (i = 0; i + 1 < len; i += 2) {
		a += tab[i];
		if (a > addr)
			break;
		line += (int8_t)tab[i + 1];
	}
	return line_or_none(line);
}

/*
 * 3.10 (PEP 626, Objects/lnotab_notes.txt of 3.10): each pair is a range of
 * tab[i] bytes whose line is the running line plus tab[i+1], or none when
 * tab[i+1] is -128 (the running line then stays).  Empty ranges only carry
 * line changes.
 */
int pylines_linetable(const uint8_t *tab, size_t len, int firstlineno, int addr)
{
	int64_t line = firstlineno, range_line, end = 0, start;
	size_t i;

	if (addr < 0)
		return firstlineno;
	for (i = 0; i + 1 < len; i += 2) {
		start = end;
		end += tab[i];
		if ((int8_t)tab[i + 1] == -128) {
			range_line = -1;
		} else {
			line += (int8_t)tab[i + 1];
			range_line = line;
		}
		if (start == end)
			continue;
		if (addr < end)
			return range_line < 0 ? -1 : line_or_none(range_line);
	}
	return -1;
}

/* Unsigned varint of locations.md: 6 bits a byte, bit 6 = more follow. */
static uint64_t scan_varint(const uint8_t *tab, size_t len, size_t i)
{
	uint64_t val = 0;
	unsigned shift = 0;

	while (i < len && shift < 42) {
		val |= (uint64_t)(tab[i] & 63) << shift;
		if (!(tab[i] & 64))
			break;
		shift += 6;
		i++;
	}
	return val;
}

static int64_t scan_signed_varint(const uint8_t *tab, size_t len, size_t i)
{
	uint64_t u = scan_varint(tab, len, i);

	return u & 1 ? -(int64_t)(u >> 1) : (int64_t)(u >> 1);
}

/*
 * 3.11+ (Objects/locations.md): an entry starts at a byte with bit 7 set;
 * bits 0-2 + 1 is its length in code units, bits 3-6 its kind:
 * 0-9 short form (same line), 10-12 one-line forms (line += kind - 10),
 * 13 no columns and 14 long form (line += signed varint), 15 no location.
 */
int pylines_locations(const uint8_t *tab, size_t len, int firstlineno, int addr)
{
	int64_t line = firstlineno, end = 0;
	size_t i = 0;
	unsigned kind;

	if (addr < 0)
		return firstlineno;
	while (i < len) {
		if (!(tab[i] & 0x80)) {
			/* not an entry start: a corrupt table; resynchronize */
			i++;
			continue;
		}
		kind = (tab[i] >> 3) & 15;
		if (kind == 13 || kind == 14)
			line += scan_signed_varint(tab, len, i + 1);
		else if (kind >= 10 && kind <= 12)
			line += kind - 10;
		end += ((tab[i] & 7) + 1) * 2;
		if (addr < end)
			return kind == 15 ? -1 : line_or_none(line);
		for (i++; i < len && !(tab[i] & 0x80); i++)
			;
	}
	return -1;
}

int pylines_addr2line(enum pylines_format fmt, const uint8_t *tab, size_t len,
		      int firstlineno, int addr)
{
	switch (fmt) {
	case PYLINES_LNOTAB:
		return pylines_lnotab(tab, len, firstlineno, addr);
	case PYLINES_LINETABLE:
		return pylines_linetable(tab, len, firstlineno, addr);
	case PYLINES_LOCATIONS:
		return pylines_locations(tab, len, firstlineno, addr);
	case PYLINES_NONE:
		break;
	}
	return -1;
}

bool pylines_frame_addr(unsigned minor, uint64_t instr, uint64_t code,
			uint32_t adaptive_off, uint64_t ncodeunits, int *addr)
{
	int64_t lasti = (int64_t)instr;
	uint64_t start, off, units;

	if (minor <= 10) {
		/* f_lasti: -1 before the first instruction */
		if (lasti == -1) {
			*addr = -1;
			return true;
		}
		if (lasti < 0 || lasti > INT_MAX / 2 || (minor < 10 && (lasti & 1)))
			return false;
		units = minor == 10 ? (uint64_t)lasti : (uint64_t)lasti / 2;
		if (ncodeunits && units >= ncodeunits)
			return false;
		*addr = (int)(units * 2);
		return true;
	}
	start = code + adaptive_off;
	/* prev_instr is one unit before the code until the frame starts */
	if (instr + 2 < start || (instr & 1) != (start & 1))
		return false;
	if (instr < start) {
		*addr = -2;
		return true;
	}
	off = instr - start;
	if (off / 2 >= ncodeunits || off > INT_MAX)
		return false;
	*addr = (int)off;
	return true;
}
