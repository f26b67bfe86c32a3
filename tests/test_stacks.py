"""Python stacks end to end, through `pqsnoop watch --json`.

One traced run of tests/clients/stack_client.py per interpreter (pyenv
3.8-3.13 and Debian's python3 with psycopg2 and psycopg 3).  The client
calls libpq through ctypes from known shapes (a call chain, methods,
closures, a decorator, a class body, generators, comprehensions, callbacks
from C, a stdlib context manager, coroutines, compiled code with odd file
names and far-apart lines, Unicode names, recursion of exactly 64, 65 and
80+ frames, PQexecParams/PQprepare/PQexecPrepared, worker threads, and a
child forked after "go"), and records, on the very line of each libpq call,
the stack the interpreter itself reports (sys._getframe(): co_filename,
co_qualname or co_name, f_lineno).  Every query's "stack" must be exactly
that, frame by frame, with the 64 innermost frames and "stack_truncated"
only when deeper; its "callsite" the innermost application frame (README's
rule, reimplemented here).

Then: --no-stacks (no stack field at all) and --app-prefix; processes that
change program under pqsnoop (exec of psql or of another Python, a shell
exec'ing Python, a Python spawning a Python through fork + exec); processes
that are not Python (psql) and Python versions pqsnoop does not know (pyenv
2.7, 3.6, 3.7): queries traced without stacks, and exactly one warning,
naming the version, for the unknown ones.

A missing interpreter skips its tests, with the reason.
"""

import glob
import json
import os
import re
import subprocess
import time

import pytest

from conftest import CLIENTS, EXIT_TIMEOUT, PYTHON, Proc, Trace, pg_bin

pytestmark = pytest.mark.root

CLIENT = os.path.join(CLIENTS, "stack_client.py")
MAX_FRAMES = 64
VERSIONS = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "debian"]
UNSUPPORTED = ["2.7", "3.6", "3.7"]

# the shapes of stack_client.py, by tag prefix; "fork" is every query of the child
GROUPS = ["plain", "method", "closure", "decorator", "generator", "callback",
          "coroutine", "compiled", "lines", "unicode", "deep", "api", "thread", "fork"]
DEBIAN_GROUPS = ["psycopg2", "psycopg3"]
STACK_KEYS = ("stack", "stack_truncated", "stack_error", "callsite")


# --- interpreters ----------------------------------------------------------------

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
        return PYTHON if os.path.exists(PYTHON) else None
    found = sorted(glob.glob(os.path.join(pyenv_root(), "versions", version + ".*",
                                          "bin", "python" + version)))
    return found[-1] if found else None


def python_or_skip(version):
    python = find_python(version)
    if not python:
        pytest.skip("Python %s is not installed on this machine (pyenv install %s)"
                    % (version, version))
    return python


# --- one traced run per interpreter ----------------------------------------------

def pytest_generate_tests(metafunc):
    """`run` is the traced run of one interpreter; `group` the client's
    shapes, psycopg ones on Debian's python3 only."""
    if "run" not in metafunc.fixturenames:
        return
    if "group" in metafunc.fixturenames:
        combos = [(v, g) for v in VERSIONS
                  for g in GROUPS + (DEBIAN_GROUPS if v == "debian" else [])]
        metafunc.parametrize(["run", "group"], combos, indirect=["run"],
                             ids=["%s-%s" % c for c in combos])
    else:
        metafunc.parametrize("run", VERSIONS, indirect=True)


