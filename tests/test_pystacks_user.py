"""Python stacks read from outside, without BPF (user/pyprocess.c, user/pysym.c).

For every interpreter on the machine (pyenv 3.8-3.13 and Debian's python3),
start a target whose threads block in os.read() (which releases the GIL, as
psycopg2 and ctypes do around libpq calls) under known call chains, and let
the target itself report, through sys._current_frames(), each thread's frames:
id(code), file, function, line and f_lasti.  The probe
build/unit/test_pyprocess then attaches by PID, reads every thread's stack the
way the BPF side does (the TSS slot, then again with the thread walk only),
symbolizes it, and must print exactly the same frames.  A second check
symbolizes chosen code objects at every instruction offset and compares with
co_lines() (3.10+) or dis.findlinestarts() (3.8, 3.9).

Needs root (the probe reads another process's memory and ptrace-stops its
threads for a moment to learn their thread pointers).
"""

import glob
import json
import os
import select
import signal
import subprocess
import time

import pytest

pytestmark = pytest.mark.root

HERE = os.path.dirname(os.path.abspath(__file__))
UNIT_DIR = os.environ.get("UNIT_DIR", os.path.join(HERE, "..", "build", "unit"))
PROBE = os.path.join(UNIT_DIR, "test_pyprocess")

VERSIONS = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "debian"]


def pyenv_root():
    try:
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out or os.path.expanduser("~/.pyenv")


def find_python(version):
    """Path of the interpreter, or None."""
    if version == "debian":
        return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None
    found = sorted(glob.glob(os.path.join(pyenv_root(), "versions", version + ".*",
                                          "bin", "python" + version)))
    return found[-1] if found else None


TARGET = r'''# -*- coding: utf-8 -*-
import json, os, sys, threading, time

MINOR = sys.version_info[1]
pipes = {}
native = {}


def café(fd):
    return os.read(fd, 1)


def 名前(fd):
    return café(
        fd)


def 𠀀(fd):
    return 名前(fd)


class Outer:
    def method(self, fd):
        return 𠀀(fd)


def worker_inner(fd):
    return os.read(fd, 1)


def worker_outer(fd):
    x = [worker_inner(fd) for _ in range(1)]
    return x


def gen_frames(fd):
    yield os.read(fd, 1)


def worker_gen(fd):
    for v in gen_frames(fd):
        return v


def recurse(n, fd):
    if n == 0:
        return os.read(fd, 1)
    return recurse(n - 1,
                   fd)


def spread(a,
           b=2):
    c = (a +
         b)
    for i in range(3):
        if i:
            c += i
        else:
            c -= 1
    try:
        c = c / 1
    finally:
        c += 1
    return [c, (lambda: c)()]


def run(name, fn, *args):
    r, w = os.pipe()
    pipes[name] = w
    native[name] = threading.get_native_id()
    fn(*args, r)


def in_read(tid):
    try:
        with open("/proc/self/task/%d/syscall" % tid) as f:
            return f.read().split()[0] == "0"
    except OSError:
        return False


def frames_of(ident):
    out = []
    f = sys._current_frames().get(ident)
    while f is not None:
        co = f.f_code
        out.append([id(co), co.co_filename, getattr(co, "co_qualname", co.co_name),
                    f.f_lineno, f.f_lasti])
        f = f.f_back
    return out


def code_lines(co):
    if MINOR >= 10:
        lines = []
        for start, end, line in co.co_lines():
            for off in range(start, end, 2):
                lines.append([off, -1 if line is None else line])
        return lines
    import dis
    starts = dict(dis.findlinestarts(co))
    line, lines = co.co_firstlineno, []
    for off in range(0, len(co.co_code), 2):
        line = starts.get(off, line)
        lines.append([off, line])
    return lines


def report():
    names = ["main", "listcomp", "generator", "deep"]
    deadline = time.time() + 60
    while time.time() < deadline:
        if all(n in native for n in names) and all(in_read(native[n]) for n in names):
            break
        time.sleep(0.05)
    time.sleep(0.2)
    idents = {t.native_id: t.ident for t in threading.enumerate()}
    threads = {n: {"tid": native[n], "frames": frames_of(idents[native[n]])} for n in names}
    codes = []
    for fn in (café, 名前, Outer.method, recurse, spread, worker_outer):
        co = fn.__code__
        codes.append({"id": id(co), "file": co.co_filename,
                      "name": getattr(co, "co_qualname", co.co_name),
                      "firstlineno": co.co_firstlineno, "lines": code_lines(co)})
    print(json.dumps({"version": sys.version.split()[0], "threads": threads,
                      "codes": codes, "not_code": id(spread)}), flush=True)


for name, fn, args in [("listcomp", worker_outer, ()), ("generator", worker_gen, ()),
                       ("deep", recurse, (80,))]:
    threading.Thread(target=run, args=(name, fn) + args, daemon=True).start()
threading.Thread(target=report, daemon=True).start()
run("main", Outer().method)
'''


