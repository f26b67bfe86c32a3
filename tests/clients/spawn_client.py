"""Starts, after "go", a new Python process (fork + exec, as subprocess does:
Django's autoreloader, multiprocessing's spawn) running stack_client.py,
and relays its report.

    spawn_client.py [PYTHON] [stack_client.py options]

The child runs PYTHON (default: this interpreter) and gets its "go" at
once, so it queries right after it starts.  This process itself sends no
query; it loads libpq, so that pqsnoop can attach to it before "go".
Done message: "spawned" (the child's pid) and "child_done" (the child's own
done message).  Then, like stack_client.py, it waits for "exit" on stdin
and passes it on to the child.
"""

import ctypes
import json
import os
import subprocess
import sys

from _common import done, ready, wait_go

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    python = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1].startswith("/") else sys.executable
    opts = [a for a in sys.argv[1:] if a.startswith("--")]
    ctypes.CDLL("libpq.so.5")
    ready()
    wait_go()
    child = subprocess.Popen([python, os.path.join(HERE, "stack_client.py")] + opts,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    child.stdin.write(b"go\n")
    child.stdin.flush()
    child_done = None
    for line in child.stdout:
        if line.startswith(b'{"done": true'):
            child_done = json.loads(line)
            break
    if child_done is None:
        child.wait()
        sys.exit("spawn_client: child exited (%s) without its report" % child.returncode)
    done(spawned=child.pid, child_done=child_done)
    sys.stdin.readline()
    child.stdin.write(b"exit\n")
    child.stdin.close()
    child.stdout.read()
    if child.wait(60) != 0:
        sys.exit("spawn_client: child failed (%d)" % child.returncode)


if __name__ == "__main__":
    main()
