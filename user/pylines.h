/*
 * Python line tables: instruction offset -> source line, as CPython's own
 * PyCode_Addr2Line() computes it, for CPython 3.8 to 3.13.
 *
 * Pure functions on the bytes of a code object's table (co_lnotab on 3.8 and
 * 3.9, co_linetable on 3.10+); they read nothing else and never read past
 * `len`, whatever the bytes are (the table comes from a traced process and
 * may be garbage if the code object was freed).
 *
 * `addr` is a byte offset into the code (co_code), like f_lasti on 3.8/3.9.
 * A negative addr (a frame that has not started) gives firstlineno, as in
 * CPython.  -1 means "no line": an instruction CPython marks as having none,
 * an offset past the table, or a line that does not fit an int.
 */
#ifndef PQSNOOP_PYLINES_H
#define PQSNOOP_PYLINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pylines_format {
	PYLINES_NONE = 0,
	PYLINES_LNOTAB,		/* 3.8, 3.9: (addr delta, signed line delta) pairs */
	PYLINES_LINETABLE,	/* 3.10 (PEP 626): (range length, line delta | -128) pairs */
	PYLINES_LOCATIONS,	/* 3.11+: Objects/locations.md */
};

/* The table format of CPython 3.minor; PYLINES_NONE if unknown. */
enum pylines_format pylines_format(unsigned major, unsigned minor);

int pylines_lnotab(const uint8_t *tab, size_t len, int firstlineno, int addr);
int pylines_linetable(const uint8_t *tab, size_t len, int firstlineno, int addr);
int pylines_locations(const uint8_t *tab, size_t len, int firstlineno, int addr);

/* Dispatches on fmt; -1 for PYLINES_NONE. */
int pylines_addr2line(enum pylines_format fmt, const uint8_t *tab, size_t len,
		      int firstlineno, int addr);

/*
 * The byte offset (addr above) of a frame's instruction, from the raw value
 * the BPF side read (struct py_frame.instr) for CPython 3.minor:
 * - 3.8, 3.9: f_lasti, already in bytes;
 * - 3.10: f_lasti in code units (2 bytes);
 * - 3.11+: a pointer into the code object's co_code_adaptive, which starts
 *   at code + adaptive_off.
 * ncodeunits is the code's length in 2-byte units (Py_SIZE(code) on 3.11+);
 * 0 means unknown (no upper bound check; allowed before 3.11 only).
 * Returns false (and leaves *addr alone) when the value cannot belong to
 * this code object: a pointer outside its code, odd, or an f_lasti out of
 * range.  A frame that has not started (f_lasti -1, prev_instr one unit
 * before the code) is valid and gives a negative *addr.
 */
bool pylines_frame_addr(unsigned minor, uint64_t instr, uint64_t code,
			uint32_t adaptive_off, uint64_t ncodeunits, int *addr);

#endif /* PQSNOOP_PYLINES_H */
