"""Sends one slow statement, `SELECT pg_sleep(SECONDS)`, after "go" (psycopg2,
autocommit).  For a run that ends while a query is still running.

usage: slow_client.py SECONDS
"""

import sys

import psycopg2

from _common import done, ready, wait_go

conn = psycopg2.connect("")
conn.autocommit = True
ready(backends=[conn.get_backend_pid()])
wait_go()
conn.cursor().execute("SELECT pg_sleep(%s)" % float(sys.argv[1]))
conn.close()
done()
