"""psycopg2 client with a fixed, known query sequence.

psycopg2 sends every statement with PQexec (its inner PQsendQuery is what
pqsnoop reports), with parameters already interpolated into the text, and
opens a transaction with its own BEGIN unless autocommit is on.  The exact
sequence this produces is asserted in test_tracer.py (PG2_EXPECTED); keep the
two in step.
"""

import io

import psycopg2

from _common import done, dsn, ready, wait_go

conn = psycopg2.connect(dsn())
ready(backends=[conn.get_backend_pid()])
wait_go()

cur = conn.cursor()
# transaction 1: BEGIN is sent by psycopg2 before the first statement
cur.execute("CREATE TEMP TABLE pq2_items (id int PRIMARY KEY, name text)")
cur.execute("INSERT INTO pq2_items VALUES (%s, %s)", (1, "one"))
# executemany: one PQexec per parameter set
cur.executemany("INSERT INTO pq2_items VALUES (%s, %s)",
                [(2, "two"), (3, "three"), (4, "four")])
cur.execute("SELECT id, name FROM pq2_items WHERE id > %s ORDER BY id", (1,))
assert cur.fetchall() == [(2, "two"), (3, "three"), (4, "four")]
conn.commit()

# transaction 2: an UPDATE that is rolled back
cur.execute("UPDATE pq2_items SET name = upper(name) WHERE id <= %s", (2,))
assert cur.rowcount == 2
conn.rollback()

# transaction 3: a named (server-side) cursor, fetched 4 rows at a time:
# DECLARE, then FETCH FORWARD 4 until a FETCH returns fewer rows
srv = conn.cursor("pq2_srv")
srv.itersize = 4
srv.execute("SELECT n FROM generate_series(1, 10) AS n")
assert [r[0] for r in srv] == list(range(1, 11))
srv.close()
conn.commit()

# transaction 4: COPY out and in
out = io.StringIO()
cur.copy_expert("COPY (SELECT id, name FROM pq2_items ORDER BY id) TO STDOUT", out)
assert out.getvalue() == "1\tone\n2\ttwo\n3\tthree\n4\tfour\n", out.getvalue()
cur.copy_expert("COPY pq2_items FROM STDIN", io.StringIO("5\tfive\n6\tsix\n7\tseven\n"))
conn.commit()

# transaction 5: a failing statement, then ROLLBACK
try:
    cur.execute("SELECT 1/0")
    raise SystemExit("client: SELECT 1/0 did not fail")
except psycopg2.errors.DivisionByZero:
    pass
conn.rollback()

# autocommit: no BEGIN/COMMIT around it
conn.autocommit = True
cur.execute("SELECT count(*) FROM pq2_items")
assert cur.fetchone()[0] == 7
conn.close()
done()
