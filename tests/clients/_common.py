"""Handshake shared by the test clients.

Every client is started by the test *before* pqsnoop attaches, so it must not
send a single query until the test says so.  Protocol, one JSON object a line
on stdout:

    client -> test   {"ready": true, "pid": ..., "backends": [...], ...}
    test -> client   "go\n" on the client's stdin (after pqsnoop said "attached")
    client -> test   {"done": true, ...}   (whatever the test needs to check)

Libraries (and so libpq) are imported and connections opened before "ready",
so the traced process already has libpq mapped when pqsnoop attaches.
Opening a connection sends no query through PQsend* (verified against the
server log), so connecting early does not hide any event.
"""

import json
import os
import sys


def dsn():
    """The server the test points us at (PgCluster.env() sets PG*)."""
    if len(sys.argv) > 1 and "=" in sys.argv[1]:
        return sys.argv[1]
    return ""  # libpq reads PGHOST/PGPORT/PGUSER/PGDATABASE


def say(**obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def ready(**info):
    say(ready=True, pid=os.getpid(), **info)


def wait_go():
    line = sys.stdin.readline()
    if line.strip() != "go":
        sys.exit("client: expected 'go' on stdin, got %r" % line)


def done(**info):
    say(done=True, **info)
