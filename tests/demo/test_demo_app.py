"""The demo app sends exactly the SQL that expected.py / EXPECTED.md document.

No root, no pqsnoop: the PostgreSQL server's own statement log is the
reference (log_statement=all; each request's statements are found by the
backend PID the app reports in X-Pg-Backend-Pid).  The tracer's tests compare
pqsnoop against these same numbers, so they must be exact.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import expected  # noqa: E402
import traffic  # noqa: E402
from blog import data  # noqa: E402
from demo_env import DemoEnv, _processes  # noqa: E402

# Per request, including Django's SET TIME ZONE on the request's new
# connection (CONN_MAX_AGE=0).  Written out so that a change in the seed data,
# a view or Django shows up here, not just silently in expected.py.
COUNTS = {
    ("fk", "nplus1"): 102, ("fk", "fixed"): 2,
    ("mn", "nplus1"): 202, ("mn", "fixed"): 2,
    ("reverse", "nplus1"): 12, ("reverse", "fixed"): 3,
    ("m2m", "nplus1"): 102, ("m2m", "fixed"): 3,
    ("count", "nplus1"): 102, ("count", "fixed"): 2,
    ("insert", "nplus1"): 102, ("insert", "fixed"): 5,
    ("update", "nplus1"): 102, ("update", "fixed"): 2,
    ("exists", "nplus1"): 102, ("exists", "fixed"): 2,
    ("duplicate", "nplus1"): 102, ("duplicate", "fixed"): 3,
}
ALL = [(p, v) for p in expected.PAGES for v in expected.VARIANTS]


@pytest.fixture(scope="module")
def demo():
    # start() cleans up after itself if it fails; stop() runs however the
    # tests end, so no gunicorn or postgres outlives the module.
    env = DemoEnv().start()
    try:
        yield env
    finally:
        env.stop()


def request(demo, path):
    """GET path; returns (raw statements of its backend, of other backends)."""
    mark = demo.cluster.log_mark()
    status, headers, body = demo.get(path)
    assert status == 200, "%s: HTTP %d\n%s" % (path, status, demo.log_tail())
    pid = int(headers["x-pg-backend-pid"])
    # A backend logs a statement before running it, so by the time the
    # response is here the request's whole log is in the file: no wait.
    stmts = demo.cluster.statements_since(mark, wait=0)
    return ([s for p, s in stmts if p == pid],
            [(p, s) for p, s in stmts if p != pid])


# --- the environment -----------------------------------------------------------

def test_gunicorn_processes(demo):
    # First in the module: right after start, before any page was requested.
    assert demo.worker_pids() == [demo.worker_pid]
    assert dict(_processes())[demo.worker_pid] == demo.master_pid
    # django.setup() in the worker already imported psycopg2, so libpq is
    # mapped before the first request (pqsnoop can attach to it at once);
    # the master never loads the app (no --preload).
    with open("/proc/%d/maps" % demo.worker_pid) as f:
        assert "libpq.so" in f.read()
    with open("/proc/%d/maps" % demo.master_pid) as f:
        assert "libpq.so" not in f.read()


def test_pages_without_sql(demo):
    for path in ("/", "/health"):
        mark = demo.cluster.log_mark()
        status, headers, _ = demo.get(path)
        assert status == 200
        assert "x-pg-backend-pid" not in headers  # no connection was opened
        assert demo.cluster.statements_since(mark, wait=0.2) == []


# --- each page, one request at a time --------------------------------------------

@pytest.mark.parametrize("page,variant", ALL, ids=["%s/%s" % pv for pv in ALL])
def test_page_sends_exactly_the_documented_sql(demo, page, variant):
    raw, others = request(demo, expected.url(page, variant))
    assert others == [], "another connection ran SQL during the request"
    assert len(raw) == COUNTS[(page, variant)] == expected.count(page, variant)
    assert [expected.normalize(s) for s in raw] == expected.statements(page, variant)
    assert raw[0] == "SET TIME ZONE 'UTC'"
    if variant == "nplus1":
        reps, block = expected.groups(page, variant)[-1]
        loop = raw[-reps * len(block):]
        assert len(set(loop)) == expected.DISTINCT_TEXTS[page]


def test_counts_table_matches_expected_module():
    assert sorted(COUNTS) == sorted(expected.EXPECTED)
    for pv, n in COUNTS.items():
        assert expected.count(*pv) == n
        # the same page on a reused connection: no SET TIME ZONE
        assert expected.count(*pv, new_connection=False) == n - 1


def test_nplus1_loop_sizes():
    assert [expected.repeated(p)[0] for p in expected.PAGES] == [
        100, 100, 10, 100, 100, 100, 100, 100, 100]
    assert data.N_COMMENTS == 150
    assert sum(1 for i in range(1, data.N_POSTS + 1) if data.comment_count(i)) == 75


def test_markers_match_views():
    lines = expected.view_lines()
    used = {(p, v, label) for (p, v), blocks in expected.EXPECTED.items()
            for _, block in blocks for label, _ in block}
    assert used == set(lines), "markers in views.py and labels in expected.py differ"
    # The repeated query of an N+1 page comes from a line of the loop body,
    # below (and so distinct from) the line that fetched the list.
    for page in expected.PAGES:
        _, block = expected.repeated(page)
        first = lines[(page, "nplus1", expected.groups(page, "nplus1")[0][1][0][0])]
        assert first < block[0][2] <= first + 2
    _, mn = expected.repeated("mn")
    assert [line for _, _, line in mn] == [lines[("mn", "nplus1", "author")],
                                          lines[("mn", "nplus1", "author")] + 1]


def test_normalize():
    n = expected.normalize
    assert n('SELECT "a"."id" FROM "a" WHERE "a"."id" = 7 LIMIT 21') == \
        'SELECT "a"."id" FROM "a" WHERE "a"."id" = %s LIMIT %s'
    assert n("SELECT 1 FROM t U0 WHERE x IN (1, 2, 3) AND y = 'it''s'") == \
        "SELECT %s FROM t U0 WHERE x IN (%s, ...) AND y = %s"
    assert n("INSERT INTO t (a, b) VALUES (1, '2026-01-01'::timestamptz), "
             "(2, '2026-01-02'::timestamptz) RETURNING id") == \
        "INSERT INTO t (a, b) VALUES (%s, %s::timestamptz), ... RETURNING id"
    assert n("x IN (5)") == "x IN (%s)"


# --- concurrency and connection reuse --------------------------------------------

def test_concurrent_traffic_keeps_each_request_exact(demo):
    """4 client threads against 4 server threads: with CONN_MAX_AGE=0 every
    request has its own backend, and each backend's log is exactly one page's
    documented sequence, however the requests interleave."""
    mark = demo.cluster.log_mark()
    summary = traffic.run_traffic(demo.base_url, reps=2, concurrency=4)
    assert len(summary.results) == 2 * len(ALL)
    stmts = demo.cluster.statements_since(mark, wait=0)
    by_pid = {}
    for pid, sql in stmts:
        by_pid.setdefault(pid, []).append(expected.normalize(sql))
    pids = [r.backend_pid for r in summary.results]
    assert len(set(pids)) == len(pids) and set(pids) == set(by_pid)
    for r in summary.results:
        page, variant = r.path.strip("/").split("/")
        assert by_pid[r.backend_pid] == expected.statements(page, variant), r.path
    assert len(stmts) == 2 * sum(COUNTS.values())


def test_persistent_connections_skip_the_set(demo):
    """DEMO_CONN_MAX_AGE=60 (a second app on the same cluster, own database):
    only a thread's first request sends SET TIME ZONE, later ones on the same
    backend send just the page's statements.  Also checks stop() leaves no
    process and drops the database."""
    other = DemoEnv(cluster=demo.cluster, conn_max_age=60).start()
    try:
        seen = set()
        for page, variant in ALL + ALL:
            mark = demo.cluster.log_mark()
            status, headers, _ = other.get(expected.url(page, variant))
            assert status == 200
            pid = int(headers["x-pg-backend-pid"])
            got = [expected.normalize(s) for p, s in
                   demo.cluster.statements_since(mark, wait=0) if p == pid]
            assert got == expected.statements(page, variant,
                                              new_connection=pid not in seen)
            seen.add(pid)
        assert 1 <= len(seen) <= other.threads
        pids = [other.master_pid, other.worker_pid]
        dbname = other.dbname
    finally:
        other.stop()
    alive = {pid for pid, _ in _processes()}
    assert not alive & set(pids)
    assert demo.cluster.psql("SELECT count(*) FROM pg_database WHERE datname = '%s'"
                             % dbname).strip() == "0"
