"""N+1 detection end to end: the real pqsnoop on the Django demo (tests/demo).

One demo environment (PostgreSQL database, seeded blog, gunicorn with 1
worker x 4 threads, CONN_MAX_AGE=0) for the module.  Each scenario runs
`pqsnoop -p MASTER --json`, waits for "attached", sends traffic with
tests/demo/traffic.py, stops pqsnoop with SIGINT and checks its JSON report
exactly against tests/demo/expected.py:

  - each N+1 page alone, hit 3 times one after the other: exactly its
    findings (kind, count 100 or 10, seen 3 times in 3 units of work, the
    Django fix, the view's loop line, the query the loop runs after);
  - each fixed page alone, 3 times: no finding at all;
  - all 18 pages 10 times each, 4 requests at a time: every N+1 page's
    findings exactly as alone but seen 10 times, nothing merged across
    pages or threads, nothing from the fixed pages;
  - N+1 pages while the worker is stopped and continued at random (gaps of
    milliseconds, some over 100 ms, inside the loops): still exact.

Every run also checks the totals: as many queries as the pages send, one
unit of work per request (Django closes its connection after each), no
event dropped.
"""

import json
import os
import random
import re
import signal
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "demo")
if DEMO not in sys.path:
    sys.path.insert(0, DEMO)

import expected  # noqa: E402
import traffic  # noqa: E402
from demo_env import DemoEnv  # noqa: E402

pytestmark = pytest.mark.root

REPS_ALONE = 3
REPS_ALL = 10
STOP_TIMEOUT = 60

# The fix pqsnoop suggests for each loop (label of expected.repeated()).
FIX = {
    ("fk", "author"): 'Post.objects.select_related("author")',
    ("mn", "author"): 'Post.objects.select_related("author")',
    ("mn", "category"): 'Post.objects.select_related("category")',
    ("reverse", "posts"): 'Author.objects.prefetch_related("post_set")',
    ("m2m", "tags"): 'Post.objects.prefetch_related("tags")',
    ("count", "count"): 'Post.objects.annotate(Count("comment"))',
    ("insert", "insert"): "Visit.objects.bulk_create([...])",
    ("update", "update"): 'Post.objects.bulk_update(objs, ["view_count"])',
    ("exists", "exists"):
        'Post.objects.annotate(has_comment=Exists(Comment.objects.filter(post=OuterRef("pk"))))',
    ("duplicate", "settings"): "load the Sitesettings once, before the loop, and reuse it",
}
HINT_KIND = {
    "fk": "select_related", "mn": "select_related", "reverse": "prefetch_related",
    "m2m": "prefetch_related", "count": "annotate_count", "insert": "bulk_create",
    "update": "bulk_update", "exists": "annotate_exists", "duplicate": "reuse",
}


@pytest.fixture(scope="module")
def demo(pg, pqsnoop_bin):
    env = DemoEnv(cluster=pg).start()
    try:
        yield env
    finally:
        env.stop()


def as_expected(sql):
    """pqsnoop's normalized text ($n for constants) in expected.py's form (%s)."""
    return re.sub(r"\$\d+", "%s", sql)


def traced(runner, demo, send):
    """Runs send() under `pqsnoop -p MASTER --json`; returns the report."""
    snoop = runner.pqsnoop(["-p", str(demo.master_pid), "--json", "-d", "600"])
    snoop.wait_attached()
    try:
        send()
    finally:
        time.sleep(0.3)  # the last results reach the ring buffer
        snoop.signal(signal.SIGINT)
    rc = snoop.wait(STOP_TIMEOUT)
    err = snoop.err.text()
    assert rc == 0, "pqsnoop exited %d\nstderr:\n%s" % (rc, err)
    out = snoop.out.text()
    try:
        report = json.loads(out)
    except ValueError as e:
        raise AssertionError("pqsnoop --json did not print one JSON document (%s):\n%s"
                             % (e, out[:3000]))
    assert report["totals"]["dropped"] == 0, report["totals"]
    assert "Sanitizer" not in err and "runtime error" not in err, err  # the SAN build
    return report


def send_pages(demo, pages, variants, reps, concurrency):
    traffic.run_traffic(demo.base_url, pages=pages, variants=variants, reps=reps,
                        concurrency=concurrency)


def describe(findings):
    return "\n".join("  %s %s x%s seen %s times at %s, after %s" % (
        f["kind"], f["sql"][:90], f["count_max"], f["occurrences"],
        f["callsite"] and "%s:%s" % (os.path.basename(f["callsite"]["file"]),
                                     f["callsite"]["line"]),
        f["parent"] and f["parent"]["sql"][:60]) for f in findings) or "  (none)"


def check_totals(report, visits):
    """visits: {(page, variant): requests}."""
    t = report["totals"]
    want = sum(expected.count(p, v) * n for (p, v), n in visits.items())
    assert t["queries"] == want, t
    # Django closes its connection after each request: a unit of work each
    assert t["units"] == sum(visits.values()), t


