"""Fixtures and helpers for the end-to-end tracer tests (test_tracer.py).

The shape of every traced run:
  1. start a client from tests/clients/; it loads libpq, connects, prints
     {"ready": true, "pid": ...} and then blocks on stdin, so that no query
     can happen before pqsnoop is attached;
  2. start `pqsnoop watch --json -p <client pid>` and wait (30 s at most) for
     the line with "attached" on its stderr;
  3. take a mark in the server log, write "go" to the client;
  4. wait for the client to exit: pqsnoop must then exit 0 *by itself*, since
     everything it traced is gone;
  5. parse pqsnoop's stdout (JSON Lines) into events and the summary.

PQSNOOP names the binary under test (default: ../pqsnoop from here).  Tests that
load BPF are marked `root`; run as non-root they are skipped with the reason
shown, never silently.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "clients"))

from pgcluster import PgCluster, pg_bindir  # noqa: E402

CLIENTS = os.path.join(HERE, "clients")
PYTHON = "/usr/bin/python3"  # Debian's: has psycopg2, psycopg 3, gunicorn
# the binary under test: $PQSNOOP (make test sets it), else the repository's ./pqsnoop
PQSNOOP_ENV = os.environ.get("PQSNOOP")
PQSNOOP = PQSNOOP_ENV or os.path.normpath(os.path.join(HERE, "..", "pqsnoop"))
ATTACH_TIMEOUT = 30
EXIT_TIMEOUT = 20  # after its target exited, pqsnoop must be gone within this


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(
        reason="needs root (loads BPF programs): run as root, e.g. `sudo make test`")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


# --- processes ---------------------------------------------------------------

class LineReader:
    """Drains a pipe in a thread (so the child never blocks on a full pipe),
    keeping every line as bytes."""

    def __init__(self, pipe):
        self.lines = []
        self.eof = False
        self._cond = threading.Condition()
        self._pipe = pipe
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        for line in iter(self._pipe.readline, b""):
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self.eof = True
            self._cond.notify_all()

    def wait_for(self, pred, timeout):
        """First line for which pred(line) is true, or None at EOF/timeout."""
        deadline = time.monotonic() + timeout
        i = 0
        with self._cond:
            while True:
                while i < len(self.lines):
                    if pred(self.lines[i]):
                        return self.lines[i]
                    i += 1
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    return None
                self._cond.wait(left)

    def join(self, timeout=10):
        self._t.join(timeout)

    def data(self):
        with self._cond:
            return b"".join(self.lines)

    def text(self):
        return self.data().decode("utf-8", "replace")


class Proc:
    """A child process with both output pipes drained."""

    def __init__(self, argv, env=None, cwd=None, stdin=subprocess.PIPE):
        self.argv = [str(a) for a in argv]
        self.proc = subprocess.Popen(self.argv, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=cwd)
        self.pid = self.proc.pid
        self.out = LineReader(self.proc.stdout)
        self.err = LineReader(self.proc.stderr)

    def wait(self, timeout):
        """Exit code; on timeout the process is killed and the test fails."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s did not exit within %s s\nstderr:\n%s"
                                 % (" ".join(self.argv), timeout, self.err.text()))
        self.out.join()
        self.err.join()
        return rc

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def kill(self):
        if self.alive():
            self.proc.kill()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass


class Client(Proc):
    """A test client speaking the _common.py handshake."""

    def __init__(self, argv, env, cwd=CLIENTS):
        super().__init__(argv, env=env, cwd=cwd)

    def wait_ready(self, timeout=30):
        line = self.out.wait_for(lambda l: l.startswith(b'{"ready": true'), timeout)
        if line is None:
            self.kill()
            raise AssertionError("client %s never got ready\nstdout:\n%s\nstderr:\n%s"
                                 % (self.argv, self.out.text(), self.err.text()))
        self.ready = json.loads(line)
        assert self.ready["pid"] == self.pid
        return self.ready

    def go(self):
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def messages(self):
        """The JSON objects the client printed (psql's own output is skipped)."""
        out = []
        for line in self.out.lines:
            if line.startswith(b"{"):
                out.append(json.loads(line))
        return out


