#!/usr/bin/python3
"""Start a program (pgbench) only once a tracer is attached, under the same PID.

    launch.py PROGRAM [ARGS...]

pgbench sends its first queries as soon as it starts, before a tracer could
attach to its PID.  So the benchmark starts this wrapper, which maps libpq
(the one LD_LIBRARY_PATH points at, as the program will), prints
{"ready": true, "pid": PID} and waits for "go" on stdin; the tracer attaches
to PID meanwhile, and then the wrapper execv()s the program: same PID, same
libpq file, so every query of the program is traced from the first.  The
untraced runs go through the same wrapper.
"""

import ctypes
import json
import os
import sys

ctypes.CDLL("libpq.so.5")
sys.stdout.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
sys.stdout.flush()
line = sys.stdin.readline()
if line.strip() != "go":
    sys.exit("launch: expected 'go' on stdin, got %r" % line)
os.execv(sys.argv[1], sys.argv[1:])
