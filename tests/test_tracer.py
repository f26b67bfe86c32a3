"""End-to-end tests of `pqsnoop watch`: real BPF, real clients, real server.

Every client in tests/clients/ sends a fixed query sequence, written out
below, and the tests assert it exactly: the ordered SQL texts, statuses, rows,
API and prepared statement names, the summary's counters, and the same count
and texts in the server's own statement log (log_statement=all) for the
client's backends.  See conftest.py for how a traced run is driven.
"""

import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest

import hostile_sql
from conftest import CLIENTS, PYTHON, Trace, pg_bin

# --- expectations -------------------------------------------------------------

STATUSES = {"ok", "error", "unknown", "unfinished"}
APIS = {"PQsendQuery", "PQsendQueryParams", "PQsendQueryPrepared", "PQsendPrepare"}


def Q(sql, api="PQsendQuery", status="ok", rows=None, cmd=None, result=None,
      sqlstate=None, error=None, stmt=None, type="query"):
    """One expected event; None means "not checked" (except where noted)."""
    if result is None and status == "error":
        result = "PGRES_FATAL_ERROR"
    return dict(type=type, sql=sql, api=api, status=status, rows=rows,
                cmd_status=cmd, result_status=result, sqlstate=sqlstate,
                error=error, statement=stmt)


def P(name, sql):
    """The expected event for a PQsendPrepare: not an execution."""
    return Q(sql, api="PQsendPrepare", stmt=name, type="prepare",
             result="PGRES_COMMAND_OK")


def SEL(sql, rows, api="PQsendQuery", **kw):
    return Q(sql, api=api, rows=rows, cmd="SELECT %d" % rows,
             result="PGRES_TUPLES_OK", **kw)


def CMD(sql, cmd, api="PQsendQuery", **kw):
    """A statement returning no tuples; rows from its tag when it has one."""
    m = re.search(r" (\d+)$", cmd)
    rows = int(m.group(1)) if m else None
    # a COPY's first result is PGRES_COPY_*, its last PGRES_COMMAND_OK: unchecked
    if not cmd.startswith("COPY"):
        kw.setdefault("result", "PGRES_COMMAND_OK")
    return Q(sql, api=api, cmd=cmd, rows=rows, **kw)


def fmt_events(events):
    return "\n".join("  %-6s %-20s %-8s %s" % (
        e["type"], e.get("api"), e.get("status"), json.dumps(e.get("sql"))[:110])
        for e in events)


def assert_events(events, expected):
    """The events, in order, are exactly `expected` (see Q)."""
    got = [(e["type"], e.get("sql")) for e in events]
    want = [(x["type"], x["sql"]) for x in expected]
    assert got == want, ("event list differs\ngot %d:\n%s\nexpected %d:\n%s"
                         % (len(got), fmt_events(events), len(want), fmt_events(expected)))
    bad = []
    for i, (e, x) in enumerate(zip(events, expected)):
        for field in ("api", "status", "rows", "cmd_status", "result_status",
                      "sqlstate", "error"):
            if x[field] is not None and e.get(field) != x[field]:
                bad.append("#%d %s: %s=%r, expected %r"
                           % (i, x["sql"][:60], field, e.get(field), x[field]))
        # "statement" only for prepares and prepared executions, and always there
        if e.get("statement") != x["statement"]:
            bad.append("#%d %s: statement=%r, expected %r"
                       % (i, x["sql"][:60], e.get("statement"), x["statement"]))
        if x["status"] == "ok" and e.get("sqlstate"):
            bad.append("#%d: ok but sqlstate %r" % (i, e.get("sqlstate")))
    assert not bad, "\n".join(bad)


def check_run(tr, pids=None, comm=None):
    """What holds for every traced run: field types, clocks, the summary."""
    s = tr.summary
    assert s.get("dropped") == 0, s
    assert s.get("queries") == len(tr.queries), s
    assert s.get("prepares") == len(tr.prepares), s
    # errors: failed executions and failed prepares alike
    assert s.get("errors") == sum(e["status"] == "error" for e in tr.events), s
    slack = 1_000_000_000  # realtime derived from monotonic: allow 1 s
    for e in tr.events:
        where = "event %s" % json.dumps(e)[:300]
        for f in ("pid", "tid", "start_ns", "duration_ns", "rows", "sql_len"):
            assert isinstance(e.get(f), int) and not isinstance(e.get(f), bool), where
        assert isinstance(e.get("comm"), str) and e["comm"], where
        assert isinstance(e.get("sql"), str), where
        assert e.get("truncated") in (True, False), where
        assert re.fullmatch(r"0x[0-9a-f]+", e.get("conn", "")), where
        assert e["status"] in STATUSES, where
        assert e["api"] in APIS, where
        assert (e["type"] == "prepare") == (e["api"] == "PQsendPrepare"), where
        # start_ns is wall-clock time: the query started after "go"
        assert tr.t0 - slack <= e["start_ns"] <= tr.t1 + slack, where
        if e["status"] in ("ok", "error"):
            assert 0 < e["duration_ns"], where
            assert e["start_ns"] + e["duration_ns"] <= tr.t1 + slack, where
        # byte length of the text, unless it is not UTF-8 (22021: the server
        # refused it too) and so cannot be a JSON string of the same length
        if not e["truncated"] and e.get("sqlstate") != "22021":
            assert e["sql_len"] == len(e["sql"].encode("utf-8", "surrogateescape")), where
        if pids is not None:
            assert e["pid"] in pids, where
        if comm is not None:
            assert e["comm"] == comm, where


