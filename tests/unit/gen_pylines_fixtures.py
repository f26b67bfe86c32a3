#!/usr/bin/env python3
"""Generate tests/unit/pylines_fixtures.h: real line tables and CPython's answers.

For each interpreter, compile SOURCE (functions chosen to hit every branch of
the three line-table formats: line jumps over 127 and over 2**16, negative
line deltas, one line spanning hundreds of bytes, instructions without a line,
generators, coroutines, nested classes, lambdas, comprehensions) and record,
for every code object, its table bytes and the line CPython's own
PyCode_Addr2Line() gives for every 2-byte offset of its code, plus the
offset just past the end.  On 3.10+ the answers are cross-checked with
co_lines(), on 3.8/3.9 with dis.findlinestarts(); a disagreement aborts.

    tests/unit/gen_pylines_fixtures.py [PYTHON...]

Without arguments: every pyenv 3.8-3.13 build and /usr/bin/python3 that
exists.  The header is rewritten in full; commit it with the script.
"""

import glob
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "pylines_fixtures.h")

SOURCE = (
    '''
def simple(a, b):
    c = a + b
    return c

def loop(n):
    total = 0
    for i in range(n):
        if i % 2:
            total += i
        else:
            total -= 1
    while total > 100:
        total //= 2
    return total

def multiline_call(x):
    return dict(
        a=x,
        b=[x,
           x + 1],
        c={'k':
           x * 2},
    )

def try_finally(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        print(e)
        raise
    finally:
        print("done")

def gen(n):
    for i in range(n):
        yield i * 2
    yield from range(3)

async def coro(x):
    await x
    async with x as y:
        return y

def deco(f):
    return f

@deco
def decorated(
        a,
        b=2):
    return (a
            + b)

class Outer:
    class Inner:
        def method(self):
            return [v for v in range(3) if v]
    lam = lambda self: (self,
                        1)

def big_gap():
    a = 1
'''
    + "\n" * 300
    + "    b = 2\n"
    + "\n" * 70000
    + '''    return a + b

def long_line():
    x = ['''
    + ", ".join("x%d" % i for i in range(200))
    + ''']
    return x

def back_and_forth(x):
    y = (x +
         1) if x else (
         2)
    return y
'''
)


def dump():
    """Runs inside the interpreter under test; prints JSON on stdout."""
    import ctypes
    import dis

    addr2line = ctypes.pythonapi.PyCode_Addr2Line
    addr2line.argtypes = [ctypes.py_object, ctypes.c_int]
    addr2line.restype = ctypes.c_int

    top = compile(SOURCE, "<fixture>", "exec")
    codes = []

    def walk(co):
        codes.append(co)
        for c in co.co_consts:
            if hasattr(c, "co_code"):
                walk(c)

    walk(top)
    minor = sys.version_info[1]
    out = []
    for co in codes:
        n = len(co.co_code)
        lines = [addr2line(co, off) for off in range(0, n + 1, 2)]
        if minor >= 10:
            expect = [None] * (n // 2)
            for start, end, line in co.co_lines():
                for off in range(start, end, 2):
                    expect[off // 2] = -1 if line is None else line
            if expect != lines[:-1]:
                bad = [(2 * k, a, b) for k, (a, b) in enumerate(zip(lines, expect)) if a != b]
                raise SystemExit("%s: PyCode_Addr2Line and co_lines() disagree "
                                 "(offset, addr2line, co_lines): %r" % (co.co_name, bad[:5]))
            table = co.co_linetable
        else:
            starts = dict(dis.findlinestarts(co))
            line = co.co_firstlineno
            for k in range(n // 2):
                line = starts.get(2 * k, line)
                if line != lines[k]:
                    raise SystemExit("%s: PyCode_Addr2Line and findlinestarts disagree "
                                     "at %d: %d != %d" % (co.co_name, 2 * k, lines[k], line))
            table = co.co_lnotab
        out.append({
            "name": getattr(co, "co_qualname", co.co_name),
            "firstlineno": co.co_firstlineno,
            "table": list(table),
            "lines": lines,
        })
    print(json.dumps({"version": sys.version.split()[0],
                      "major": sys.version_info[0], "minor": minor, "codes": out}))


def interpreters():
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip() \
        or os.path.expanduser("~/.pyenv")
    found = []
    for minor in range(8, 14):
        found += sorted(glob.glob(os.path.join(root, "versions", "3.%d.*" % minor, "bin",
                                               "python3.%d" % minor)))
    if os.path.exists("/usr/bin/python3"):
        found.append("/usr/bin/python3")
    return found


def c_array(values, per_line=16):
    rows = []
    for i in range(0, len(values), per_line):
        rows.append("\t" + ", ".join(str(v) for v in values[i:i + per_line]) + ",")
    return "\n".join(rows)


def main():
    if sys.argv[1:] == ["--dump"]:
        dump()
        return
    pythons = sys.argv[1:] or interpreters()
    dumps = []
    for py in pythons:
        res = subprocess.run([py, os.path.abspath(__file__), "--dump"],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit("%s: %s" % (py, res.stderr.strip() or res.stdout.strip()))
        dumps.append(json.loads(res.stdout))
        print("%s: %d code objects" % (py, len(dumps[-1]["codes"])), file=sys.stderr)

    body, entries = [], []
    for d in dumps:
        vtag = d["version"].replace(".", "_")
        for i, co in enumerate(d["codes"]):
            tag = "fx_%s_%d" % (vtag, i)
            body.append("static const uint8_t %s_tab[] = {\n%s\n};" % (
                tag, c_array(co["table"]) or "\t0,"))
            body.append("static const int %s_lines[] = {\n%s\n};" % (tag, c_array(co["lines"])))
            entries.append('\t{ %d, %d, "%s", "%s", %d, %s_tab, %d, %s_lines, %d },' % (
                d["major"], d["minor"], d["version"], co["name"], co["firstlineno"],
                tag, len(co["table"]), tag, len(co["lines"])))
    with open(OUT, "w") as f:
        f.write("/* Generated by tests/unit/gen_pylines_fixtures.py from %s: do not edit. */\n"
                % ", ".join(d["version"] for d in dumps))
        f.write("""
/*
 * One code object per entry: its line table as the interpreter made it and,
 * for byte offset 2k (k < nlines), the line CPython's PyCode_Addr2Line()
 * returns; the last entry is for the offset just past the code.
 */
struct pylines_fixture {
	unsigned major, minor;
	const char *version;
	const char *name;
	int firstlineno;
	const uint8_t *table;
	size_t table_len;
	const int *lines;
	size_t nlines;
};

""")
        f.write("\n".join(body))
        f.write("\n\nstatic const struct pylines_fixture pylines_fixtures[] = {\n")
        f.write("\n".join(entries))
        f.write("\n};\n")
    print("wrote %s (%d code objects)" % (OUT, len(entries)), file=sys.stderr)


if __name__ == "__main__":
    main()
