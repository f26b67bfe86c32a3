"""Runs each C unit-test program (tests/unit/test_*.c, built by make into
$UNIT_DIR) as one pytest test.  They need no root and no kernel."""

import glob
import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
UNIT_DIR = os.environ.get("UNIT_DIR", os.path.join(HERE, "..", "build", "unit"))
SOURCES = sorted(glob.glob(os.path.join(HERE, "unit", "test_*.c")))


@pytest.mark.parametrize("name", [os.path.basename(s)[:-2] for s in SOURCES])
def test_unit_program(name):
    exe = os.path.join(UNIT_DIR, name)
    assert os.path.exists(exe), "%s is not built: run make unit-bins" % exe
    # ASan's leak checker needs ptrace-free /proc access; it works as is here
    r = subprocess.run([exe], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=300)
    assert r.returncode == 0, "%s failed:\n%s\n%s" % (name, r.stdout, r.stderr)
    last = r.stdout.strip().splitlines()[-1]
    assert last.endswith(" 0 failed"), last