def server_log(pg, tr, backends=None):
    """Texts the server ran after "go" (for these backends)."""
    return [t for _, t in pg.statements_since(tr.mark, backends)]


def query_sqls(tr):
    return [e["sql"] for e in tr.queries]


# --- psycopg2 ----------------------------------------------------------------

PG2_EXPECTED = [
    CMD("BEGIN", "BEGIN"),
    CMD("CREATE TEMP TABLE pq2_items (id int PRIMARY KEY, name text)", "CREATE TABLE"),
    CMD("INSERT INTO pq2_items VALUES (1, 'one')", "INSERT 0 1"),
    # executemany: one PQexec per row
    CMD("INSERT INTO pq2_items VALUES (2, 'two')", "INSERT 0 1"),
    CMD("INSERT INTO pq2_items VALUES (3, 'three')", "INSERT 0 1"),
    CMD("INSERT INTO pq2_items VALUES (4, 'four')", "INSERT 0 1"),
    SEL("SELECT id, name FROM pq2_items WHERE id > 1 ORDER BY id", 3),
    CMD("COMMIT", "COMMIT"),
    CMD("BEGIN", "BEGIN"),
    CMD("UPDATE pq2_items SET name = upper(name) WHERE id <= 2", "UPDATE 2"),
    CMD("ROLLBACK", "ROLLBACK"),
    CMD("BEGIN", "BEGIN"),
    CMD('DECLARE "pq2_srv" CURSOR WITHOUT HOLD FOR SELECT n FROM generate_series(1, 10) AS n',
        "DECLARE CURSOR"),
    # itersize 4 over 10 rows: 4 + 4 + 2, then an empty FETCH ends the loop
    Q('FETCH FORWARD 4 FROM "pq2_srv"', rows=4, cmd="FETCH 4", result="PGRES_TUPLES_OK"),
    Q('FETCH FORWARD 4 FROM "pq2_srv"', rows=4, cmd="FETCH 4", result="PGRES_TUPLES_OK"),
    Q('FETCH FORWARD 4 FROM "pq2_srv"', rows=2, cmd="FETCH 2", result="PGRES_TUPLES_OK"),
    Q('FETCH FORWARD 4 FROM "pq2_srv"', rows=0, cmd="FETCH 0", result="PGRES_TUPLES_OK"),
    CMD('CLOSE "pq2_srv"', "CLOSE CURSOR"),
    CMD("COMMIT", "COMMIT"),
    CMD("BEGIN", "BEGIN"),
    # a COPY ends with its final result after the data (PQgetResult after the copy)
    CMD("COPY (SELECT id, name FROM pq2_items ORDER BY id) TO STDOUT", "COPY 4"),
    CMD("COPY pq2_items FROM STDIN", "COPY 3"),
    CMD("COMMIT", "COMMIT"),
    CMD("BEGIN", "BEGIN"),
    Q("SELECT 1/0", status="error", sqlstate="22012", error="division by zero"),
    CMD("ROLLBACK", "ROLLBACK"),
    SEL("SELECT count(*) FROM pq2_items", 1),
]


@pytest.fixture(scope="module")
def pg2(module_runner):
    return module_runner.trace_py("pg2_client.py")


@pytest.mark.root
def test_psycopg2_events(pg2):
    assert_events(pg2.events, PG2_EXPECTED)


@pytest.mark.root
def test_psycopg2_run(pg2):
    pid = pg2.client.pid
    # single-threaded: every event from the main thread of the client
    check_run(pg2, pids={pid}, comm="python3")
    assert {e["tid"] for e in pg2.events} == {pid}
    assert len({e["conn"] for e in pg2.events}) == 1
    assert pg2.summary["queries"] == 27
    assert pg2.summary["prepares"] == 0
    assert pg2.summary["errors"] == 1
    # one connection, sequential: completion order is start order
    starts = [e["start_ns"] for e in pg2.events]
    assert starts == sorted(starts)


@pytest.mark.root
def test_psycopg2_server_log(pg, pg2):
    logged = server_log(pg, pg2, pg2.client.ready["backends"])
    assert logged == query_sqls(pg2)
    assert len(logged) == 27


# --- psycopg 3 ---------------------------------------------------------------

