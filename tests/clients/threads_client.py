"""Multi-threaded psycopg2 client: THREADS threads, one connection each.

Each thread sends QUERIES statements `SELECT 'tid=<native id>' AS tag, <n>`
(autocommit, so nothing else), n = 0..QUERIES-1.  psycopg2 releases the GIL
around libpq calls, so the threads' queries really interleave; the test checks
that every event's tid is the one written in its SQL text.

usage: threads_client.py [THREADS [QUERIES]]
"""

import sys
import threading

import psycopg2

from _common import done, ready, wait_go

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 8
QUERIES = int(sys.argv[2]) if len(sys.argv) > 2 else 25

go = threading.Event()
connected = threading.Barrier(THREADS + 1)
info = {}
lock = threading.Lock()


def worker():
    conn = psycopg2.connect("")
    conn.autocommit = True
    tid = threading.get_native_id()
    with lock:
        info[tid] = conn.get_backend_pid()
    connected.wait()
    go.wait()
    cur = conn.cursor()
    for n in range(QUERIES):
        cur.execute("SELECT 'tid=%d' AS tag, %d" % (tid, n))
        assert cur.fetchone() == ("tid=%d" % tid, n)
    conn.close()


threads = [threading.Thread(target=worker) for _ in range(THREADS)]
for t in threads:
    t.start()
connected.wait()
ready(backends=sorted(info.values()),
      threads={str(tid): be for tid, be in info.items()})
wait_go()
go.set()
for t in threads:
    t.join()
done()
