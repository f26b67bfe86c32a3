#!/usr/bin/python3
"""The built-in demo: trace the N+1 blog with pqsnoop.  `make demo` runs it.

    sudo /usr/bin/python3 tests/demo/run_demo.py --pqsnoop ./pqsnoop [--seconds N]
        [--reps R] [--concurrency C]

1. starts the demo environment (private PostgreSQL, seeded blog, gunicorn
   with 1 worker x 4 threads; see demo_env.py);
2. starts `pqsnoop -p MASTER_PID -d SECONDS` (the N+1 report) and waits for
   the stderr line containing "attached".  If pqsnoop exits before attaching
   (the report command not implemented yet), it runs
   `pqsnoop watch -p MASTER_PID -d SECONDS` instead;
3. sends R requests to every page, N+1 and fixed, C at a time;
4. waits for pqsnoop to finish, prints its output, stops everything.

Exits 0 only if every step worked and pqsnoop exited 0; otherwise prints
"run_demo: FAILED: <why>" and exits 1.
"""

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import expected  # noqa: E402
import traffic  # noqa: E402
from demo_env import DemoEnv, DemoError  # noqa: E402


class Failed(Exception):
    pass


class Pqsnoop:
    """A running pqsnoop: stdout collected, stderr echoed live and collected."""

    def __init__(self, argv):
        self.argv = argv
        self.out = []
        self.err = []
        self.attached = threading.Event()
        print("run_demo: $ %s" % " ".join(argv), flush=True)
        # Own process group, so kill() reaches anything pqsnoop started too.
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.started = time.monotonic()
        self.readers = [threading.Thread(target=self._read, args=(self.proc.stdout, False)),
                        threading.Thread(target=self._read, args=(self.proc.stderr, True))]
        for t in self.readers:
            t.daemon = True
            t.start()

    def _read(self, f, is_err):
        for raw in iter(f.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            if is_err:
                self.err.append(line)
                sys.stderr.write(line + "\n")  # live, as pqsnoop wrote it
                sys.stderr.flush()
                if "attached" in line:
                    self.attached.set()
            else:
                self.out.append(line)
        f.close()

    def wait_attached(self, timeout):
        """True once attached; False if pqsnoop exited first; None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.attached.wait(0.1):
                return True
            if self.proc.poll() is not None:
                self.join_readers()  # the line may still be in the pipe
                return self.attached.is_set()
        return None

    def join_readers(self, timeout=5):
        for t in self.readers:
            t.join(timeout)

    def wait(self, timeout):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self.join_readers()
        return rc

    def kill(self):
        """SIGINT to its group (let it detach and print), then SIGKILL."""
        if self.proc.poll() is None:
            self._signal_group(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._signal_group(signal.SIGKILL)
        self.proc.wait()
        self.join_readers()

    def _signal_group(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass


def expected_findings(reps):
    lines = ["run_demo: what the traffic contains (expected.py), per N+1 page:"]
    for page in expected.PAGES:
        n, block = expected.repeated(page)
        where = ", ".join("views.py:%d" % line for _, _, line in block)
        lines.append("  /%s/nplus1  %d x %d statement(s) per request from %s, %d requests"
                     % (page, n, len(block), where, reps))
    lines.append("  (each /<page>/fixed sends %s statements)"
                 % "/".join(str(expected.count(p, "fixed")) for p in expected.PAGES))
    per_round = sum(expected.count(p, v) for p in expected.PAGES for v in expected.VARIANTS)
    lines.append("  in all %d statements (%d x %d, SET TIME ZONE of each request included)"
                 % (reps * per_round, reps, per_round))
    return "\n".join(lines)


def run(args):
    if os.geteuid() != 0:
        raise Failed("pqsnoop loads BPF programs: run as root (sudo make demo)")
    if not (os.path.isfile(args.pqsnoop) and os.access(args.pqsnoop, os.X_OK)):
        raise Failed("%s is not an executable file (build it: make)" % args.pqsnoop)
    pqsnoop = None
    print("run_demo: starting PostgreSQL, the blog and gunicorn ...", flush=True)
    demo = DemoEnv()
    try:
        try:
            demo.start()
        except DemoError as e:
            raise Failed("demo environment: %s" % e)
        print("run_demo: gunicorn master %d, worker %d at %s"
              % (demo.master_pid, demo.worker_pid, demo.base_url), flush=True)

        pid, secs = str(demo.master_pid), str(args.seconds)
        # Named by the command that ran: whatever `pqsnoop -p` prints (the N+1
        # report once it exists) is shown as is.
        mode = "pqsnoop -p %s -d %s" % (pid, secs)
        pqsnoop = Pqsnoop([args.pqsnoop, "-p", pid, "-d", secs])
        ok = pqsnoop.wait_attached(args.attach_timeout)
        if ok is False:
            print("run_demo: `pqsnoop -p` exited %s before attaching; falling back to "
                  "`pqsnoop watch`" % pqsnoop.proc.returncode, flush=True)
            mode = "pqsnoop watch -p %s -d %s" % (pid, secs)
            pqsnoop = Pqsnoop([args.pqsnoop, "watch", "-p", pid, "-d", secs])
            ok = pqsnoop.wait_attached(args.attach_timeout)
        if ok is False:
            raise Failed("pqsnoop exited %s without attaching (its stderr is above)"
                         % pqsnoop.proc.returncode)
        if ok is None:
            raise Failed("pqsnoop printed no `attached` line within %.0f s"
                         % args.attach_timeout)

        print("run_demo: pqsnoop attached (%s); sending %d request(s) to each of "
              "%d pages, %d at a time" % (mode, args.reps, 2 * len(expected.PAGES),
                                          args.concurrency), flush=True)
        try:
            summary = traffic.run_traffic(demo.base_url, reps=args.reps,
                                          concurrency=args.concurrency)
        except traffic.TrafficError as e:
            raise Failed("traffic:\n%s\n--- gunicorn log ---\n%s" % (e, demo.log_tail()))
        print(summary.report(), flush=True)
        if pqsnoop.proc.poll() is not None:
            raise Failed("pqsnoop ended (exit %s) before the traffic did: raise --seconds"
                         % pqsnoop.proc.returncode)
        print(expected_findings(args.reps), flush=True)

        left = args.seconds - (time.monotonic() - pqsnoop.started)
        print("run_demo: waiting for pqsnoop (about %.0f s more) ..." % max(left, 0), flush=True)
        rc = pqsnoop.wait(max(left, 0) + args.grace)
        if rc is None:
            pqsnoop.kill()
            raise Failed("pqsnoop still running %.0f s after its -d %d ended"
                         % (args.grace, args.seconds))
        print("==================== pqsnoop output (%s) ====================" % mode)
        print("\n".join(pqsnoop.out))
        print("=" * 62, flush=True)
        if rc != 0:
            raise Failed("pqsnoop exited %d" % rc)
        if not pqsnoop.out:
            raise Failed("pqsnoop printed nothing on stdout")
    finally:
        if pqsnoop is not None:
            pqsnoop.kill()
        demo.stop()


def main():
    ap = argparse.ArgumentParser(description="Run the blog demo traced by pqsnoop.")
    ap.add_argument("--pqsnoop", required=True, help="path of the pqsnoop binary")
    ap.add_argument("--seconds", type=int, default=20,
                    help="pqsnoop's -d: how long it traces (default 20)")
    ap.add_argument("--reps", type=int, default=3, help="requests per page (default 3)")
    ap.add_argument("--concurrency", type=int, default=4, help="client threads (default 4)")
    ap.add_argument("--attach-timeout", type=float, default=30)
    ap.add_argument("--grace", type=float, default=30,
                    help="how long pqsnoop may take after -d ends to print and exit")
    args = ap.parse_args()
    # SIGTERM -> SystemExit, so the finally blocks stop pqsnoop and the demo.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run(args)
    except Failed as e:
        print("run_demo: FAILED: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("run_demo: interrupted", file=sys.stderr)
        return 130
    print("run_demo: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
