"""The suite's own rules: under CI a skip for an undeclared reason fails the run, and so do missing data files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import DECLARED_SKIPS, REPO_ROOT

SKIPPING = '''
import pytest


def test_skips_for_a_declared_reason():
    pytest.skip("running as root without setpriv, so no process can be denied writing the home")


def test_skips_for_any_other_reason():
    pytest.skip("the moon is full")


@pytest.mark.skip(reason="not today")
def test_marked_skip():
    pass


def test_needs_the_data(cmapss_dir):
    pass
'''


def _run(folder: Path, **env: str) -> subprocess.CompletedProcess:
    """Run the skipping tests above with the suite's conftest as a plugin, in a clean environment plus `env`."""
    (folder / "test_skipping.py").write_text(SKIPPING)
    variables = {k: v for k, v in os.environ.items() if k not in ("CI", "PM_NO_SKIPS", "PM_DATA_DIR")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", "-rfs", "-c", os.devnull,
                           "--rootdir", str(folder), str(folder / "test_skipping.py")],
                          cwd=REPO_ROOT, env={**variables, "PM_DATA_DIR": str(folder / "no-data"), **env},
                          capture_output=True, text=True, timeout=120, check=False)


def test_locally_every_skip_is_a_skip(tmp_path: Path) -> None:
    done = _run(tmp_path)
    assert done.returncode == 0, done.stdout
    assert "4 skipped" in done.stdout


def test_with_no_skips_only_declared_reasons_skip(tmp_path: Path) -> None:
    done = _run(tmp_path, PM_NO_SKIPS="1")
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 skipped, 2 errors" in done.stdout  # a skip in setup that fails is an error
    assert "Skipped for an undeclared reason (the moon is full)" in done.stdout
    assert "Skipped for an undeclared reason (not today)" in done.stdout


def test_under_ci_missing_data_fails_and_undeclared_skips_fail(tmp_path: Path) -> None:
    done = _run(tmp_path, CI="true")
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 skipped, 2 errors" in done.stdout  # a skip in setup that fails is an error
    assert "the twelve C-MAPSS files must be present" in done.stdout


def test_every_declared_reason_says_why() -> None:
    assert DECLARED_SKIPS and all(len(why) > 20 for why in DECLARED_SKIPS.values())


TRAINING = '''
import pytest

from tests.conftest import trains


@pytest.fixture(scope="module")
@trains
def model():
    return 1


@pytest.fixture
def served(model):
    return model


def test_through_another_fixture(served):
    pass


def test_without_a_model():
    pass
'''


def test_a_test_that_reaches_a_training_fixture_is_left_out_of_the_fast_lane(tmp_path: Path) -> None:
    (tmp_path / "test_training.py").write_text(TRAINING)
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", "-c", os.devnull,
                           "--rootdir", str(tmp_path), "--collect-only", "-m", "not slow",
                           str(tmp_path / "test_training.py")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout
    assert "test_without_a_model" in done.stdout and "test_through_another_fixture" not in done.stdout
    assert "1/2 tests collected (1 deselected)" in done.stdout
