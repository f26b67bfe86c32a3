# -*- coding: utf-8 -*-
"""Sends queries through libpq (ctypes) from known Python call shapes, and
reports, for each query, the stack the interpreter itself sees.

    stack_client.py [--psycopg] [--no-fork]

Every libpq call is written on one line together with `sql(TAG,
sys._getframe())`, which returns the query's text (`SELECT 'stk:TAG'`) and
records the calling frame's chain as the interpreter reports it: for each
frame, co_filename, co_qualname (3.11+) or co_name, and f_lineno, innermost
first.  Since the record is taken on the very line of the libpq call, and
ctypes calls C directly, these are exactly the frames pqsnoop must report
for that query.

Shapes, each a tag "GROUP:NAME": a plain call chain from module level, a
method, a nested class's method, a staticmethod and a classmethod, a
closure, a lambda, a decorator's wrapper, a class body, a generator (first
and later resumption), a comprehension, callbacks from C (map, sorted), a
contextlib context manager (stdlib frame in between), a coroutine under
asyncio, code compiled from a string (a "<...>" file name, and a non-ASCII
file name with line numbers far apart), multi-line calls in the callers
(the libpq call itself must stay on one line: a multi-line call's CALL
instruction is not on the line of its last argument), loops and
try/finally (line tables going backwards), Unicode function names,
recursion to exactly 64 frames, 65 frames, and far deeper; the
PQexecParams, PQprepare and PQexecPrepared entry points; worker threads
(threading.Thread target, a Thread subclass, deep recursion in a thread);
and, unless --no-fork, a child forked after "go" querying on its own
connection from its main thread and a thread.

--psycopg (Debian's python3): also psycopg2 (a C extension: the innermost
Python frame is the caller of cursor.execute) and psycopg 3 (pure Python on
Debian: its own frames come first, then the recorded ones; tagged
"suffix" so the test checks the tail exactly and the head by folder).

Output: the _common.py handshake; the done message carries "expected" (one
entry per query: tag, kind "query"/"prepare", sql, pid, tid, frames,
suffix), "child" (the forked child's PID) and "child_expected" (its
entries), "version" and "script".  Then the client, and its child, stay
alive until "exit" (or EOF) on stdin: the test sends it once pqsnoop has
printed every query, so that no code object is freed before pqsnoop has
read it.
"""

import asyncio
import contextlib
import ctypes
import functools
import json
import os
import sys
import threading
import time

from _common import done, dsn, ready, say, wait_go

USE_PSYCOPG = "--psycopg" in sys.argv
FORK = "--no-fork" not in sys.argv

lib = ctypes.CDLL("libpq.so.5")
lib.PQconnectdb.restype = ctypes.c_void_p
lib.PQconnectdb.argtypes = [ctypes.c_char_p]
lib.PQstatus.argtypes = [ctypes.c_void_p]
lib.PQerrorMessage.restype = ctypes.c_char_p
lib.PQerrorMessage.argtypes = [ctypes.c_void_p]
lib.PQexec.restype = ctypes.c_void_p
lib.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.PQexecParams.restype = ctypes.c_void_p
lib.PQexecParams.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p,
                             ctypes.POINTER(ctypes.c_char_p), ctypes.c_void_p, ctypes.c_void_p,
                             ctypes.c_int]
lib.PQprepare.restype = ctypes.c_void_p
lib.PQprepare.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int,
                          ctypes.c_void_p]
lib.PQexecPrepared.restype = ctypes.c_void_p
lib.PQexecPrepared.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                               ctypes.POINTER(ctypes.c_char_p), ctypes.c_void_p,
                               ctypes.c_void_p, ctypes.c_int]
lib.PQresultStatus.argtypes = [ctypes.c_void_p]
lib.PQclear.argtypes = [ctypes.c_void_p]
lib.PQfinish.argtypes = [ctypes.c_void_p]

EXPECTED = []
LOCK = threading.Lock()


def connect():
    conn = lib.PQconnectdb(dsn().encode())
    if lib.PQstatus(conn) != 0:
        sys.exit("stack_client: connection failed: %s" % lib.PQerrorMessage(conn))
    return conn


