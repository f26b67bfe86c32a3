"""The demo environment: PostgreSQL + migrated, seeded blog + gunicorn.

Used by run_demo.py, by test_demo_app.py and by the tracer's tests:

    from demo_env import DemoEnv
    with DemoEnv() as demo:                 # or DemoEnv(cluster=some_pgcluster)
        demo.master_pid, demo.worker_pid    # gunicorn arbiter / its one worker
        status, headers, body = demo.get("/fk/nplus1")
        headers["x-pg-backend-pid"]         # the backend that served it

start() either succeeds with everything up or cleans up what it started and
raises DemoError; stop() is idempotent and safe after a partial start.

Gunicorn runs `--workers 1 --threads 4 -k gthread` on 127.0.0.1 with port 0:
the kernel picks a free port (no race between choosing and binding) and
gunicorn logs "Listening at: http://127.0.0.1:PORT", which we read back.
It runs in its own session so stop() can kill the whole process group if the
graceful shutdown hangs.
"""

import http.client
import itertools
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

DEMO_DIR = os.path.dirname(os.path.abspath(__file__))
TESTS_DIR = os.path.dirname(DEMO_DIR)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

from pgcluster import PgCluster  # noqa: E402

# Debian's python3 has Django, psycopg2 and gunicorn; a pyenv python3 on PATH
# does not, so the app never runs under whatever interpreter imported us.
SYSTEM_PYTHON = "/usr/bin/python3"

# The server time zone the demo database reports at connect.  Not "UTC", so
# Django (USE_TZ, TIME_ZONE="UTC") sends SET TIME ZONE 'UTC' on every new
# connection -- what it does against Debian's and Docker's default servers
# (initdb copies /etc/localtime, typically Etc/UTC).  Pinning it keeps that
# statement, and so the query counts, the same on every machine.
DEFAULT_DB_TIMEZONE = "Etc/UTC"

_db_counter = itertools.count(1)


class DemoError(RuntimeError):
    pass


