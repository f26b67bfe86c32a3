"""Run a program (psql, pgbench) that cannot itself wait for pqsnoop to attach.

usage: exec_after_go.py PROGRAM [ARGS...]

psql and pgbench start sending queries as soon as they start, so the test
starts this wrapper instead, traces the wrapper's PID and releases it once
pqsnoop is attached; the wrapper then execv()s the program.

Why execv (same PID) rather than fork+exec: pqsnoop then traces the very PID
it was given, so these tests do not depend on child following (tested on its
own by fork_client.py and gunicorn).  Why load libpq here: the wrapper has
libpq mapped when pqsnoop attaches, exactly as the program will (psql and
pgbench link the same /usr/lib/x86_64-linux-gnu/libpq.so.5), so no
--wait-libpq is needed; uprobes live on the library file, and the process
keeps its PID across exec.
"""

import ctypes
import os
import sys

from _common import ready, wait_go

ctypes.CDLL("libpq.so.5")
ready()
wait_go()
sys.stdout.flush()
os.execv(sys.argv[1], sys.argv[1:])
