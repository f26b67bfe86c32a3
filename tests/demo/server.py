#!/usr/bin/python3
"""Run the demo by hand: private PostgreSQL + seeded blog + gunicorn.

    /usr/bin/python3 tests/demo/server.py [--conn-max-age S] [--threads N]

Prints the URL, the gunicorn master and worker PIDs and the environment to
reach the database, then serves until Ctrl-C (or SIGTERM) and cleans up.
Meanwhile, in other shells:

    sudo ./pqsnoop -p MASTER_PID -d 30
    /usr/bin/python3 tests/demo/traffic.py --url URL --reps 5

The gunicorn command line it runs (DemoEnv.gunicorn_command()) is
    /usr/bin/python3 -m gunicorn --chdir tests/demo --workers 1 --threads 4 \
        --worker-class gthread --bind 127.0.0.1:0 --graceful-timeout 5 \
        --log-level info demosite.wsgi:application
with PGHOST/PGPORT/PGUSER/PGDATABASE set to the private cluster; after
`manage.py migrate` and `manage.py seed` on a fresh database it can be run
against any PostgreSQL the same way.
"""

import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import expected  # noqa: E402
from demo_env import DemoEnv  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description="Serve the pqsnoop demo until Ctrl-C.")
    ap.add_argument("--conn-max-age", type=int, default=0,
                    help="Django CONN_MAX_AGE (default 0: a connection per request)")
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    # SIGTERM -> SystemExit, so the `with` below still stops everything.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with DemoEnv(conn_max_age=args.conn_max_age, threads=args.threads) as demo:
        env = demo.env()
        print("demo at %s" % demo.base_url)
        print("gunicorn master pid %d, worker pid %d" % (demo.master_pid, demo.worker_pid))
        print("database: PGHOST=%s PGPORT=%s PGUSER=%s PGDATABASE=%s"
              % (env["PGHOST"], env["PGPORT"], env["PGUSER"], env["PGDATABASE"]))
        print("server log (log_statement=all): %s" % demo.cluster.logfile)
        print("pages:")
        for page in expected.PAGES:
            for variant in expected.VARIANTS:
                print("  %s%-20s %4d statements per request"
                      % (demo.base_url, expected.url(page, variant),
                         expected.count(page, variant)))
        print("Ctrl-C to stop.", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
        finally:
            print("stopping", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