def frames_of(f):
    out = []
    while f is not None:
        co = f.f_code
        out.append([co.co_filename, getattr(co, "co_qualname", co.co_name), f.f_lineno or 0])
        f = f.f_back
    return out


def sql(tag, frame, kind="query", text=None, suffix=False):
    """The text of query TAG; records FRAME's chain as its expected stack."""
    text = text or "SELECT 'stk:%s'" % tag
    entry = {"tag": tag, "kind": kind, "sql": text, "pid": os.getpid(),
             "tid": threading.get_native_id(), "frames": frames_of(frame), "suffix": suffix}
    with LOCK:
        EXPECTED.append(entry)
    return text


def q(tag, frame):
    """sql() as bytes, for ctypes."""
    return sql(tag, frame).encode()


def ok(res):
    st = lib.PQresultStatus(res)
    lib.PQclear(res)
    if st not in (1, 2):  # PGRES_COMMAND_OK, PGRES_TUPLES_OK
        raise RuntimeError("query failed: status %d" % st)
    return st


C = connect()


# --- plain chain -------------------------------------------------------------

def plain_leaf():
    ok(lib.PQexec(C, q("plain:leaf", sys._getframe())))


def plain_mid():
    plain_leaf()
    return ok(lib.PQexec(C, q("plain:mid", sys._getframe())))


def plain_top():
    x = 1
    plain_mid()
    return x


# --- methods -----------------------------------------------------------------

class Repo:
    def get(self):
        return ok(lib.PQexec(C, q("method:get", sys._getframe())))

    @staticmethod
    def static():
        return ok(lib.PQexec(C, q("method:static", sys._getframe())))

    @classmethod
    def klass(cls):
        return ok(lib.PQexec(C, q("method:classmethod", sys._getframe())))

    class Inner:
        def deeper(self):
            return ok(lib.PQexec(C, q("method:nested_class", sys._getframe())))

    def __repr__(self):
        ok(lib.PQexec(C, q("method:dunder", sys._getframe())))
        return "Repo()"


def methods():
    r = Repo()
    r.get()
    Repo.static()
    Repo.klass()
    Repo.Inner().deeper()
    repr(r)


# --- closures, lambdas, decorators, class bodies ------------------------------

def make_closure(n):
    def inner():
        def innermost():
            return ok(lib.PQexec(C, q("closure:innermost%d" % n, sys._getframe())))
        return innermost()
    return inner


def logged(fn):
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        ok(lib.PQexec(C, q("decorator:wrapper", sys._getframe())))
        return fn(*a, **kw)
    return wrapper


@logged
def decorated():
    return ok(lib.PQexec(C, q("decorator:decorated", sys._getframe())))


def closures():
    make_closure(1)()
    (lambda: ok(lib.PQexec(C, q("closure:lambda", sys._getframe()))))()
    decorated()

    class InBody:
        ok(lib.PQexec(C, q("closure:class_body", sys._getframe())))
    return InBody


# --- generators, comprehensions, C callbacks, context managers ------------------

def gen_queries():
    ok(lib.PQexec(C, q("generator:first", sys._getframe())))
    yield 1
    ok(lib.PQexec(C, q("generator:resumed", sys._getframe())))
    yield 2


def consume_elsewhere(g):
    return next(g)


def generators():
    g = gen_queries()
    next(g)
    consume_elsewhere(g)
    for _ in (ok(lib.PQexec(C, q("generator:genexpr%d" % i, sys._getframe())))
              for i in range(2)):
        pass
    [ok(lib.PQexec(C, q("generator:listcomp%d" % i, sys._getframe()))) for i in range(2)]


def callbacks():
    list(map(lambda i: ok(lib.PQexec(C, q("callback:map%d" % i, sys._getframe()))), [0]))
    sorted([2, 1], key=lambda k: ok(lib.PQexec(C, q("callback:sorted%d" % k, sys._getframe()))))


@contextlib.contextmanager
def transaction():
    ok(lib.PQexec(C, q("callback:ctx_enter", sys._getframe())))
    yield
    ok(lib.PQexec(C, q("callback:ctx_exit", sys._getframe())))


def context_managers():
    with transaction():
        pass


# --- coroutines ----------------------------------------------------------------