P3_SEL = "SELECT $1::int AS m_seq"
P3_INS = "INSERT INTO pq3_items (id, name) VALUES ($1, $2)"
PG3_EXPECTED = (
    [CMD("CREATE TEMP TABLE pq3_items (id int PRIMARY KEY, name text)", "CREATE TABLE")]
    # 5 executions below prepare_threshold, with parameters
    + [SEL(P3_SEL, 1, api="PQsendQueryParams")] * 5
    # the 6th prepares (a round trip of its own, no execution) ...
    + [P("_pg3_0", P3_SEL)]
    # ... and executes by name, as do the 7th and 8th; sql is the prepared text
    + [SEL(P3_SEL, 1, api="PQsendQueryPrepared", stmt="_pg3_0")] * 3
    # executemany: implicit pipeline, prepared at once
    + [P("_pg3_1", P3_INS)]
    + [CMD(P3_INS, "INSERT 0 1", api="PQsendQueryPrepared", stmt="_pg3_1")] * 3
    # explicit pipeline: three sends, one sync; the sync result is no query
    + [CMD("UPDATE pq3_items SET name = name || '!' WHERE id >= $1", "UPDATE 2",
           api="PQsendQueryParams"),
       SEL("SELECT id FROM pq3_items ORDER BY id", 3, api="PQsendQueryParams"),
       SEL("SELECT 'pipelined' AS tag", 1, api="PQsendQueryParams")]
    + [CMD("COPY pq3_items (id, name) FROM STDIN", "COPY 2"),
       CMD("COPY (SELECT id FROM pq3_items ORDER BY id) TO STDOUT", "COPY 5")]
    # psycopg 3 sends its own BEGIN/COMMIT through PQsendQueryParams
    + [CMD("BEGIN", "BEGIN", api="PQsendQueryParams"),
       CMD("DELETE FROM pq3_items WHERE id = $1", "DELETE 1", api="PQsendQueryParams"),
       CMD("COMMIT", "COMMIT", api="PQsendQueryParams")]
    + [Q("SELECT 1/0", status="error", sqlstate="22012", error="division by zero")]
)


@pytest.fixture(scope="module")
def pg3(module_runner):
    return module_runner.trace_py("pg3_client.py")


@pytest.mark.root
def test_psycopg3_events(pg3):
    assert_events(pg3.events, PG3_EXPECTED)


@pytest.mark.root
def test_psycopg3_run(pg3):
    check_run(pg3, pids={pg3.client.pid}, comm="python3")
    assert len({e["conn"] for e in pg3.events}) == 1
    assert pg3.summary["queries"] == 21
    assert pg3.summary["prepares"] == 2
    assert pg3.summary["errors"] == 1


@pytest.mark.root
def test_psycopg3_server_log(pg, pg3):
    # the server logs prepared executions as "execute _pg3_0: <text>" and
    # does not log the prepares: the same 21 texts as the query events
    logged = server_log(pg, pg3, pg3.client.ready["backends"])
    assert logged == query_sqls(pg3)
    assert len(logged) == 21


PG3_CURSORS_EXPECTED = [
    CMD("BEGIN", "BEGIN", api="PQsendQueryParams"),
    CMD('DECLARE "pq3_srv" CURSOR FOR SELECT n FROM generate_series(1, 7) AS n',
        "DECLARE CURSOR", api="PQsendQueryParams"),
    # (the PQsendDescribePortal round trip here is no query: no event)
    Q('FETCH FORWARD 3 FROM "pq3_srv"', api="PQsendQueryParams", rows=3, cmd="FETCH 3",
      result="PGRES_TUPLES_OK"),
    Q('FETCH FORWARD 3 FROM "pq3_srv"', api="PQsendQueryParams", rows=3, cmd="FETCH 3",
      result="PGRES_TUPLES_OK"),
    # psycopg 3 stops after a short FETCH
    Q('FETCH FORWARD 3 FROM "pq3_srv"', api="PQsendQueryParams", rows=1, cmd="FETCH 1",
      result="PGRES_TUPLES_OK"),
    CMD('CLOSE "pq3_srv"', "CLOSE CURSOR", api="PQsendQueryParams"),
    CMD("COMMIT", "COMMIT", api="PQsendQueryParams"),
    # stream(): 5 single-row results and a final empty one make 5 rows
    SEL("SELECT n FROM generate_series(1, 5) AS n", 5, api="PQsendQueryParams"),
]


@pytest.mark.root
def test_psycopg3_cursors(pg, runner):
    tr = runner.trace_py("pg3_cursors.py")
    check_run(tr, pids={tr.client.pid}, comm="python3")
    assert_events(tr.events, PG3_CURSORS_EXPECTED)
    assert server_log(pg, tr, tr.client.ready["backends"]) == query_sqls(tr)


# --- libpq through ctypes: the cases no driver makes on demand ---------------------

LIBPQ_SCENARIOS = {
    # the refused send is never numbered, never reported
    "refused": ([SEL("SELECT 'first'", 1), SEL("SELECT 'after'", 1)], 2),
    # PQfinish with the query outstanding: unfinished, reported once; the next
    # connection (at the same address, likely) starts clean
    "finish_pending": ([Q("SELECT pg_sleep(0.3)", status="unfinished"),
                        SEL("SELECT 'next'", 1)], 2),
    # one send, two results (the third statement never runs): one error event
    "multi_error": ([Q("SELECT 1; SELECT 1/0; SELECT 2", status="error", sqlstate="22012",
                       error="division by zero")], 1),
    "empty": ([Q("", rows=0, result="PGRES_EMPTY_QUERY"), SEL("SELECT 'after'", 1)], 2),
    "single_row": ([SEL("SELECT generate_series(1, 5)", 5)], 1),
    # the describe's result belongs to no query; results stay matched to sends
    "pipeline_describe": ([P("s1", "SELECT $1::int + 1"),
                           SEL("SELECT $1::int + 1", 1, api="PQsendQueryPrepared", stmt="s1"),
                           SEL("SELECT 'tail'", 1, api="PQsendQueryParams")], 2),
    # the statement after the failing one is aborted, not run: an error event.
    # The server logs only the first: 1/0 fails while planning, at Bind,
    # before the Execute that would log it
    "pipeline_abort": ([SEL("SELECT 'p1'", 1, api="PQsendQueryParams"),
                        Q("SELECT 1/0", api="PQsendQueryParams", status="error",
                          sqlstate="22012", error="division by zero"),
                        Q("SELECT 'p3'", api="PQsendQueryParams", status="error",
                          result="PGRES_PIPELINE_ABORTED")], 1),
    # s1 was prepared on a connection since closed: on the new connection the
    # name means nothing (the server says 26000), so its text is unknown
    "conn_reuse": ([P("s1", "SELECT 'old text'"),
                    Q("", api="PQsendQueryPrepared", stmt="s1", status="error",
                      sqlstate="26000", error='prepared statement "s1" does not exist')], 0),
}


