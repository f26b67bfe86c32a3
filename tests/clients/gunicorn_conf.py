"""gunicorn settings for the test (python -m gunicorn -c gunicorn_conf.py).

The when_ready hook runs in the master after it bound its socket and before
it spawns workers: it writes READY (with the master's PID) and, in the
default mode, then polls for the GO file, so that the test can attach pqsnoop
before any worker exists (see MODE below).  Each worker announces itself with a file
worker-<pid> in the same folder once it can serve, so the test knows both are
up before it sends requests.  Paths come from PQ_GUNICORN_DIR.
"""

import json
import os
import time

_dir = os.environ["PQ_GUNICORN_DIR"]

bind = "unix:" + os.path.join(_dir, "http.sock")
workers = 2
worker_class = "sync"
# PQ_GUNICORN_MODE:
#   "fork-after-attach" (default): preload the app (psycopg2, so libpq) in the
#       master, and hold the master in when_ready until GO exists;
#   "running": an ordinary gunicorn, already serving when pqsnoop attaches:
#       no preload (only the workers load libpq), no waiting.
MODE = os.environ.get("PQ_GUNICORN_MODE", "fork-after-attach")
preload_app = MODE == "fork-after-attach"
graceful_timeout = 5
timeout = 60
accesslog = None
loglevel = "warning"


def when_ready(server):
    tmp = os.path.join(_dir, "ready.tmp")
    with open(tmp, "w") as f:
        json.dump({"pid": os.getpid()}, f)
    os.rename(tmp, os.path.join(_dir, "ready"))
    if MODE != "fork-after-attach":
        return
    go = os.path.join(_dir, "go")
    deadline = time.time() + 120
    while not os.path.exists(go):
        if time.time() > deadline:
            raise SystemExit("gunicorn_conf: no go file after 120 s")
        time.sleep(0.02)


def post_worker_init(worker):
    open(os.path.join(_dir, "worker-%d" % os.getpid()), "w").close()
