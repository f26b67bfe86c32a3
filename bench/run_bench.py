#!/usr/bin/python3
"""pqsnoop's benchmark: what tracing costs the traced process, and how fast
pqsnoop consumes, side by side in one run.  `make bench` runs it.

    sudo /usr/bin/python3 bench/run_bench.py --pqsnoop ./pqsnoop --floor build/floor
        [--quick] [--rounds R] [-n N] [--only loop,django,pgbench,shapes,micro]
        [--pin none|same|split] [--out bench/results.json]

It measures and reports; it never fails on a number.  It exits non-zero only
when it could not run (not root, a tool missing, the database not starting).
A count that does not match (pqsnoop's summary against the queries sent) is
reported in the table and in results.json, not raised.

Sections (bench/README.md says how to read each):
  1a. cost to the traced process, worst case: a psycopg2 loop of SELECT 1
  1b. cost to the traced process, realistic: the demo's Django pages under load
  2.  tracer throughput: pgbench -S, untraced vs traced, exact counts, drops
  3.  user-side cost: pqsnoop's CPU per event and memory, sustained and with
      10,000 distinct query shapes
  4.  micro: bench/fingerprint_bench.c, when it exists

Every variant of a section runs in each round, in an order rotated from round
to round; the reported numbers are medians over the rounds, and "added" costs
are medians of per-round differences against the same round's untraced run.

The measured processes use a private copy of libpq (LD_LIBRARY_PATH), so
probes another tool puts on the system's libpq for every process (pid -1)
never touch them, and the floor's pid -1 probes touch nothing else.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
TESTS_DIR = os.path.join(ROOT, "tests")
DEMO_DIR = os.path.join(TESTS_DIR, "demo")
PYTHON = "/usr/bin/python3"  # Debian's: psycopg2 and Django

sys.path.insert(0, TESTS_DIR)
from pgcluster import PgCluster  # noqa: E402

# The libpq functions each tracer puts a probe on (an entry probe on each, so
# the first byte of each reads 0xCC in the target while it is attached).
PQSNOOP_FUNCS = ["PQsendQuery", "PQsendQueryParams", "PQsendPrepare",
                 "PQsendQueryPrepared", "PQgetResult", "PQfinish"]
BPFTRACE_FUNCS = ["PQsendQuery", "PQsendQueryParams", "PQgetResult"]

PGBENCH_TX_RE = re.compile(r"SELECT abalance FROM pgbench_accounts WHERE aid = \d+;")


class BenchError(RuntimeError):
    """The benchmark cannot go on (not a measurement that came out badly)."""


def log(msg):
    print("bench: %s" % msg, file=sys.stderr, flush=True)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def rotate(seq, k):
    k %= len(seq)
    return seq[k:] + seq[:k]


# --- the machine --------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def cpu_busy_seconds():
    """Busy CPU time of the whole machine (all processes), from /proc/stat."""
    return cpu_stat()[0]


def cpu_stat():
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat.
    Steal: time the hypervisor ran something else while a vCPU wanted to run."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = v[3] + v[4]
    return (sum(v[:7]) - idle) / hz, v[7] / hz


def last_cpu(pid):
    """The CPU a task last ran on (/proc/PID/stat field 39)."""
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[36])


class Colocation:
    """Samples, every few milliseconds, whether the client and its server
    backend last ran on the same CPU.  Unpinned, the scheduler keeps the pair
    on one CPU or on two for seconds at a time, and the per-query time of a
    ping-pong loop differs several-fold between the two (a wakeup across
    CPUs is an IPI, and on a VM each IPI and idle exit is a VM exit); this
    says which placement a run had."""

    def __init__(self, a, b, period=0.005):
        self.a, self.b, self.period = a, b, period
        self.same = self.total = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.wait(self.period):
            try:
                self.same += last_cpu(self.a) == last_cpu(self.b)
                self.total += 1
            except (OSError, IndexError, ValueError):
                return

    def done(self):
        self._stop.set()
        self._t.join()
        return self.same / self.total if self.total else None


class OtherLoad:
    """How much of the machine's CPUs something other than the measured
    processes used during a measurement: machine busy time minus the CPU time
    of our own processes (the pids given), as a fraction of the CPUs over the
    wall time.  The benchmark cannot stop other work; it says how much there
    was, so a noisy table is recognisable."""

    def __init__(self, pids):
        self.pids = [p for p in pids if p]
        self.t0 = time.monotonic()
        self.busy0, self.steal0 = cpu_stat()
        self.own0 = self._own()

    def _own(self):
        total = 0.0
        for p in self.pids:
            try:
                total += proc_cpu(p)
            except OSError:
                pass
        return total

    def done(self):
        wall = time.monotonic() - self.t0
        busy, steal = cpu_stat()
        other = (busy - self.busy0) - (self._own() - self.own0)
        ncpu = os.cpu_count() or 1
        return {"other_cpu_frac": max(0.0, other) / (wall * ncpu),
                "steal_frac": (steal - self.steal0) / (wall * ncpu)}


def proc_cpu(pid):
    """CPU time of a process in seconds, summed over its threads: from
    /proc/PID/task/*/schedstat (nanoseconds on the CPU) where the kernel has
    it, else utime+stime from /proc/PID/stat (10 ms ticks: too coarse for a
    few thousand events)."""
    try:
        total = 0
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_mem_kb(pid):
    """{"VmRSS": kB, "VmHWM": kB} of a process."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def ensure_bpftrace():
    """bpftrace on PATH, installed with apt-get when missing; None or the reason."""
    if shutil.which("bpftrace"):
        return None
    log("bpftrace is missing: apt-get install bpftrace")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run("apt-get update -qq && apt-get install -y -qq bpftrace",
                       shell=True, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0 or not shutil.which("bpftrace"):
        return "apt-get install bpftrace failed: %s" % r.stdout.strip()[-300:]
    return None


def tool_version(argv):
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=10)
        return r.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


# --- libpq: a private copy, its symbols, whether probes are on it --------------

class Libpq:
    """A private copy of the system's libpq, named libpq.so.5 in its own folder.

    Processes started with env() map it instead of the system file; every
    tracer here attaches to it (pqsnoop and bpftrace find it in the target's
    /proc/PID/maps, the floor is given its path)."""

    def __init__(self, tmp):
        src = os.path.realpath(self.system_path())
        self.dir = os.path.join(tmp, "lib")
        os.mkdir(self.dir)
        self.path = os.path.join(self.dir, "libpq.so.5")
        shutil.copy2(src, self.path)
        self.source = src
        self.offsets = self._symbols()
        missing = [f for f in PQSNOOP_FUNCS if f not in self.offsets]
        if missing:
            raise BenchError("%s has no symbol %s" % (src, ", ".join(missing)))

    @staticmethod
    def system_path():
        for p in ("/usr/lib/x86_64-linux-gnu/libpq.so.5",):
            if os.path.exists(p):
                return p
        r = subprocess.run(["ldconfig", "-p"], stdout=subprocess.PIPE, text=True)
        for line in r.stdout.splitlines():
            if line.strip().startswith("libpq.so.5 ") and "=>" in line:
                return line.split("=>", 1)[1].strip()
        raise BenchError("no libpq.so.5 on this machine: install libpq5 (make deps)")

    def _symbols(self):
        nm = shutil.which("nm") or shutil.which("llvm-nm")
        if not nm:
            raise BenchError("nm not found: install binutils")
        r = subprocess.run([nm, "-D", "--defined-only", self.path],
                           stdout=subprocess.PIPE, text=True, check=True)
        out = {}
        for line in r.stdout.splitlines():
            f = line.split()
            if len(f) == 3 and f[2] in PQSNOOP_FUNCS:
                out[f[2]] = int(f[0], 16)
        return out

    def env(self, base):
        e = dict(base)
        e["LD_LIBRARY_PATH"] = self.dir
        return e


class ProbeCheck:
    """Whether uprobes are live on libpq functions in one process.

    A uprobe (or uretprobe) puts an int3 (0xCC) on the function's first
    instruction in every process that maps the file; the kernel restores the
    byte when the last probe there goes.  Reading it through /proc/PID/mem
    tells when a tracer's probes really are in place -- bpftrace prints
    "Attaching N probes..." before it attaches -- and when they are gone."""

    def __init__(self, pid, lib):
        self.pid = pid
        self.lib = lib
        self.base = None
        with open("/proc/%d/maps" % pid) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 6 and fields[5] == lib.path and int(fields[2], 16) == 0:
                    self.base = int(fields[0].split("-")[0], 16)
                    break
        if self.base is None:
            raise BenchError("pid %d does not map %s" % (pid, lib.path))
        self.original = self.first_bytes(PQSNOOP_FUNCS)
        armed = [f for f, b in self.original.items() if b == 0xCC]
        if armed:
            raise BenchError("probes already on %s in pid %d (%s): is a tracer left running?"
                             % (lib.path, pid, ", ".join(armed)))

    def first_bytes(self, funcs):
        out = {}
        with open("/proc/%d/mem" % self.pid, "rb", buffering=0) as m:
            for fn in funcs:
                m.seek(self.base + self.lib.offsets[fn])
                out[fn] = m.read(1)[0]
        return out

    def wait(self, funcs, armed, timeout=20.0, alive=None):
        """True once every function is armed (0xCC) or disarmed (original).
        False on timeout, or as soon as alive() (the tracer) says False.  A
        target that exited has nothing left to disarm."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                b = self.first_bytes(funcs)
            except (OSError, IndexError):
                return not armed
            if armed and all(v == 0xCC for v in b.values()):
                return True
            if not armed and all(b[f] == self.original[f] for f in funcs):
                return True
            if time.monotonic() > deadline or (alive and not alive()):
                return False
            time.sleep(0.01)


# --- tracers ------------------------------------------------------------------

class TracerFailed(RuntimeError):
    pass


class Tracer:
    """A tracer process: started, attached (its own word and the probes seen
    in the target), stopped with SIGINT.  Subclasses say how."""

    name = "tracer"
    funcs = PQSNOOP_FUNCS
    ready_token = "attached"

    def __init__(self, tmp):
        self.tmp = tmp
        self.proc = None
        self.err_lines = []
        self.attached = threading.Event()
        self.out_path = None
        self.cpu_at_attach = None
        self.rusage = None
        self.rss_samples = []

    def argv(self, target_pid, lib):
        raise NotImplementedError

    def start(self, target_pid, check, lib, sample_rss=False):
        fd, self.out_path = tempfile.mkstemp(prefix=self.name + "-", suffix=".out", dir=self.tmp)
        with os.fdopen(fd, "wb") as out:
            self.proc = subprocess.Popen(self.argv(target_pid, lib), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.PIPE)
        t = threading.Thread(target=self._read_stderr, daemon=True)
        t.start()
        deadline = time.monotonic() + 60
        while self.ready_token and not self.attached.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                t.join(2)
                self._kill()
                raise TracerFailed("%s did not attach (exit %s): %s" % (
                    self.name, self.proc.returncode, self.stderr_tail()))
        if not check.wait(self.funcs, armed=True, timeout=60,
                          alive=lambda: self.proc.poll() is None):
            self._kill()
            t.join(2)
            raise TracerFailed("no probe of %s showed up in pid %d (exit %s): %s"
                               % (self.name, check.pid, self.proc.returncode,
                                  self.stderr_tail()))
        self.cpu_at_attach = proc_cpu(self.proc.pid)
        if sample_rss:
            self._sampling = True
            threading.Thread(target=self._sample_rss, daemon=True).start()

    def _read_stderr(self):
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            self.err_lines.append(line)
            if self.ready_token and self.ready_token in line:
                self.attached.set()

    def _sample_rss(self):
        t0 = time.monotonic()
        # not Popen.poll(): it would reap the process before stop()'s wait4
        while self._sampling:
            try:
                self.rss_samples.append((round(time.monotonic() - t0, 2),
                                         proc_mem_kb(self.proc.pid)["VmRSS"]))
            except (OSError, KeyError):
                break
            time.sleep(0.5)

    def stderr_tail(self, n=4):
        return " | ".join(self.err_lines[-n:]) or "(no message)"

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, check):
        """SIGINT, wait for the exit, then for the probes to leave the target.
        Returns what the tracer reported (subclass: result())."""
        self._sampling = False
        cpu_before = None
        mem = {}
        try:
            cpu_before = proc_cpu(self.proc.pid)
            mem = proc_mem_kb(self.proc.pid)
        except OSError:
            pass
        # not Popen.send_signal(): it reaps a tracer that already exited (the
        # target did), and stop() wants its rusage from wait4
        os.kill(self.proc.pid, signal.SIGINT)
        try:
            _, status, ru = _wait4(self.proc.pid, 30)
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            self.rusage = ru
        except subprocess.TimeoutExpired:
            self._kill()
            raise TracerFailed("%s did not exit within 30 s of SIGINT" % self.name)
        if not check.wait(self.funcs, armed=False):
            raise TracerFailed("%s exited but its probes are still in pid %d"
                               % (self.name, check.pid))
        res = {"exit": self.proc.returncode}
        if self.rusage is not None:
            total = self.rusage.ru_utime + self.rusage.ru_stime
            res["cpu_total_s"] = round(total, 4)
            # from attached to the end: what consuming the events cost
            if self.cpu_at_attach is not None:
                res["cpu_after_attach_s"] = round(total - self.cpu_at_attach, 4)
            res["maxrss_kb"] = self.rusage.ru_maxrss
        if cpu_before is not None and self.cpu_at_attach is not None:
            # attached .. SIGINT: consuming the events, without loading and
            # attaching before, or detaching and freeing after
            res["cpu_window_s"] = round(cpu_before - self.cpu_at_attach, 6)
        if mem:
            res["vm_hwm_kb"] = mem.get("VmHWM")
            res["vm_rss_kb_at_stop"] = mem.get("VmRSS")
        if self.rss_samples:
            res["rss_samples_kb"] = self.rss_samples
        res.update(self.result())
        try:
            os.unlink(self.out_path)
        except OSError:
            pass
        return res

    def result(self):
        return {}


def _wait4(pid, timeout):
    deadline = time.monotonic() + timeout
    while True:
        wpid, status, ru = os.wait4(pid, os.WNOHANG)
        if wpid == pid:
            return wpid, status, ru
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(str(pid), timeout)
        time.sleep(0.01)


class Floor(Tracer):
    name = "floor"

    def __init__(self, tmp, floor_bin):
        super().__init__(tmp)
        self.bin = floor_bin

    def argv(self, target_pid, lib):
        return [self.bin, lib.path]  # pid -1, as pqsnoop attaches


class Pqsnoop(Tracer):
    name = "pqsnoop"

    def __init__(self, tmp, pqsnoop_bin, extra=()):
        super().__init__(tmp)
        self.bin = pqsnoop_bin
        self.extra = list(extra)

    def argv(self, target_pid, lib):
        return [self.bin, "watch", "--json", "-p", str(target_pid)] + self.extra

    def result(self):
        """The summary line and the query lines actually written."""
        summary, queries, errors, shapes = None, 0, [], set()
        alias = re.compile(rb'"sql":"SELECT \d+ AS (c\d+);?"')
        with open(self.out_path, "rb") as f:
            for line in f:
                if line.startswith(b'{"type":"query"'):
                    queries += 1
                    if self.collect_shapes:
                        m = alias.search(line)
                        if m:
                            shapes.add(m.group(1))
                elif line.startswith(b'{"type":"summary"'):
                    summary = json.loads(line)
                elif line.startswith(b'{"type":"error"'):
                    errors.append(json.loads(line).get("message"))
        res = {"summary": summary, "query_lines": queries}
        if errors:
            res["errors"] = errors
        if self.collect_shapes:
            res["distinct_shapes"] = len(shapes)
        return res

    collect_shapes = False


class Bpftrace(Tracer):
    """What a user would otherwise type: the query text at the send, its
    latency at the NULL that ends PQexec's results, keyed by thread."""

    name = "bpftrace"
    funcs = BPFTRACE_FUNCS
    # it prints "Attaching N probes..." on stdout, before it attaches: only
    # the probes seen in the target say it is ready
    ready_token = None

    def script(self, pid, lib):
        p = lib.path
        return ("uprobe:%(p)s:PQsendQuery,uprobe:%(p)s:PQsendQueryParams /pid == %(pid)d/ "
                "{ @start[tid] = nsecs; @sql[tid] = str(arg1); } "
                "uretprobe:%(p)s:PQgetResult /pid == %(pid)d && retval == 0 && @start[tid]/ "
                "{ printf(\"%%d us %%s\\n\", (nsecs - @start[tid]) / 1000, @sql[tid]); "
                "delete(@start[tid]); delete(@sql[tid]); }" % {"p": p, "pid": pid})

    def argv(self, target_pid, lib):
        # bpftrace 0.17's -p does not limit uprobes to the process: the
        # predicate does, as a user learns to write
        return ["bpftrace", "-e", self.script(target_pid, lib)]

    def result(self):
        n, lost = 0, 0
        with open(self.out_path, "rb") as f:
            for line in f:
                if re.match(rb"\d+ us ", line):
                    n += 1
                else:
                    m = re.search(rb"Lost (\d+) events", line)
                    if m:
                        lost += int(m.group(1))
        for line in self.err_lines:
            m = re.search(r"Lost (\d+) events", line)
            if m:
                lost += int(m.group(1))
        return {"captured": n, "lost": lost}


# --- 1a. psycopg2 loop -----------------------------------------------------------

class LoopClient:
    def __init__(self, cluster, lib):
        env = lib.env(cluster.env())
        self.proc = subprocess.Popen([PYTHON, os.path.join(BENCH_DIR, "loop_client.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise BenchError("loop_client.py did not start (exit %s)" % self.proc.wait())
        self.ready = json.loads(line)
        self.pid = self.proc.pid

    def run(self, n, mode):
        self.proc.stdin.write("run %d %s\n" % (n, mode))
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise BenchError("loop_client.py died (exit %s)" % self.proc.wait())
        return json.loads(line)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def make_tracer(key, ctx):
    """The tracer of a variant, or None.  pqsnoop: without stacks (the row
    compared with the floor); pqsnoop_stacks: its default, stacks on;
    pqsnoop_default: as a user runs it, whatever its default is."""
    if key == "floor":
        return Floor(ctx.tmp, ctx.floor)
    if key == "bpftrace":
        return Bpftrace(ctx.tmp)
    if key == "pqsnoop":
        return Pqsnoop(ctx.tmp, ctx.pqsnoop, ["--no-stacks"] if ctx.pq_has_stacks else [])
    if key in ("pqsnoop_stacks", "pqsnoop_default"):
        return Pqsnoop(ctx.tmp, ctx.pqsnoop)
    return None


def pqsnoop_features(ctx):
    """What this pqsnoop can do, from its --help: stacks (--no-stacks turns
    them off, so they are on by default) and a record command.  Rows for
    what it cannot do yet say "not implemented yet"."""
    r = subprocess.run([ctx.pqsnoop, "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    ctx.pq_has_stacks = "--no-stacks" in r.stdout
    ctx.pq_has_record = re.search(r"^\s+record\b", r.stdout, re.M) is not None
    if not ctx.pq_has_stacks:
        ctx.unavailable["pqsnoop_stacks"] = "not implemented yet"
    ctx.pqsnoop_label = "pqsnoop watch --json%s" % (" --no-stacks" if ctx.pq_has_stacks else "")


def check_pqsnoop_count(res, sent):
    """Compare pqsnoop's summary with what was sent during its lifetime."""
    s = res.get("summary") or {}
    got = s.get("queries")
    res["sent"] = sent
    res["count_ok"] = (got == sent and res.get("query_lines") == sent
                       and s.get("dropped") == 0)
    if not res["count_ok"]:
        log("MISMATCH: pqsnoop summary says %s queries (%s lines, %s dropped), %d were sent"
            % (got, res.get("query_lines"), s.get("dropped"), sent))


LOOP_VARIANTS = [
    ("untraced", "untraced"),
    ("floor", "floor: empty BPF programs"),
    ("bpftrace", "bpftrace one-liner"),
    ("pqsnoop", "pqsnoop watch --json --no-stacks"),
    ("pqsnoop_stacks", "pqsnoop watch --json (stacks)"),
    ("inproc", "in-process (Python wrapper)"),
]


def later_rows(ctx):
    """Rows of modes the benchmark does not run (yet)."""
    why = ("pqsnoop has a record command now: not measured by the benchmark yet"
           if ctx.pq_has_record else "not implemented yet")
    return [("pqsnoop_record", "pqsnoop record", why)]


def variants(ctx, table):
    """The table's rows with this pqsnoop's labels."""
    return [(k, ctx.pqsnoop_label if k == "pqsnoop" else l) for k, l in table]


def bench_loop(ctx):
    n, warm, rounds = ctx.n, ctx.warmup, ctx.rounds
    client = LoopClient(ctx.cluster, ctx.lib)
    backend = client.ready["backend"]
    if ctx.pin != "none":
        # a diagnostic (--pin): the default measures placement, it does not fix it
        os.sched_setaffinity(client.pid, {0})
        os.sched_setaffinity(backend, {0} if ctx.pin == "same" else {1})
    check = ProbeCheck(client.pid, ctx.lib)
    table = variants(ctx, LOOP_VARIANTS)
    samples = {k: [] for k, _ in table}
    runs = {k: [] for k, _ in table}
    unavailable = dict(ctx.unavailable)
    try:
        for r in range(rounds):
            for key, label in rotate(table, r):
                if key in unavailable:
                    samples[key].append(None)
                    continue
                tracer = make_tracer(key, ctx)
                mode = "wrapped" if key == "inproc" else "plain"
                try:
                    if tracer:
                        tracer.start(client.pid, check, ctx.lib)
                except TracerFailed as e:
                    unavailable[key] = str(e)
                    log("%s unavailable: %s" % (label, e))
                    samples[key].append(None)
                    continue
                client.run(warm, mode)
                load = OtherLoad([client.pid, backend, tracer.proc.pid if tracer else None])
                coloc = Colocation(client.pid, backend)
                m = client.run(n, mode)
                info = {"round": r, "wall_us": m["wall"] / n * 1e6, "cpu_us": m["cpu"] / n * 1e6,
                        "same_cpu_frac": coloc.done()}
                info.update(load.done())
                if key == "inproc":
                    info["logged"] = m["logged"]
                if tracer:
                    res = tracer.stop(check)
                    if key.startswith("pqsnoop"):
                        check_pqsnoop_count(res, warm + n)
                    if key == "bpftrace":
                        res["sent"] = warm + n
                    info["tracer"] = res
                samples[key].append((info["wall_us"], info["cpu_us"]))
                runs[key].append(info)
                log("loop round %d/%d %-30s %7.1f us/query  client CPU %6.1f us/query  "
                    "same CPU %3.0f%%  other load %3.0f%%"
                    % (r + 1, rounds, label, info["wall_us"], info["cpu_us"],
                       100 * (info["same_cpu_frac"] or 0), 100 * info["other_cpu_frac"]))
    finally:
        client.close()
    return summarize_cost(table, samples, runs, unavailable,
                          {"n": n, "warmup": warm, "rounds": rounds, "pin": ctx.pin,
                           "client": "bench/loop_client.py", "sql": "SELECT 1"},
                          later_rows(ctx))


def summarize_cost(variants, samples, runs, unavailable, params, later=()):
    """Medians, per-round added costs and ratios against untraced and floor.

    samples[key][round] is (wall us per unit, cpu us per unit) or None."""
    rounds = len(samples["untraced"])
    out = {"params": params, "variants": {}}

    def col(key, i):
        return [s[i] if s else None for s in samples[key]]

    def paired(key, ref, i, fn):
        vals = []
        for a, b in zip(col(key, i), col(ref, i)):
            if a is not None and b is not None:
                vals.append(fn(a, b))
        return median(vals)

    floor_added = paired("floor", "untraced", 0, lambda a, b: a - b)
    floor_added_cpu = paired("floor", "untraced", 1, lambda a, b: a - b)
    for key, label in variants:
        v = {"label": label, "runs": runs.get(key, [])}
        if key in unavailable or all(s is None for s in samples[key]):
            v["unavailable"] = unavailable.get(key, "no sample")
            out["variants"][key] = v
            continue
        sc = [x.get("same_cpu_frac") for x in v["runs"] if x.get("same_cpu_frac") is not None]
        if sc:
            v["same_cpu_frac"] = median(sc)
            v["same_cpu_samples"] = sc
        v["us_per_unit"] = median(col(key, 0))
        v["cpu_us_per_unit"] = median(col(key, 1))
        v["wall_us_samples"] = col(key, 0)
        v["cpu_us_samples"] = col(key, 1)
        if key != "untraced":
            v["added_us"] = paired(key, "untraced", 0, lambda a, b: a - b)
            v["added_cpu_us"] = paired(key, "untraced", 1, lambda a, b: a - b)
            # throughput ratio = untraced time / variant time
            v["throughput_vs_untraced"] = paired(key, "untraced", 0, lambda a, b: b / a)
            if key != "floor" and floor_added:
                v["throughput_vs_floor"] = paired(key, "floor", 0, lambda a, b: b / a)
                v["added_vs_floor"] = (v["added_us"] / floor_added
                                       if floor_added and floor_added > 0 else None)
                v["added_cpu_vs_floor"] = (v["added_cpu_us"] / floor_added_cpu
                                           if floor_added_cpu and floor_added_cpu > 0 else None)
        out["variants"][key] = v
    for key, label, why in later:
        out["variants"][key] = {"label": label, "unavailable": why}
    out["rounds_done"] = rounds
    other = [x.get("other_cpu_frac") for rs in runs.values() for x in rs
             if x.get("other_cpu_frac") is not None]
    steal = [x.get("steal_frac") for rs in runs.values() for x in rs
             if x.get("steal_frac") is not None]
    if other:
        out["other_load"] = {"median": median(other), "max": max(other),
                             "steal_median": median(steal) if steal else None}
    return out


# --- 1b. Django demo ------------------------------------------------------------

def demo_modules():
    """(DemoEnv, traffic, expected) from tests/demo, or raise with the reason."""
    if not os.path.exists(os.path.join(DEMO_DIR, "demo_env.py")):
        raise BenchError("tests/demo/demo_env.py does not exist")
    if DEMO_DIR not in sys.path:
        sys.path.insert(0, DEMO_DIR)
    import demo_env  # noqa: E402
    import expected  # noqa: E402
    import traffic  # noqa: E402
    return demo_env, traffic, expected


DJANGO_VARIANTS = [
    ("untraced", "untraced"),
    ("floor", "floor: empty BPF programs"),
    ("bpftrace", "bpftrace one-liner"),
    ("pqsnoop", "pqsnoop watch --json --no-stacks"),
    ("pqsnoop_stacks", "pqsnoop watch --json (stacks)"),
    ("inproc", "in-process (Django DEBUG=True)"),
]


def bench_django(ctx):
    demo_env, traffic, expected = demo_modules()

    class BenchDemo(demo_env.DemoEnv):
        """The demo on our cluster, mapping our libpq copy; debug=True runs
        it with bench/django_debug_settings.py (DEBUG=True)."""

        def __init__(self, debug=False, **kw):
            super().__init__(**kw)
            self.debug = debug

        def env(self):
            e = ctx.lib.env(super().env())
            if self.debug:
                e["DJANGO_SETTINGS_MODULE"] = "django_debug_settings"
                e["PYTHONPATH"] = BENCH_DIR
            return e

    reps, rounds, conc = ctx.django_reps, ctx.rounds, ctx.django_concurrency
    paths = traffic.paths(reps=reps)
    warm_paths = traffic.paths(reps=1)
    per_path = {}
    for p in expected.PAGES:
        for v in expected.VARIANTS:
            per_path["/%s/%s" % (p, v)] = expected.count(p, v)
    queries = sum(per_path[p] for p in paths)
    warm_queries = sum(per_path[p] for p in warm_paths)

    plain = BenchDemo(cluster=ctx.cluster).start()
    debug = None
    try:
        debug = BenchDemo(cluster=ctx.cluster, debug=True).start()
        checks = {"plain": ProbeCheck(plain.worker_pid, ctx.lib),
                  "debug": ProbeCheck(debug.worker_pid, ctx.lib)}
        table = variants(ctx, DJANGO_VARIANTS)
        samples = {k: [] for k, _ in table}
        runs = {k: [] for k, _ in table}
        unavailable = dict(ctx.unavailable)

        def load(demo):
            traffic.run_traffic(demo.base_url, pages=expected.PAGES, reps=1,
                                concurrency=conc)  # warm-up
            c0 = proc_cpu(demo.worker_pid)
            s = traffic.run_traffic(demo.base_url, pages=expected.PAGES, reps=reps,
                                    concurrency=conc)
            return s.seconds, proc_cpu(demo.worker_pid) - c0, len(s.results)

        for r in range(rounds):
            for key, label in rotate(table, r):
                if key in unavailable:
                    samples[key].append(None)
                    continue
                demo = debug if key == "inproc" else plain
                check = checks["debug" if key == "inproc" else "plain"]
                tracer = make_tracer(key, ctx)
                try:
                    if tracer:
                        # pqsnoop: the master, as a user traces gunicorn (it
                        # follows the worker); bpftrace: the worker's pid
                        target = (demo.master_pid if key.startswith("pqsnoop")
                                  else demo.worker_pid)
                        tracer.start(target, check, ctx.lib)
                except TracerFailed as e:
                    unavailable[key] = str(e)
                    log("django %s unavailable: %s" % (label, e))
                    samples[key].append(None)
                    continue
                wall, cpu, nreq = load(demo)
                info = {"round": r, "seconds": wall, "requests": nreq, "queries": queries,
                        "worker_cpu_s": cpu,
                        "wall_us": wall / queries * 1e6, "cpu_us": cpu / queries * 1e6,
                        "req_per_s": nreq / wall}
                if tracer:
                    res = tracer.stop(check)
                    if key.startswith("pqsnoop"):
                        check_pqsnoop_count(res, warm_queries + queries)
                    if key == "bpftrace":
                        res["sent"] = warm_queries + queries
                    info["tracer"] = res
                samples[key].append((info["wall_us"], info["cpu_us"]))
                runs[key].append(info)
                log("django round %d/%d %-30s %6.1f req/s  %6.1f us/query  worker CPU %6.1f us/query"
                    % (r + 1, rounds, label, info["req_per_s"], info["wall_us"], info["cpu_us"]))
    finally:
        if debug:
            debug.stop()
        plain.stop()
    out = summarize_cost(table, samples, runs, unavailable,
                         {"reps": reps, "rounds": rounds, "concurrency": conc,
                          "requests_per_run": len(paths), "queries_per_run": queries,
                          "gunicorn": "1 worker x 4 threads (gthread), CONN_MAX_AGE=0",
                          "load": "tests/demo/traffic.py, every page nplus1+fixed"},
                         later_rows(ctx))
    for key, v in out["variants"].items():
        rs = [x["req_per_s"] for x in v.get("runs", [])]
        if rs:
            v["req_per_s"] = median(rs)
    return out


# --- 2 and 3. pgbench -----------------------------------------------------------

class Pgbench:
    def __init__(self, ctx, dbname="pqbench"):
        self.ctx = ctx
        self.db = dbname
        self.bin = os.path.join(ctx.cluster.bindir, "pgbench")
        self.env = ctx.lib.env(ctx.cluster.env())

    def init(self):
        self.ctx.cluster.psql("CREATE DATABASE %s" % self.db)
        subprocess.run([self.bin, "-i", "-q", "-s", "1", self.db], env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def run(self, args, tracer=None, sample_rss=False):
        """pgbench ARGS through bench/launch.py, traced when tracer is given.
        Returns (parsed output, tracer result or None)."""
        argv = [PYTHON, os.path.join(BENCH_DIR, "launch.py"), self.bin] + args + [self.db]
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.env, text=True)
        ready = json.loads(p.stdout.readline() or "{}")
        if not ready.get("ready"):
            p.kill()
            raise BenchError("launch.py did not start: %s" % p.stderr.read())
        check = ProbeCheck(p.pid, self.ctx.lib)
        if tracer:
            try:
                tracer.start(p.pid, check, self.ctx.lib, sample_rss=sample_rss)
            except TracerFailed:
                p.kill()
                p.wait()
                raise
        p.stdin.write("go\n")
        p.stdin.flush()
        out, err = p.communicate()
        if p.returncode != 0:
            if tracer:
                tracer._kill()
            raise BenchError("pgbench %s failed (exit %d): %s" % (" ".join(args), p.returncode,
                                                                 err.strip()[-500:]))
        res = tracer.stop(check) if tracer else None
        return parse_pgbench(out), res


def parse_pgbench(out):
    r = {}
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    if m:
        r["transactions"] = int(m.group(1))
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    if m:
        r["tps"] = float(m.group(1))
    m = re.search(r"latency average = ([\d.]+) ms", out)
    if m:
        r["latency_ms"] = float(m.group(1))
    return r


def set_statement_log(cluster, on):
    """PgCluster logs every statement (log_statement=all on the command line).
    A role setting outranks the command line, so new sessions of our role
    follow this; off during measurements (server work equal for every variant,
    but not what a production server does), on for the count check."""
    if on:
        cluster.psql("ALTER ROLE %s RESET log_statement" % cluster.user)
    else:
        cluster.psql("ALTER ROLE %s SET log_statement = 'none'" % cluster.user)


def bench_pgbench(ctx):
    pb = Pgbench(ctx)
    pb.init()
    c, j = ctx.pg_clients, ctx.pg_threads
    base = ["-n", "-S", "-c", str(c), "-j", str(j)]
    out = {"params": {"clients": c, "threads": j, "protocol": "simple", "scale": 1,
                      "pqsnoop": "watch --json (default flags%s)"
                      % (": stacks on" if ctx.pq_has_stacks else "")}}

    # What pgbench sends besides its one SELECT per transaction, from the
    # server's statement log, once.
    t_check = 50
    set_statement_log(ctx.cluster, True)
    mark = ctx.cluster.log_mark()
    pb.run(base + ["-t", str(t_check)])
    stmts = [s for _, s in ctx.cluster.statements_since(mark, wait=1.0)]
    set_statement_log(ctx.cluster, False)
    setup = [s for s in stmts if not PGBENCH_TX_RE.fullmatch(s)]
    tx = len(stmts) - len(setup)
    out["server_log_check"] = {
        "transactions": c * t_check, "tx_selects_logged": tx,
        "other_statements": setup, "ok": tx == c * t_check}
    nsetup = len(setup)
    log("pgbench sends %d statement(s) besides one SELECT per transaction: %s"
        % (nsetup, "; ".join(s[:60] for s in setup)))

    # size -t so that an untraced run lasts about ctx.pg_seconds
    cal, _ = pb.run(base + ["-T", "3"])
    per_client = max(1000, int(cal.get("tps", 1000) * ctx.pg_seconds / c))
    out["params"]["transactions_per_client"] = per_client
    out["params"]["calibration_tps"] = cal.get("tps")
    args = base + ["-t", str(per_client)]
    expect = nsetup + c * per_client
    keys = ["untraced", "floor", "pqsnoop"]
    runs = {k: [] for k in keys}
    for r in range(ctx.pg_rounds):
        for key in rotate(keys, r):
            # pqsnoop as a user runs it: its default flags
            tracer = make_tracer("pqsnoop_default" if key == "pqsnoop" else key, ctx)
            try:
                pg, res = pb.run(args, tracer, sample_rss=True)
            except TracerFailed as e:
                out[key + "_unavailable"] = str(e)
                log("pgbench %s run unavailable: %s" % (key, e))
                continue
            info = dict(pg, round=r)
            if key == "floor":
                info["tracer"] = res
            elif res is not None:
                check_pqsnoop_count(res, expect)
                info["tracer"] = res
                s = res.get("summary") or {}
                info["traced_queries"] = s.get("queries")
                info["dropped"] = s.get("dropped")
            runs[key].append(info)
            log("pgbench round %d/%d %-9s %8.0f tps%s" % (
                r + 1, ctx.pg_rounds, key, pg.get("tps", 0),
                "  traced %s of %d, dropped %s" % (info.get("traced_queries"), expect,
                                                    info.get("dropped"))
                if key == "pqsnoop" else ""))
    out["runs"] = runs
    out["expected_queries"] = expect
    tu = median([x.get("tps") for x in runs["untraced"]])
    tt = median([x.get("tps") for x in runs["pqsnoop"]])
    tf = median([x.get("tps") for x in runs["floor"]])
    out["tps_untraced"] = tu
    out["tps_floor"] = tf
    out["tps_traced"] = tt
    out["tps_ratio"] = tt / tu if tu and tt else None
    out["tps_ratio_floor"] = tf / tu if tu and tf else None
    out["tps_traced_vs_floor"] = tt / tf if tf and tt else None
    out["all_counts_exact"] = bool(runs["pqsnoop"]) and all(
        x["tracer"].get("count_ok") for x in runs["pqsnoop"])
    out["max_dropped"] = max([x.get("dropped") or 0 for x in runs["pqsnoop"]] or [0])
    return out


def bench_shapes(ctx):
    """pqsnoop under pgbench sending 10,000 distinct query shapes."""
    pb = Pgbench(ctx, dbname=ctx.cluster.dbname)  # the script needs no table
    c, j = ctx.pg_clients, ctx.pg_threads
    script = os.path.join(BENCH_DIR, "shapes.sql")
    cal, _ = pb.run(["-n", "-f", script, "-c", str(c), "-j", str(j), "-T", "2"])
    per_client = max(1000, int(cal.get("tps", 1000) * ctx.shapes_seconds / c))
    args = ["-n", "-f", script, "-c", str(c), "-j", str(j), "-t", str(per_client)]
    tracer = Pqsnoop(ctx.tmp, ctx.pqsnoop)
    tracer.collect_shapes = True
    pg, res = pb.run(args, tracer, sample_rss=True)
    # with -f and -n pgbench sends the script and nothing else (no scale query)
    check_pqsnoop_count(res, c * per_client)
    s = res.get("summary") or {}
    out = {"params": {"clients": c, "threads": j, "transactions_per_client": per_client,
                      "script": "bench/shapes.sql"},
           "pgbench": pg, "tracer": res, "expected_queries": c * per_client,
           "traced_queries": s.get("queries"), "dropped": s.get("dropped")}
    return out


def user_side_row(label, res, events):
    """CPU per event and memory of one pqsnoop run."""
    if not res or not events:
        return {"label": label, "unavailable": "no traced run"}
    cpu = res.get("cpu_window_s", res.get("cpu_after_attach_s"))
    rss = [kb for _, kb in res.get("rss_samples_kb", [])]
    return {
        "label": label, "events": events,
        "cpu_s": cpu, "cpu_us_per_event": cpu / events * 1e6 if cpu is not None else None,
        "cpu_total_s": res.get("cpu_total_s"),
        "vm_hwm_kb": res.get("vm_hwm_kb") or res.get("maxrss_kb"),
        "rss_first_kb": rss[0] if rss else None,
        "rss_last_kb": rss[-1] if rss else None,
        "rss_samples": len(rss),
        "count_ok": res.get("count_ok"),
    }


def user_side(results):
    rows = []
    for key in ("pqsnoop", "pqsnoop_stacks", "bpftrace"):
        loop = results.get("loop", {}).get("variants", {}).get(key, {})
        per_run = []
        for r in loop.get("runs", []):
            t = r.get("tracer") or {}
            events = ((t.get("summary") or {}).get("queries") if key.startswith("pqsnoop")
                      else t.get("captured"))
            row = user_side_row("", t, events)
            if row.get("cpu_us_per_event") is not None:
                per_run.append((row["cpu_us_per_event"], row))
        if per_run:
            per_run.sort(key=lambda x: x[0])
            row = dict(per_run[len(per_run) // 2][1])  # the median run
            row["label"] = "%s, psycopg2 loop (1a)" % {
                "pqsnoop": "pqsnoop --no-stacks", "pqsnoop_stacks": "pqsnoop, stacks",
                "bpftrace": "bpftrace"}[key]
            row["tool"] = "bpftrace" if key == "bpftrace" else "pqsnoop"
            row["runs"] = len(per_run)
            rows.append(row)
    pg = results.get("pgbench", {}).get("runs", {}).get("pqsnoop", [])
    for x in pg:
        rows.append(user_side_row("pqsnoop, pgbench -S, round %d" % (x["round"] + 1), x["tracer"],
                                  x.get("traced_queries")))
        rows[-1]["events_per_s"] = x.get("tps")
    sh = results.get("shapes")
    if sh and "tracer" in sh:
        row = user_side_row("pqsnoop, pgbench 10,000 shapes", sh["tracer"],
                            sh.get("traced_queries"))
        row["distinct_shapes"] = sh["tracer"].get("distinct_shapes")
        row["events_per_s"] = sh.get("pgbench", {}).get("tps")
        rows.append(row)
    return rows


# --- 4. micro -----------------------------------------------------------------

def bench_micro(ctx):
    src = os.path.join(BENCH_DIR, "fingerprint_bench.c")
    if not os.path.exists(src):
        return {"status": "pending", "why": "bench/fingerprint_bench.c does not exist yet"}
    binary = os.path.join(ROOT, "build", "fingerprint_bench")
    core = os.path.join(ROOT, "build", "libcore.a")
    if not os.path.exists(core):
        return {"status": "pending", "why": "build/libcore.a is missing: run make first"}
    if not os.path.exists(binary) or os.path.getmtime(binary) < max(os.path.getmtime(src),
                                                                    os.path.getmtime(core)):
        cmd = ["cc", "-g", "-O2", "-std=gnu11", "-D_GNU_SOURCE", "-I" + os.path.join(ROOT, "build"),
               "-I" + os.path.join(ROOT, "user"), "-I" + os.path.join(ROOT, "bpf"),
               "-I/usr/include/postgresql", "-o", binary, src, core,
               "-lpg_query", "-lz", "-lm"]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            return {"status": "pending", "why": "bench/fingerprint_bench.c does not build: "
                    + r.stdout.strip()[-400:]}
    try:
        r = subprocess.run([binary], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=180)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "why": "fingerprint_bench ran over 180 s"}
    if r.returncode != 0:
        return {"status": "failed", "why": "exit %d: %s" % (r.returncode, r.stderr.strip()[-400:])}
    rows = []
    for line in r.stdout.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            rows.append(line)
    return {"status": "ok", "output": rows}


# --- the table ----------------------------------------------------------------

def fnum(v, fmt="%.1f", none="-"):
    return none if v is None else fmt % v


def render_table(res):
    out = []
    m = res["machine"]
    out.append("pqsnoop benchmark, %s" % res["date"])
    out.append("machine: %s, %d CPUs, kernel %s, %s; load average at start %s"
               % (m["cpu_model"], m["cpus"], m["kernel"], m["distro"],
                  " ".join("%.2f" % x for x in m["loadavg_start"])))
    out.append("tools: %s; %s; %s" % (res["tools"].get("pqsnoop"), res["tools"].get("bpftrace"),
                                       res["tools"].get("postgres")))
    out.append("")

    def cost_table(title, sec, unit_name, extra=None):
        out.append(title)
        hdr = ("  %-32s %9s %13s %9s %8s %9s %9s %10s %9s %10s"
               % ("variant", unit_name, "wall range", "added", "x floor", "tput vs", "tput vs",
                  "CPU", "added", "CPU added"))
        out.append(hdr)
        out.append("  %-32s %9s %13s %9s %8s %9s %9s %10s %9s %10s"
                   % ("", "us/query", "min-max", "us/query", "added", "untraced", "floor",
                      "us/query", "CPU us", "x floor"))
        for key, v in sec["variants"].items():
            if "unavailable" in v:
                out.append("  %-32s %s" % (v["label"], v["unavailable"][:110]))
                continue
            note = ""
            runs = v.get("runs", [])
            counts = [r["tracer"].get("count_ok") for r in runs if "tracer" in r
                      and "count_ok" in r["tracer"]]
            if counts:
                note = "  counts exact %d/%d" % (sum(1 for c in counts if c), len(counts))
            bt = [r["tracer"] for r in runs if "tracer" in r and "captured" in r["tracer"]]
            if bt:
                note = "  captured %d/%d" % (sum(b["captured"] for b in bt),
                                             sum(b["sent"] for b in bt))
            if v.get("same_cpu_frac") is not None:
                note = "  same CPU %3.0f%%" % (100 * v["same_cpu_frac"]) + note
            if extra:
                note = extra(v) + note
            ws = [x for x in v.get("wall_us_samples", []) if x is not None]
            rng = "%.0f-%.0f" % (min(ws), max(ws)) if ws else "-"
            out.append("  %-32s %9s %13s %9s %8s %9s %9s %10s %9s %10s%s" % (
                v["label"], fnum(v.get("us_per_unit")), rng, fnum(v.get("added_us"), "%+.1f"),
                fnum(v.get("added_vs_floor"), "%.2fx"),
                fnum(v.get("throughput_vs_untraced"), "%.3f"),
                fnum(v.get("throughput_vs_floor"), "%.3f"),
                fnum(v.get("cpu_us_per_unit")), fnum(v.get("added_cpu_us"), "%+.1f"),
                fnum(v.get("added_cpu_vs_floor"), "%.2fx"), note))
        ol = sec.get("other_load")
        if ol:
            out.append("  other processes used %.0f%% of the CPUs during a run (median; max %.0f%%), "
                       "hypervisor steal %s%%" % (100 * ol["median"], 100 * ol["max"],
                                                  fnum(100 * ol["steal_median"]
                                                       if ol.get("steal_median") is not None
                                                       else None, "%.0f")))
        out.append("")

    if "loop" in res:
        p = res["loop"].get("params", {})
        if "error" in res["loop"]:
            out.append("1a. psycopg2 loop: FAILED: %s" % res["loop"]["error"])
            out.append("")
        else:
            cost_table("1a. Cost to the traced process, worst case: psycopg2 loop of SELECT 1, "
                       "unix socket (%d rounds x %d queries, medians; CPU = the client's user+sys;"
                       " %s)" % (p.get("rounds"), p.get("n"),
                                 "nothing pinned" if p.get("pin", "none") == "none" else
                                 "PINNED: client and backend on %s CPU" %
                                 ("the same" if p["pin"] == "same" else "different")),
                       res["loop"], "wall")
    if "django" in res:
        d = res["django"]
        if "error" in d:
            out.append("1b. Django demo: not measured: %s" % d["error"])
            out.append("")
        else:
            p = d["params"]
            cost_table("1b. Cost to the traced process, realistic: the demo's Django pages under "
                       "load (%d rounds x %d requests = %d queries, %d client threads; "
                       "CPU = the gunicorn worker's)"
                       % (p["rounds"], p["requests_per_run"], p["queries_per_run"],
                          p["concurrency"]), d, "wall",
                       extra=lambda v: "  %5.1f req/s" % v["req_per_s"] if v.get("req_per_s") else "")
    if "pgbench" in res:
        pg = res["pgbench"]
        if "error" in pg:
            out.append("2. pgbench: FAILED: %s" % pg["error"])
        else:
            p = pg["params"]
            lc = pg["server_log_check"]
            out.append("2. Tracer throughput: pgbench -S -n -c %d -j %d -t %d (simple protocol), "
                       "untraced, floor, pqsnoop %s, alternating"
                       % (p["clients"], p["threads"], p["transactions_per_client"],
                          p.get("pqsnoop", "")))
            out.append("  server log: %d SELECTs for %d transactions, plus %d other statement(s) "
                       "(%s)" % (lc["tx_selects_logged"], lc["transactions"],
                                 len(lc["other_statements"]),
                                 "; ".join(s[:40] + ("..." if len(s) > 40 else "")
                                           for s in lc["other_statements"])))
            out.append("  %-10s %10s %10s %14s %14s %9s %10s" % (
                "run", "tps", "latency ms", "traced", "expected", "dropped", "exact"))
            for key in ("untraced", "floor", "pqsnoop"):
                for x in pg["runs"].get(key, []):
                    out.append("  %-10s %10.0f %10.3f %14s %14s %9s %10s" % (
                        key, x.get("tps", 0), x.get("latency_ms", 0),
                        fnum(x.get("traced_queries"), "%d"),
                        pg["expected_queries"] if key == "pqsnoop" else "-",
                        fnum(x.get("dropped"), "%d"),
                        ("yes" if x["tracer"].get("count_ok") else "NO") if key == "pqsnoop" else "-"))
            out.append("  median tps: untraced %s, floor %s (%s of untraced), pqsnoop %s (%s of "
                       "untraced, %s of floor)" % (
                           fnum(pg.get("tps_untraced"), "%.0f"), fnum(pg.get("tps_floor"), "%.0f"),
                           fnum(pg.get("tps_ratio_floor"), "%.3f"),
                           fnum(pg.get("tps_traced"), "%.0f"), fnum(pg.get("tps_ratio"), "%.3f"),
                           fnum(pg.get("tps_traced_vs_floor"), "%.3f")))
            out.append("  every pqsnoop count exact: %s; max dropped: %s" % (
                "yes" if pg.get("all_counts_exact") else "NO", pg.get("max_dropped")))
        out.append("")
    if res.get("user_side"):
        out.append("3. User-side cost: pqsnoop's CPU per query event (from attached to the "
                   "end of the workload) and its memory")
        out.append("  %-40s %9s %10s %9s %11s %9s %17s %8s %6s" % (
            "workload", "events", "events/s", "CPU s", "CPU us/ev", "VmHWM MB",
            "RSS MB first>last", "shapes", "exact"))
        for row in res["user_side"]:
            if "unavailable" in row:
                out.append("  %-40s %s" % (row["label"], row["unavailable"]))
                continue
            out.append("  %-40s %9d %10s %9s %11s %9s %17s %8s %6s" % (
                row["label"], row["events"], fnum(row.get("events_per_s"), "%.0f"),
                fnum(row.get("cpu_s"), "%.2f"), fnum(row.get("cpu_us_per_event"), "%.2f"),
                fnum(row["vm_hwm_kb"] / 1024 if row.get("vm_hwm_kb") else None, "%.1f"),
                "%s>%s" % (fnum(row["rss_first_kb"] / 1024 if row.get("rss_first_kb") else None, "%.1f"),
                           fnum(row["rss_last_kb"] / 1024 if row.get("rss_last_kb") else None, "%.1f")),
                fnum(row.get("distinct_shapes"), "%d"),
                {True: "yes", False: "NO"}.get(row.get("count_ok"), "-")))
        out.append("")
    if "micro" in res:
        mi = res["micro"]
        out.append("4. Micro: fingerprinting and detection throughput (bench/fingerprint_bench.c)")
        if mi["status"] != "ok":
            out.append("  %s: %s" % (mi["status"], mi.get("why", "")))
        else:
            for row in mi["output"]:
                out.append("  %s" % (row if isinstance(row, str) else json.dumps(row)))
        out.append("")
    t = res.get("targets")
    if t:
        out.append("Targets (where we stand; not pass/fail):")
        for line in t:
            out.append("  " + line)
        out.append("")
    out.append("total time %.0f s; machine busy (all processes) %.0f CPU-s; "
               "load average at end %s" % (res["seconds"], res["machine"].get("cpu_busy_s", 0),
                                           " ".join("%.2f" % x for x in res["machine"].get("loadavg_end", []))))
    return "\n".join(out)


def targets(res):
    lines = []
    lp = res.get("loop", {}).get("variants", {}).get("pqsnoop", {})
    if lp.get("added_vs_floor") is not None or lp.get("added_cpu_vs_floor") is not None:
        lines.append("pqsnoop's added cost within 1.3x of the floor's (psycopg2 loop, no stacks): "
                     "%s wall, %s CPU" % (fnum(lp.get("added_vs_floor"), "%.2fx"),
                                          fnum(lp.get("added_cpu_vs_floor"), "%.2fx")))
    ls = res.get("loop", {}).get("variants", {}).get("pqsnoop_stacks", {})
    if ls.get("added_vs_floor") is not None or ls.get("added_cpu_vs_floor") is not None:
        lines.append("  with stacks: %s wall, %s CPU" % (fnum(ls.get("added_vs_floor"), "%.2fx"),
                                                        fnum(ls.get("added_cpu_vs_floor"), "%.2fx")))
    dj = res.get("django", {}).get("variants", {}).get("pqsnoop", {})
    if dj.get("added_vs_floor") is not None or dj.get("added_cpu_vs_floor") is not None:
        lines.append("same, Django demo (no stacks): %s wall, %s worker CPU"
                     % (fnum(dj.get("added_vs_floor"), "%.2fx"),
                        fnum(dj.get("added_cpu_vs_floor"), "%.2fx")))
    pg = res.get("pgbench", {})
    if "tps_traced" in pg:
        lines.append("zero drops and exact counts at pgbench's highest rate (%s tps traced): %s"
                     % (fnum(pg.get("tps_traced"), "%.0f"),
                        "yes" if pg.get("all_counts_exact") and not pg.get("max_dropped") else "NO"))
    us = [r for r in res.get("user_side", []) if r.get("cpu_us_per_event") is not None
          and r.get("tool", "pqsnoop") == "pqsnoop"]
    if us:
        worst = max(us, key=lambda r: r["cpu_us_per_event"])
        lines.append("user side <= 2 us CPU per query event: worst %.2f us (%s)"
                     % (worst["cpu_us_per_event"], worst["label"]))
        growth = [r["rss_last_kb"] - r["rss_first_kb"] for r in us
                  if r.get("rss_first_kb") and r.get("rss_last_kb")]
        if growth:
            lines.append("memory flat under sustained load: RSS grew by at most %.1f MB in a run"
                         % (max(growth) / 1024))
    return lines


# --- main -----------------------------------------------------------------------

class Ctx:
    pass


SECTIONS = ["loop", "django", "pgbench", "shapes", "micro"]


def main(argv=None):
    ap = argparse.ArgumentParser(description="pqsnoop's benchmark (see bench/README.md)")
    ap.add_argument("--pqsnoop", default=os.path.join(ROOT, "pqsnoop"))
    ap.add_argument("--floor", default=os.path.join(ROOT, "build", "floor"))
    ap.add_argument("--out", default=os.path.join(BENCH_DIR, "results.json"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("-n", type=int, default=20000, help="queries per loop run")
    ap.add_argument("--quick", action="store_true", help="a short run, to try the benchmark")
    ap.add_argument("--pin", choices=["none", "same", "split"], default="none",
                    help="psycopg2 loop only, a diagnostic: put the client and its server "
                         "backend on CPU 0 (same) or on CPUs 0 and 1 (split); default none")
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help="comma-separated sections: " + ",".join(SECTIONS))
    args = ap.parse_args(argv)

    if os.geteuid() != 0:
        print("run_bench: loads BPF programs: run it as root (sudo make bench)", file=sys.stderr)
        return 1
    for what, path in (("pqsnoop", args.pqsnoop), ("floor", args.floor)):
        if not os.access(path, os.X_OK):
            print("run_bench: %s binary %s not found: build it (make bench)" % (what, path),
                  file=sys.stderr)
            return 1
    only = [s for s in args.only.split(",") if s]
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        ap.error("unknown section(s): %s" % ", ".join(bad))

    ctx = Ctx()
    ctx.pqsnoop = os.path.abspath(args.pqsnoop)
    ctx.floor = os.path.abspath(args.floor)
    ctx.rounds = args.rounds
    ctx.pin = args.pin
    ctx.n = args.n
    ctx.warmup = 1000
    ctx.django_reps = 4
    ctx.django_concurrency = 4
    ctx.pg_clients, ctx.pg_threads = 4, 2
    ctx.pg_seconds = 5
    ctx.pg_rounds = 2
    ctx.shapes_seconds = 6
    if args.quick:
        ctx.rounds, ctx.n, ctx.warmup = 2, 3000, 300
        ctx.django_reps, ctx.pg_seconds, ctx.shapes_seconds, ctx.pg_rounds = 1, 2, 2, 1
    ctx.unavailable = {}

    t_start = time.monotonic()
    busy0 = cpu_busy_seconds()
    res = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"hostname": socket.gethostname(), "kernel": platform.release(),
                    "cpu_model": cpu_model(), "cpus": os.cpu_count(),
                    "distro": _distro(), "loadavg_start": loadavg()},
        "quick": args.quick,
    }
    if res["machine"]["loadavg_start"][0] > 0.5:
        log("warning: load average %.2f: other work on this machine adds noise"
            % res["machine"]["loadavg_start"][0])

    why = ensure_bpftrace()
    if why:
        ctx.unavailable["bpftrace"] = why
    pqsnoop_features(ctx)
    res["tools"] = {"pqsnoop": tool_version([ctx.pqsnoop, "--version"]),
                    "bpftrace": tool_version(["bpftrace", "--version"]) if not why else None}

    # tracer output on tmpfs (as cheap to write as /dev/null, and readable
    # for the counts); binaries and the libpq copy where exec is allowed
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    ctx.tmp = tempfile.mkdtemp(prefix="pqsnoop-bench-", dir=shm)
    ctx.bindir = tempfile.mkdtemp(prefix="pqsnoop-bench-bin-")
    os.chmod(ctx.bindir, 0o755)
    cluster = None
    try:
        # the binaries as they were at the start, whatever a rebuild does meanwhile
        for attr in ("pqsnoop", "floor"):
            dst = os.path.join(ctx.bindir, os.path.basename(getattr(ctx, attr)))
            shutil.copy2(getattr(ctx, attr), dst)
            setattr(ctx, attr, dst)
        ctx.lib = Libpq(ctx.bindir)
        res["libpq"] = {"system": ctx.lib.source, "copy": ctx.lib.path}
        cluster = PgCluster()
        ctx.cluster = cluster
        cluster.start()
        res["tools"]["postgres"] = cluster.psql("SELECT version()").strip().split(" on ")[0]
        set_statement_log(cluster, False)

        def section(name, fn):
            if name not in only:
                return
            t = time.monotonic()
            log("--- %s" % name)
            try:
                res[name] = fn(ctx)
            except Exception as e:  # a section that cannot run is reported, the rest go on
                log("%s: %s: %s" % (name, type(e).__name__, e))
                res[name] = {"error": "%s: %s" % (type(e).__name__, e)}
            res.setdefault("section_seconds", {})[name] = round(time.monotonic() - t, 1)

        section("loop", bench_loop)
        section("django", bench_django)
        section("pgbench", bench_pgbench)
        section("shapes", bench_shapes)
        section("micro", bench_micro)
    finally:
        if cluster:
            cluster.stop()
        shutil.rmtree(ctx.tmp, ignore_errors=True)
        shutil.rmtree(ctx.bindir, ignore_errors=True)

    res["user_side"] = user_side(res)
    res["targets"] = targets(res)
    res["seconds"] = round(time.monotonic() - t_start, 1)
    res["machine"]["cpu_busy_s"] = round(cpu_busy_seconds() - busy0, 1)
    res["machine"]["loadavg_end"] = loadavg()
    table = render_table(res)
    res["table"] = table.splitlines()
    with open(args.out + ".tmp", "w") as f:
        json.dump(res, f, indent=1, default=_json_default)
        f.write("\n")
    os.replace(args.out + ".tmp", args.out)
    print(table)
    print("\n(raw samples and medians: %s)" % os.path.relpath(args.out))
    return 0


def _json_default(o):
    if isinstance(o, bytes):
        return o.decode(errors="replace")
    return str(o)


def _distro():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print("run_bench: %s" % e, file=sys.stderr)
        sys.exit(1)