class StackRun:
    """A traced stack_client.py run: pqsnoop's events, and what the client
    (and its forked child) expected, matched one to one."""

    def __init__(self, tr, version, python, done=None, pid=None):
        """done, pid: the client's done message and PID when the client is
        not tr's client itself but a process it started."""
        self.tr = tr
        self.version = version
        self.python = python
        msgs = tr.client.messages()
        errors = [m for m in msgs if "child_error" in m]
        assert not errors, errors
        self.done = done or [m for m in msgs if m.get("done")][-1]
        self.pid = pid or tr.client.pid
        self.script = self.done["script"]
        self.child = self.done["child"]
        self.expected = self.done["expected"] + self.done["child_expected"]
        self.minor = int(self.done["version"].split(".")[1])

    def matched(self):
        """[(expected entry, event)]; every event and every entry exactly once."""
        events = {}
        for ev in self.tr.events:
            k = (ev["pid"], ev["type"], ev["sql"])
            assert k not in events, "event twice: %s" % (k,)
            events[k] = ev
        pairs = []
        for want in self.expected:
            k = (want["pid"], want["kind"], want["sql"])
            assert k in events, "no event for %s %r from pid %d\nevents: %s" % (
                want["kind"], want["sql"], want["pid"],
                sorted(events)[:50])
            pairs.append((want, events.pop(k)))
        assert not events, "events the client did not send: %s" % sorted(events)
        return pairs

    def group_of(self, want):
        if want["pid"] != self.pid:
            return "fork"
        return want["tag"].split(":")[0]


EVENT_LINE = (b'{"type":"query"', b'{"type":"prepare"')


def n_expected(done):
    """How many events a stack_client.py done message announces."""
    return len(done["expected"]) + len(done["child_expected"])


def release_when_seen(client, snoop, count=n_expected):
    """stack_client.py stays alive after its done message, so that its code
    objects are still there when pqsnoop reads them: once pqsnoop has
    printed every event announced, send it "exit"; then both must end.
    Returns the parsed Trace."""
    line = client.out.wait_for(lambda l: l.startswith(b'{"done": true'), 120)
    if line is None:
        client.kill()
        raise AssertionError("client %s sent no done message\nstderr:\n%s"
                             % (client.argv, client.err.text()))
    n = count(json.loads(line))
    seen = [0]

    def enough(l):
        seen[0] += l.startswith(EVENT_LINE)
        return seen[0] >= n
    # some may never come: the tests then say which
    snoop.out.wait_for(enough, 30)
    client.proc.stdin.write(b"exit\n")
    client.proc.stdin.flush()
    rc = client.wait(60)
    assert rc == 0, "client %s failed (%d)\nstderr:\n%s" % (client.argv, rc, client.err.text())
    src = snoop.wait(EXIT_TIMEOUT)
    assert src == 0, "pqsnoop exited %d\nstderr:\n%s" % (src, snoop.err.text())
    return Trace(snoop, client, None, 0, 0, src).parse()


def trace_lingering(runner, argv, extra=(), count=n_expected):
    """Runner.trace for stack_client.py (and spawn_client.py)."""
    client = runner.client(argv)
    client.wait_ready()
    snoop = runner.pqsnoop(["watch", "--json", "-p", str(client.pid)] + list(extra))
    snoop.wait_attached()
    client.go()
    return release_when_seen(client, snoop, count)


@pytest.fixture(scope="module")
def stack_runs():
    """version -> StackRun, or the reason its run failed."""
    return {}


@pytest.fixture
def run(request, stack_runs, module_runner):
    """One traced run per interpreter, made by the first test that needs it
    and shared by all (whatever order pytest runs them in)."""
    version = request.param
    python = python_or_skip(version)
    if version not in stack_runs:
        argv = [python, CLIENT] + (["--psycopg"] if version == "debian" else [])
        try:
            stack_runs[version] = StackRun(trace_lingering(module_runner, argv), version,
                                           python)
        except AssertionError as e:
            stack_runs[version] = "the traced run under %s failed: %s" % (python, e)
    if isinstance(stack_runs[version], str):
        pytest.fail(stack_runs[version], pytrace=False)
    return stack_runs[version]


# --- comparing stacks ----------------------------------------------------------------

def frames(ev):
    return [[f["file"], f["func"], f["line"]] for f in ev.get("stack", [])]


