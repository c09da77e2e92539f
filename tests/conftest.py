"""Shared fixtures: an isolated runtime home, the C-MAPSS data folder, and real-file slices.

- ``pm_home``: a fresh ``PM_HOME`` under ``tmp_path`` (DuckDB, MLflow, jobs all inside it).
- ``cmapss_dir``: the folder with the twelve ``*.txt.gz`` files (``PM_DATA_DIR`` or
  ``<repo>/../shared/data/cmapss``); tests needing it are skipped with a reason if absent.
- ``cmapss_text``: ``cmapss_text("train_FD001")`` -> the uncompressed file text (cached).
- ``cmapss_slice``: ``cmapss_slice("train_FD001", units=3)`` -> the lines of the first units.
- ``fd001_store``: ``pm_home`` with train_FD001, test_FD001 and RUL_FD001 loaded.
- ``small_fd001``: ``pm_home`` with the first 12 training and 6 test engines of FD001 (and their RUL).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


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


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers used in this suite."""
    config.addinivalue_line("markers", "integration: loads all twelve C-MAPSS files (a few seconds)")


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
    if not (folder / "train_FD001.txt.gz").is_file() and not (folder / "train_FD001.txt").is_file():
        pytest.skip(f"C-MAPSS data not found in {folder}; set PM_DATA_DIR")
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