@pytest.mark.root
@pytest.mark.parametrize("scenario", sorted(LIBPQ_SCENARIOS))
def test_libpq_edge_cases(pg, runner, scenario):
    expected, n_logged = LIBPQ_SCENARIOS[scenario]
    tr = runner.trace_py("libpq_client.py", scenario)
    msgs = tr.client.messages()
    if scenario in ("finish_pending", "conn_reuse"):
        # the point of these: the second PGconn has the first one's address
        conn2 = [m["conn2"] for m in msgs if "conn2" in m]
        assert conn2 == [tr.client.ready["conn"]], "precondition: PGconn address not reused"
    check_run(tr, pids={tr.client.pid}, comm="python3")
    assert_events(tr.events, expected)
    if scenario == "conn_reuse":
        assert tr.events[1].get("text_unknown") is True, tr.events[1]
    backends = [m for m in msgs if m.get("done")][0]["backends"]
    logged = server_log(pg, tr, set(backends))
    assert len(logged) == n_logged, logged
    assert logged == [e["sql"] for e in tr.queries][:n_logged]
    assert tr.summary["unfinished"] == sum(e["status"] == "unfinished" for e in tr.events)


@pytest.mark.root
def test_volume_no_drops(pg, runner):
    """5000 back-to-back queries: every one reported, in order, none dropped."""
    n = 5000
    tr = runner.trace_py("libpq_client.py", "volume", str(n))
    check_run(tr, pids={tr.client.pid}, comm="python3")
    assert query_sqls(tr) == ["SELECT %d" % i for i in range(n)]
    assert all(e["rows"] == 1 and e["status"] == "ok" for e in tr.queries)
    assert tr.summary["queries"] == n and tr.summary["dropped"] == 0
    assert len(server_log(pg, tr, tr.client.ready["backends"])) == n


# --- threads -----------------------------------------------------------------

THREADS, PER_THREAD = 8, 25


@pytest.mark.root
def test_threads(pg, runner):
    tr = runner.trace_py("threads_client.py", str(THREADS), str(PER_THREAD))
    pid = tr.client.pid
    check_run(tr, pids={pid}, comm="python3")
    threads = {int(t): be for t, be in tr.client.ready["threads"].items()}
    assert len(threads) == THREADS
    assert len(tr.queries) == THREADS * PER_THREAD
    assert tr.prepares == []
    by_tid = {}
    for e in tr.queries:
        m = re.fullmatch(r"SELECT 'tid=(\d+)' AS tag, (\d+)", e["sql"])
        assert m, e
        # the thread that sent the query is the one named in its text
        assert e["tid"] == int(m.group(1)), e
        assert e["status"] == "ok" and e["rows"] == 1, e
        assert e["api"] == "PQsendQuery"
        by_tid.setdefault(e["tid"], []).append(e)
    assert set(by_tid) == set(threads)
    for tid, evs in by_tid.items():
        # per thread: its own connection, n = 0..24 in order
        assert [int(e["sql"].rsplit(" ", 1)[1]) for e in evs] == list(range(PER_THREAD))
        assert len({e["conn"] for e in evs}) == 1
    assert len({evs[0]["conn"] for evs in by_tid.values()}) == THREADS
    # server: each backend ran exactly its thread's statements, in order
    logged = pg.statements_since(tr.mark, set(threads.values()))
    assert len(logged) == THREADS * PER_THREAD
    for tid, backend in threads.items():
        assert [t for b, t in logged if b == backend] == [e["sql"] for e in by_tid[tid]]


# --- fork ----------------------------------------------------------------------

@pytest.mark.root
def test_fork_children_followed(pg, runner):
    tr = runner.trace_py("fork_client.py")
    parent = tr.client.pid
    msgs = tr.client.messages()
    kids = [m for m in msgs if "child" in m]
    assert len(kids) == 2 and all("child_error" not in m for m in msgs), msgs
    c1, c2 = kids[0]["child"], kids[1]["child"]
    check_run(tr, pids={parent, c1, c2}, comm="python3")
    # children run one after the other (the parent waits for each)
    expected = ([SEL("SELECT 'parent' AS tag, 1", 1)]
                + [SEL("SELECT 'child=%d' AS tag, %d" % (c1, n), 1) for n in range(3)]
                + [SEL("SELECT 'child=%d' AS tag, %d" % (c2, n), 1) for n in range(3)]
                + [SEL("SELECT 'parent' AS tag, 2", 1)])
    assert_events(tr.events, expected)
    assert [e["pid"] for e in tr.events] == [parent] + [c1] * 3 + [c2] * 3 + [parent]
    # single-threaded processes: tid == pid
    assert all(e["tid"] == e["pid"] for e in tr.events)
    backends = tr.client.ready["backends"] + [k["backend"] for k in kids]
    assert server_log(pg, tr, set(backends)) == query_sqls(tr)
    assert tr.summary["queries"] == 8


