"""The README promises Python 3.11 to 3.13, and `make test` proves it on the interpreters the machine has:
the unit tier on each older one, in its own .venv-3.x (`make unit-versions`), every tier on 3.13 in .venv.
A version the machine lacks is named and skipped; a run that tests nothing fails, as pytest's own does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.support import ROOT

MAKEFILE = (ROOT / "Makefile").read_text()


def unit_versions(*variables: str) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    # Not the outer make's jobserver or flags (this runs under `make test`).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(
        [make, "--no-print-directory", "unit-versions", *variables],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_make_test_runs_the_unit_tier_on_every_older_python_the_readme_promises():
    promised = re.search(r"The code runs on Python 3\.(\d+) to 3\.(\d+)\.", (ROOT / "README.md").read_text())
    assert promised, "README.md no longer says which Pythons the code runs on"
    low, high = int(promised[1]), int(promised[2])
    older = re.search(r"^OLDER_PYTHONS := (.+)$", MAKEFILE, flags=re.M)
    assert older and older[1].split() == [f"3.{minor}" for minor in range(low, high)]
    assert f'requires-python = ">=3.{low}"' in (ROOT / "pyproject.toml").read_text()
    # The newest is .venv's (python3.13, as Lambda runs), which runs every tier.
    assert f"3.{high}" in re.search(r"^PY313 := (.+)$", MAKEFILE, flags=re.M)[1]  # type: ignore[index]
    test_target = re.search(r"^test: (.*?) ## ", MAKEFILE, flags=re.M)
    assert test_target and "unit-versions" in test_target[1].split()


def test_a_python_the_machine_lacks_is_named_and_skipped():
    done = unit_versions("OLDER_PYTHONS=3.99")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Python 3.99: not on this machine, skipped" in done.stdout
    assert "• version matrix" in done.stdout


def test_a_run_that_tests_nothing_fails():
    pyproject = (ROOT / "pyproject.toml").stat().st_mtime
    ready = [
        version
        for version in ("3.11", "3.12")
        if (stamp := ROOT / f".venv-{version}" / ".installed").exists() and stamp.stat().st_mtime >= pyproject
    ]
    if not ready:
        pytest.skip("no .venv-3.11 or .venv-3.12 made yet (`make unit-versions` makes them)")
    version = ready[0]
    done = unit_versions(f"OLDER_PYTHONS={version}", f"UNIT_ARGS={__file__} -k no_such_test")
    assert done.returncode != 0, done.stdout
    assert "(exit 5)" in done.stdout
    assert f"the unit tier failed on Python {version}" in done.stdout


def test_this_interpreter_is_one_the_readme_promises():
    assert (3, 11) <= sys.version_info[:2] <= (3, 13)