def show(got, want):
    """Both stacks side by side, the first difference marked."""
    rows = []
    for i in range(max(len(got), len(want))):
        g = got[i] if i < len(got) else None
        w = want[i] if i < len(want) else None
        rows.append("%s %2d pqsnoop %-60s python %s" % (
            " " if g == w else ">", i, g and "%s:%s %s" % (g[0], g[2], g[1]),
            w and "%s:%s %s" % (w[0], w[2], w[1])))
    return "\n".join(rows)


def check_stack(run, want, ev):
    """The event's stack is exactly the interpreter's view of the call."""
    what = "%s (%s) under %s" % (want["tag"], want["kind"], run.python)
    assert ev["tid"] == want["tid"], what
    assert "stack_error" not in ev, "%s: %s" % (what, ev["stack_error"])
    got, exp = frames(ev), want["frames"]
    if want["suffix"]:
        # psycopg 3's own frames come first; the client's are the tail
        assert len(exp) < MAX_FRAMES, what
        assert "stack_truncated" not in ev, what
        assert got[len(got) - len(exp):] == exp, "%s: tail differs\n%s" % (
            what, show(got[len(got) - len(exp):], exp))
        head = got[:len(got) - len(exp)]
        assert head, "%s: no psycopg frame before the caller's\n%s" % (what, show(got, exp))
        for f in head:
            assert f[0].startswith(run.done["psycopg_dir"] + "/") and f[2] > 0, \
                "%s: %s is not a psycopg frame\n%s" % (what, f, show(got, exp))
        return
    deeper = len(exp) > MAX_FRAMES
    assert got == exp[:MAX_FRAMES], "%s: stacks differ\n%s" % (
        what, show(got, exp[:MAX_FRAMES]))
    assert ev.get("stack_truncated") is (True if deeper else None), \
        "%s: %d Python frames, %d reported, stack_truncated=%s" % (
            what, len(exp), len(got), ev.get("stack_truncated"))


STDLIB = re.compile(r"/lib(64)?/python[0-9][0-9.]*/")


def is_library(file, app_prefixes=()):
    """README's rule: site-/dist-packages, the stdlib, "<...>" are not the
    application's, unless under an --app-prefix."""
    if any(file.startswith(p) for p in app_prefixes):
        return False
    return (not file or file.startswith("<") or "/site-packages/" in file or
            "/dist-packages/" in file or STDLIB.search(file) is not None)


def expected_callsite(frames_, app_prefixes=()):
    for f in frames_[:MAX_FRAMES]:
        if not is_library(f[0], app_prefixes):
            return {"file": f[0], "func": f[1], "line": f[2]}
    return None


# --- the tests, per interpreter -------------------------------------------------------

def test_every_query_once(run):
    pairs = run.matched()
    assert len(pairs) == run.tr.summary["queries"] + run.tr.summary["prepares"]
    assert run.tr.summary["dropped"] == 0, run.tr.summary
    assert all(ev["status"] == "ok" for _, ev in pairs)
    # no warning about stacks for a supported interpreter
    assert "without Python stacks" not in run.tr.stderr, run.tr.stderr


def test_stacks_exact(run, group):
    checked = 0
    for want, ev in run.matched():
        if run.group_of(want) == group:
            check_stack(run, want, ev)
            checked += 1
    assert checked, "the client sent no query of group %s" % group


def test_callsite(run):
    for want, ev in run.matched():
        exp = want["frames"]
        if want["suffix"]:
            # psycopg frames are dist-packages: the caller's is the callsite
            site = {"file": exp[0][0], "func": exp[0][1], "line": exp[0][2]}
        else:
            site = expected_callsite(exp)
        assert ev.get("callsite") == site, "%s: callsite %s, want %s" % (
            want["tag"], ev.get("callsite"), site)


def by_tag(run, tag, pid=None):
    for want, ev in run.matched():
        if want["tag"] == tag and (pid is None or want["pid"] == pid):
            return want, ev
    raise AssertionError("no query %s" % tag)


