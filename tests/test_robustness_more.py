"""More robustness: valgrind on the plain build, many threads, gunicorn
workers replaced under --max-requests.

- valgrind (memcheck, definite leaks are errors) on the plain ./pqsnoop (not
  the sanitizer build: $PQSNOOP_PLAIN, default the repository's ./pqsnoop):
  `report` of a capture in every format, and a `watch -d 3` trace.  valgrind
  does not know every bpf(2) command: it warns ("unhandled eBPF command") and
  reports libbpf's BPF_MAP_CREATE attr as partly uninitialised; that one
  report is suppressed (SUPPRESSIONS below), nothing else;
- 180 threads, one connection each (the test cluster has max_connections=200),
  5 queries each: every query seen exactly once, with the tid that sent it;
- gunicorn, 2 sync workers, --max-requests 3: workers exit and the master
  forks new ones; pqsnoop on the master traces all of them: exactly the app's
  40 queries for 20 requests, from every worker that answered.
"""

import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import CLIENTS, PYTHON, Proc, Trace

pytestmark = pytest.mark.root

HERE = os.path.dirname(os.path.abspath(__file__))
PLAIN_ENV = os.environ.get("PQSNOOP_PLAIN")
PLAIN = PLAIN_ENV or os.path.normpath(os.path.join(HERE, "..", "pqsnoop"))

# valgrind 3.19 checks bpf(2)'s union bpf_attr with its own, older idea of
# each command's fields; libbpf zeroes only the size it passes (the kernel's
# contract), so valgrind flags fields past it (prog_ifindex,
# expected_attach_type... on BPF_MAP_CREATE).  Suppressed: those attr fields
# (never the key/value/insns buffers they point to), for bpf() calls made by
# libbpf itself.
BPF_ATTR_FIELDS = ["attach_bpf_fd", "attach_type", "bpf_fd", "btf_log_level",
                   "btf_log_size", "btf_size", "expected_attach_type", "file_flags",
                   "flags", "insn_cnt", "kern_version", "log_level", "log_size",
                   "map_fd", "map_name", "prog_flags", "prog_ifindex", "prog_name",
                   "prog_type", "target_fd"]
SUPPRESSIONS = "".join("""
{
   libbpf-attr-%s
   Memcheck:Param
   bpf(attr->%s)
   fun:syscall
   obj:*libbpf.so*
}
""" % (f, f) for f in BPF_ATTR_FIELDS)


@pytest.fixture
def valgrind(tmp_path):
    vg = shutil.which("valgrind")
    if vg is None:
        pytest.skip("valgrind is not installed (apt-get install valgrind)")
    if not (os.path.isfile(PLAIN) and os.access(PLAIN, os.X_OK)):
        if PLAIN_ENV:
            pytest.fail("PQSNOOP_PLAIN=%s: not found" % PLAIN, pytrace=False)
        pytest.skip("the plain pqsnoop is not built (%s): run make" % PLAIN)
    supp = tmp_path / "bpf.supp"
    supp.write_text(SUPPRESSIONS)
    return [vg, "-q", "--leak-check=full", "--errors-for-leak-kinds=definite",
            "--error-exitcode=99", "--suppressions=%s" % supp, PLAIN]


def vg_errors(text):
    """valgrind's own lines, but the unhandled-bpf-command warnings."""
    return "\n".join(l for l in text.splitlines()
                     if l.startswith(("==", "--")) and "unhandled eBPF command" not in l)


def record_capture(runner, path):
    """A capture with an N+1 and a duplicate in it (script_client.py)."""
    client = runner.py_client("script_client.py")
    client.wait_ready()
    snoop = runner.pqsnoop(["record", "-p", str(client.pid), "-o", str(path)])
    snoop.wait_attached()
    client.go()
    batch = [{"sql": "SELECT id FROM generate_series(1, 10) AS id"}] + \
        [{"sql": "SELECT %d AS v, 'row %d' AS name" % (i, i)} for i in range(1, 11)] + \
        [{"sql": "SELECT 'same'", "repeat": 5}, {"sql": "SELECT 1/0"}]
    client.proc.stdin.write((json.dumps({"batch": batch}) + "\n").encode())
    client.proc.stdin.close()
    assert client.wait(30) == 0, client.err.text()
    assert snoop.wait(20) == 0, snoop.err.text()
    assert os.path.getsize(path) > 0