async def coro_inner():
    await asyncio.sleep(0)
    return ok(lib.PQexec(C, q("coroutine:inner", sys._getframe())))


async def coro_outer():
    ok(lib.PQexec(C, q("coroutine:outer", sys._getframe())))
    return await coro_inner()


def coroutines():
    asyncio.run(coro_outer())


# --- compiled code, line tables ----------------------------------------------

GEN_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "généré_名前_𝔘.py")
GEN_SRC = "\n" * 1500 + """def far_away(tag):
    x = 1
""" + "\n" * 300 + """    y = x + 1
""" + "\n" * 40000 + """    return ok(lib.PQexec(C, q(tag, sys._getframe())))
"""
GEN_CODE = compile(GEN_SRC, GEN_FILE, "exec")
exec(GEN_CODE, globals())
STRING_CODE = compile("ok(lib.PQexec(C, q('compiled:string', sys._getframe())))\n",
                      "<pqsnoop-string>", "exec")


def line_tables():
    far_away("compiled:far")  # noqa: F821 (defined by GEN_CODE)
    exec(STRING_CODE)
    multiline_callee(
        "lines:multiline_call",
        len(
            "abc"),
        multiline_callee(
            "lines:multiline_arg",
            0,
            0))
    total = 0
    for i in range(3):
        if i == 2:
            total += ok(lib.PQexec(C, q("lines:loop", sys._getframe())))
        else:
            total -= i
    try:
        total += 1
    finally:
        ok(lib.PQexec(C, q("lines:finally", sys._getframe())))
    while total < 1000:
        total = total * 2 + 1
    return plain_leaf_wrapper(
        1,
        2)


def multiline_callee(tag, a, b):
    return ok(lib.PQexec(C, q(tag, sys._getframe()))) + a + b


def plain_leaf_wrapper(a, b):
    return ok(lib.PQexec(C, q("lines:args", sys._getframe()))) + a + b


def café_名前():
    return ok(lib.PQexec(C, q("unicode:café", sys._getframe())))


def 𠀀():
    return café_名前()


# --- recursion ------------------------------------------------------------------

def depth(f):
    n = 0
    while f is not None:
        n += 1
        f = f.f_back
    return n


def climb(total, tag):
    """Recurse until the stack is TOTAL frames deep, then query."""
    if depth(sys._getframe()) < total:
        return climb(total,
                     tag)
    return ok(lib.PQexec(C, q(tag, sys._getframe())))


def recurse(n, tag, conn):
    if n:
        return recurse(n - 1, tag, conn)
    return ok(lib.PQexec(conn, q(tag, sys._getframe())))


def recursion():
    climb(64, "deep:exactly64")
    climb(65, "deep:exactly65")
    recurse(80, "deep:recurse80", C)


# --- the other entry points ---------------------------------------------------

PREPARED = "SELECT 'stk:api:prepared' || $1::text"


def stmt(_text):
    return b"stk_prep"


def entry_points():
    one = (ctypes.c_char_p * 1)(b"7")
    ok(lib.PQexecParams(C, sql("api:params", sys._getframe(), text="SELECT 'stk:api:params', $1::int").encode(), 1, None, one, None, None, 0))
    ok(lib.PQprepare(C, b"stk_prep", sql("api:prepare", sys._getframe(), kind="prepare", text=PREPARED).encode(), 1, None))
    ok(lib.PQexecPrepared(C, stmt(sql("api:prepared", sys._getframe(), text=PREPARED)), 1, one, None, None, 0))


# --- threads -------------------------------------------------------------------

def thread_leaf(conn, name):
    return ok(lib.PQexec(conn, q("thread:%s" % name, sys._getframe())))


def thread_target(name, barrier):
    conn = connect()
    barrier.wait()
    thread_leaf(conn, name)
    recurse(70, "thread:%s_deep" % name, conn)
    lib.PQfinish(conn)


class Worker(threading.Thread):
    def __init__(self, barrier):
        threading.Thread.__init__(self)
        self.barrier = barrier

    def run(self):
        conn = connect()
        self.barrier.wait()
        ok(lib.PQexec(conn, q("thread:subclass_run", sys._getframe())))
        lib.PQfinish(conn)