class DemoEnv:
    def __init__(self, cluster=None, dbname=None, threads=4,
                 python=SYSTEM_PYTHON, db_timezone=DEFAULT_DB_TIMEZONE,
                 conn_max_age=0, start_timeout=60.0, gunicorn_args=()):
        self.cluster = cluster
        self.own_cluster = cluster is None
        # A shared cluster may host several demos: give each its own database.
        self.dbname = dbname or ("demo" if cluster is None else
                                 "demo_%d_%d" % (os.getpid(), next(_db_counter)))
        self.threads = threads
        self.python = python
        self.db_timezone = db_timezone
        self.conn_max_age = conn_max_age
        self.start_timeout = start_timeout
        self.gunicorn_args = list(gunicorn_args)
        self.tmp = None
        self.gunicorn_log = None
        self.proc = None
        self.master_pid = None
        self.worker_pid = None
        self.host = "127.0.0.1"
        self.port = None
        self._db_created = False

    # --- lifecycle ---------------------------------------------------------
    def start(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        self.tmp = tempfile.mkdtemp(prefix="pqsnoop-demo-")
        if self.cluster is None:
            self.cluster = PgCluster()
            self.cluster.start()
        self.cluster.psql('CREATE DATABASE "%s"' % self.dbname)
        self._db_created = True
        self.cluster.psql("ALTER DATABASE \"%s\" SET timezone TO '%s'"
                          % (self.dbname, self.db_timezone))
        self._manage("migrate", "--noinput", "-v", "0")
        self._manage("seed")
        self._start_gunicorn()

    def env(self):
        """Environment of the app's processes (manage.py and gunicorn)."""
        e = self.cluster.env()
        e.update(PGDATABASE=self.dbname,
                 DJANGO_SETTINGS_MODULE="demosite.settings",
                 DEMO_CONN_MAX_AGE=str(self.conn_max_age),
                 PYTHONDONTWRITEBYTECODE="1",  # keep the source tree clean
                 PYTHONUNBUFFERED="1")
        e.pop("GUNICORN_CMD_ARGS", None)  # only our flags
        e.pop("PYTHONPATH", None)
        return e

    def _manage(self, *args):
        r = subprocess.run([self.python, os.path.join(DEMO_DIR, "manage.py")] + list(args),
                           cwd=DEMO_DIR, env=self.env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120)
        if r.returncode != 0:
            raise DemoError("manage.py %s failed (exit %d):\n%s"
                            % (" ".join(args), r.returncode, r.stdout))
        return r.stdout

    def gunicorn_command(self):
        return [self.python, "-m", "gunicorn",
                "--chdir", DEMO_DIR,
                "--workers", "1", "--threads", str(self.threads),
                "--worker-class", "gthread",
                "--bind", "%s:0" % self.host,
                "--graceful-timeout", "5",
                "--log-level", "info",
                ] + self.gunicorn_args + ["demosite.wsgi:application"]

    def _start_gunicorn(self):
        self.gunicorn_log = os.path.join(self.tmp, "gunicorn.log")
        with open(self.gunicorn_log, "wb") as log:
            self.proc = subprocess.Popen(self.gunicorn_command(), cwd=DEMO_DIR,
                                         env=self.env(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.master_pid = self.proc.pid
        deadline = time.monotonic() + self.start_timeout
        booted = None
        while True:
            if self.proc.poll() is not None:
                raise DemoError("gunicorn exited with %d while starting:\n%s"
                                % (self.proc.returncode, self.log_tail()))
            log = self.read_log()
            m = re.search(r"Listening at: http://[\d.]+:(\d+)", log)
            if m:
                self.port = int(m.group(1))
            booted = re.findall(r"Booting worker with pid: (\d+)", log)
            if self.port and booted and self._health_ok():
                break
            if time.monotonic() > deadline:
                raise DemoError("gunicorn not answering after %.0f s:\n%s"
                                % (self.start_timeout, self.log_tail()))
            time.sleep(0.1)
        workers = self.worker_pids()
        if workers != [int(booted[-1])]:
            raise DemoError("expected one gunicorn worker (pid %s), found %s:\n%s"
                            % (booted[-1], workers, self.log_tail()))
        self.worker_pid = workers[0]

    def _health_ok(self):
        try:
            status, _, body = self.get("/health", timeout=2)
        except OSError:
            return False
        return status == 200 and body == b"ok\n"

    def stop(self):
        """Stop gunicorn (gracefully, else SIGKILL its process group), drop the
        database of a shared cluster, stop our own cluster.  Idempotent."""
        errors = []
        if self.proc is not None:
            try:
                self._stop_gunicorn()
            except Exception as e:  # keep going: the cluster must stop too
                errors.append("gunicorn: %s" % e)
            self.proc = None
        if self.cluster is not None:
            if self.own_cluster:
                self.cluster.stop()
                self.cluster = None
            elif self._db_created:
                try:
                    self.cluster.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)'
                                      % self.dbname)
                except subprocess.CalledProcessError as e:
                    errors.append("drop database: %s" % (e.stderr or e))
            self._db_created = False
        if self.tmp is not None:
            for name in os.listdir(self.tmp):
                os.unlink(os.path.join(self.tmp, name))
            os.rmdir(self.tmp)
            self.tmp = None
        if errors:
            raise DemoError("; ".join(errors))

    def _stop_gunicorn(self):
        pgid = self.proc.pid  # start_new_session: the master leads its group
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful: workers finish
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left in the group (a hung master, an orphaned worker).
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _group_alive(pgid):
            if time.monotonic() > deadline:
                raise DemoError("processes of group %d survive SIGKILL" % pgid)
            time.sleep(0.05)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- helpers for callers -----------------------------------------------
    @property
    def base_url(self):
        return "http://%s:%d" % (self.host, self.port)

    def get(self, path, timeout=30):
        """GET path; returns (status, headers with lower-case names, body)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def worker_pids(self):
        """Live children of the gunicorn master (normally just worker_pid)."""
        return sorted(pid for pid, ppid in _processes() if ppid == self.master_pid)

    def read_log(self):
        try:
            with open(self.gunicorn_log, "r", errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def log_tail(self, lines=40):
        return "\n".join(self.read_log().splitlines()[-lines:])


def _processes():
    """(pid, ppid) of every process, from /proc/*/stat."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        # the command name (field 2) may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2:].split()
        out.append((int(d), int(fields[1])))
    return out


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # Zombies still count for killpg; they are gone once reaped.  Ours was
    # reaped by wait(); anything else in the group was reparented to init.
    for pid, _ in _processes():
        try:
            if os.getpgid(pid) == pgid:
                with open("/proc/%d/stat" % pid) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                        return True
        except (OSError, ValueError):
            continue
    return False

