"""psycopg 3: a statement prepared *before* pqsnoop attached, executed after.

Before "ready", 6 executions of one text make psycopg 3 prepare it as
_pg3_0; after "go", 3 more executions go by name only (PQsendQueryPrepared).
pqsnoop never saw the PQsendPrepare, so it knows the name but not the text.
"""

import psycopg

from _common import done, dsn, ready, wait_go

conn = psycopg.connect(dsn(), autocommit=True)
for i in range(6):
    conn.execute("SELECT %s::int AS early", (i,))
ready(backends=[conn.info.backend_pid])
wait_go()
for i in range(3):
    assert conn.execute("SELECT %s::int AS early", (i,)).fetchone() == (i,)
conn.close()
done()