def threads(prefix=""):
    barrier = threading.Barrier(2)
    ts = [threading.Thread(target=thread_target, args=(prefix + "target", barrier)),
          Worker(barrier)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


# --- psycopg (Debian's python3) -------------------------------------------------

def open_psycopg():
    """Connected before "ready": whatever a connection sends is not ours."""
    import psycopg
    import psycopg2

    c2 = psycopg2.connect("")
    c2.autocommit = True
    c3 = psycopg.connect("", autocommit=True)
    return c2, c3, os.path.dirname(psycopg.__file__)


def with_psycopg(c2, c3):
    cur = c2.cursor()
    cur.execute(sql("psycopg2:execute", sys._getframe()))

    def in_thread():
        k = c2.cursor()
        k.execute(sql("psycopg2:thread", sys._getframe()))
    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    c2.close()
    c3.execute(sql("psycopg3:conn_execute", sys._getframe(), suffix=True))
    c3.cursor().execute(sql("psycopg3:cursor_execute", sys._getframe(), suffix=True))
    c3.close()


# --- fork ------------------------------------------------------------------------

def child_main():
    global C
    del EXPECTED[:]
    C = connect()
    plain_top_in_child()
    threads(prefix="child_")
    recurse(75, "child:deep", C)
    lib.PQfinish(C)


def plain_top_in_child():
    return ok(lib.PQexec(C, q("child:main", sys._getframe())))


def only_thread_left(timeout=10):
    """Thread.join() returns before the OS thread is gone; a thread still
    exiting may hold the dynamic loader's lock (pthread_exit loads
    libgcc_s), which a child forked then would inherit locked."""
    deadline = time.monotonic() + timeout
    while len(os.listdir("/proc/self/task")) > 1:
        if time.monotonic() > deadline:
            sys.exit("stack_client: threads still running before fork: %s"
                     % os.listdir("/proc/self/task"))
        time.sleep(0.01)


def fork_child():
    """Forks a child that runs child_main(), sends its expected stacks
    back through a pipe and stays alive until the parent closes the other
    one (see main()).  Returns (child pid, its expected stacks, the fd whose
    closing lets it exit)."""
    only_thread_left()
    report_r, report_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        os.close(report_r)
        os.close(release_w)
        try:
            child_main()
            data = json.dumps(EXPECTED).encode()
            while data:
                data = data[os.write(report_w, data):]
            code = 0
        except BaseException as e:  # report, never fall back into the parent's code
            say(child_error=repr(e))
        finally:
            os.close(report_w)
            os.read(release_r, 1)  # EOF: the parent closed release_w
            os._exit(code)
    os.close(report_w)
    os.close(release_r)
    chunks = []
    while True:
        chunk = os.read(report_r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(report_r)
    report = b"".join(chunks)
    if not report:
        sys.exit("stack_client: the forked child reported nothing")
    return pid, json.loads(report.decode()), release_w


def main():
    facts = {"version": sys.version.split()[0], "script": sys._getframe().f_code.co_filename}
    if USE_PSYCOPG:
        c2, c3, facts["psycopg_dir"] = open_psycopg()
    ready(**facts)
    wait_go()
    plain_top()
    methods()
    closures()
    generators()
    callbacks()
    context_managers()
    coroutines()
    line_tables()
    𠀀()
    recursion()
    entry_points()
    threads()
    if USE_PSYCOPG:
        with_psycopg(c2, c3)
    child, child_expected, release = fork_child() if FORK else (None, [], None)
    ok(lib.PQexec(C, q("plain:after_fork", sys._getframe())))
    lib.PQfinish(C)
    done(expected=EXPECTED, child=child, child_expected=child_expected, **facts)
    # Stay alive (and the child too) until the test has seen every query:
    # pqsnoop reads code objects from the live process, and at exit the
    # interpreter frees them (README: a frame whose code object is gone is
    # "[unreadable frame]").  "exit" or EOF on stdin.
    sys.stdin.readline()
    if child is not None:
        os.close(release)
        _, status = os.waitpid(child, 0)
        if status != 0:
            sys.exit("stack_client: forked child failed (%d)" % status)


if __name__ == "__main__":
    main()