class Pqsnoop(Proc):
    def __init__(self, args, env=None, user=None):
        argv = [PQSNOOP] + list(args)
        if user:
            # drop every privilege: a plain user with no capabilities
            argv = ["setpriv", "--reuid=" + user, "--regid=nogroup", "--clear-groups",
                    "--inh-caps=-all", "--"] + argv
        super().__init__(argv, env=env, stdin=subprocess.DEVNULL)

    def wait_attached(self, timeout=ATTACH_TIMEOUT):
        line = self.err.wait_for(lambda l: b"attached" in l, timeout)
        if line is None:
            alive = self.alive()
            self.kill()
            raise AssertionError(
                "pqsnoop did not print 'attached' within %d s (%s)\nstderr:\n%s\nstdout:\n%s"
                % (timeout, "still running" if alive else "exited %s" % self.proc.returncode,
                   self.err.text(), self.out.text()[:4000]))

    def records(self):
        """stdout parsed as JSON Lines; every line must be a JSON object."""
        recs = []
        for i, line in enumerate(self.out.lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise AssertionError("pqsnoop stdout line %d is not JSON (%s): %r"
                                     % (i + 1, e, line[:300]))
            assert isinstance(rec, dict) and "type" in rec, line[:300]
            recs.append(rec)
        return recs


class Trace:
    """What one traced run produced."""

    def __init__(self, snoop, client, mark, t0, t1, rc):
        self.snoop = snoop
        self.client = client
        self.mark = mark
        self.t0, self.t1 = t0, t1
        self.rc = rc
        self.stdout = snoop.out.data()
        self.stderr = snoop.err.text()

    def parse(self):
        self.records = self.snoop.records()
        kinds = [r["type"] for r in self.records]
        assert kinds.count("summary") == 1 and kinds[-1] == "summary", \
            "expected exactly one summary, as the last line; types: %s" % kinds
        self.summary = self.records[-1]
        self.events = [r for r in self.records if r["type"] in ("query", "prepare")]
        assert len(self.events) == len(self.records) - 1, \
            "unexpected record types: %s" % sorted(set(kinds))
        self.queries = [r for r in self.events if r["type"] == "query"]
        self.prepares = [r for r in self.events if r["type"] == "prepare"]
        return self


class Runner:
    """Starts and cleans up everything a test runs."""

    def __init__(self, pg):
        self.pg = pg
        self.procs = []

    def client(self, argv, env=None):
        if env is None:
            env = self.pg.env() if self.pg else dict(os.environ)
        c = Client(argv, env)
        self.procs.append(c)
        return c

    def pqsnoop(self, args, env=None, user=None):
        p = Pqsnoop(args, env=env, user=user)
        self.procs.append(p)
        return p

    def py_client(self, script, *args):
        return self.client([PYTHON, os.path.join(CLIENTS, script)] + list(args))

    def trace(self, argv, json_mode=True, extra=(), client_timeout=60):
        """Run one client under pqsnoop (see the module docstring)."""
        client = self.client(argv)
        client.wait_ready()
        args = ["watch"] + (["--json"] if json_mode else []) + \
            ["-p", str(client.pid)] + list(extra)
        snoop = self.pqsnoop(args)
        snoop.wait_attached()
        mark = self.pg.log_mark()
        t0 = time.time_ns()
        client.go()
        rc = client.wait(client_timeout)
        assert rc == 0, "client %s failed (%d)\nstderr:\n%s" % (argv, rc, client.err.text())
        # nothing left to trace: pqsnoop must notice and end by itself
        try:
            src = snoop.proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            snoop.kill()
            raise AssertionError(
                "pqsnoop still running %d s after its target exited\nstderr:\n%s"
                % (EXIT_TIMEOUT, snoop.err.text()))
        snoop.out.join()
        snoop.err.join()
        t1 = time.time_ns()
        assert src == 0, "pqsnoop exited %d\nstderr:\n%s" % (src, snoop.err.text())
        tr = Trace(snoop, client, mark, t0, t1, src)
        return tr.parse() if json_mode else tr

    def trace_py(self, script, *args, **kw):
        return self.trace([PYTHON, os.path.join(CLIENTS, script)] + list(args), **kw)

    def cleanup(self):
        for p in reversed(self.procs):
            if p.alive():
                p.signal(signal.SIGTERM)
                try:
                    p.proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            p.kill()


# --- fixtures ----------------------------------------------------------------

@pytest.fixture(scope="session")
def pqsnoop_bin():
    """The binary under test.  Named by $PQSNOOP but missing: the test fails.
    Not built at the default place (e.g. `make unit`, which builds only the
    unit programs): the test is skipped, with the reason in pytest's summary."""
    if not (os.path.isfile(PQSNOOP) and os.access(PQSNOOP, os.X_OK)):
        if PQSNOOP_ENV:
            pytest.fail("PQSNOOP=%s: not found or not executable" % PQSNOOP, pytrace=False)
        pytest.skip("pqsnoop is not built (%s missing): run make, or set PQSNOOP" % PQSNOOP)
    return PQSNOOP


@pytest.fixture(scope="session")
def pg():
    cluster = PgCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def runner(pg, pqsnoop_bin):
    r = Runner(pg)
    try:
        yield r
    finally:
        r.cleanup()


@pytest.fixture
def runner_noroot(pqsnoop_bin):
    """A Runner for tests that need no database."""
    r = Runner(None)
    try:
        yield r
    finally:
        r.cleanup()


@pytest.fixture(scope="module")
def module_runner(pg, pqsnoop_bin):
    """For a traced run shared by several tests of one module."""
    r = Runner(pg)
    try:
        yield r
    finally:
        r.cleanup()


def pg_bin(name):
    """Path of a PostgreSQL client program (psql, pgbench)."""
    path = os.path.join(pg_bindir(), name)
    assert os.access(path, os.X_OK), path
    return path
