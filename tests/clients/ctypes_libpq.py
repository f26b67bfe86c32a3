"""Drives libpq through ctypes, from library files given on the command line.

    ctypes_libpq.py DSN LIBPQ_PATH [LIBPQ_PATH...] [--late] [--queries N]

Each path is loaded as its own copy (a renamed copy such as a wheel's
`libpq-1a2b3c.so.5.15` is a different file, so a different library to the
dynamic loader), gets its own connection, and runs N queries tagged with the
copy's index: `SELECT 'copy=<i>', <n>`.  With --late the libraries are
loaded only after "go", to test a process that loads libpq after pqsnoop
attached.  Needs no psycopg: any Python can run it.
"""

import ctypes
import sys

from _common import done, dsn, ready, wait_go


def load(path):
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
    lib.PQconnectdb.restype = ctypes.c_void_p
    lib.PQconnectdb.argtypes = [ctypes.c_char_p]
    lib.PQstatus.argtypes = [ctypes.c_void_p]
    lib.PQexec.restype = ctypes.c_void_p
    lib.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.PQresultStatus.argtypes = [ctypes.c_void_p]
    lib.PQclear.argtypes = [ctypes.c_void_p]
    lib.PQfinish.argtypes = [ctypes.c_void_p]
    lib.PQbackendPID.argtypes = [ctypes.c_void_p]
    return lib


def connect(lib):
    conn = lib.PQconnectdb(dsn().encode())
    if lib.PQstatus(conn) != 0:
        sys.exit("ctypes_libpq: connection failed")
    return conn


def main():
    args = sys.argv[2:]
    late = "--late" in args
    n = 5
    if "--queries" in args:
        n = int(args[args.index("--queries") + 1])
    paths = [a for a in args if a.startswith("/")]
    libs, conns, backends = [], [], []
    if not late:
        libs = [load(p) for p in paths]
        conns = [connect(lib) for lib in libs]
        backends = [lib.PQbackendPID(c) for lib, c in zip(libs, conns)]
    ready(backends=backends)
    wait_go()
    if late:
        libs = [load(p) for p in paths]
        conns = [connect(lib) for lib in libs]
        backends = [lib.PQbackendPID(c) for lib, c in zip(libs, conns)]
    sent = []
    for i, (lib, conn) in enumerate(zip(libs, conns)):
        for k in range(n):
            sql = "SELECT 'copy=%d', %d" % (i, k)
            res = lib.PQexec(conn, sql.encode())
            assert lib.PQresultStatus(res) == 2  # PGRES_TUPLES_OK
            lib.PQclear(res)
            sent.append(sql)
    for lib, conn in zip(libs, conns):
        lib.PQfinish(conn)
    done(sent=sent, backends=backends)


if __name__ == "__main__":
    main()