@pytest.mark.root
def test_no_follow_forks(pg, runner):
    """--no-follow-forks: the same client, only the parent's 2 queries (the
    negative control for test_fork_children_followed)."""
    tr = runner.trace_py("fork_client.py", extra=["--no-follow-forks"])
    parent = tr.client.pid
    check_run(tr, pids={parent}, comm="python3")
    assert_events(tr.events, [SEL("SELECT 'parent' AS tag, 1", 1),
                              SEL("SELECT 'parent' AS tag, 2", 1)])
    # the children did run their queries: the server saw 2 + 2 * 3
    assert len(server_log(pg, tr)) == 8


# --- gunicorn: a forking server, traced through its master ----------------------

class UnixHTTPConnection:
    """GET over gunicorn's unix socket, returning the parsed JSON body."""

    @staticmethod
    def get(sock_path, path, timeout=30):
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


def wait_until(cond, proc, timeout, what):
    deadline = time.time() + timeout
    while not cond():
        assert proc.alive(), "%s: process exited\n%s" % (what, proc.err.text())
        assert time.time() < deadline, "%s: not within %d s" % (what, timeout)
        time.sleep(0.05)


@pytest.mark.root
@pytest.mark.parametrize("mode", ["fork-after-attach", "running"])
def test_gunicorn_workers(pg, runner, tmp_path, mode):
    """Trace gunicorn's master PID; the queries come from its 2 sync workers.

    fork-after-attach: the master (app preloaded, so libpq mapped) waits in
    when_ready until pqsnoop is attached, then forks the workers: pqsnoop must
    follow new children.  running: the README's case, an ordinary gunicorn
    already serving (workers exist, only they have libpq) when pqsnoop
    attaches to the master: pqsnoop must find the existing children.
    """
    d = tmp_path / "gunicorn"
    d.mkdir()
    env = pg.env()
    env.update(PQ_GUNICORN_DIR=str(d), PQ_GUNICORN_MODE=mode, PYTHONPATH=CLIENTS)
    master = runner.client([PYTHON, "-m", "gunicorn", "-c",
                            os.path.join(CLIENTS, "gunicorn_conf.py"),
                            "gunicorn_app:app"], env=env)
    wait_until((d / "ready").exists, master, 30, "gunicorn master ready")
    assert json.loads((d / "ready").read_text())["pid"] == master.pid
    n_workers = lambda: len(list(d.glob("worker-*")))  # noqa: E731
    if mode == "running":
        wait_until(lambda: n_workers() == 2, master, 30, "2 workers up")
    snoop = runner.pqsnoop(["watch", "--json", "-p", str(master.pid)])
    snoop.wait_attached()
    mark = pg.log_mark()
    t0 = time.time_ns()
    if mode == "fork-after-attach":
        assert n_workers() == 0
        (d / "go").touch()  # gunicorn_conf.when_ready: now fork the workers
        wait_until(lambda: n_workers() == 2, master, 30, "2 workers up")
    workers = {int(p.name.split("-")[1]) for p in d.glob("worker-*")}

    # two rounds of two concurrent requests: a sync worker serves one request
    # at a time and each request is held 1 s, so the two requests of a
    # round are served by the two different workers
    answers = {}
    sock = str(d / "http.sock")
    for rnd in ((1, 2), (3, 4)):
        errors = []

        def get(n):
            try:
                answers[n] = UnixHTTPConnection.get(sock, "/?n=%d" % n)
            except Exception as e:  # reported below
                errors.append(repr(e))
        ts = [threading.Thread(target=get, args=(n,)) for n in rnd]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        assert not errors, errors
        assert answers[rnd[0]]["pid"] != answers[rnd[1]]["pid"], answers
    assert {a["pid"] for a in answers.values()} == workers

    # stop gunicorn: the master stops its workers and exits; pqsnoop follows
    master.signal(signal.SIGTERM)
    assert master.wait(30) == 0, master.err.text()
    src = snoop.wait(20)
    t1 = time.time_ns()
    assert src == 0, snoop.err.text()
    tr = Trace(snoop, master, mark, t0, t1, src).parse()
    check_run(tr, pids=workers)
    assert len(tr.queries) == 8 and tr.prepares == []
    for n, a in answers.items():
        mine = [e for e in tr.queries if e["pid"] == a["pid"] and
                e["sql"] in ("SELECT 'req=%d' AS tag, pg_backend_pid()" % n,
                             "SELECT count(*) FROM generate_series(1, %d)" % n)]
        # both of this request's queries, from the worker that answered it
        assert [e["sql"] for e in mine] == [
            "SELECT 'req=%d' AS tag, pg_backend_pid()" % n,
            "SELECT count(*) FROM generate_series(1, %d)" % n], (n, a, fmt_events(tr.queries))
        assert [e["rows"] for e in mine] == [1, 1]
        assert all(e["tid"] == a["pid"] for e in mine)  # sync workers: main thread
    # per worker, its requests in order; the server saw the same per backend
    backends = {a["pid"]: a["backend"] for a in answers.values()}
    logged = pg.statements_since(mark, set(backends.values()))
    assert len(logged) == 8
    for wpid, be in backends.items():
        assert [t for b, t in logged if b == be] == \
            [e["sql"] for e in tr.queries if e["pid"] == wpid]


