"""The traced process is never harmed, and nothing is lost silently."""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import PYTHON, CLIENTS

pytestmark = pytest.mark.root

LOOP = os.path.join(CLIENTS, "loop_client.py")


def prog_ids_of(pid):
    """IDs of the BPF programs process pid holds open (from fdinfo: Debian's
    bpftool is built without its pid iterator)."""
    ids = set()
    d = "/proc/%d/fdinfo" % pid
    for fd in os.listdir(d):
        try:
            with open(os.path.join(d, fd)) as f:
                for line in f:
                    if line.startswith("prog_id:"):
                        ids.add(int(line.split()[1]))
        except OSError:
            pass
    return ids


def all_prog_ids():
    out = subprocess.run(["bpftool", "prog", "show", "-j"], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return {p["id"] for p in json.loads(out)}


def test_kill_9_inside_a_query_leaves_the_process_working(runner):
    """pqsnoop dies (kill -9) while the traced process waits in a query: the
    query completes, every later query works, and no probe stays behind."""
    client = runner.py_client("loop_client.py", "--count", "200",
                              "--sleep-at", "100", "--sleep", "2")
    client.wait_ready()
    snoop = runner.pqsnoop(["watch", "--json", "-p", str(client.pid)])
    snoop.wait_attached()
    ids = prog_ids_of(snoop.pid)
    assert len(ids) >= 8, "pqsnoop's BPF programs not found: %s" % ids
    client.go()
    # wait until the sleeping query is under way (its SEND is printed only
    # when it completes, so look at the 100 queries before it)
    deadline = time.time() + 20
    while time.time() < deadline and len(snoop.out.lines) < 100:
        time.sleep(0.01)
    assert len(snoop.out.lines) == 100, "expected 100 queries before the sleep"
    os.kill(snoop.pid, signal.SIGKILL)
    snoop.wait(10)
    assert client.wait(60) == 0, client.err.text()
    assert client.messages()[-1] == {"done": True, "count": 200}
    time.sleep(0.5)  # program release is asynchronous after the last fd closes
    assert not (ids & all_prog_ids()), "BPF programs left behind: %s" % (ids & all_prog_ids())


def test_sigterm_prints_the_summary(runner):
    client = runner.py_client("loop_client.py", "--count", "50",
                              "--sleep-at", "49", "--sleep", "30")
    client.wait_ready()
    snoop = runner.pqsnoop(["watch", "--json", "-p", str(client.pid)])
    snoop.wait_attached()
    client.go()
    deadline = time.time() + 20
    while time.time() < deadline and len(snoop.out.lines) < 49:
        time.sleep(0.01)
    time.sleep(0.2)  # the 50th query is now inside pg_sleep
    snoop.signal(signal.SIGTERM)
    assert snoop.wait(10) == 0, snoop.err.text()
    recs = snoop.records()
    queries = [r for r in recs if r["type"] == "query"]
    assert [q["sql"] for q in queries[:49]] == ["SELECT %d" % n for n in range(49)]
    # the query still running when pqsnoop stopped is reported, not lost
    assert queries[49]["status"] == "unfinished"
    assert queries[49]["sql"] == "SELECT 49, pg_sleep(30.0)"
    assert len(queries) == 50
    s = recs[-1]
    assert s["type"] == "summary" and s["end"] == "signal"
    assert (s["queries"], s["unfinished"], s["dropped"]) == (50, 1, 0)
    client.kill()


def test_ring_buffer_overflow_is_counted_exactly(runner, tmp_path):
    """A 1 MiB ring buffer and a reader stopped with SIGSTOP while 20,000
    queries run: records are dropped, and the drop count accounts for every
    query: delivered + lost == sent."""
    n = 20000
    go_file = tmp_path / "go"
    client = runner.py_client("loop_client.py", "--count", str(n),
                              "--pause-file", str(go_file))
    client.wait_ready()
    snoop = runner.pqsnoop(["watch", "--json", "-p", str(client.pid),
                            "--ringbuf-size", "1"])
    snoop.wait_attached()
    client.go()
    os.kill(snoop.pid, signal.SIGSTOP)
    go_file.write_text("go")
    try:
        assert client.wait(120) == 0
    finally:
        os.kill(snoop.pid, signal.SIGCONT)
    assert snoop.wait(30) == 0, snoop.err.text()
    recs = snoop.records()
    s = recs[-1]
    queries = [r for r in recs if r["type"] == "query"]
    assert s["dropped"] > 0, "the test must overflow the ring buffer"
    d = s["drops"]
    # a query is lost exactly when its SEND record was dropped
    assert len(queries) + d["send_records"] == n
    assert s["queries"] == len(queries)
    # a delivered query whose END was dropped is reported, as unknown
    unknown = sum(1 for q in queries if q["status"] == "unknown")
    assert unknown == d["ends_lost"]
    # every delivered query's text is one the client sent, in order
    nums = [int(q["sql"].split()[1]) for q in queries]
    assert nums == sorted(nums) and len(set(nums)) == len(nums)


def test_megabyte_queries(runner, tmp_path):
    """A 1 MiB query: its real length measured in the kernel, 4096 bytes of
    text; a 5 MiB one: past the 4 MiB the kernel measures, its length is
    reported as a lower bound.  Neither is lost."""
    script = tmp_path / "big.py"
    script.write_text(
        "import psycopg2, sys\n"
        "sys.path.insert(0, %r)\n"
        "from _common import ready, wait_go, done\n"
        "c = psycopg2.connect(''); c.autocommit = True; cur = c.cursor()\n"
        "ready()\nwait_go()\n"
        "for n in (1 << 20, 5 << 20):\n"
        "    cur.execute(\"SELECT length('\" + 'x' * n + \"')\")\n"
        "    assert cur.fetchone()[0] == n\n"
        "done()\n" % CLIENTS)
    tr = runner.trace([PYTHON, str(script)])
    q1, q5 = tr.queries
    assert q1["sql_len"] == len("SELECT length('')") + (1 << 20)
    assert q1["truncated"] and len(q1["sql"]) == 4096 and "sql_len_is_lower_bound" not in q1
    assert q1["sql"] == "SELECT length('" + "x" * (4096 - 15)
    assert q5["truncated"] and len(q5["sql"]) == 4096
    assert q5.get("sql_len_is_lower_bound") is True
    assert 4 << 20 <= q5["sql_len"] < (5 << 20) + 17
    assert (q1["status"], q5["status"], q1["rows"], q5["rows"]) == ("ok", "ok", 1, 1)
    assert tr.summary["dropped"] == 0
