"""Whatever libpq the process maps: a wheel's renamed copy, two copies at
once, or a libpq loaded only after pqsnoop attached."""

import glob
import os
import shutil

import pytest

from conftest import CLIENTS, PYTHON

pytestmark = pytest.mark.root

SYSTEM_LIBPQ = os.path.realpath("/usr/lib/x86_64-linux-gnu/libpq.so.5")
CLIENT = os.path.join(CLIENTS, "ctypes_libpq.py")


@pytest.fixture
def wheel_copy(tmp_path):
    """A copy named like psycopg2-binary's bundled libpq."""
    d = tmp_path / "psycopg2_binary.libs"
    d.mkdir()
    path = d / "libpq-1a2b3c4d.so.5.15"
    shutil.copy(SYSTEM_LIBPQ, path)
    return str(path)


def expected(copies, n):
    return ["SELECT 'copy=%d', %d" % (i, k) for i in range(copies) for k in range(n)]


def test_renamed_wheel_copy(runner, wheel_copy):
    tr = runner.trace([PYTHON, CLIENT, runner.pg.dsn(), wheel_copy, "--queries", "7"])
    assert [q["sql"] for q in tr.queries] == expected(1, 7)
    assert all(q["status"] == "ok" and q["rows"] == 1 for q in tr.queries)
    assert "libpq-1a2b3c4d.so.5.15" in tr.stderr
    assert tr.summary["queries"] == 7 and tr.summary["dropped"] == 0


def test_two_copies_in_one_process(runner, wheel_copy):
    tr = runner.trace([PYTHON, CLIENT, runner.pg.dsn(), SYSTEM_LIBPQ, wheel_copy,
                       "--queries", "4"])
    assert [q["sql"] for q in tr.queries] == expected(2, 4)
    # one connection per copy
    assert len({q["conn"] for q in tr.queries}) == 2
    assert tr.summary["queries"] == 8 and tr.summary["dropped"] == 0


def test_libpq_loaded_after_attach(runner):
    """The process loads libpq only after pqsnoop started waiting for it:
    probes are armed on the system libpq beforehand, so even the first query
    is seen."""
    client = runner.client([PYTHON, CLIENT, runner.pg.dsn(), SYSTEM_LIBPQ,
                            "--late", "--queries", "6"])
    client.wait_ready()
    snoop = runner.pqsnoop(["watch", "--json", "-p", str(client.pid),
                            "--wait-libpq", "30"])
    line = snoop.err.wait_for(lambda l: b"has not loaded libpq yet" in l, 30)
    assert line is not None, snoop.err.text()
    client.go()
    assert client.wait(60) == 0
    assert snoop.wait(20) == 0, snoop.err.text()
    recs = snoop.records()
    queries = [r for r in recs if r["type"] == "query"]
    assert [q["sql"] for q in queries] == expected(1, 6)
    assert recs[-1]["type"] == "summary" and recs[-1]["dropped"] == 0
    assert b"attached" in snoop.err.data()


def test_no_btf_is_a_clear_error(runner):
    client = runner.client([PYTHON, CLIENT, runner.pg.dsn(), SYSTEM_LIBPQ])
    client.wait_ready()
    env = dict(os.environ, PQSNOOP_TEST_BTF_PATH="/nonexistent/vmlinux")
    snoop = runner.pqsnoop(["watch", "-p", str(client.pid)], env=env)
    assert snoop.wait(20) == 1
    err = snoop.err.text().strip().splitlines()
    assert err == ["pqsnoop: this kernel has no BTF (/nonexistent/vmlinux is missing): "
                   "pqsnoop needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (5.8 or later)"]
