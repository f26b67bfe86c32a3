"""Captures and reports: `pqsnoop -o`, `pqsnoop record`, `pqsnoop report`.

Against the Django demo (tests/demo: gunicorn, 1 worker x 4 threads) and a
scripted psycopg2 client (clients/script_client.py):

- round trip: a live run's report (JSON and text) is exactly what
  `pqsnoop report` prints from the capture that same run wrote; a quiet
  `record` run beside it finds the same things;
- production data: captures are 0600 and hold no literal value (nor error
  message) unless recorded with --show-values; no report format prints one;
- damage: a capture cut at any byte, foreign files, a directory, a missing
  file, a recording killed with kill -9: never a crash, a one-line message,
  and what was readable is reported;
- formats: SVG (well-formed, hostile text stays text), folded, Perfetto;
- record --every: rotation, modes, and reports that match their captures.

Three pqsnoop instances trace the demo at once in the round trip (one traffic
run for all), so the module stays around two minutes.
"""

import concurrent.futures
import gzip
import json
import os
import pwd
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import xml.dom.minidom
import xml.etree.ElementTree as ET
import zlib

import pytest

from conftest import PQSNOOP, PYTHON, CLIENTS

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO_DIR = os.path.join(HERE, "demo")
if DEMO_DIR not in sys.path:
    sys.path.insert(0, DEMO_DIR)

import traffic  # noqa: E402
from demo_env import DemoEnv  # noqa: E402

pytestmark = pytest.mark.root

SCRIPT_CLIENT = os.path.join(CLIENTS, "script_client.py")

# The round trip's traffic: two N+1 pages, a duplicate page and their fixed
# versions, twice, 4 client threads.  Statements per request (EXPECTED.md):
PAGES = ["fk", "mn", "count", "duplicate"]
VARIANTS = ["nplus1", "fixed"]
PER_REQUEST = {("fk", "nplus1"): 102, ("fk", "fixed"): 2,
               ("mn", "nplus1"): 202, ("mn", "fixed"): 2,
               ("count", "nplus1"): 102, ("count", "fixed"): 2,
               ("duplicate", "nplus1"): 102, ("duplicate", "fixed"): 3}
REPS = 2
EXPECTED_QUERIES = REPS * sum(PER_REQUEST.values())
# Each instance's -d runs from its own attach; the traffic starts when the
# last one attached: all of it takes about a second.
ROUND_TRIP_SECONDS = 6

SECRET = "sekrit-4242"
HOSTILE = "</svg><script>alert(1)</script>"
SVG_NS = "{http://www.w3.org/2000/svg}"
SANITIZER = re.compile(r"Sanitizer|runtime error:|LeakSanitizer")


# --- helpers -----------------------------------------------------------------

