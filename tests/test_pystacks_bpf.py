"""bpf/pystack.bpf.h in the kernel: stacks read by a real uprobe on PQsendQuery.

tests/unit/pystack_compile.bpf.c wraps py_read_stack() in a uprobe program;
tests/unit/pystack_smoke.c loads it, registers the target's offsets
(user/pyprocess.c), attaches it to libpq's PQsendQuery in the target and
prints the stacks it receives, symbolized by user/pysym.c.  Both are built
here (the loader needs libbpf, which unit tests do not link).

The target calls PQsendQuery through ctypes, which releases the GIL like
psycopg2 does, on a connection that failed (no server needed: the probe
fires on entry).  Right before each call, on the same line, it records its
own stack from sys._getframe(): the BPF stacks must be identical (code
object address, file, function, line), in the main thread, a worker
thread, a generator, a callback called from C (3.12+ puts a C-stack frame
in the chain there) and an 80-deep recursion (cut at 64 frames, marked
truncated).  Every interpreter on the machine is tried.
"""

import json
import os
import select
import shutil
import subprocess

import pytest

from test_pystacks_user import VERSIONS, find_python, parse_probe

pytestmark = pytest.mark.root

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))

TARGET = r'''
import ctypes, json, os, sys, threading

lib = ctypes.CDLL("libpq.so.5")
lib.PQconnectdb.restype = ctypes.c_void_p
lib.PQconnectdb.argtypes = [ctypes.c_char_p]
lib.PQsendQuery.restype = ctypes.c_int
lib.PQsendQuery.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
conn = lib.PQconnectdb(b"host=/nonexistent-pqsnoop-dir connect_timeout=1")
expected = []


def stack(f):
    out = []
    while f is not None:
        co = f.f_code
        out.append([id(co), co.co_filename, getattr(co, "co_qualname", co.co_name), f.f_lineno])
        f = f.f_back
    return out


def send(tag):
    # one line, so that the line recorded is the line of the call
    expected.append({"tid": threading.get_native_id(), "tag": tag, "frames": stack(sys._getframe())}); lib.PQsendQuery(conn, tag.encode())


def b():
    return send("main")


def a():
    return b()


def worker():
    a()


def gen():
    yield send("generator")


def deep(n):
    if n == 0:
        return send("deep")
    return deep(n - 1)


def via_c():
    return list(map(lambda x: send("callback"), [1]))


libpq = [l.split()[-1] for l in open("/proc/self/maps") if "libpq.so" in l][0]
print(json.dumps({"pid": os.getpid(), "libpq": libpq}), flush=True)
sys.stdin.readline()
a()
t = threading.Thread(target=worker)
t.start()
t.join()
next(gen())
deep(80)
via_c()
print(json.dumps(expected), flush=True)
sys.stdin.readline()
'''

NCALLS = 5


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root: loads a BPF program")
    for tool in ("clang", "cc"):
        if not shutil.which(tool):
            pytest.skip("%s is not installed (make deps)" % tool)
    out = tmp_path_factory.mktemp("pystack_smoke")
    obj, loader = str(out / "pystack_compile.bpf.o"), str(out / "pystack_smoke")
    cmds = [
        ["clang", "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86", "-Wall", "-Werror",
         "-Ivmlinux", "-Ibpf", "-Itests/unit", "-c", "tests/unit/pystack_compile.bpf.c",
         "-o", obj],
        ["cc", "-g", "-O1", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-Wshadow",
         "-Wformat=2", "-Wno-unused-parameter", "-D_GNU_SOURCE", "-fsanitize=address,undefined",
         "-Ibpf", "-Iuser", "-Itests/unit", "tests/unit/pystack_smoke.c", "user/pyprocess.c",
         "user/pysym.c", "user/pylines.c", "-lbpf", "-lelf", "-o", loader],
    ]
    for cmd in cmds:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, "%s failed:\n%s" % (" ".join(cmd), r.stderr)
    return obj, loader


def readline(pipe, timeout, what):
    ready, _, _ = select.select([pipe], [], [], timeout)
    line = pipe.readline() if ready else b""
    assert line, "no %s within %d s" % (what, timeout)
    return line.decode("utf-8")


@pytest.mark.parametrize("version", VERSIONS)
def test_bpf_stacks_match_interpreter(smoke, version, tmp_path):
    python = find_python(version)
    if not python:
        pytest.skip("Python %s is not installed (pyenv install %s)" % (version, version))
    obj, loader = smoke
    script = tmp_path / "target.py"
    script.write_text(TARGET)
    target = subprocess.Popen([python, str(script)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    probe = None
    try:
        hello = json.loads(readline(target.stdout, 30, "hello from the target"))
        probe = subprocess.Popen([loader, obj, str(hello["pid"]), hello["libpq"],
                                  "PQsendQuery", str(NCALLS), "60"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = readline(probe.stdout, 60, "'attached' from the loader")
        assert line == "attached\n", line + probe.stderr.read().decode()
        target.stdin.write(b"go\n")
        target.stdin.flush()
        expected = json.loads(readline(target.stdout, 60, "expected stacks"))
        out, err = probe.communicate(timeout=90)
        assert probe.returncode == 0, err.decode()
        stacks = parse_probe(out.decode("utf-8"))
    finally:
        if probe and probe.poll() is None:
            probe.kill()
            probe.wait()
        target.kill()
        target.wait()

    assert [e["tag"] for e in expected] == ["main", "main", "generator", "deep", "callback"]
    assert expected[0]["tid"] == hello["pid"] != expected[1]["tid"]
    assert len(stacks) == NCALLS
    for want, got in zip(expected, stacks):
        tag = want["tag"]
        assert got["tid"] == want["tid"], tag
        assert (got["err"], got["method"]) == (0, "tss"), (tag, got)
        frames = want["frames"]
        if len(frames) > 64:
            assert (got["truncated"], got["nframes"]) == (1, 64), tag
            frames = frames[:64]
        else:
            assert got["truncated"] == 0, tag
        assert [f[:4] for f in got["frames"]] == frames, \
            "%s call under %s:\nbpf:    %s\npython: %s" % (tag, python, got["frames"], frames)
