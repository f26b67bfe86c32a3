"""psycopg2 client that forks: pqsnoop must follow children forked after it
attached, and report their queries with the children's PIDs.

Parent: one query, then forks CHILDREN children one after another (each runs
on its own new connection: a libpq connection must not cross a fork), waits
for each, then one more query.  Child: QUERIES statements
`SELECT 'child=<pid>' AS tag, <n>`, autocommit.
"""

import os

import psycopg2

from _common import done, ready, say, wait_go

CHILDREN = 2
QUERIES = 3

conn = psycopg2.connect("")
conn.autocommit = True
ready(backends=[conn.get_backend_pid()])
wait_go()

cur = conn.cursor()
cur.execute("SELECT 'parent' AS tag, 1")
children = []
for _ in range(CHILDREN):
    pid = os.fork()
    if pid == 0:
        try:
            c = psycopg2.connect("")
            c.autocommit = True
            say(child=os.getpid(), backend=c.get_backend_pid())
            k = c.cursor()
            for n in range(QUERIES):
                k.execute("SELECT 'child=%d' AS tag, %d" % (os.getpid(), n))
            c.close()
            code = 0
        except BaseException as e:  # report, never fall back into the parent's code
            say(child_error=repr(e))
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
    children.append(pid)
cur.execute("SELECT 'parent' AS tag, 2")
conn.close()
done(children=children)