def report(capture, *args, timeout=60):
    """`pqsnoop report capture args...`; returns the CompletedProcess (bytes)."""
    return subprocess.run([PQSNOOP, "report", str(capture)] + [str(a) for a in args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def report_ok(capture, *args):
    """A report that must succeed without a word on stderr."""
    r = report(capture, *args)
    assert r.returncode == 0 and not r.stderr, \
        "pqsnoop report %s %s: exit %d\n%s" % (capture, args, r.returncode,
                                               r.stderr.decode(errors="replace"))
    return r.stdout


FP_STATS = re.compile(rb',"fingerprints":\{[^{}]*\}')


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def decompress(path):
    """The capture's bytes, even when its compressed stream was cut short."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error):
        d = zlib.decompressobj(31)
        return d.decompress(data)


def check_one_line_message(r, what):
    err = r.stderr.decode("utf-8", "replace")
    assert not SANITIZER.search(err), "%s: sanitizer report:\n%s" % (what, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pqsnoop: "), \
        "%s: expected one line on stderr, got %r" % (what, err)
    return lines[0]


class ScriptClient:
    """clients/script_client.py: one statement (or a batch) per command."""

    def __init__(self, runner):
        self.c = runner.client([PYTHON, SCRIPT_CLIENT])
        self.ready = self.c.wait_ready()
        self.pid = self.c.pid
        self.answers = 0
        self.sent = 0

    def go(self):
        self.c.go()

    def run(self, sql=None, sql_bytes=None, repeat=1, expect_ok=True, batch=None):
        cmd = {"repeat": repeat}
        if batch is not None:
            cmd = {"batch": [{"sql": s, "repeat": n} for s, n in batch]}
        elif sql_bytes is not None:
            cmd["sql_hex"] = sql_bytes.hex()
        else:
            cmd["sql"] = sql
        self.c.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.c.proc.stdin.flush()
        self.answers += 1
        deadline = time.monotonic() + 30
        while True:
            answers = [json.loads(l) for l in self.c.out.lines if l.startswith(b'{"ok"')]
            if len(answers) >= self.answers:
                break
            assert self.c.alive() and time.monotonic() < deadline, \
                "script client: no answer to %r\n%s" % (cmd, self.c.err.text())
            time.sleep(0.01)
        a = answers[self.answers - 1]
        assert a["ok"] == expect_ok, (cmd, a)
        self.sent = a["sent"]
        return a

    def finish(self):
        self.c.proc.stdin.close()
        assert self.c.wait(30) == 0, self.c.err.text()
        assert self.c.messages()[-1] == {"done": True, "sent": self.sent}


def start_traffic_thread(demo, stop, paths=("/fk/nplus1", "/fk/fixed", "/duplicate/nplus1")):
    """Requests, one after another, until stop is set; returns the thread and
    the list of (path, status) it fills."""
    done = []

    def run():
        while not stop.is_set():
            for p in paths:
                try:
                    status = demo.get(p)[0]
                except OSError as e:
                    status = repr(e)
                done.append((p, status))
            stop.wait(0.2)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, done


# --- fixtures ----------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(pg):
    env = DemoEnv(cluster=pg).start()
    try:
        yield env
    finally:
        env.stop()


class RoundTrip:
    pass


@pytest.fixture(scope="module")
def round_trip(demo, module_runner, tmp_path_factory):
    """Three runs at once on the same traffic: live JSON with -o, live text
    with -o, and a quiet record."""
    d = tmp_path_factory.mktemp("roundtrip")
    rt = RoundTrip()
    rt.dir = d
    rt.json_cap, rt.text_cap, rt.rec_cap = d / "live-json.pqs", d / "live-text.pqs", d / "rec.pqs"
    master = str(demo.master_pid)
    dur = str(ROUND_TRIP_SECONDS)
    snoops = [
        module_runner.pqsnoop(["-p", master, "--json", "-o", rt.json_cap, "-d", dur]),
        module_runner.pqsnoop(["-p", master, "-o", rt.text_cap, "-d", dur]),
        module_runner.pqsnoop(["record", "-p", master, "-o", rt.rec_cap, "-d", dur]),
    ]
    t_first = time.monotonic()
    for s in snoops:
        s.wait_attached()
    summary = traffic.run_traffic(demo.base_url, pages=PAGES, variants=VARIANTS,
                                  reps=REPS, concurrency=4)
    t_traffic = time.monotonic() - t_first
    print("round trip: attach + traffic %.1f s of %d" % (t_traffic, ROUND_TRIP_SECONDS))
    # every instance must have seen all of it: the traffic ended well before
    # the first one's -d ran out (its clock started at its attach)
    assert t_traffic < ROUND_TRIP_SECONDS - 1.5, \
        "attach + traffic took %.1f s: raise ROUND_TRIP_SECONDS" % t_traffic
    assert len(summary.results) == REPS * len(PER_REQUEST)
    for s in snoops:
        rc = s.wait(ROUND_TRIP_SECONDS + 60)
        assert rc == 0, "%s exited %d\n%s" % (s.argv, rc, s.err.text())
    rt.live_json, rt.live_text, rt.rec = snoops
    return rt


@pytest.fixture(scope="module")
def rec_report(round_trip):
    """The quiet record run's capture, reported as JSON."""
    return json.loads(report_ok(round_trip.rec_cap, "--format", "json"))


@pytest.fixture(scope="module")
def secrets(module_runner, tmp_path_factory):
    """One scripted client traced by two records at once, without and with
    --show-values: secret literals, an error quoting one, hostile text, and
    a duplicate loop so reports have a finding."""
    d = tmp_path_factory.mktemp("secrets")
    plain, shown = d / "plain.pqs", d / "shown.pqs"
    # a file already there, readable by all: the capture must still be 0600
    plain.write_bytes(b"old contents")
    os.chmod(plain, 0o644)
    client = ScriptClient(module_runner)
    old = os.umask(0)  # pqsnoop's modes must not depend on the caller's umask
    try:
        snoops = [module_runner.pqsnoop(["record", "-p", str(client.pid), "-o", plain]),
                  module_runner.pqsnoop(["record", "-p", str(client.pid), "-o", shown,
                                         "--show-values"])]
    finally:
        os.umask(old)
    for s in snoops:
        s.wait_attached()
    client.go()
    client.run("SELECT '%s'" % SECRET)
    client.run("SELECT '%s'::int" % SECRET, expect_ok=False)  # 22P02 quotes the value
    client.run("SELECT 1 AS \"%s\" /* %s &\"' */" % (HOSTILE, HOSTILE))
    # invalid UTF-8: the server refuses it (22021), pqsnoop still sees the text
    client.run(sql_bytes=b"SELECT 2 AS \"\xff\xfe" + HOSTILE.encode() + b"\"", expect_ok=False)
    # back to back, so they are one unit of work: a duplicate finding
    client.run("CREATE TEMP TABLE t AS SELECT i AS id, 'v' || i AS v "
               "FROM generate_series(1, 10) i")
    client.run(batch=[("SELECT id FROM t", 1),
                      ("SELECT id FROM t WHERE v = 'dup-%s'" % SECRET, 8)])
    client.finish()
    for s in snoops:
        assert s.wait(30) == 0, s.err.text()
        assert re.search(r"wrote %d queries to " % client.sent, s.err.text()), s.err.text()
        assert not s.out.data(), "record printed on stdout: %r" % s.out.data()[:300]
    return {"plain": plain, "shown": shown, "queries": client.sent, "dir": d}


# --- round trip ----------------------------------------------------------------

def test_live_json_equals_report_of_its_capture(round_trip):
    live = round_trip.live_json.out.data()
    rep = report_ok(round_trip.json_cap, "--format", "json")
    # byte for byte: the report holds nothing that only the live process
    # could know (no fingerprint-cache statistics)
    assert not FP_STATS.search(live)
    assert live == rep, "live JSON report != report of its capture"
    doc = json.loads(live)
    assert doc["totals"]["queries"] == EXPECTED_QUERIES, doc["totals"]
    assert doc["totals"]["dropped"] == 0
    assert doc["findings"], "no finding in the demo's N+1 traffic"


def test_live_text_equals_report_of_its_capture(round_trip):
    live = round_trip.live_text.out.text()
    rep = report_ok(round_trip.text_cap).decode()
    assert rep.startswith("pqsnoop: ") and "%d queries" % EXPECTED_QUERIES in rep.splitlines()[0], rep
    # live: each finding as it is found, then a blank line and the report
    assert live.endswith("\n" + rep), \
        "the live text report is not the report of its capture\nlive:\n%s\nreport:\n%s" % (
            live[-3000:], rep[:3000])


def _finding_keys(doc):
    return sorted((f["kind"], f["fingerprint"], f["sql"], json.dumps(f["callsite"]),
                   f["count_max"], f["count_typical"], f["queries"], f["occurrences"],
                   f["units"], (f["parent"] or {}).get("fingerprint"), f["hint"]["fix"])
                  for f in doc["findings"])


def test_record_then_report_finds_what_live_found(round_trip, rec_report):
    live = json.loads(round_trip.live_json.out.data())
    # the quiet run says what it wrote, and only that
    assert not round_trip.rec.out.data()
    assert re.search(r"wrote %d queries to %s" % (EXPECTED_QUERIES, re.escape(str(round_trip.rec_cap))),
                     round_trip.rec.err.text()), round_trip.rec.err.text()
    assert rec_report["totals"]["queries"] == live["totals"]["queries"] == EXPECTED_QUERIES
    assert _finding_keys(rec_report) == _finding_keys(live)


def test_capture_modes(round_trip):
    for cap in (round_trip.json_cap, round_trip.text_cap, round_trip.rec_cap):
        assert mode_of(cap) == 0o600, "%s is %o" % (cap, mode_of(cap))


def test_report_needs_no_root(round_trip, rec_report, module_runner):
    """A plain user with no capabilities reads a capture it may read, and
    is told clearly when it may not (captures are root's, 0600)."""
    d = tempfile.mkdtemp(prefix="pqsnoop-report-")
    try:
        os.chmod(d, 0o755)
        copy = os.path.join(d, "copy.pqs")
        shutil.copyfile(round_trip.rec_cap, copy)
        nobody = pwd.getpwnam("nobody")
        os.chown(copy, nobody.pw_uid, nobody.pw_gid)
        os.chmod(copy, 0o600)
        p = module_runner.pqsnoop(["report", copy, "--format", "json"], user="nobody")
        assert p.wait(60) == 0, p.err.text()
        assert not p.err.data()
        assert json.loads(p.out.data()) == rec_report
        p = module_runner.pqsnoop(["report", round_trip.rec_cap], user="nobody")
        assert p.wait(60) == 1
        assert re.fullmatch(r"pqsnoop: .*Permission denied\n", p.err.text()), p.err.text()
    finally:
        shutil.rmtree(d)


# --- production data -----------------------------------------------------------------

FORMATS = ["text", "json", "folded", "svg", "perfetto"]


def test_capture_without_values_holds_no_secret(secrets):
    plain = secrets["plain"]
    assert mode_of(plain) == 0o600, "%o" % mode_of(plain)
    raw = decompress(plain)
    assert raw.startswith(b"PQSNOOP\n")
    assert SECRET.encode() not in raw
    assert b"invalid input syntax" not in raw  # the error message is dropped
    assert b"22P02" in raw  # its SQLSTATE is kept
    assert HOSTILE.encode() in raw  # identifiers are not values: kept (for the SVG test)


def test_capture_with_values_keeps_them(secrets):
    shown = secrets["shown"]
    assert mode_of(shown) == 0o600, "%o" % mode_of(shown)
    raw = decompress(shown)
    assert ("SELECT '%s'" % SECRET).encode() in raw
    assert ('invalid input syntax for type integer: "%s"' % SECRET).encode() in raw


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_secret_in_reports(secrets, tmp_path, fmt):
    """Whatever the capture and the flags, no report shows a literal value,
    except text and JSON asked --show-values of a --show-values capture."""
    for cap in ("plain", "shown"):
        for flags in ([], ["--show-values"]):
            out = tmp_path / ("%s%s.%s" % (cap, "-v" if flags else "", fmt))
            r = report(secrets[cap], "--format", fmt, "-o", out, *flags)
            assert r.returncode == 0, r.stderr
            data = out.read_bytes()
            assert not r.stdout
            assert data, "empty %s report" % fmt
            allowed = cap == "shown" and flags and fmt in ("text", "json")
            if not allowed:
                assert SECRET.encode() not in data, (cap, flags, fmt)
                assert SECRET.encode() not in r.stderr
            if cap == "plain" and flags:
                # says there are no values to show
                assert b"without --show-values" in r.stderr, r.stderr
    if fmt in ("text", "json"):
        # the positive control: asked for, the values of a --show-values
        # capture are there (the duplicate's example)
        data = (tmp_path / ("shown-v.%s" % fmt)).read_bytes()
        assert ("dup-%s" % SECRET).encode() in data, data[:2000]


# --- damaged and foreign files ---------------------------------------------------

def _report_cut(data, n, path):
    with open(path, "wb") as f:
        f.write(data[:n])
    try:
        r = report(path, "--format", "json")
    finally:
        os.unlink(path)
    return n, r


def test_truncated_capture_at_every_byte(round_trip, rec_report, tmp_path):
    """Every cut in the last 2 KB, every one in the first 64 bytes, and a
    sample between: never a crash; what is readable is reported with a
    warning; the count never goes down as the cut grows."""
    data = round_trip.rec_cap.read_bytes()
    size = len(data)
    full = rec_report["totals"]["queries"]
    cuts = set(range(max(0, size - 2048), size + 1)) | set(range(0, min(64, size)))
    rnd = random.Random(size)
    cuts |= {rnd.randrange(64, max(65, size - 2048)) for _ in range(120)}
    cuts = sorted(cuts)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        results = list(ex.map(lambda n: _report_cut(data, n, tmp_path / ("cut-%d.pqs" % n)), cuts))

    problems = []
    silent = []
    prev_q, prev_n, readable_since = 0, None, None
    for n, r in results:
        err = r.stderr.decode("utf-8", "replace")
        what = "cut at %d of %d bytes" % (n, size)
        if r.returncode not in (0, 1) or SANITIZER.search(err):
            problems.append("%s: exit %d\n%s" % (what, r.returncode, err[-2000:]))
            continue
        lines = err.splitlines()
        if r.returncode == 1:
            q = 0
            if r.stdout or len(lines) != 1 or not lines[0].startswith("pqsnoop: "):
                problems.append("%s: exit 1 without one clear line: %r" % (what, err))
            if readable_since is not None:
                problems.append("%s: unreadable, but the cut at %d was readable" % (what, readable_since))
        else:
            if readable_since is None:
                readable_since = n
            try:
                q = json.loads(r.stdout)["totals"]["queries"]
            except (ValueError, KeyError) as e:
                problems.append("%s: report is not JSON (%s)" % (what, e))
                continue
            if n == size:
                if err:
                    problems.append("the whole file: unexpected stderr %r" % err)
                if q != full:
                    problems.append("the whole file: %d queries, expected %d" % (q, full))
            elif not (len(lines) == 1 and re.match(r"pqsnoop: .*(cut short|did not finish)", lines[0])):
                silent.append(n)
        if q < prev_q:
            problems.append("%s: %d queries, fewer than the %d of the cut at %d" % (what, q, prev_q, prev_n))
        prev_q, prev_n = max(prev_q, q), n
    assert not problems, "\n".join(problems[:20])
    assert not silent, ("cut files reported (exit 0) without saying they were cut short: "
                        "%d cuts, at %s (file size %d)" % (len(silent), _ranges(silent), size))
    assert readable_since is not None and readable_since < size - 2048


def _ranges(ns):
    out, start, prev = [], None, None
    for n in ns + [None]:
        if start is not None and (n is None or n != prev + 1):
            out.append("%d" % start if start == prev else "%d-%d" % (start, prev))
            start = None
        if n is not None and start is None:
            start = n
        prev = n
    return ", ".join(out)


def test_foreign_files(pqsnoop_bin, tmp_path):
    rnd = random.Random(4242)
    files = {}
    for i, size in enumerate([1, 15, 16, 100, 4096]):
        files["random-%d" % size] = bytes(rnd.randrange(256) for _ in range(size))
    files["random-gzip-magic"] = b"\x1f\x8b\x08\x00" + bytes(rnd.randrange(256) for _ in range(500))
    files["empty"] = b""
    files["gzip-of-text"] = gzip.compress(b"hello\n" * 1000)
    files["gzip-of-gzip"] = gzip.compress(gzip.compress(b"PQSNOOP\n" + b"\0" * 100))
    files["header-only-plain"] = b"PQSNOOP\n"
    files["newer-version"] = gzip.compress(b"PQSNOOP\n\x63\x00\x00\x00\x00\x00\x00\x00")
    cases = []
    for name, content in files.items():
        p = tmp_path / (name + ".pqs")
        p.write_bytes(content)
        cases.append(p)
    d = tmp_path / "a-directory.pqs"
    d.mkdir()
    cases += [d, tmp_path / "missing.pqs"]
    for p in cases:
        for fmt in ("text", "svg"):
            out = tmp_path / "out"
            r = report(p, "--format", fmt, "-o", out)
            assert r.returncode == 1, "%s: exit %d\n%s" % (p.name, r.returncode, r.stderr)
            check_one_line_message(r, p.name)
            assert not r.stdout
            assert not out.exists(), "%s: a report was written" % p.name
    r = report(tmp_path / "newer-version.pqs")
    assert b"version 99" in r.stderr, r.stderr
    r = report(tmp_path / "missing.pqs")
    assert b"No such file" in r.stderr, r.stderr


def test_record_killed_with_sigkill(module_runner, tmp_path):
    """kill -9 while recording: the capture reads back (with a warning) with
    exactly the queries the client sent before the last flush."""
    cap = tmp_path / "killed.pqs"
    client = ScriptClient(module_runner)
    snoop = module_runner.pqsnoop(["record", "-p", str(client.pid), "-o", cap])
    snoop.wait_attached()
    client.go()
    client.run("SELECT generate_series(1, 30)")
    client.run("SELECT 42", repeat=30)
    client.run("SELECT 'no such'::int", repeat=3, expect_ok=False)
    client.run("SELECT 1")
    sent = client.sent
    assert sent == 35
    time.sleep(1.6)  # the recorder flushes at least every second
    os.kill(snoop.pid, signal.SIGKILL)
    assert snoop.wait(10) == -signal.SIGKILL
    client.finish()
    assert mode_of(cap) == 0o600
    r = report(cap, "--format", "json")
    assert r.returncode == 0, r.stderr
    line = check_one_line_message(r, "killed capture")
    assert re.search(r"cut short|did not finish", line), line
    doc = json.loads(r.stdout)
    assert doc["totals"]["queries"] == sent, doc["totals"]
    # the text report too, same warning
    r = report(cap)
    assert r.returncode == 0 and ("%d queries" % sent).encode() in r.stdout, r.stdout
    check_one_line_message(r, "killed capture, text")


# --- formats ---------------------------------------------------------------------

def test_svg_demo(round_trip, rec_report, tmp_path):
    out = tmp_path / "demo.svg"
    r = report(round_trip.rec_cap, "--format", "svg", "-o", out)
    assert r.returncode == 0 and not r.stderr and not r.stdout, r.stderr
    xml.dom.minidom.parse(str(out))  # well-formed
    root = ET.parse(str(out)).getroot()
    assert root.tag == SVG_NS + "svg"
    assert len(root.findall(".//%sscript" % SVG_NS)) == 1
    titles = [t.text or "" for t in root.iter(SVG_NS + "title")]
    for view in ("fk_nplus1 (", "mn_nplus1 (", "count_nplus1 (", "duplicate_nplus1 (",
                 "fk_fixed ("):
        assert any(view in t for t in titles), "no %r frame in the SVG" % view
    red = [g for g in root.iter(SVG_NS + "g") if g.get("class") == "f nplus1"]
    assert red, "no finding leaf in the SVG"
    ranks = set()
    for g in red:
        label = g.find(SVG_NS + "title").text
        m = re.search(r" \[finding #(\d+)\] \(", label)
        assert label.startswith("SQL ") and m, label
        ranks.add(int(m.group(1)))
        assert g.find(SVG_NS + "rect").get("fill").startswith("rgb(230,")
    assert ranks == set(range(1, len(rec_report["findings"]) + 1))
    # every finding's callsite is a frame
    for f in rec_report["findings"]:
        site = "%s (%s:%d)" % (f["callsite"]["func"], f["callsite"]["file"], f["callsite"]["line"])
        assert any(t.startswith(site) for t in titles), site


def test_svg_hostile_text_stays_text(secrets, tmp_path):
    out = tmp_path / "hostile.svg"
    r = report(secrets["plain"], "--format", "svg", "-o", out)
    assert r.returncode == 0, r.stderr
    raw = out.read_bytes()
    raw.decode("utf-8")  # invalid UTF-8 from the process was replaced
    xml.dom.minidom.parseString(raw)
    root = ET.fromstring(raw)
    elements = list(root.iter())
    scripts = [e for e in elements if e.tag == SVG_NS + "script"]
    assert len(scripts) == 1 and "function init()" in scripts[0].text
    allowed = {SVG_NS + t for t in ("svg", "style", "script", "rect", "text", "g", "title")}
    assert {e.tag for e in elements} <= allowed, {e.tag for e in elements} - allowed
    for e in elements:
        assert "alert" not in e.tag and all("alert" not in k for k in e.attrib)
    texts = [t.text or "" for t in root.iter(SVG_NS + "title")]
    assert any(HOSTILE in t for t in texts), "the hostile identifier is not shown as text"
    assert any("\ufffd" in t for t in texts), "invalid UTF-8 not shown as U+FFFD"
    assert raw.count(b"<script") == 1


def test_folded(round_trip, rec_report, tmp_path):
    # No flamegraph tool is packaged in Debian 12 (flamegraph.pl, inferno),
    # so the format is checked as flamegraph.pl reads it: "f1;f2;...;leaf N".
    text = report_ok(round_trip.rec_cap, "--format", "folded").decode("utf-8")
    lines = text.splitlines()
    assert text.endswith("\n") and lines
    total, paths = 0, set()
    for line in lines:
        assert re.fullmatch(r"[^\n]+ \d+", line), line
        path, weight = line.rsplit(" ", 1)
        frames = path.split(";")
        assert all(frames), line
        assert frames[-1].startswith("SQL "), line
        for fr in frames[:-1]:
            assert fr == "[no Python stack]" or re.fullmatch(r".+ \(.+:\d+\)", fr), fr
        assert path not in paths, "path listed twice: %s" % path
        paths.add(path)
        total += int(weight)
    assert total == rec_report["totals"]["queries"]
    assert any("fk_nplus1 (" in l for l in lines)
    for rank in range(1, len(rec_report["findings"]) + 1):
        assert any(re.search(r";SQL [^;]* \[finding #%d\] \d+$" % rank, l) for l in lines), rank
    # by time: each query's duration in microseconds (rounded), the same
    # durations the timeline shows (in microseconds with 3 decimals: exact)
    timed = report_ok(round_trip.rec_cap, "--format", "folded", "--weight", "time").decode()
    us = sum(int(l.rsplit(" ", 1)[1]) for l in timed.splitlines())
    timeline = json.loads(report_ok(round_trip.rec_cap, "--format", "perfetto"))
    durs = [round(e["dur"] * 1000) for e in timeline["traceEvents"]
            if e["ph"] == "X" and e["cat"] != "finding"]
    assert sum(durs) == rec_report["totals"]["db_time_ns"]
    assert us == sum((ns + 500) // 1000 for ns in durs)


def test_perfetto(round_trip, rec_report):
    raw = report_ok(round_trip.rec_cap, "--format", "perfetto")
    doc = json.loads(raw)
    events = doc["traceEvents"]
    threads = [(e["pid"], e["tid"]) for e in events
               if e["ph"] == "M" and e["name"] == "thread_name"]
    assert len(threads) == len(set(threads)), "a thread named twice"
    slices = [e for e in events if e["ph"] == "X" and e["cat"] in ("query", "n+1")]
    assert len(slices) == rec_report["totals"]["queries"] == EXPECTED_QUERIES
    assert {(e["pid"], e["tid"]) for e in slices} == set(threads)
    # a query is marked when it is the statement of a finding, sent from
    # the finding's line: all of the runs' queries, and any other execution
    # from there (a run cut by a pause leaves a few out of it)
    sites = [(f["sql"], "%s (%s:%d)" % (f["callsite"]["func"], f["callsite"]["file"],
                                       f["callsite"]["line"]))
             for f in rec_report["findings"]]
    nplus1 = 0
    for e in slices:
        ranks = [i + 1 for i, (sql, site) in enumerate(sites)
                 if e["args"]["sql"] == sql and site in e["args"].get("stack", [])]
        if e["cat"] == "n+1":
            nplus1 += 1
            assert e["args"]["finding"] in ranks and e.get("cname"), e
        else:
            assert not ranks and "finding" not in e["args"], e
    assert nplus1 >= sum(f["queries"] for f in rec_report["findings"])
    for e in slices:
        assert e["dur"] >= 0 and e["ts"] > 0 and "sql" in e["args"]
    findings = [e for e in events if e["ph"] == "X" and e["cat"] == "finding"]
    assert len(findings) == len(rec_report["findings"])
    for i, (e, f) in enumerate(zip(findings, rec_report["findings"])):
        assert e["name"].startswith("#%d " % (i + 1)), e["name"]
        assert e["args"]["sql"] == f["sql"]
    assert {e["ph"] for e in events} <= {"M", "X"}


def test_perfetto_and_folded_hostile(secrets):
    raw = report_ok(secrets["plain"], "--format", "perfetto")
    assert b"<" not in raw  # written \u003c: safe to embed in HTML
    doc = json.loads(raw)
    sqls = [e["args"]["sql"] for e in doc["traceEvents"]
            if e["ph"] == "X" and e["cat"] in ("query", "n+1")]
    assert len(sqls) == secrets["queries"]
    assert any(HOSTILE in s for s in sqls)
    folded = report_ok(secrets["plain"], "--format", "folded")
    for line in folded.decode("utf-8", "replace").splitlines():
        assert re.fullmatch(r"[^\n]+ \d+", line), line
    assert sum(int(l.rsplit(b" ", 1)[1]) for l in folded.splitlines()) == secrets["queries"]


# --- record --every ----------------------------------------------------------------

def test_periodic_rotation(demo, module_runner, tmp_path):
    outdir = tmp_path / "periods"
    stop = threading.Event()
    snoop = module_runner.pqsnoop(["record", "-p", str(demo.master_pid), "--every", "2",
                                   "--keep", "2", "--output-dir", outdir, "-d", "7"])
    snoop.wait_attached()
    t, done = start_traffic_thread(demo, stop)
    try:
        assert snoop.wait(40) == 0, snoop.err.text()
    finally:
        stop.set()
        t.join(30)
    assert done and all(s == 200 for _, s in done), done
    assert mode_of(outdir) == 0o700, "%o" % mode_of(outdir)
    names = sorted(os.listdir(outdir))
    periods = re.findall(r"period (\S+/pqsnoop-\d{8}-\d{6}): (\d+) queries", snoop.err.text())
    # 7 s in periods aligned on 2 s: at least 4 periods were written
    assert len(periods) >= 4, snoop.err.text()
    kept = [os.path.basename(p) for p, _ in periods[-2:]]
    assert names == sorted(k + ext for k in kept for ext in (".json", ".pqs", ".txt")), names
    for name in names:
        assert re.fullmatch(r"pqsnoop-\d{8}-\d{6}\.(pqs|txt|json)", name), name
        assert mode_of(outdir / name) == 0o600, "%s is %o" % (name, mode_of(outdir / name))
    counts = dict((os.path.basename(p), int(n)) for p, n in periods)
    for k in kept:
        cap = outdir / (k + ".pqs")
        # the period's reports are the reports of its capture
        rep_json = report_ok(cap, "--format", "json")
        written = (outdir / (k + ".json")).read_bytes()
        assert rep_json == written, k
        assert report_ok(cap) == (outdir / (k + ".txt")).read_bytes(), k
        assert json.loads(rep_json)["totals"]["queries"] == counts[k]
    # steady traffic: the last full period saw queries
    assert counts[kept[0]] > 0, periods