def test_names_per_version(run):
    """The shapes have the names they should (so the comparison above is not
    vacuous): qualified names on 3.11+, plain ones before."""
    qual = run.minor >= 11
    names = {
        "method:get": ("Repo.get", "get"),
        "method:nested_class": ("Repo.Inner.deeper", "deeper"),
        "method:classmethod": ("Repo.klass", "klass"),
        "closure:innermost1": ("make_closure.<locals>.inner.<locals>.innermost", "innermost"),
        "closure:lambda": ("closures.<locals>.<lambda>", "<lambda>"),
        "closure:class_body": ("closures.<locals>.InBody", "InBody"),
        "decorator:wrapper": ("logged.<locals>.wrapper", "wrapper"),
        "generator:resumed": ("gen_queries", "gen_queries"),
        "coroutine:inner": ("coro_inner", "coro_inner"),
        "unicode:café": ("café_名前", "café_名前"),
        "compiled:string": ("<module>", "<module>"),
        "thread:subclass_run": ("Worker.run", "run"),
    }
    for tag, (q, plain) in names.items():
        _, ev = by_tag(run, tag)
        assert ev["stack"][0]["func"] == (q if qual else plain), (tag, ev["stack"][0])
        assert ev["stack"][0]["line"] > 0, (tag, ev["stack"][0])
    _, ev = by_tag(run, "unicode:café")
    assert [f["func"] for f in ev["stack"][:2]] == ["café_名前", "𠀀"]
    _, ev = by_tag(run, "compiled:far")
    assert ev["stack"][0]["file"].endswith("/généré_名前_𝔘.py")
    assert ev["stack"][0]["line"] == 1500 + 2 + 300 + 1 + 40000 + 1
    assert ev["callsite"] == ev["stack"][0]  # a file of the application's
    _, ev = by_tag(run, "callback:ctx_enter")
    assert ev["stack"][1]["file"].endswith("/contextlib.py"), ev["stack"][1]
    assert ev["callsite"]["func"] == ev["stack"][0]["func"]


def test_truncated_only_beyond_64(run):
    """A stack of exactly 64 Python frames is whole; 65 is cut to 64."""
    want, ev = by_tag(run, "deep:exactly64")
    assert len(want["frames"]) == 64
    assert len(ev["stack"]) == 64 and ev.get("stack_truncated") is None, \
        "64 Python frames: %d reported, stack_truncated=%s" % (
            len(ev["stack"]), ev.get("stack_truncated"))
    want, ev = by_tag(run, "deep:exactly65")
    assert len(want["frames"]) == 65
    assert len(ev["stack"]) == 64 and ev.get("stack_truncated") is True


def test_threads_and_fork(run):
    pairs = run.matched()
    main = [ev for want, ev in pairs if want["pid"] == run.pid and
            not want["tag"].startswith(("thread:", "psycopg2:thread"))]
    assert main and all(ev["tid"] == run.pid for ev in main)
    workers = [ev for want, ev in pairs if want["pid"] == run.pid and
               want["tag"].startswith("thread:")]
    assert len({ev["tid"] for ev in workers}) == 2
    assert all(ev["tid"] != run.pid for ev in workers)
    # the thread's outer frames are threading.py's
    assert all(ev["stack"][-1]["file"].endswith("/threading.py") for ev in workers
               if "stack_truncated" not in ev)
    child = [(want, ev) for want, ev in pairs if want["pid"] != run.pid]
    assert child and all(ev["pid"] == run.child for _, ev in child)
    assert {w["tag"] for w, _ in child} == {
        "child:main", "thread:child_target", "thread:child_target_deep",
        "thread:subclass_run", "child:deep"}
    assert {ev["tid"] == run.child for w, ev in child} == {True, False}


# --- options ---------------------------------------------------------------------------

def debian_or_skip():
    return python_or_skip("debian")