# --- psql and pgbench, started through exec_after_go.py -----------------------

PSQL_EXPECTED = [
    # -c with two statements is one query (one PQsendQuery, two results):
    # rows counts the tuples of both results, the tag is the last result's
    Q("SELECT 1 AS a; SELECT 2 AS b", rows=2, cmd="SELECT 1", result="PGRES_TUPLES_OK"),
    # -f: psql sends each statement of the file on its own (leading comment
    # dropped, trailing ';' kept, newlines kept)
    CMD("CREATE TEMP TABLE psql_t (n int);", "CREATE TABLE"),
    CMD("INSERT INTO psql_t SELECT generate_series(1, 5);", "INSERT 0 5"),
    SEL("SELECT count(*) FROM psql_t;", 1),
    CMD("UPDATE psql_t\n   SET n = n + 1\n WHERE n > 2;", "UPDATE 3"),
    SEL("SELECT 'done'", 1),
]


@pytest.mark.root
def test_psql(pg, runner):
    tr = runner.trace_py("exec_after_go.py", pg_bin("psql"), "-X", "-v", "ON_ERROR_STOP=1",
                         "-c", "SELECT 1 AS a; SELECT 2 AS b",
                         "-f", os.path.join(CLIENTS, "psql_script.sql"),
                         "-c", "SELECT 'done'")
    # execv kept the PID: every event is the wrapper's PID, now named psql
    check_run(tr, pids={tr.client.pid}, comm="psql")
    assert_events(tr.events, PSQL_EXPECTED)
    # psql sends nothing else (-X: no psqlrc); nothing else ran on the server
    assert server_log(pg, tr) == query_sqls(tr)


# pgbench's first connection (closed before the benchmark starts) asks for the
# scale and whether pgbench_accounts is partitioned; both verified in the log
PGBENCH_SETUP = [
    "select count(*) from pgbench_branches",
    "select o.n, p.partstrat, pg_catalog.count(i.inhparent) from pg_catalog.pg_class "
    "as c join pg_catalog.pg_namespace as n on (n.oid = c.relnamespace) cross join "
    "lateral (select pg_catalog.array_position(pg_catalog.current_schemas(true), "
    "n.nspname)) as o(n) left join pg_catalog.pg_partitioned_table as p on "
    "(p.partrelid = c.oid) left join pg_catalog.pg_inherits as i on (c.oid = "
    "i.inhparent) where c.relname = 'pgbench_accounts' and o.n is not null group by "
    "1, 2 order by 1 asc limit 1",
]
PGBENCH_TX = 40


