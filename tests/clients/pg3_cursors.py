"""psycopg 3 server-side cursor and stream(): the libpq calls behind them
that are not queries.

- A named cursor: BEGIN, DECLARE (PQsendQueryParams), then psycopg asks for
  the cursor's shape with PQsendDescribePortal: a round trip with a result,
  but no statement and no PQsend* that pqsnoop numbers.  Then FETCH FORWARD
  itersize until a short FETCH, CLOSE, COMMIT.
- stream(): PQsendQueryParams + PQsetSingleRowMode: one PGRES_SINGLE_TUPLE
  result per row, then an empty PGRES_TUPLES_OK.
"""

import psycopg

from _common import done, dsn, ready, wait_go

conn = psycopg.connect(dsn(), autocommit=False)
ready(backends=[conn.info.backend_pid])
wait_go()

with conn.cursor("pq3_srv") as cur:
    cur.itersize = 3
    cur.execute("SELECT n FROM generate_series(1, 7) AS n")
    assert [r[0] for r in cur] == list(range(1, 8))
conn.commit()

conn.autocommit = True
with conn.cursor() as cur:
    assert [r[0] for r in cur.stream("SELECT n FROM generate_series(1, 5) AS n")] == [1, 2, 3, 4, 5]
conn.close()
done()