def psycopg_dir(python):
    out = subprocess.run([python, "-c", "import os, psycopg; print(os.path.dirname("
                          "psycopg.__file__))"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_no_stacks(runner):
    python = debian_or_skip()
    tr = trace_lingering(runner, [python, CLIENT, "--psycopg"], extra=["--no-stacks"])
    sr = StackRun(tr, "debian", python)
    pairs = sr.matched()  # every query still traced, from both processes
    assert {ev["pid"] for _, ev in pairs} == {sr.pid, sr.child}
    for want, ev in pairs:
        assert not [k for k in STACK_KEYS if k in ev], (want["tag"], ev)
    assert b"\"stack\":" not in tr.stdout and b"callsite" not in tr.stdout
    assert "without Python stacks" not in tr.stderr, tr.stderr


def test_app_prefix(runner):
    """psycopg's folder named as the application's: the callsite of a
    psycopg 3 query is then its innermost frame; the stacks do not change,
    nor the callsite of queries with no psycopg frame."""
    python = debian_or_skip()
    prefix = psycopg_dir(python) + "/"
    tr = trace_lingering(runner, [python, CLIENT, "--psycopg", "--no-fork"],
                         extra=["--app-prefix", prefix])
    sr = StackRun(tr, "debian", python)
    pg3 = 0
    for want, ev in sr.matched():
        check_stack(sr, want, ev)
        if want["suffix"]:
            assert ev["stack"][0]["file"].startswith(prefix)
            assert ev["callsite"] == ev["stack"][0], (want["tag"], ev["callsite"])
            pg3 += 1
        else:
            assert ev.get("callsite") == expected_callsite(want["frames"], [prefix]), \
                want["tag"]
    assert pg3 == 2


# --- not Python, or a Python pqsnoop does not know -------------------------------------

def pqsnoop_messages(stderr):
    """stderr lines other than the usual tracing/attached ones."""
    return [l for l in stderr.splitlines()
            if not l.startswith(("pqsnoop: tracing ", "pqsnoop: attached to "))]


def test_psql_has_no_stack(pg, runner):
    """psql is not Python: its queries come without stack, stack_error or
    warning.  psql reads its statements from a pipe, so it is connected and
    idle when pqsnoop attaches."""
    psql = Proc([pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"], env=pg.env())
    runner.procs.append(psql)
    deadline = time.monotonic() + 30
    while True:
        with open("/proc/%d/maps" % psql.pid) as f:
            if "libpq.so" in f.read():
                break
        assert time.monotonic() < deadline and psql.alive(), psql.err.text()
        time.sleep(0.05)
    snoop = runner.pqsnoop(["watch", "--json", "-p", str(psql.pid)])
    snoop.wait_attached()
    psql.proc.stdin.write(b"SELECT 1 AS a;\nSELECT 'two';\nSELECT generate_series(1, 3);\n")
    psql.proc.stdin.close()
    assert psql.wait(30) == 0, psql.err.text()
    assert snoop.wait(EXIT_TIMEOUT) == 0, snoop.err.text()
    queries = [r for r in snoop.records() if r["type"] == "query"]
    assert [q["sql"] for q in queries] == [
        "SELECT 1 AS a;", "SELECT 'two';", "SELECT generate_series(1, 3);"]
    for q in queries:
        assert not [k for k in STACK_KEYS if k in q], q
    assert pqsnoop_messages(snoop.err.text()) == [], snoop.err.text()


def test_python_that_execs_psql(runner):
    """A Python wrapper that exec()s psql (same PID): pqsnoop learned a
    Python interpreter at attach time, but the queries come from psql; they
    must not carry a stack, nor a stack error about an interpreter that is
    no longer there."""
    tr = runner.trace_py("exec_after_go.py", pg_bin("psql"), "-X", "-c", "SELECT 1 AS a",
                         "-c", "SELECT 2 AS b")
    assert [q["sql"] for q in tr.queries] == ["SELECT 1 AS a", "SELECT 2 AS b"]
    for q in tr.queries:
        assert q["comm"] == "psql"
        assert not [k for k in STACK_KEYS if k in q], q


def test_python_that_execs_another_python(runner):
    """Debian's python3 exec()s pyenv's 3.12 (same PID) running the stack
    client: its stacks must be 3.12's, exact, as if it had been traced from
    the start."""
    old, new = python_or_skip("debian"), python_or_skip("3.12")
    client = runner.client([old, os.path.join(CLIENTS, "exec_after_go.py"), new, CLIENT,
                            "--no-fork"])
    client.wait_ready()
    snoop = runner.pqsnoop(["watch", "--json", "-p", str(client.pid)])
    snoop.wait_attached()
    client.go()
    # the program exec'd says "ready" again, same PID, and waits for its own "go"
    line = client.out.wait_for(lambda l: l.startswith(b'{"ready": true') and
                               b'"version"' in l, 30)
    assert line is not None, client.err.text()
    client.go()
    sr = StackRun(release_when_seen(client, snoop), "3.12", new)
    assert sr.minor == 12
    for want, ev in sr.matched():
        check_stack(sr, want, ev)


def test_shell_that_execs_python(runner):
    """pqsnoop attached to a shell that then exec()s Python (same PID, libpq
    loaded only then: --wait-libpq): the Python's stacks must be exact."""
    new = python_or_skip("3.12")
    client = runner.client(["sh", "-c", 'read go && exec "$0" "$@"', new, CLIENT, "--no-fork"])
    snoop = runner.pqsnoop(["watch", "--json", "-p", str(client.pid), "--wait-libpq", "30"])
    line = snoop.err.wait_for(lambda l: b"has not loaded libpq yet" in l, 30)
    assert line is not None, snoop.err.text()
    client.go()  # to the shell: exec
    client.wait_ready()
    snoop.wait_attached()
    client.go()  # to the client
    sr = StackRun(release_when_seen(client, snoop), "3.12", new)
    for want, ev in sr.matched():
        check_stack(sr, want, ev)


@pytest.mark.parametrize("version", ["debian", "3.12"])
def test_spawned_python(runner, version):
    """A traced Python starts another Python (fork + exec, as subprocess,
    Django's autoreloader or multiprocessing's spawn do); the new process
    queries at once.  Its stacks must be exact."""
    python = python_or_skip(version)
    tr = trace_lingering(runner, [python, os.path.join(CLIENTS, "spawn_client.py"), "--no-fork"],
                         count=lambda d: n_expected(d["child_done"]))
    done = [m for m in tr.client.messages() if m.get("done")][-1]
    sr = StackRun(tr, version, python, done=done["child_done"], pid=done["spawned"])
    assert {ev["pid"] for ev in tr.events} == {done["spawned"]}
    for want, ev in sr.matched():
        check_stack(sr, want, ev)


@pytest.mark.parametrize("version", UNSUPPORTED)
def test_unknown_python_version(runner, version):
    """Every query traced, none with a stack, and exactly one line on stderr
    saying why, naming the version (once for the process and its child)."""
    python = python_or_skip(version)
    tr = runner.trace([python, os.path.join(CLIENTS, "old_python_client.py"), "3"])
    msgs = tr.client.messages()
    done = [m for m in msgs if m.get("done")][-1]
    child = [m for m in msgs if "child" in m and not m.get("done")]
    assert len(child) == 1 and child[0]["child"] == done["child"], msgs
    assert sorted((q["pid"], q["sql"]) for q in tr.queries) == sorted(
        [(tr.client.pid, s) for s in done["sent"]] +
        [(done["child"], s) for s in child[0]["sent"]])
    assert tr.summary["queries"] == 7 and tr.summary["dropped"] == 0
    for q in tr.queries:
        assert not [k for k in STACK_KEYS if k in q], q
    warnings = pqsnoop_messages(tr.stderr)
    assert len(warnings) == 1, tr.stderr
    assert "Python %s" % version in warnings[0], warnings[0]
    assert "pid %d" % tr.client.pid in warnings[0], warnings[0]
