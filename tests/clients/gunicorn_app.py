"""Tiny WSGI app for the gunicorn test: fixed queries per request.

GET /?n=N runs, on the worker's own connection (autocommit, opened at the
worker's first request: a libpq connection must not be shared across fork):
    SELECT 'req=N' AS tag, pg_backend_pid()
    SELECT count(*) FROM generate_series(1, N)
then holds the request HOLD (1) seconds (so a concurrent request is taken by the
other sync worker) and answers {"pid": worker pid, "backend": ..., "n": N}.

Loaded in the master when gunicorn_conf.py sets preload_app (then psycopg2
and libpq are mapped in the master before it forks), else in each worker.
"""

import json
import os
import time
from urllib.parse import parse_qs

import psycopg2

HOLD = 1.0
_conn = None


def app(environ, start_response):
    global _conn
    if _conn is None:
        _conn = psycopg2.connect("")
        _conn.autocommit = True
    n = int(parse_qs(environ.get("QUERY_STRING", ""))["n"][0])
    cur = _conn.cursor()
    cur.execute("SELECT 'req=%d' AS tag, pg_backend_pid()" % n)
    backend = cur.fetchone()[1]
    cur.execute("SELECT count(*) FROM generate_series(1, %s)", (n,))
    assert cur.fetchone()[0] == n
    time.sleep(HOLD)
    body = json.dumps({"pid": os.getpid(), "backend": backend, "n": n}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
