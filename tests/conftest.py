"""Shared fixtures: an isolated runtime home, the C-MAPSS data folder, and real-file slices.

- ``pm_home``: a fresh ``PM_HOME`` under ``tmp_path`` (DuckDB, MLflow, jobs all inside it).
- ``cmapss_dir``: the folder with the twelve ``*.txt.gz`` files (``PM_DATA_DIR`` or
  ``<repo>/../shared/data/cmapss``); tests needing it are skipped with a reason if absent, and fail under CI
  (``CI=true``), where the files must be there.
- ``cmapss_text``: ``cmapss_text("train_FD001")`` -> the uncompressed file text (cached).
- ``cmapss_slice``: ``cmapss_slice("train_FD001", units=3)`` -> the lines of the first units.
- ``fd001_store``: ``pm_home`` with train_FD001, test_FD001 and RUL_FD001 loaded.
- ``small_fd001``: ``pm_home`` with the first 12 training and 6 test engines of FD001 (and their RUL).

Under ``CI=true`` or ``PM_NO_SKIPS=1`` a test that skips for a reason not in :data:`DECLARED_SKIPS` fails.
A fixture decorated with :func:`trains` makes every test that uses it (directly or through other fixtures) a
``slow`` one, which ``make check`` leaves out.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CMAPSS_FILES = tuple(f"{kind}_FD00{i}" for kind in ("train", "test", "RUL") for i in range(1, 5))
"""The twelve C-MAPSS files (without their ``.txt`` or ``.txt.gz`` suffix)."""
DECLARED_SKIPS: dict[str, str] = {
    r"running as root without setpriv": "test_readonly_home needs a second user: without setpriv root cannot "
                                        "start a process as one",
    r"user \d+ cannot import this checkout": "test_readonly_home needs a second user who can read the checkout; "
                                             "a clone inside a private folder (e.g. /root) is not readable",
}
"""The only reasons a test may skip when ``CI=true`` or ``PM_NO_SKIPS=1`` (a regular expression matched at the start
of the skip's reason: why such a skip is acceptable). Any other skip fails there: missing data files or a missing
Chromium must never pass as a green run."""


def strict_skips() -> bool:
    """Whether undeclared skips fail (``CI=true`` or ``PM_NO_SKIPS=1``)."""
    return os.environ.get("CI") == "true" or os.environ.get("PM_NO_SKIPS") == "1"


def declared_skip(reason: str) -> bool:
    """Whether a skip's reason is one of :data:`DECLARED_SKIPS`."""
    return any(re.match(pattern, reason) for pattern in DECLARED_SKIPS)


def _skip_reason(longrepr: object) -> str:
    """The reason of a skip report (pytest keeps it as (path, line, "Skipped: reason"))."""
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return str(text).removeprefix("Skipped: ")


def _fail_undeclared_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and strict_skips():
        reason = _skip_reason(report.longrepr)
        if not declared_skip(reason):
            report.outcome = "failed"
            report.longrepr = (f"Skipped for an undeclared reason ({reason}); with CI=true or PM_NO_SKIPS=1 only "
                               "the reasons in tests/conftest.py DECLARED_SKIPS may skip.")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Under CI, an undeclared skip of a test (in its setup, call or a skip marker) is a failure."""
    outcome = yield
    _fail_undeclared_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """Under CI, an undeclared skip of a whole module at collection is a failure."""
    outcome = yield
    _fail_undeclared_skip(outcome.get_result())


def trains(fixture_function: Callable) -> Callable:
    """Mark a fixture function (below its ``@pytest.fixture``) as one that trains a model or builds a home with a
    trained champion: the tests that use it are ``slow``."""
    fixture_function.pm_trains = True  # type: ignore[attr-defined]
    return fixture_function


def _uses_training(item: pytest.Item) -> bool:
    """Whether one of the fixtures `item` uses, directly or through other fixtures, is marked :func:`trains`."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(getattr(definition.func, "pm_trains", False)
               for definitions in info.name2fixturedefs.values() for definition in definitions)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Before ``-m`` selects: every test under tests/browser/ is a browser test, whether its module says so or not,
    and every test that uses a :func:`trains` fixture is a slow one."""
    browser = REPO_ROOT / "tests" / "browser"
    for item in items:
        if item.path.is_relative_to(browser) and item.get_closest_marker("browser") is None:
            item.add_marker(pytest.mark.browser)
        if item.get_closest_marker("slow") is None and _uses_training(item):
            item.add_marker(pytest.mark.slow)


def missing_data(message: str) -> NoReturn:
    """Skip with `message` because C-MAPSS data is missing, or fail under ``CI=true``, where it must be present."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: the twelve C-MAPSS files must be present)")
    pytest.skip(message)


def data_dir() -> Path:
    """Where the C-MAPSS files are: ``PM_DATA_DIR`` or ``<repo>/../shared/data/cmapss``."""
    return Path(os.environ.get("PM_DATA_DIR") or REPO_ROOT.parent / "shared" / "data" / "cmapss").resolve()


