"""``TRIO_POOL_STRICT=1`` (``tests/conftest.py``) turns skips into a failed run.

Each case runs pytest in a subprocess on a small test file, with the
suite's conftest loaded as a plugin, and checks the exit status and report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SAMPLE = """
import pytest

def test_passes():
    pass

def test_needs_a_daemon():
    pytest.skip("needs frobd: apt-get install frob")

@pytest.mark.xfail(reason="known bug", strict=True)
def test_known_bug():
    assert False
"""

ALL_PASS = """
def test_passes():
    pass
"""


def run_pytest(tmp_path: Path, source: str, strict: str | None) -> tuple[int, str]:
    (tmp_path / "test_sample.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "TRIO_POOL_STRICT"}
    if strict is not None:
        env["TRIO_POOL_STRICT"] = strict
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), env.get("PYTHONPATH")])
    )
    argv = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p"]
    argv += ["no:cacheprovider", "-q", "--rootdir", str(tmp_path), str(tmp_path)]
    done = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("strict", [None, "", "0"])
def test_skips_are_fine_by_default(tmp_path: Path, strict: str | None) -> None:
    status, output = run_pytest(tmp_path, SAMPLE, strict)
    assert status == 0, output
    assert "1 passed, 1 skipped, 1 xfailed" in output


def test_strict_mode_fails_a_run_with_a_skip(tmp_path: Path) -> None:
    status, output = run_pytest(tmp_path, SAMPLE, "1")
    assert status == 1, output
    # The report says which test skipped and why, so CI's log is enough.
    expected = (
        "SKIPPED test_sample.py::test_needs_a_daemon: needs frobd: apt-get install frob"
    )
    assert expected in output
    assert "test_known_bug" not in output.split("skipped tests fail the run")[1]


def test_strict_mode_passes_a_run_without_skips(tmp_path: Path) -> None:
    status, output = run_pytest(tmp_path, ALL_PASS, "1")
    assert status == 0, output
    assert "skipped tests fail the run" not in output
