#!/usr/bin/python3
"""Measure what each demo page sends, from the PostgreSQL server log.

    /usr/bin/python3 tests/demo/measure.py [--raw] [--conn-max-age S]

Starts a DemoEnv, requests every page once (one request at a time), takes the
statements the server logged for that request's backend PID and prints them
grouped (`1 x A`, `100 x [B, C]`), then whether they match expected.py.  This
is how EXPECTED.md and expected.py were written; rerun it after changing a
view, the seed data or Django.  --raw also prints one raw text per shape.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import expected  # noqa: E402
from demo_env import DemoEnv  # noqa: E402


def compress(seq, max_block=4):
    """[(reps, block)] covering seq: the longest-covering repeated block first."""
    out, i = [], 0
    while i < len(seq):
        best = (1, seq[i:i + 1])
        for size in range(1, max_block + 1):
            block = seq[i:i + size]
            if len(block) < size:
                break
            reps = 1
            while seq[i + reps * size:i + (reps + 1) * size] == block:
                reps += 1
            if reps > 1 and reps * size > best[0] * len(best[1]):
                best = (reps, block)
        out.append(best)
        i += best[0] * len(best[1])
    return out


def request_statements(demo, path):
    """(raw statements of the request's backend, statements of others)."""
    mark = demo.cluster.log_mark()
    status, headers, body = demo.get(path)
    if status != 200:
        raise SystemExit("%s: HTTP %d\n%s\n%s" % (path, status, body.decode(errors="replace"),
                                                  demo.log_tail()))
    pid = int(headers["x-pg-backend-pid"])
    # The backend writes each log line before it runs the statement, so the
    # whole request is in the file by the time the response arrives.
    stmts = demo.cluster.statements_since(mark, wait=0)
    return [s for p, s in stmts if p == pid], [(p, s) for p, s in stmts if p != pid]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--raw", action="store_true", help="print one raw text per shape")
    ap.add_argument("--conn-max-age", type=int, default=0)
    args = ap.parse_args()
    ok = True
    with DemoEnv(conn_max_age=args.conn_max_age) as demo:
        print("gunicorn master %d, worker %d, %s"
              % (demo.master_pid, demo.worker_pid, demo.base_url))
        for page in expected.PAGES:
            for variant in expected.VARIANTS:
                raw, others = request_statements(demo, expected.url(page, variant))
                norm = [expected.normalize(s) for s in raw]
                print("\n== %s  %d statements" % (expected.url(page, variant), len(raw)))
                for reps, block in compress(norm):
                    if len(block) == 1:
                        print("  %3d x %s" % (reps, block[0]))
                    else:
                        print("  %3d x [" % reps)
                        for s in block:
                            print("          %s" % s)
                        print("        ]")
                if args.raw:
                    seen = set()
                    for s, n in zip(raw, norm):
                        if n not in seen:
                            seen.add(n)
                            print("  raw: %s" % s)
                try:
                    want = expected.statements(page, variant)
                except KeyError:
                    want = None
                if args.conn_max_age == 0:
                    verdict = "matches expected.py" if norm == want else "DIFFERS from expected.py"
                    ok &= norm == want
                    print("  -> %s" % verdict)
                if others:
                    ok = False
                    print("  -> other backends logged statements meanwhile: %r" % others)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
