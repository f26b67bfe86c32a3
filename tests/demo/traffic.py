#!/usr/bin/python3
"""Send requests to the demo's pages (standard library only).

    traffic.py --url http://127.0.0.1:PORT [--reps N] [--concurrency C]
               [--pages fk,mn,...] [--variants nplus1,fixed]

Every selected page is requested --reps times in each selected variant, by
--concurrency client threads at once (so the server's threads run pages side
by side, as in production).  Each request uses its own HTTP connection.
Exits 1 if any request fails or answers other than 200.

As a module: run_traffic(url, ...) returns a Summary and raises TrafficError.
"""

import argparse
import collections
import concurrent.futures
import http.client
import sys
import time
import urllib.parse

from expected import PAGES, VARIANTS  # the page list lives in one place

Result = collections.namedtuple("Result", "path status backend_pid seconds error")


class TrafficError(RuntimeError):
    pass


def parse_url(url):
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or not u.hostname or not u.port:
        raise ValueError("want http://HOST:PORT, got %r" % url)
    return u.hostname, u.port


def fetch(host, port, path, timeout=60):
    t = time.monotonic()
    try:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            pid = r.getheader("X-Pg-Backend-Pid")
            return Result(path, r.status, int(pid) if pid else None,
                          time.monotonic() - t, None)
        finally:
            conn.close()
    except (OSError, http.client.HTTPException) as e:
        return Result(path, None, None, time.monotonic() - t, "%s: %s" % (type(e).__name__, e))


def paths(pages=PAGES, variants=VARIANTS, reps=1):
    """Round-robin order: every page once, then again, reps times."""
    return ["/%s/%s" % (p, v) for _ in range(reps) for p in pages for v in variants]


class Summary:
    def __init__(self, results, seconds):
        self.results = results
        self.seconds = seconds
        self.failures = [r for r in results if r.error or r.status != 200]

    def by_path(self):
        out = collections.OrderedDict()
        for r in self.results:
            out.setdefault(r.path, []).append(r)
        return out

    def report(self):
        lines = ["%d requests in %.2f s, %d failed" % (len(self.results), self.seconds,
                                                      len(self.failures))]
        for path, rs in self.by_path().items():
            ok = [r for r in rs if not r.error and r.status == 200]
            avg = sum(r.seconds for r in rs) / len(rs) * 1000
            lines.append("  %-20s %3d/%-3d ok  avg %6.1f ms" % (path, len(ok), len(rs), avg))
        for r in self.failures[:10]:
            lines.append("  FAILED %s: %s" % (r.path, r.error or "HTTP %s" % r.status))
        return "\n".join(lines)


def run_traffic(url, pages=PAGES, variants=VARIANTS, reps=1, concurrency=4,
                timeout=60, check=True):
    host, port = parse_url(url)
    todo = paths(pages, variants, reps)
    t = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, concurrency)) as ex:
        results = list(ex.map(lambda p: fetch(host, port, p, timeout), todo))
    summary = Summary(results, time.monotonic() - t)
    if check and summary.failures:
        raise TrafficError(summary.report())
    return summary


def _list(arg, allowed):
    items = [x for x in arg.split(",") if x]
    bad = [x for x in items if x not in allowed]
    if bad:
        raise argparse.ArgumentTypeError("unknown %s (choose from %s)"
                                         % (", ".join(bad), ", ".join(allowed)))
    return items


def main(argv=None):
    ap = argparse.ArgumentParser(description="Send requests to the pqsnoop demo's pages.")
    ap.add_argument("--url", required=True, help="http://127.0.0.1:PORT of the demo")
    ap.add_argument("--reps", type=int, default=3, help="requests per page and variant")
    ap.add_argument("--concurrency", type=int, default=4, help="client threads")
    ap.add_argument("--pages", type=lambda a: _list(a, PAGES), default=PAGES)
    ap.add_argument("--variants", type=lambda a: _list(a, VARIANTS), default=VARIANTS)
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args(argv)
    summary = run_traffic(args.url, args.pages, args.variants, args.reps,
                          args.concurrency, args.timeout, check=False)
    print(summary.report())
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
