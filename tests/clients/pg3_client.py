"""psycopg 3 client with a fixed, known query sequence.

Debian's psycopg 3.1.7 uses its pure-Python (ctypes) libpq wrapper, so every
call below is a real libpq call made from Python.  What it sends:
- a statement without parameters: PQsendQuery (simple protocol);
- with parameters: PQsendQueryParams with $1, $2 placeholders in the text;
- the same parameterised text executed more than prepare_threshold (5) times:
  the 6th time PQsendPrepare("_pg3_0", text) and then PQsendQueryPrepared by
  name, that time and every later time;
- BEGIN/COMMIT it sends itself: PQsendQueryParams without parameters;
- executemany: pipeline mode (libpq >= 14), PQsendQueryParams per row;
- explicit pipeline(): every statement through PQsendQueryParams.
The exact sequence is asserted in test_tracer.py (PG3_EXPECTED).
"""

import psycopg

from _common import done, dsn, ready, wait_go

conn = psycopg.connect(dsn(), autocommit=True)
assert conn.prepare_threshold == 5
ready(backends=[conn.info.backend_pid])
wait_go()

conn.execute("CREATE TEMP TABLE pq3_items (id int PRIMARY KEY, name text)")

# 8 executions of one parameterised text: 5 plain, then prepared as _pg3_0
for i in range(8):
    row = conn.execute("SELECT %s::int AS m_seq", (i,)).fetchone()
    assert row == (i,)

# executemany runs in an implicit pipeline: 3 PQsendQueryParams
with conn.cursor() as cur:
    cur.executemany("INSERT INTO pq3_items (id, name) VALUES (%s, %s)",
                    [(1, "one"), (2, "two"), (3, "three")])

# an explicit pipeline: three statements, one sync
with conn.pipeline():
    c1 = conn.execute("UPDATE pq3_items SET name = name || '!' WHERE id >= %s", (2,))
    c2 = conn.execute("SELECT id FROM pq3_items ORDER BY id")
    c3 = conn.execute("SELECT 'pipelined' AS tag")
assert c1.rowcount == 2
assert c2.fetchall() == [(1,), (2,), (3,)]

# COPY in and out
with conn.cursor() as cur:
    with cur.copy("COPY pq3_items (id, name) FROM STDIN") as cp:
        cp.write_row((4, "four"))
        cp.write_row((5, "five"))
    with cur.copy("COPY (SELECT id FROM pq3_items ORDER BY id) TO STDOUT") as cp:
        got = [bytes(b) for b in cp]
    assert b"".join(got) == b"1\n2\n3\n4\n5\n", got

# a transaction psycopg sends BEGIN/COMMIT for
with conn.transaction():
    conn.execute("DELETE FROM pq3_items WHERE id = %s", (5,))

# a failing statement (simple protocol, no parameters)
try:
    conn.execute("SELECT 1/0")
    raise SystemExit("client: SELECT 1/0 did not fail")
except psycopg.errors.DivisionByZero:
    pass

conn.close()
done()
