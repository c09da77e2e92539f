"""Where runtime state lives. Every path is overridable by environment variable.

- ``PM_HOME``: root of runtime state (default ``<repo>/data``).
- ``PM_DUCKDB``: the DuckDB file (default ``$PM_HOME/fleet.duckdb``).
- ``MLFLOW_TRACKING_URI``: any MLflow tracking URI (default embedded sqlite
  ``$PM_HOME/mlflow.db`` with artifacts under ``$PM_HOME/mlartifacts``).
- ``PM_DATA_DIR``: a folder holding the C-MAPSS files (optional).
- ``PM_CMAPSS_URL``: where to download NASA's zip from when no folder is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
NASA_CMAPSS_URL = "https://phm-datasets.s3.amazonaws.com/NASA/6.+Turbofan+Engine+Degradation+Simulation+Data+Set.zip"


@dataclass(frozen=True)
class Paths:
    """Resolved locations of the runtime state."""

    home: Path
    duckdb: Path
    mlflow_uri: str
    artifacts: Path
    jobs: Path
    snapshots: Path
    models_cache: Path
    downloads: Path


def paths() -> Paths:
    """Resolve the runtime paths from the environment (read on every call, so tests can change it)."""
    home = Path(os.environ.get("PM_HOME", REPO_ROOT / "data")).expanduser().resolve()
    duck = Path(os.environ.get("PM_DUCKDB", home / "fleet.duckdb")).expanduser().resolve()
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(home / 'mlflow.db').as_posix()}"
    return Paths(
        home=home,
        duckdb=duck,
        mlflow_uri=uri,
        artifacts=home / "mlartifacts",
        jobs=home / "jobs",
        snapshots=home / "snapshots",
        models_cache=home / "models",
        downloads=home / "downloads",
    )


def data_dir() -> Path | None:
    """The folder named by ``PM_DATA_DIR``, if set."""
    value = os.environ.get("PM_DATA_DIR")
    return Path(value).expanduser().resolve() if value else None


def cmapss_url() -> str:
    """URL of NASA's C-MAPSS zip (``PM_CMAPSS_URL`` overrides it, e.g. for a local test server)."""
    return os.environ.get("PM_CMAPSS_URL", NASA_CMAPSS_URL)


def ensure_home() -> Paths:
    """Create the runtime folders if missing and return the paths."""
    p = paths()
    for folder in (p.home, p.artifacts, p.jobs, p.snapshots, p.models_cache, p.downloads):
        folder.mkdir(parents=True, exist_ok=True)
    p.duckdb.parent.mkdir(parents=True, exist_ok=True)
    return p


@contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set these environment variables (None unsets one) until the block ends, then restore what was there."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
