#!/usr/bin/python3
"""The worst case for a tracer: a psycopg2 loop of `SELECT 1` over the unix socket.

    loop_client.py            (the server comes from PGHOST, PGPORT... as libpq reads them)

One long-lived process, reused by every variant of the benchmark, so each
variant measures the same process with the same connection.  It connects
(autocommit: one PQexec per execute, no BEGIN) before it says it is ready, so
connecting is never part of a measurement.  Then it obeys one command a line
on stdin and answers one JSON object a line on stdout:

    run N plain     N x cursor.execute("SELECT 1") + fetchone()
    run N wrapped   the same through a cursor whose execute is wrapped in
                    Python: time.perf_counter around it, (sql, seconds)
                    appended to a list -- the in-process logging a user would
                    otherwise add
    quit

    -> {"n": N, "wall": seconds, "cpu": seconds, "logged": entries}

wall is the loop's time.perf_counter() span: the per-query time is wall / N,
measured inside the client.  cpu is this process's user+system time over the
loop (time.process_time): uprobe hits are paid in the traced process's system
time, so it shows the probes' cost with less noise than wall time.  Nothing
is pinned.
"""

import json
import os
import sys
import time

import psycopg2
import psycopg2.extensions

SQL = "SELECT 1"
LOG = []


class TimedCursor(psycopg2.extensions.cursor):
    """What a user writes to log queries in-process (like Django's
    CursorDebugWrapper): time each execute, keep (sql, seconds)."""

    def execute(self, sql, args=None):
        t = time.perf_counter()
        try:
            return super().execute(sql, args)
        finally:
            LOG.append((sql, time.perf_counter() - t))


def say(**obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run(cur, n):
    execute, fetchone = cur.execute, cur.fetchone
    c0 = time.process_time()
    t0 = time.perf_counter()
    for _ in range(n):
        execute(SQL)
        fetchone()
    wall = time.perf_counter() - t0
    return wall, time.process_time() - c0


def main():
    conn = psycopg2.connect("")
    conn.autocommit = True
    plain = conn.cursor()
    wrapped = conn.cursor(cursor_factory=TimedCursor)
    plain.execute("SELECT pg_backend_pid()")
    backend = plain.fetchone()[0]
    say(ready=True, pid=os.getpid(), backend=backend)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        if words[0] != "run" or len(words) != 3 or words[2] not in ("plain", "wrapped"):
            sys.exit("loop_client: bad command %r" % line)
        n = int(words[1])
        del LOG[:]
        wall, cpu = run(wrapped if words[2] == "wrapped" else plain, n)
        say(n=n, wall=wall, cpu=cpu, logged=len(LOG))
    conn.close()


if __name__ == "__main__":
    main()