@pytest.fixture(scope="module")
def pgbench_db(pg):
    # initialised untraced, once: scale 1 (100,000 accounts)
    pg.psql("CREATE DATABASE pqbench")
    subprocess.run([pg_bin("pgbench"), "-i", "-q", "-s", "1", "pqbench"], env=pg.env(),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return "pqbench"


@pytest.mark.root
def test_pgbench_simple(pg, runner, pgbench_db):
    tr = runner.trace_py("exec_after_go.py", pg_bin("pgbench"), "-S", "-n", "-c", "1",
                         "-t", str(PGBENCH_TX), pgbench_db)
    check_run(tr, pids={tr.client.pid}, comm="pgbench")
    sqls = query_sqls(tr)
    assert len(tr.queries) == 2 + PGBENCH_TX and tr.prepares == []
    assert sqls[:2] == PGBENCH_SETUP
    # -S: one SELECT per transaction, the random aid inlined (simple protocol)
    for s in sqls[2:]:
        assert re.fullmatch(r"SELECT abalance FROM pgbench_accounts WHERE aid = \d+;", s), s
    expected = ([SEL(s, 1) for s in PGBENCH_SETUP[:1]] + [Q(PGBENCH_SETUP[1])]
                + [SEL(s, 1) for s in sqls[2:]])
    assert_events(tr.events, expected)
    # same texts (with the same random aids) in the server's log
    assert server_log(pg, tr) == sqls


@pytest.mark.root
def test_pgbench_prepared(pg, runner, pgbench_db):
    tr = runner.trace_py("exec_after_go.py", pg_bin("pgbench"), "-S", "-M", "prepared",
                         "-n", "-c", "1", "-t", str(PGBENCH_TX), pgbench_db)
    check_run(tr, pids={tr.client.pid}, comm="pgbench")
    text = "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"
    # PQprepare (its inner PQsendPrepare) once, then PQsendQueryPrepared "P_0".
    # Its connection is a new PGconn, maybe at the address of the first one
    # that PQfinish freed.
    expected = ([SEL(PGBENCH_SETUP[0], 1), Q(PGBENCH_SETUP[1]), P("P_0", text)]
                + [SEL(text, 1, api="PQsendQueryPrepared", stmt="P_0")] * PGBENCH_TX)
    assert_events(tr.events, expected)
    assert tr.summary["queries"] == 2 + PGBENCH_TX and tr.summary["prepares"] == 1
    assert server_log(pg, tr) == query_sqls(tr)


@pytest.mark.root
def test_prepared_before_attach(pg, runner):
    """psycopg 3 prepared _pg3_0 before pqsnoop attached: its executions are
    still one event each, by name, flagged as text unknown (no invented SQL)."""
    tr = runner.trace_py("pg3_preprepared.py")
    check_run(tr, pids={tr.client.pid}, comm="python3")
    assert len(tr.events) == 3 and tr.prepares == [], fmt_events(tr.events)
    for e in tr.events:
        assert (e["api"], e.get("statement"), e["status"], e["rows"]) == \
            ("PQsendQueryPrepared", "_pg3_0", "ok", 1), e
        assert e.get("text_unknown") is True and e["sql"] == "", e
    assert server_log(pg, tr, tr.client.ready["backends"]) == ["SELECT $1::int AS early"] * 3


# --- hostile text ----------------------------------------------------------------

@pytest.mark.root
def test_hostile_text_json(pg, runner):
    tr = runner.trace_py("hostile_sql.py")
    check_run(tr, pids={tr.client.pid}, comm="python3")
    assert len(tr.events) == len(hostile_sql.ALL)
    for e, (sql, status, sqlstate) in zip(tr.events, hostile_sql.ALL):
        assert e["status"] == status, e
        assert e["sql_len"] == len(sql), e
        if status == "error":
            assert e["sqlstate"] == sqlstate, e
    valid = tr.events[:len(hostile_sql.VALID)]
    for e, (sql, _, _) in zip(valid, hostile_sql.VALID):
        # valid UTF-8 round-trips exactly, control bytes included
        assert e["sql"] == sql.decode(), e
        assert e["truncated"] is False
    bad = tr.events[len(hostile_sql.VALID)]
    assert bad["truncated"] is False
    # invalid bytes are escaped somehow, but the rest of the text is intact
    assert bad["sql"].startswith("SELECT 'bad") and bad["sql"].endswith("utf8' AS bad"), bad
    long_ascii, long_utf8 = tr.events[-2:]
    assert long_ascii["sql_len"] == 10000 and long_ascii["truncated"] is True
    assert len(long_ascii["sql"]) == 4096
    assert long_ascii["sql"] == hostile_sql.LONG[:4096].decode()
    assert long_utf8["sql_len"] == 6010 and long_utf8["truncated"] is True
    # cut at 4096 bytes in the middle of a 2-byte character: JSON still valid
    assert long_utf8["sql"].startswith("SELECT 'x" + "\u00e9" * 2043), long_utf8["sql"][-20:]
    assert len(long_utf8["sql"]) <= 4096
    # the server refuses invalid UTF-8 before logging it: 5 logged, not 6
    logged = server_log(pg, tr, tr.client.ready["backends"])
    assert len(logged) == len(hostile_sql.ALL) - 1


@pytest.mark.root
def test_hostile_text_plain(runner):
    """Without --json: one line per query, and nothing that drives a terminal."""
    tr = runner.trace_py("hostile_sql.py", json_mode=False)
    out = tr.stdout
    assert b"\x1b" not in out, "raw ESC in text output: %r" % out[:2000]
    text = out.decode("utf-8", "replace")
    ctl = sorted({c for c in text if (ord(c) < 0x20 and c not in "\n\t")
                  or 0x7f <= ord(c) <= 0x9f})
    assert not ctl, "raw control characters %r in text output" % ctl
    lines = text.splitlines()
    # one line per query, nothing else on stdout (the summary goes to stderr)
    assert len(lines) == len(hostile_sql.ALL), lines
    # the text with a newline and a CR stays on one line
    nl = [l for l in lines if "line1" in l]
    assert len(nl) == 1 and "line2" in nl[0], nl
    # each query on exactly one line (markers near the start of each text,
    # in case the text format shortens long SQL)
    for marker in ("AS clear", "SELECT 'bad", "h\u00e9llo \u2713 \U0001F418"):
        assert len([l for l in lines if marker in l]) == 1, (marker, lines)


# --- how a run ends ------------------------------------------------------------------

@pytest.mark.root
def test_duration_on_idle_process(runner):
    client = runner.py_client("idle_client.py")
    client.wait_ready()
    snoop = runner.pqsnoop(["watch", "--json", "-d", "2", "-p", str(client.pid)])
    t0 = time.monotonic()
    snoop.wait_attached()
    rc = snoop.wait(15)
    elapsed = time.monotonic() - t0
    assert rc == 0, snoop.err.text()
    # -d counts from start (or attach): about 2 s, not until the target exits
    assert 1.8 <= elapsed <= 8, elapsed
    recs = snoop.records()
    assert [r["type"] for r in recs] == ["summary"], recs
    s = recs[0]
    assert (s["queries"], s["prepares"], s["errors"], s["dropped"]) == (0, 0, 0, 0), s
    # pqsnoop left its target alone
    assert client.alive()


@pytest.mark.root
def test_unfinished_query_at_end(runner):
    """A query still running when -d ends is reported once, as unfinished."""
    client = runner.py_client("slow_client.py", "4")
    client.wait_ready()
    snoop = runner.pqsnoop(["watch", "--json", "-d", "1", "-p", str(client.pid)])
    snoop.wait_attached()
    client.go()
    assert snoop.wait(15) == 0, snoop.err.text()
    assert client.alive(), "the query should still be running"
    recs = snoop.records()
    assert [r["type"] for r in recs] == ["query", "summary"], recs
    e, s = recs
    assert (e["status"], e["api"], e["sql"], e["pid"]) == \
        ("unfinished", "PQsendQuery", "SELECT pg_sleep(4.0)", client.pid), e
    assert (s["queries"], s["errors"], s["unfinished"], s["dropped"]) == (1, 0, 1, 0), s
    assert client.wait(15) == 0


@pytest.mark.root
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_ends_with_summary(runner, sig):
    client = runner.py_client("idle_client.py")
    client.wait_ready()
    snoop = runner.pqsnoop(["watch", "--json", "-p", str(client.pid)])
    snoop.wait_attached()
    time.sleep(0.3)
    assert snoop.alive(), "pqsnoop ended although its target is alive"
    snoop.signal(sig)
    assert snoop.wait(10) == 0, snoop.err.text()
    recs = snoop.records()
    assert [r["type"] for r in recs] == ["summary"], recs
    assert recs[0]["queries"] == 0 and recs[0]["dropped"] == 0
    assert client.alive()


# --- bad input ---------------------------------------------------------------------

def error_message(proc, notes=0):
    """The error pqsnoop ended with: one line on stderr, and in --json mode
    the same message as the one {"type":"error"} record on stdout.  `notes`:
    how many progress lines may come before it (--wait-libpq says it waits)."""
    lines = proc.err.text().strip().splitlines()
    assert 1 <= len(lines) <= 1 + notes, "expected a one-line message on stderr, got %r" % lines
    # no libbpf noise, no usage dump, no crash report: pqsnoop's own words only
    assert all(l.startswith("pqsnoop: ") for l in lines), lines
    recs = [json.loads(l) for l in proc.out.data().splitlines() if l.strip()]
    assert recs == [{"type": "error", "message": lines[-1][len("pqsnoop: "):]}], recs
    return lines[-1]


@pytest.mark.root
def test_no_such_pid(runner):
    # a PID that existed a moment ago and is now reaped: surely unused
    p = subprocess.Popen(["true"])
    p.wait()
    snoop = runner.pqsnoop(["watch", "--json", "-p", str(p.pid)])
    rc = snoop.wait(10)
    msg = error_message(snoop)
    assert rc != 0
    assert str(p.pid) in msg and "no such process" in msg.lower(), msg


@pytest.mark.root
def test_process_without_libpq(runner):
    sleeper = runner.client(["sleep", "30"])
    t0 = time.monotonic()
    snoop = runner.pqsnoop(["watch", "--json", "--wait-libpq", "1", "-p", str(sleeper.pid)])
    rc = snoop.wait(10)
    elapsed = time.monotonic() - t0
    msg = error_message(snoop, notes=1)
    assert rc != 0
    assert "libpq" in msg and str(sleeper.pid) in msg, msg
    # waited about the second it was given, no more
    assert 0.9 <= elapsed <= 5, elapsed
    assert sleeper.alive()


def test_not_root(runner_noroot):
    """As a user without privileges pqsnoop refuses, saying why."""
    # the target has libpq mapped (loaded, waiting for a "go" that never comes),
    # so missing privileges are the only reason to fail
    target = runner_noroot.client([PYTHON, os.path.join(CLIENTS, "exec_after_go.py"),
                                   "/bin/true"])
    target.wait_ready()
    user = "nobody" if os.geteuid() == 0 else None
    snoop = runner_noroot.pqsnoop(["watch", "--json", "-p", str(target.pid)], user=user)
    rc = snoop.wait(10)
    msg = error_message(snoop)
    assert rc != 0
    assert "root" in msg or "CAP_BPF" in msg, msg
    assert target.alive()


@pytest.mark.parametrize("args", [
    ["watch", "--no-such-option", "-p", "1"],
    ["watch", "-p", "notapid"],
    ["watch", "-p", "0"],
    ["watch", "-p", "1", "-d", "soon"],
    ["watch", "-p", "1", "--wait-libpq", "x"],
    ["watch"],  # -p is required
    ["no-such-command"],
], ids=["unknown-option", "bad-pid", "pid-0", "bad-duration", "bad-wait", "no-pid", "bad-command"])
def test_invalid_options_exit_2(pqsnoop_bin, args):
    r = subprocess.run([pqsnoop_bin] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.strip(), "no message on stderr"


def test_help(pqsnoop_bin):
    r = subprocess.run([pqsnoop_bin, "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10, text=True)
    assert r.returncode == 0, r.stderr
    assert "watch" in r.stdout
    r = subprocess.run([pqsnoop_bin, "watch", "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10, text=True)
    assert r.returncode == 0, r.stderr
    for opt in ("-p", "--json", "-d", "--wait-libpq"):
        assert opt in r.stdout, (opt, r.stdout)
