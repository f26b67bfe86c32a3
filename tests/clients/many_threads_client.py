"""Many threads over a pool of connections (psycopg2, autocommit).

    many_threads_client.py THREADS CONNECTIONS QUERIES

THREADS threads (all started, and connected to the pool, before "ready"),
CONNECTIONS connections opened up front; thread i uses connection
i % CONNECTIONS, holding that connection's lock for each statement, so a
connection carries queries of many threads.  Each thread sends QUERIES
statements `SELECT 'tid=<native id>' AS tag, <n>`, n = 0..QUERIES-1; the test
checks each event's tid against its SQL text.  Prints
{"done": true, "threads": {tid: connection index}}.
"""

import sys
import threading

import psycopg2

from _common import done, ready, wait_go

THREADS = int(sys.argv[1])
CONNS = int(sys.argv[2])
QUERIES = int(sys.argv[3])

threading.stack_size(256 * 1024)
conns = []
for _ in range(CONNS):
    c = psycopg2.connect("")
    c.autocommit = True
    conns.append((c, threading.Lock()))

go = threading.Event()
started = threading.Barrier(THREADS + 1)
info = {}
lock = threading.Lock()
failures = []


def worker(i):
    tid = threading.get_native_id()
    with lock:
        info[tid] = i % CONNS
    started.wait()
    go.wait()
    conn, clock = conns[i % CONNS]
    try:
        for n in range(QUERIES):
            with clock:
                cur = conn.cursor()
                cur.execute("SELECT 'tid=%d' AS tag, %d" % (tid, n))
                assert cur.fetchone() == ("tid=%d" % tid, n)
                cur.close()
    except Exception as e:  # reported in "done"
        failures.append(repr(e))


threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
for t in threads:
    t.start()
started.wait()
ready(threads=len(info))
wait_go()
go.set()
for t in threads:
    t.join()
for c, _ in conns:
    c.close()
if failures:
    sys.exit("failures: %s" % failures[:5])
done(threads={str(k): v for k, v in info.items()})