def test_valgrind_report(runner, valgrind, tmp_path):
    cap = tmp_path / "run.pqs"
    record_capture(runner, cap)
    for fmt in ("text", "json", "folded", "svg", "perfetto"):
        out = tmp_path / ("report." + fmt)
        p = subprocess.run(valgrind + ["report", str(cap), "--format", fmt, "-o", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=120)
        assert p.returncode == 0, "report --format %s: exit %d\n%s" % (
            fmt, p.returncode, p.stderr[-8000:])
        assert not vg_errors(p.stderr), p.stderr[-8000:]
        assert out.stat().st_size > 0
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep, "empty JSON report"


def test_valgrind_watch(runner, valgrind):
    client = runner.py_client("loop_client.py", "--count", "200")
    client.wait_ready()
    snoop = Proc(valgrind + ["watch", "--json", "-d", "3", "-p", str(client.pid)],
                 stdin=subprocess.DEVNULL)
    runner.procs.append(snoop)
    line = snoop.err.wait_for(lambda l: b"attached" in l, 120)
    assert line is not None, "no 'attached' under valgrind\n" + snoop.err.text()[-8000:]
    client.go()
    assert client.wait(60) == 0, client.err.text()
    rc = snoop.wait(120)
    err = snoop.err.text()
    assert rc == 0, "pqsnoop under valgrind exited %d\n%s" % (rc, err[-8000:])
    assert not vg_errors(err), err[-8000:]
    recs = [json.loads(l) for l in snoop.out.lines if l.strip()]
    queries = [r for r in recs if r["type"] == "query"]
    assert [q["sql"] for q in queries] == ["SELECT %d" % n for n in range(200)]
    s = recs[-1]
    assert s["type"] == "summary" and s["dropped"] == 0 and s["queries"] == 200, s


# --- many threads --------------------------------------------------------------

THREADS = 180   # max_connections=200 on the test cluster (pgcluster.py)
PER_THREAD = 5


def test_many_threads_each_with_its_connection(runner):
    t0 = time.time()
    tr = runner.trace_py("threads_client.py", str(THREADS), str(PER_THREAD),
                         client_timeout=120)
    tids = {int(t) for t in tr.client.ready["threads"]}
    assert len(tids) == THREADS
    assert tr.summary["dropped"] == 0, tr.summary
    assert tr.summary["queries"] == THREADS * PER_THREAD
    seen = {}
    for q in tr.queries:
        assert q["status"] == "ok", q
        assert q["pid"] == tr.client.pid
        tag, n = q["sql"][len("SELECT 'tid="):].split("' AS tag, ")
        assert int(tag) == q["tid"], "query sent by %s reported on tid %d" % (tag, q["tid"])
        key = (q["tid"], int(n))
        assert key not in seen, "seen twice: %s" % (key,)
        seen[key] = q
    assert set(seen) == {(t, n) for t in tids for n in range(PER_THREAD)}
    # per thread, in the order it sent them
    for t in tids:
        mine = [int(q["sql"].rsplit(", ", 1)[1]) for q in tr.queries if q["tid"] == t]
        assert mine == list(range(PER_THREAD))
    assert time.time() - t0 < 120


def test_1000_threads_over_a_pool_of_connections(runner):
    """1000 threads share 150 connections (a lock each): a connection
    carries queries of several threads, each event keeps its own tid."""
    threads, conns = 1000, 150
    tr = runner.trace_py("many_threads_client.py", str(threads), str(conns),
                         str(PER_THREAD), client_timeout=120)
    info = {int(t): c for t, c in tr.client.messages()[-1]["threads"].items()}
    assert len(info) == threads
    assert tr.summary["dropped"] == 0, tr.summary
    assert tr.summary["queries"] == threads * PER_THREAD
    seen = set()
    conn_of_index = {}
    for q in tr.queries:
        assert q["status"] == "ok" and q["pid"] == tr.client.pid, q
        tag, n = q["sql"][len("SELECT 'tid="):].split("' AS tag, ")
        assert int(tag) == q["tid"], "query sent by %s reported on tid %d" % (tag, q["tid"])
        key = (q["tid"], int(n))
        assert key not in seen, "seen twice: %s" % (key,)
        seen.add(key)
        # the PGconn the thread was given, the same for all its queries
        assert conn_of_index.setdefault(info[q["tid"]], q["conn"]) == q["conn"], q
    assert seen == {(t, n) for t in info for n in range(PER_THREAD)}
    assert len(set(conn_of_index.values())) == conns


# --- gunicorn --max-requests ----------------------------------------------------

def _get(sock_path, path, timeout=30):
    import http.client
    import socket

    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(sock_path)

    c = Conn("localhost", timeout=timeout)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status == 200, (r.status, body)
    return json.loads(body)


def _wait_until(cond, proc, timeout, what):
    deadline = time.time() + timeout
    while not cond():
        assert proc.alive(), "%s: process exited\n%s" % (what, proc.err.text())
        assert time.time() < deadline, "%s: not within %d s" % (what, timeout)
        time.sleep(0.05)


REQUESTS = 20


@pytest.mark.parametrize("mode", ["fork-after-attach", "running"])
def test_gunicorn_max_requests_replaced_workers(pg, runner, tmp_path, mode):
    """fork-after-attach: libpq preloaded in the master, which forks its
    first workers after pqsnoop attached; running: no preload, workers
    already serving when pqsnoop attaches, and each replacement loads libpq
    itself after the fork."""
    d = tmp_path / "gunicorn"
    d.mkdir()
    env = pg.env()
    env.update(PQ_GUNICORN_DIR=str(d), PQ_GUNICORN_MODE=mode,
               PYTHONPATH=CLIENTS)
    master = runner.client([PYTHON, "-m", "gunicorn", "-c",
                            os.path.join(CLIENTS, "gunicorn_conf.py"),
                            "--max-requests", "3", "gunicorn_app:app"], env=env)
    _wait_until((d / "ready").exists, master, 30, "gunicorn master ready")
    if mode == "running":
        _wait_until(lambda: len(list(d.glob("worker-*"))) == 2, master, 30, "2 workers up")
    snoop = runner.pqsnoop(["watch", "--json", "-p", str(master.pid)])
    snoop.wait_attached()
    t0 = time.time_ns()
    (d / "go").touch()
    _wait_until(lambda: len(list(d.glob("worker-*"))) == 2, master, 30, "2 workers up")

    # two requests at a time (one per sync worker, each held 1 s)
    answers = {}
    errors = []
    sock = str(d / "http.sock")

    def get(n):
        for attempt in range(3):
            try:
                answers[n] = _get(sock, "/?n=%d" % n)
                return
            except (ConnectionError, OSError) as e:  # a worker being replaced
                err = e
                time.sleep(0.2)
        errors.append("%d: %r" % (n, err))

    for rnd in range(0, REQUESTS, 2):
        ts = [threading.Thread(target=get, args=(n,)) for n in (rnd + 1, rnd + 2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
    assert not errors, errors
    assert sorted(answers) == list(range(1, REQUESTS + 1))
    pids = {a["pid"] for a in answers.values()}
    assert len(pids) >= 4, "workers were not replaced: %s" % pids
    # every worker the master forked announced itself
    forked = {int(p.name.split("-")[1]) for p in d.glob("worker-*")}
    assert pids <= forked

    master.signal(15)
    assert master.wait(30) == 0, master.err.text()
    src = snoop.wait(20)
    t1 = time.time_ns()
    assert src == 0, snoop.err.text()
    tr = Trace(snoop, master, None, t0, t1, src).parse()
    assert tr.summary["dropped"] == 0, tr.summary
    assert tr.prepares == []
    assert len(tr.queries) == 2 * REQUESTS, [q["sql"] for q in tr.queries]
    for n, a in answers.items():
        mine = [q for q in tr.queries if q["pid"] == a["pid"] and
                q["sql"] in ("SELECT 'req=%d' AS tag, pg_backend_pid()" % n,
                             "SELECT count(*) FROM generate_series(1, %d)" % n)]
        assert [q["sql"] for q in mine] == [
            "SELECT 'req=%d' AS tag, pg_backend_pid()" % n,
            "SELECT count(*) FROM generate_series(1, %d)" % n], (n, a)
        assert all(q["status"] == "ok" and q["rows"] == 1 for q in mine), mine
    assert {q["pid"] for q in tr.queries} == pids
    assert tr.summary["processes"] >= len(pids) + 1, tr.summary
