"""libFuzzer on what pqsnoop reads from outside: SQL text (fingerprints) and
capture files (replay).  No root needed.

The two targets (tests/fuzz/fuzz_*.c) link the core objects (user/*.c but
the tracer's files) built with clang -fsanitize=fuzzer,address,undefined into
build/fuzz/; this module builds them when missing or older than a source
(`make fuzz-bins` does the same), then runs both at once for FUZZ_SECONDS
(default 20) each from the seed corpora tests/fuzz/corpus_*; a crash, a
sanitizer report or a fingerprint mismatch fails the test, with the
reproducer (libFuzzer's artifact) named in the message.  `make fuzz` runs
them for longer (FUZZ_SECONDS=600).

Reproducers of bugs found are kept in tests/fuzz/regressions/<target>/ and
replayed first.
"""

import concurrent.futures
import glob
import os
import shutil
import subprocess
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FUZZ_DIR = os.path.join(HERE, "fuzz")
OUT = os.path.join(ROOT, "build", "fuzz")
TARGETS = ["fuzz_fingerprint", "fuzz_capture"]
SECONDS = int(os.environ.get("FUZZ_SECONDS", "20"))
CLANG = os.environ.get("FUZZ_CC", "clang")

TRACER = {"main", "tracer", "attach", "procfs"}
CFLAGS = ["-g", "-O1", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-Wshadow",
          "-Wformat=2", "-Wno-unused-parameter", "-Wno-format-nonliteral",
          "-D_GNU_SOURCE", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all",
          "-I" + os.path.join(ROOT, "build"), "-I" + os.path.join(ROOT, "bpf"),
          "-I" + os.path.join(ROOT, "user"), "-I/usr/include/postgresql"]
SAN = "-fsanitize=fuzzer-no-link,address,undefined"
LIBS = ["-lpg_query", "-lelf", "-lz", "-lm"]


def core_sources():
    srcs = []
    for f in sorted(glob.glob(os.path.join(ROOT, "user", "*.c"))):
        b = os.path.basename(f)[:-2]
        if b in TRACER or b.startswith("cmd_"):
            continue
        srcs.append(f)
    return srcs


def newest_input():
    files = glob.glob(os.path.join(ROOT, "user", "*.[ch]")) + \
        glob.glob(os.path.join(ROOT, "bpf", "*.h")) + \
        glob.glob(os.path.join(FUZZ_DIR, "*.c"))
    return max(os.path.getmtime(f) for f in files)


def run(argv):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert p.returncode == 0, "%s failed:\n%s" % (" ".join(argv), p.stdout[-6000:])


def build():
    bins = [os.path.join(OUT, t) for t in TARGETS]
    if all(os.path.exists(b) for b in bins) and \
            min(os.path.getmtime(b) for b in bins) >= newest_input():
        return
    if shutil.which(CLANG) is None:
        pytest.fail("%s not found: the fuzz targets need clang (make deps)" % CLANG,
                    pytrace=False)
    objdir = os.path.join(OUT, "obj")
    os.makedirs(objdir, exist_ok=True)
    objs = []
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as ex:
        futs = []
        for src in core_sources():
            o = os.path.join(objdir, os.path.basename(src)[:-2] + ".o")
            objs.append(o)
            futs.append(ex.submit(run, [CLANG] + CFLAGS + [SAN, "-c", src, "-o", o]))
        for f in futs:
            f.result()
    lib = os.path.join(OUT, "libcore.a")
    if os.path.exists(lib):
        os.unlink(lib)
    run(["ar", "rcs", lib] + objs)
    for t in TARGETS:
        tmp = os.path.join(OUT, t + ".tmp")
        run([CLANG] + CFLAGS + [SAN, "-fsanitize=fuzzer", "-o", tmp,
                                os.path.join(FUZZ_DIR, t + ".c"), lib] + LIBS)
        os.replace(tmp, os.path.join(OUT, t))


@pytest.fixture(scope="module")
def fuzzers():
    build()
    return {t: os.path.join(OUT, t) for t in TARGETS}


def corpus_of(target):
    return os.path.join(FUZZ_DIR, "corpus_" + target[len("fuzz_"):])


@pytest.mark.parametrize("target", TARGETS)
def test_regressions_and_seeds_replay_cleanly(fuzzers, target):
    """Every seed and every saved reproducer runs without a finding."""
    files = sorted(glob.glob(os.path.join(corpus_of(target), "*")) +
                   glob.glob(os.path.join(FUZZ_DIR, "regressions", target, "*")))
    assert files
    p = subprocess.run([fuzzers[target], "-runs=0"] + files, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-8000:]


@pytest.fixture(scope="module")
def fuzz_runs(fuzzers, tmp_path_factory):
    """Both fuzzers at once (one core each): {target: (rc, log, artifacts dir)}."""
    procs = {}
    for t in TARGETS:
        work = tmp_path_factory.mktemp(t)
        new = work / "corpus"
        arts = work / "artifacts"
        new.mkdir()
        arts.mkdir()
        log = open(work / "log", "w+")
        # new inputs go to the first (temporary) directory: the seeds stay as they are
        argv = [fuzzers[t], "-max_total_time=%d" % SECONDS, "-max_len=4096",
                "-timeout=25", "-rss_limit_mb=2048", "-print_final_stats=1",
                "-artifact_prefix=%s/" % arts, str(new), corpus_of(t)]
        procs[t] = (subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT), log, arts)
    out = {}
    for t, (p, log, arts) in procs.items():
        try:
            rc = p.wait(SECONDS + 120)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        log.seek(0)
        out[t] = (rc, log.read(), arts)
        log.close()
    return out


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz(fuzz_runs, target):
    rc, log, arts = fuzz_runs[target]
    found = sorted(os.listdir(arts))
    assert rc == 0 and not found, (
        "%s exited %d; reproducers in %s: %s (save them in tests/fuzz/regressions/%s/)\n%s"
        % (target, rc, arts, found, target, log[-8000:]))
    assert "Done " in log and "stat::number_of_executed_units" in log, log[-3000:]
