"""A private PostgreSQL cluster for tests and the demo.

initdb into a temporary folder, listen only on a unix socket in that folder
(no TCP port, so parallel runs cannot collide), log every statement so tests
can cross-check what pqsnoop saw against what the server ran.

PostgreSQL refuses to run as root, so when we are root the cluster is owned
by and run as the unprivileged `postgres` user that Debian's package creates.
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time


def pg_bindir():
    """Folder of Debian's PostgreSQL server binaries (newest version)."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(d.split("/")[-2]))
    for d in reversed(dirs):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql: "
                       "install the postgresql package (make deps)")


class PgCluster:
    def __init__(self, base=None, user="postgres"):
        self.bindir = pg_bindir()
        self.tmp = tempfile.mkdtemp(prefix="pqsnoop-pg-", dir=base)
        os.chmod(self.tmp, 0o755)
        self.datadir = os.path.join(self.tmp, "data")
        self.sockdir = os.path.join(self.tmp, "sock")
        self.logfile = os.path.join(self.tmp, "server.log")
        self.port = 5432  # only names the socket file; no TCP listener
        self.dbname = "postgres"
        self.user = user
        self.run_as = None
        if os.geteuid() == 0:
            self.run_as = pwd.getpwnam("postgres")
        os.mkdir(self.sockdir)
        if self.run_as:
            for p in (self.tmp, self.sockdir):
                os.chown(p, self.run_as.pw_uid, self.run_as.pw_gid)
        # the socket folder must be reachable by every test process
        os.chmod(self.sockdir, 0o777)

    def _cmd(self, args, **kw):
        def demote():
            if self.run_as:
                os.setgid(self.run_as.pw_gid)
                os.setuid(self.run_as.pw_uid)
        return subprocess.run(args, preexec_fn=demote, check=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, **kw)

    def start(self):
        self._cmd([os.path.join(self.bindir, "initdb"), "-D", self.datadir,
                   "-U", self.user, "-A", "trust", "--no-sync", "-E", "UTF8",
                   "--locale=C"])
        opts = ("-c listen_addresses='' -c unix_socket_directories=%s "
                "-c port=%d -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c log_statement=all "
                "-c log_min_error_statement=panic "
                "-c log_line_prefix='%%p ' -c max_connections=200"
                % (self.sockdir, self.port))
        self._cmd([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir,
                   "-l", self.logfile, "-o", opts, "-w", "-t", "60", "start"])
        return self

    def stop(self):
        try:
            self._cmd([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir,
                       "-m", "immediate", "-w", "stop"])
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- for clients -------------------------------------------------------
    def env(self):
        """Environment that points libpq clients (psql, pgbench, psycopg) here."""
        e = dict(os.environ)
        e.update(PGHOST=self.sockdir, PGPORT=str(self.port),
                 PGUSER=self.user, PGDATABASE=self.dbname)
        return e

    def dsn(self, dbname=None):
        return "host=%s port=%d user=%s dbname=%s" % (
            self.sockdir, self.port, self.user, dbname or self.dbname)

    def psql(self, sql, dbname=None):
        """Run SQL through psql; returns stdout (unaligned, tuples only)."""
        r = subprocess.run([os.path.join(self.bindir, "psql"), "-X", "-A", "-t",
                            "-v", "ON_ERROR_STOP=1", "-d", self.dsn(dbname),
                            "-c", sql], check=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        return r.stdout

    # --- the server's own view ---------------------------------------------
    def log_mark(self):
        """Position in the server log; pass to statements_since()."""
        try:
            return os.path.getsize(self.logfile)
        except OSError:
            return 0

    def statements_since(self, mark, backend_pids=None, wait=0.5):
        """Statements the server logged after `mark` (log_statement=all).

        Returns a list of (backend_pid, text); `execute <name>: text` lines of
        prepared statements are returned as their text.  A statement spanning
        several lines keeps its newlines.
        """
        time.sleep(wait)  # the logger writes asynchronously
        with open(self.logfile, "r", errors="replace") as f:
            f.seek(mark)
            data = f.read()
        out = []
        cur = None
        for line in data.splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[0].isdigit() and parts[1] == "LOG:":
                pid, rest = int(parts[0]), parts[2].lstrip()
                cur = None
                if rest.startswith("statement: "):
                    cur = [pid, rest[len("statement: "):]]
                elif rest.startswith("execute "):
                    cur = [pid, rest.split(": ", 1)[1] if ": " in rest else rest]
                if cur:
                    out.append(cur)
            elif len(parts) >= 2 and parts[0].isdigit() and parts[1].endswith(":"):
                cur = None  # another message (ERROR, DETAIL, ...)
            elif cur is not None and line.startswith("\t"):
                cur[1] += "\n" + line[1:]
        if backend_pids is not None:
            out = [s for s in out if s[0] in backend_pids]
        return [tuple(s) for s in out]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
