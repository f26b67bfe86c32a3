"""psycopg2, autocommit: `SELECT <n>` for n in 0..count-1, one connection.

    loop_client.py --count N [--sleep-at K --sleep SECONDS] [--pause-file F]

--sleep-at K makes query K `SELECT K, pg_sleep(SECONDS)`, so a test can act
while the process is inside a query.  --pause-file F: after "go", wait until
F exists before sending (the test can stop pqsnoop's reader first).
"""

import argparse
import os
import time

import psycopg2

from _common import done, ready, wait_go

ap = argparse.ArgumentParser()
ap.add_argument("--count", type=int, required=True)
ap.add_argument("--sleep-at", type=int, default=-1)
ap.add_argument("--sleep", type=float, default=0)
ap.add_argument("--pause-file")
a = ap.parse_args()

conn = psycopg2.connect("")
conn.autocommit = True
cur = conn.cursor()
ready(backends=[conn.get_backend_pid()])
wait_go()
while a.pause_file and not os.path.exists(a.pause_file):
    time.sleep(0.01)
for n in range(a.count):
    if n == a.sleep_at:
        cur.execute("SELECT %d, pg_sleep(%s)" % (n, a.sleep))
    else:
        cur.execute("SELECT %d" % n)
    assert cur.fetchone()[0] == n
done(count=a.count)