def parse_probe(out):
    stacks, cur = [], None
    for line in out.splitlines():
        f = line.split("\t")
        if f[0] == "stack":
            cur = {"tid": int(f[1]), "method": f[2], "err": int(f[3]),
                   "truncated": int(f[4]), "nframes": int(f[5]), "frames": []}
            stacks.append(cur)
        elif f[0] == "frame":
            # as the target reports them: id(code), file, function, line, f_lasti
            cur["frames"].append([int(f[1], 16), f[3], f[4], int(f[5]), int(f[2])])
    return stacks


def run_probe(*args):
    res = subprocess.run([PROBE] + [str(a) for a in args], capture_output=True, timeout=120)
    out = res.stdout.decode("utf-8", "replace")
    assert res.returncode == 0, "%s %s failed (%d):\n%s%s" % (
        PROBE, " ".join(map(str, args)), res.returncode, out,
        res.stderr.decode("utf-8", "replace"))
    return out


@pytest.fixture
def probe():
    if os.geteuid() != 0:
        pytest.skip("needs root: reads another process's memory and ptrace-stops its threads")
    if not os.path.exists(PROBE):
        pytest.fail("missing %s: build it with `make unit-bins`" % PROBE)
    return PROBE


@pytest.fixture(params=VERSIONS)
def target(request, tmp_path, probe):
    python = find_python(request.param)
    if not python:
        pytest.skip("Python %s is not installed (pyenv install %s)" % (
            request.param, request.param))
    script = tmp_path / "cible_ü_目标.py"
    script.write_text(TARGET, encoding="utf-8")
    env = dict(os.environ, PYTHONUTF8="1", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen([python, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else b""
        if not line:
            proc.kill()
            pytest.fail("%s target did not report: %s" % (
                python, proc.stderr.read().decode("utf-8", "replace")))
        rep = json.loads(line)
        rep["pid"] = proc.pid
        rep["python"] = python
        rep["script"] = str(script)
        yield rep
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def info(pid):
    out = run_probe("info", pid)
    return dict(line.split("\t", 1) for line in out.splitlines())


def test_info(target):
    inf = info(target["pid"])
    assert "error" not in inf, inf
    major_minor = ".".join(target["version"].split(".")[:2])
    # Py_Version gives the full version on 3.11+; before, only the file name tells
    assert inf["version"] in (target["version"], major_minor)
    assert inf["tss_verified"] == "1", inf["tss_note"]
    assert "decoded from PyGILState_GetThisThreadState" in inf["tss_note"], inf["tss_note"]
    assert inf["debug_offsets"] == ("1" if major_minor == "3.13" else "0")


@pytest.mark.parametrize("walk", [False, True], ids=["tss", "walk"])
def test_thread_stacks_match_interpreter(target, walk):
    threads = target["threads"]
    args = ["stack"] + (["--walk"] if walk else []) + [target["pid"]]
    stacks = parse_probe(run_probe(*(args + [t["tid"] for t in threads.values()])))
    assert len(stacks) == len(threads)
    by_tid = {s["tid"]: s for s in stacks}
    for name, t in threads.items():
        s = by_tid[t["tid"]]
        assert s["err"] == 0, (name, s)
        assert s["method"] == ("walk" if walk else "tss"), (name, s)
        want = t["frames"]
        if len(want) > 64:
            assert s["truncated"] == 1 and s["nframes"] == 64, (name, s["nframes"])
            want = want[:64]
        else:
            assert s["truncated"] == 0, name
        assert s["frames"] == want, "%s thread of %s:\nprobe:  %s\npython: %s" % (
            name, target["python"], s["frames"], want)
    # the chains are the ones the target built
    main = [f[2] for f in threads["main"]["frames"]]
    assert main[:3] == ["café", "名前", "𠀀"] and main[3] in ("Outer.method", "method")
    assert threads["main"]["frames"][0][1] == target["script"]
    gen = [f[2] for f in threads["generator"]["frames"]]
    assert gen[0] == "gen_frames" and gen[1] == "worker_gen"


def test_symbolize_every_offset(target):
    for co in target["codes"]:
        offsets = [off for off, _ in co["lines"]]
        out = run_probe("sym", target["pid"], "%x" % co["id"], *offsets)
        got = []
        for line in out.splitlines():
            f = line.split("\t")
            assert f[0] == "sym" and f[2] != "error", line
            got.append([int(f[1]), int(f[4])])
            assert (f[2], f[3], int(f[5]), f[6]) == (
                co["file"], co["name"], co["firstlineno"], "1"), line
        assert got == co["lines"], "%s in %s: (offset, line) differ" % (
            co["name"], target["python"])


def test_not_a_code_object(target):
    out = run_probe("sym", target["pid"], "%x" % target["not_code"], 0)
    assert out.split("\t")[:3] == ["sym", "0", "error"]
    assert "EINVAL" in out


def test_instruction_outside_code_is_stale(target):
    # 3.11+ frames carry a pointer, which must fall inside the code object;
    # f_lasti before 3.11 carries nothing to check against
    co = target["codes"][0]
    if [int(x) for x in target["version"].split(".")[:2]] < [3, 11]:
        # f_lasti (before 3.11) carries nothing to check against: an offset
        # past the code still names its code object (file and function),
        # with the line CPython's own PyCode_Addr2Line gives it: the line
        # the table ends on for the 3.8/3.9 lnotab, none (-1) on 3.10
        end = co["lines"][-1][0] + 2
        out = run_probe("sym", target["pid"], "%x" % co["id"], end + 4096)
        f = out.splitlines()[0].split("\t")
        assert f[2:4] == [co["file"], co["name"]], out
        last = [line for _, line in co["lines"] if line is not None][-1]
        want = -1 if target["version"].startswith("3.10") else last
        assert int(f[4]) == want, out
        return
    end = co["lines"][-1][0] + 2
    out = run_probe("sym", target["pid"], "%x" % co["id"], end - 2, end, end + 4096, -4)
    lines = [line.split("\t") for line in out.splitlines()]
    assert lines[0][2] == co["file"]
    assert [line[2:4] for line in lines[1:]] == [["error", "EINVAL"]] * 3, out


def test_unsupported_and_non_python(probe, tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        res = subprocess.run([probe, "info", str(sleeper.pid)], capture_output=True, text=True)
        assert res.returncode == 1
        assert res.stdout.startswith(
            "error\tprocess %d is not a Python process: no libpython in its maps and "
            "no _PyRuntime in its executable" % sleeper.pid), res.stdout
    finally:
        sleeper.kill()
        sleeper.wait()
    old = find_python("3.7")
    if old:
        proc = subprocess.Popen([old, "-c", "import time; time.sleep(60)"])
        try:
            for _ in range(100):  # until the interpreter has mapped libpython
                res = subprocess.run([probe, "info", str(proc.pid)], capture_output=True,
                                     text=True)
                if "Python 3.7" in res.stdout:
                    break
                time.sleep(0.05)
            assert res.returncode == 1
            assert "runs Python 3.7" in res.stdout and "does not support (3.8 to 3.13)" \
                in res.stdout, res.stdout
        finally:
            proc.kill()
            proc.wait()
