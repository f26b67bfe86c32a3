"""Drives libpq directly through ctypes, for cases no Python driver produces
on demand.  One scenario per run (argv[1]); the events each must give are in
test_tracer.py (LIBPQ_SCENARIOS).  Only Debian's libpq.so.5 is needed.

    refused        a PQsendQuery that libpq refuses (another command in progress)
    finish_pending PQfinish with a query still running, then a new connection
    multi_error    one PQexec of three statements, the second failing
    empty          PQexec of an empty string (PGRES_EMPTY_QUERY)
    single_row     single-row mode: 5 PGRES_SINGLE_TUPLE results, then an empty one
    pipeline_describe  a PQsendDescribePrepared (not a query) inside a pipeline
    pipeline_abort a failing statement in a pipeline aborts the next one
    conn_reuse     statement prepared on a connection that is then closed; a new
                   connection (malloc usually hands back the same address)
                   executes the name without preparing it
    volume         N (argv[2]) quick PQexec calls
"""

import ctypes
import sys
from ctypes import POINTER, c_char_p, c_int, c_void_p

from _common import done, ready, say, wait_go

pq = ctypes.CDLL("libpq.so.5")
for name, res, args in [
    ("PQconnectdb", c_void_p, [c_char_p]),
    ("PQstatus", c_int, [c_void_p]),
    ("PQerrorMessage", c_char_p, [c_void_p]),
    ("PQbackendPID", c_int, [c_void_p]),
    ("PQfinish", None, [c_void_p]),
    ("PQexec", c_void_p, [c_void_p, c_char_p]),
    ("PQsendQuery", c_int, [c_void_p, c_char_p]),
    ("PQsendQueryParams", c_int, [c_void_p, c_char_p, c_int, c_void_p,
                                  POINTER(c_char_p), c_void_p, c_void_p, c_int]),
    ("PQsendPrepare", c_int, [c_void_p, c_char_p, c_char_p, c_int, c_void_p]),
    ("PQsendQueryPrepared", c_int, [c_void_p, c_char_p, c_int, POINTER(c_char_p),
                                    c_void_p, c_void_p, c_int]),
    ("PQsendDescribePrepared", c_int, [c_void_p, c_char_p]),
    ("PQprepare", c_void_p, [c_void_p, c_char_p, c_char_p, c_int, c_void_p]),
    ("PQexecPrepared", c_void_p, [c_void_p, c_char_p, c_int, POINTER(c_char_p),
                                  c_void_p, c_void_p, c_int]),
    ("PQgetResult", c_void_p, [c_void_p]),
    ("PQresultStatus", c_int, [c_void_p]),
    ("PQresultErrorField", c_char_p, [c_void_p, c_int]),
    ("PQclear", None, [c_void_p]),
    ("PQsetSingleRowMode", c_int, [c_void_p]),
    ("PQenterPipelineMode", c_int, [c_void_p]),
    ("PQexitPipelineMode", c_int, [c_void_p]),
    ("PQpipelineSync", c_int, [c_void_p]),
]:
    f = getattr(pq, name)
    f.restype, f.argtypes = res, args

PGRES_PIPELINE_SYNC = 10
PG_DIAG_SQLSTATE = ord("C")


def connect():
    c = pq.PQconnectdb(b"")
    assert c and pq.PQstatus(c) == 0, pq.PQerrorMessage(c)
    return c


def clear(res):
    st = pq.PQresultStatus(res)
    pq.PQclear(res)
    return st


def drain(c):
    """Results up to the next NULL: their statuses."""
    out = []
    while True:
        r = pq.PQgetResult(c)
        if not r:
            return out
        out.append(clear(r))


def drain_pipeline(c):
    """Every result up to the PIPELINE_SYNC."""
    out = []
    while True:
        r = pq.PQgetResult(c)
        if not r:
            continue
        st = clear(r)
        out.append(st)
        if st == PGRES_PIPELINE_SYNC:
            return out


def params(*vals):
    return (c_char_p * len(vals))(*vals) if vals else None


def main(scenario, arg):
    conn = connect()
    ready(backends=[pq.PQbackendPID(conn)], conn=conn)
    wait_go()
    backends = [pq.PQbackendPID(conn)]
    if scenario == "refused":
        assert pq.PQsendQuery(conn, b"SELECT 'first'") == 1
        assert pq.PQsendQuery(conn, b"SELECT 'refused'") == 0
        assert drain(conn) == [2]
        assert clear(pq.PQexec(conn, b"SELECT 'after'")) == 2
    elif scenario == "finish_pending":
        assert pq.PQsendQuery(conn, b"SELECT pg_sleep(0.3)") == 1
        pq.PQfinish(conn)
        conn = connect()
        say(conn2=conn)
        backends.append(pq.PQbackendPID(conn))
        assert clear(pq.PQexec(conn, b"SELECT 'next'")) == 2
    elif scenario == "multi_error":
        assert pq.PQsendQuery(conn, b"SELECT 1; SELECT 1/0; SELECT 2") == 1
        assert drain(conn) == [2, 7]
    elif scenario == "empty":
        assert clear(pq.PQexec(conn, b"")) == 0
        assert clear(pq.PQexec(conn, b"SELECT 'after'")) == 2
    elif scenario == "single_row":
        assert pq.PQsendQuery(conn, b"SELECT generate_series(1, 5)") == 1
        assert pq.PQsetSingleRowMode(conn) == 1
        assert drain(conn) == [9] * 5 + [2]
    elif scenario == "pipeline_describe":
        assert pq.PQenterPipelineMode(conn) == 1
        assert pq.PQsendPrepare(conn, b"s1", b"SELECT $1::int + 1", 0, None) == 1
        assert pq.PQsendDescribePrepared(conn, b"s1") == 1
        assert pq.PQsendQueryPrepared(conn, b"s1", 1, params(b"41"), None, None, 0) == 1
        assert pq.PQsendQueryParams(conn, b"SELECT 'tail'", 0, None, None, None, None, 0) == 1
        assert pq.PQpipelineSync(conn) == 1
        assert drain_pipeline(conn) == [1, 1, 2, 2, PGRES_PIPELINE_SYNC]
        assert pq.PQexitPipelineMode(conn) == 1
    elif scenario == "pipeline_abort":
        assert pq.PQenterPipelineMode(conn) == 1
        for q in (b"SELECT 'p1'", b"SELECT 1/0", b"SELECT 'p3'"):
            assert pq.PQsendQueryParams(conn, q, 0, None, None, None, None, 0) == 1
        assert pq.PQpipelineSync(conn) == 1
        # PGRES_TUPLES_OK, PGRES_FATAL_ERROR, PGRES_PIPELINE_ABORTED, sync
        assert drain_pipeline(conn) == [2, 7, 11, PGRES_PIPELINE_SYNC]
        assert pq.PQexitPipelineMode(conn) == 1
    elif scenario == "conn_reuse":
        assert clear(pq.PQprepare(conn, b"s1", b"SELECT 'old text'", 0, None)) == 1
        pq.PQfinish(conn)
        conn = connect()
        say(conn2=conn)
        backends.append(pq.PQbackendPID(conn))
        res = pq.PQexecPrepared(conn, b"s1", 0, None, None, None, 0)
        assert pq.PQresultErrorField(res, PG_DIAG_SQLSTATE) == b"26000"
        assert clear(res) == 7
    elif scenario == "volume":
        for i in range(arg):
            r = pq.PQexec(conn, b"SELECT %d" % i)
            assert clear(r) == 2
    else:
        sys.exit("libpq_client: unknown scenario %r" % scenario)
    pq.PQfinish(conn)
    done(backends=backends)


main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
