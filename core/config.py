"""Where runtime state lives. Every path is overridable by environment variable.

- ``PM_HOME``: root of runtime state (default ``<repo>/data``).
- ``PM_DUCKDB``: the DuckDB file (default ``$PM_HOME/fleet.duckdb``).
- ``MLFLOW_TRACKING_URI``: any MLflow tracking URI (default embedded sqlite
  ``$PM_HOME/mlflow.db`` with artifacts under ``$PM_HOME/mlartifacts``).
- ``PM_DATA_DIR``: a folder holding the C-MAPSS files (optional).
- ``PM_CMAPSS_URL``: where to download NASA's zip from when no folder is given.

Numeric settings (limits, timeouts, tolerances) are read by :func:`env_number`, the one place such a value is
checked.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
NASA_CMAPSS_URL = "https://phm-datasets.s3.amazonaws.com/NASA/6.+Turbofan+Engine+Degradation+Simulation+Data+Set.zip"


def env_number(name: str, default: float, low: float, high: float = math.inf, *, high_open: bool = False,
               whole: bool = False, meaning: str = "") -> float:
    """The number environment variable `name` holds, `default` when it is unset or blank.

    Accepted: a finite number from `low` to `high` (below `high` with `high_open`), a whole one with `whole`.
    Anything else raises UserError, one sentence naming the variable, its value, the accepted range and, when
    given, `meaning` (what the number is, e.g. "the largest file loaded, in megabytes").
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    above_low = value >= low
    below_high = value < high if high_open else value <= high
    if math.isfinite(value) and above_low and below_high and (not whole or value.is_integer()):
        return value
    kind = "a whole number" if whole else "a number"
    if math.isinf(high):
        accepted = f"{kind} of at least {low:g}"
    elif high_open:
        accepted = f"{kind} from {low:g} up to (not including) {high:g}"
    else:
        accepted = f"{kind} from {low:g} to {high:g}"
    raise UserError(f"{name} is '{raw}', which is not accepted: set it to {accepted}"
                    f"{', ' + meaning if meaning else ''}.")


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
    """The runtime paths the environment names (read on every call, so tests can change it; resolved once per
    setting and working folder, as every request of the server asks for them several times)."""
    return _resolve(os.environ.get("PM_HOME"), os.environ.get("PM_DUCKDB"), os.environ.get("MLFLOW_TRACKING_URI"),
                    os.getcwd())


@functools.lru_cache(maxsize=32)
def _resolve(home_env: str | None, duck_env: str | None, uri_env: str | None, cwd: str) -> Paths:
    """:class:`Paths` for these values of ``PM_HOME``, ``PM_DUCKDB`` and ``MLFLOW_TRACKING_URI``, relative
    ones taken from `cwd`."""
    base = Path(cwd)
    home = (base / Path(home_env or REPO_ROOT / "data").expanduser()).resolve()
    duck = (base / Path(duck_env).expanduser()).resolve() if duck_env else (home / "fleet.duckdb").resolve()
    uri = uri_env or f"sqlite:///{(home / 'mlflow.db').as_posix()}"
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
        _set(values)
        yield
    finally:
        _set(saved)


def _set(values: Mapping[str, str | None]) -> None:
    """Set these environment variables; None unsets one."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
