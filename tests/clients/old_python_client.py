"""libpq through ctypes from any Python, 2.7 included: for interpreters
pqsnoop does not know (their queries must still be traced, without stacks).

    old_python_client.py [QUERIES]

After "go": QUERIES queries `SELECT 'old=<pid>', <n>` from nested functions
on the main thread, then a child forked after "go" does the same on its
own connection (so the process tree holds two processes of the unknown
version), then one more query in the parent.
"""

import ctypes
import os
import sys

from _common import done, ready, say, wait_go

QUERIES = int(sys.argv[1]) if len(sys.argv) > 1 else 3

lib = ctypes.CDLL("libpq.so.5")
lib.PQconnectdb.restype = ctypes.c_void_p
lib.PQconnectdb.argtypes = [ctypes.c_char_p]
lib.PQstatus.argtypes = [ctypes.c_void_p]
lib.PQexec.restype = ctypes.c_void_p
lib.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.PQresultStatus.argtypes = [ctypes.c_void_p]
lib.PQclear.argtypes = [ctypes.c_void_p]
lib.PQfinish.argtypes = [ctypes.c_void_p]


def connect():
    conn = lib.PQconnectdb(b"")
    if lib.PQstatus(conn) != 0:
        sys.exit("old_python_client: connection failed")
    return conn


def query(conn, n):
    sql = "SELECT 'old=%d', %d" % (os.getpid(), n)
    res = lib.PQexec(conn, sql.encode("ascii"))
    status = lib.PQresultStatus(res)
    lib.PQclear(res)
    if status != 2:  # PGRES_TUPLES_OK
        raise RuntimeError("%s: status %d" % (sql, status))
    return sql


def nested(conn, n):
    return query(conn, n)


def main():
    conn = connect()
    ready()
    wait_go()
    sent = [nested(conn, n) for n in range(QUERIES)]
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            c = connect()
            say(child=os.getpid(), sent=[nested(c, n) for n in range(QUERIES)])
            lib.PQfinish(c)
            code = 0
        except BaseException as e:  # report, never fall back into the parent's code
            say(child_error=repr(e))
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        sys.exit("old_python_client: child failed (%d)" % status)
    sent.append(nested(conn, QUERIES))
    lib.PQfinish(conn)
    done(sent=sent, child=pid)


if __name__ == "__main__":
    main()
