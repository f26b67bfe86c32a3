#!/usr/bin/python3
"""Sustained load: pgbench -S at its highest rate, traced, for a long time.

    sudo make soak                      # 10 minutes (SOAK_SECONDS=600)
    sudo /usr/bin/python3 tests/soak.py --seconds 60

Starts a private PostgreSQL, initializes pgbench's tables, starts
`pqsnoop -p PID --json` on a waiting wrapper, then runs `pgbench -S -c 4 -j 2
-T SECONDS` under it, samples pqsnoop's memory (VmRSS) every 10 s, and at the
end checks that the traced count equals pgbench's own (its transactions plus
the 2 statements it sends at start) with zero drops.  Prints one line per
sample and a verdict; exits 1 if the count is not exact or memory grew.
Not part of `make test` (too long): the README records the latest run.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pgcluster import PgCluster  # noqa: E402


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--pqsnoop", default=os.path.join(HERE, "..", "pqsnoop"))
    a = ap.parse_args()
    cluster = PgCluster().start()
    out = tempfile.NamedTemporaryFile(prefix="pqsnoop-soak-", suffix=".jsonl", delete=False)
    try:
        env = cluster.env()
        pgbench = os.path.join(cluster.bindir, "pgbench")
        subprocess.run([pgbench, "-i", "-q", "-s", "4"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # the server's statement log would fill the disk: off for the soak
        # (a role setting outranks the server's command line)
        cluster.psql("ALTER ROLE %s SET log_statement = 'none'" % cluster.user)
        wrapper = subprocess.Popen(
            ["/bin/sh", "-c", 'read go; exec "$0" -S -n -c 4 -j 2 -T "$1"', pgbench,
             str(a.seconds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=env, text=True)
        # detection mode: the whole pipeline (fingerprints, units), and one
        # JSON document at the end instead of gigabytes of query lines
        snoop = subprocess.Popen([a.pqsnoop, "--json", "-p", str(wrapper.pid),
                                  "--wait-libpq", "60"], stdout=out,
                                 stderr=subprocess.PIPE, text=True)
        time.sleep(2)  # probes are armed on the system libpq while it waits
        wrapper.stdin.write("go\n")
        wrapper.stdin.flush()
        start = time.time()
        samples = []
        while wrapper.poll() is None:
            time.sleep(10)
            if snoop.poll() is None:
                kb = rss_kb(snoop.pid)
                samples.append(kb)
                print("soak: %4.0f s  pqsnoop RSS %6.1f MB" % (time.time() - start, kb / 1024.0),
                      flush=True)
        bench_out = wrapper.stdout.read()
        snoop.wait(60)
        err = snoop.stderr.read()
        txns = int(re.search(r"number of transactions actually processed: (\d+)", bench_out).group(1))
        tps = re.search(r"tps = ([\d.]+)", bench_out).group(1)
        with open(out.name, "rb") as f:
            summary = json.load(f)["totals"]
        expected = txns + 2
        exact = summary["queries"] == expected and summary["dropped"] == 0
        first = samples[1] if len(samples) > 1 else (samples[0] if samples else 0)
        grew = (max(samples) - first) / 1024.0 if samples else 0
        print("soak: %d s, pgbench %s tps, %d transactions; pqsnoop %d queries (expected %d), "
              "%d dropped; RSS %.1f MB after 20 s, %.1f MB at most (+%.1f MB)"
              % (a.seconds, tps, txns, summary["queries"], expected, summary["dropped"],
                 first / 1024.0, max(samples or [0]) / 1024.0, grew))
        if not exact or grew > 8:
            print("soak: FAILED%s" % ("" if exact else ": count not exact\n" + err))
            return 1
        print("soak: OK")
        return 0
    finally:
        cluster.stop()
        os.unlink(out.name)


if __name__ == "__main__":
    sys.exit(main())