def check_page_findings(findings, page, reps):
    """Pops page's expected findings from findings (a list) and checks each."""
    n, block = expected.repeated(page)
    _, parent = expected.groups(page, "nplus1")[0][1][0]
    views = os.path.realpath(expected.VIEWS_FILE)
    for label, sql, line in block:
        mine = [f for f in findings
                if f["callsite"] and os.path.realpath(f["callsite"]["file"]) == views
                and f["callsite"]["line"] == line]
        assert len(mine) == 1, "/%s/nplus1 %s (views.py:%d): want one finding, got:\n%s" % (
            page, label, line, describe(findings))
        f = mine[0]
        findings.remove(f)
        what = "/%s/nplus1 %s:\n%s" % (page, label, json.dumps(f, indent=1)[:3000])
        assert f["kind"] == ("duplicate" if page == "duplicate" else "n+1"), what
        assert as_expected(f["sql"]) == sql, what
        assert f["count_max"] == n and f["count_typical"] == n, what
        assert f["occurrences"] == reps and f["units"] == reps, what
        # never merged: every occurrence is one request's loop
        assert f["queries"] == reps * n, what
        distinct = ({"author": expected.data.N_AUTHORS,
                     "category": expected.data.N_CATEGORIES}[label] if page == "mn"
                    else expected.DISTINCT_TEXTS[page])
        assert f["distinct_values"] == distinct, what
        assert f["interleaved"] == (len(block) > 1), what
        assert f["parent"] is not None and as_expected(f["parent"]["sql"]) == parent, what
        assert f["parent"]["rows"] == n, what
        assert f["hint"]["fix"] == FIX[(page, label)], what
        assert f["hint"]["kind"] == HINT_KIND[page], what
        assert f["callsite"]["func"].endswith("%s_nplus1" % page) or \
            f["callsite"]["func"].endswith("<listcomp>"), what
        assert f["worst"]["count"] == n, what


@pytest.mark.parametrize("page", expected.PAGES)
def test_nplus1_page_alone(module_runner, demo, page):
    report = traced(module_runner, demo,
                    lambda: send_pages(demo, [page], ["nplus1"], REPS_ALONE, 1))
    check_totals(report, {(page, "nplus1"): REPS_ALONE})
    findings = list(report["findings"])
    check_page_findings(findings, page, REPS_ALONE)
    assert findings == [], "unexpected findings:\n%s" % describe(findings)


@pytest.mark.parametrize("page", expected.PAGES)
def test_fixed_page_alone(module_runner, demo, page):
    report = traced(module_runner, demo,
                    lambda: send_pages(demo, [page], ["fixed"], REPS_ALONE, 1))
    check_totals(report, {(page, "fixed"): REPS_ALONE})
    assert report["findings"] == [], describe(report["findings"])


def test_all_pages_concurrently(module_runner, demo):
    report = traced(module_runner, demo,
                    lambda: send_pages(demo, expected.PAGES, expected.VARIANTS,
                                       REPS_ALL, 4))
    check_totals(report, {(p, v): REPS_ALL for p in expected.PAGES
                          for v in expected.VARIANTS})
    # the server's threads served the pages side by side
    assert report["totals"]["threads"] >= 2, report["totals"]
    findings = list(report["findings"])
    for page in expected.PAGES:
        check_page_findings(findings, page, REPS_ALL)
    assert findings == [], "unexpected findings:\n%s" % describe(findings)
    # ranked by the database time a fix would save
    wasted = [f["wasted_ns"] for f in report["findings"]]
    assert wasted == sorted(wasted, reverse=True)



class Stutter:
    """Stops and continues a process at random while it serves requests: a
    loaded machine, a slow ORM or database, as the traced process sees it.
    Pauses of 1 to 20 ms, and one in 15 of 150 to 250 ms (longer than the
    detector's 100 ms idle gap) between 2 to 15 ms of running."""

    def __init__(self, pid, seed=7):
        self.pid = pid
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.pauses = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(self.rng.uniform(0.002, 0.015)):
            pause = (self.rng.uniform(0.15, 0.25) if self.rng.random() < 1 / 15
                     else self.rng.uniform(0.001, 0.02))
            os.kill(self.pid, signal.SIGSTOP)
            try:
                time.sleep(pause)
            finally:
                os.kill(self.pid, signal.SIGCONT)
            self.pauses += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        os.kill(self.pid, signal.SIGCONT)


def test_nplus1_pages_slowed_down(module_runner, demo):
    """The N+1 pages while the worker is stopped and continued at random:
    gaps of milliseconds, and some over 100 ms, between the queries of one
    loop.  Every loop is still one finding with its exact count."""
    pages = ["fk", "mn", "m2m", "duplicate"]

    def send():
        with Stutter(demo.worker_pid) as st:
            send_pages(demo, pages, ["nplus1"], 4, 2)
        assert st.pauses > 50

    report = traced(module_runner, demo, send)
    check_totals(report, {(p, "nplus1"): 4 for p in pages})
    findings = list(report["findings"])
    for page in pages:
        check_page_findings(findings, page, 4)
    assert findings == [], "unexpected findings:\n%s" % describe(findings)