def cmapss_file(folder: Path, name: str) -> Path:
    """The file for dataset `name` in `folder`: ``name.txt.gz`` if present, else ``name.txt``."""
    packed = folder / f"{name}.txt.gz"
    return packed if packed.is_file() else folder / f"{name}.txt"


@lru_cache(maxsize=16)
def _text(folder: str, name: str) -> str:
    path = cmapss_file(Path(folder), name)
    return gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()


@pytest.fixture
def pm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty runtime home; every path in ``core.config`` resolves inside it.

    A background job still active at the end of the test (e.g. the first training a load into a store without a
    model starts by itself) is cancelled, so no job outlives its test.
    """
    home = tmp_path / "pm_home"
    home.mkdir()
    monkeypatch.setenv("PM_HOME", str(home))
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI", "PM_MAX_FILE_MB", "PM_CMAPSS_URL"):
        monkeypatch.delenv(var, raising=False)
    yield home
    if (home / "jobs").is_dir():
        from core.errors import UserError
        from core.operations import job_records, jobs

        for path in sorted((home / "jobs").glob("*.json")):  # the records on disk, whatever a test patched
            record = job_records.read_record(path)
            if record.state in job_records.ACTIVE_STATES and record.pid is not None:
                try:
                    jobs.cancel(record.id)
                except UserError:
                    assert job_records.read_record(path).finished, f"job {record.id} could not be stopped"


@pytest.fixture(scope="session")
def cmapss_dir() -> Path:
    """The folder holding the twelve C-MAPSS ``*.txt.gz`` (or ``*.txt``) files."""
    folder = data_dir()
    missing = [name for name in CMAPSS_FILES if not cmapss_file(folder, name).is_file()]
    if missing:
        missing_data(f"C-MAPSS data not found in {folder} ({len(missing)} of the twelve files missing, e.g. "
                     f"{missing[0]}); set PM_DATA_DIR")
    return folder


@pytest.fixture(scope="session")
def cmapss_text(cmapss_dir: Path) -> Callable[[str], str]:
    """A function: dataset name (``train_FD001``, ``RUL_FD003``...) -> the file's uncompressed text."""
    return lambda name: _text(str(cmapss_dir), name)


@pytest.fixture(scope="session")
def cmapss_slice(cmapss_text: Callable[[str], str]) -> Callable[..., list[str]]:
    """A function: (name, units=2) -> the raw lines (with NASA's trailing spaces) of the first units."""

    def lines(name: str, units: int = 2) -> list[str]:
        out = []
        for line in cmapss_text(name).splitlines():
            if int(line.split()[0]) > units:
                break
            out.append(line)
        return out

    return lines


@pytest.fixture
def schema_1_store(pm_home: Path) -> Path:
    """A store as schema 1 wrote it (train/test splits, no roles, no engines table): one dataset, no readings."""
    import duckdb

    from core import config

    path = config.paths().duckdb
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE datasets (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL UNIQUE, subset VARCHAR "
                "NOT NULL, split VARCHAR NOT NULL, source VARCHAR NOT NULL, sha256 VARCHAR, rows BIGINT NOT NULL "
                "DEFAULT 0, engines INTEGER NOT NULL DEFAULT 0, loaded_at TIMESTAMP NOT NULL)")
    con.execute("CREATE TABLE feedback (created_at TIMESTAMP NOT NULL, dataset_id INTEGER NOT NULL, unit INTEGER "
                "NOT NULL, cycle INTEGER NOT NULL, outcome VARCHAR NOT NULL, note VARCHAR)")
    con.execute("INSERT INTO datasets VALUES (1, 'train_FD001', 'FD001', 'train', 'x', 'abc', 0, 0, now())")
    con.close()
    return path


@pytest.fixture
def fd001_store(pm_home: Path, cmapss_dir: Path) -> Path:
    """``pm_home`` with train_FD001, test_FD001 and RUL_FD001 loaded; returns the home."""
    from core.data import ingest

    ingest.load([cmapss_file(cmapss_dir, f"{n}_FD001") for n in ("train", "test", "RUL")])
    return pm_home


@pytest.fixture
def small_fd001(pm_home: Path, tmp_path: Path, cmapss_slice: Callable[..., list[str]],
                cmapss_text: Callable[[str], str]) -> Path:
    """``pm_home`` with the first 12 training and 6 test engines of FD001 (and their true RUL) loaded."""
    from core.data import ingest

    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "train_FD001.txt").write_text("\n".join(cmapss_slice("train_FD001", units=12)) + "\n")
    (folder / "test_FD001.txt").write_text("\n".join(cmapss_slice("test_FD001", units=6)) + "\n")
    (folder / "RUL_FD001.txt").write_text("\n".join(cmapss_text("RUL_FD001").splitlines()[:6]) + "\n")
    ingest.load([folder])
    return pm_home
