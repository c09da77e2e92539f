"""Helpers shared by the API and server tests: a trained home (the page tests' recipe) and request bodies.

- ``build_trained_home(home, cmapss_dir)``: FD001 train/test/RUL loaded and a tiny champion, built by
  ``tests/pages/conftest.py``'s ``build_home`` (one definition of the recipe);
- ``engine_body(home, "test_FD001", 1, engine="ESN-1")``: the predict body for a stored engine's readings,
  columns named by mnemonic (T30, Ps30...) as an operator would send them;
- ``request_readings(rows)``: any engine's readings (e.g. read from a NASA file) as such request objects;
- ``api_client(home, token, monkeypatch)``: a TestClient of the API on `home`, authorised with `token`,
  with every API limit at its default and the alert watcher not started.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

PAGE_FIXTURES = Path(__file__).resolve().parent / "pages" / "conftest.py"


def build_trained_home(home: Path, cmapss_dir: Path) -> Path:
    """FD001 loaded and a tiny champion trained on train_FD001, in `home`."""
    spec = importlib.util.spec_from_file_location("page_fixtures", PAGE_FIXTURES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_home(home, cmapss_dir, module.DEFAULT_FILES, ("train_FD001",))


def stored_readings(home: Path, dataset: str, unit: int) -> list[dict[str, Any]]:
    """The readings of one stored engine as request objects (``cycle`` plus mnemonics)."""
    from core.data import queries, store

    previous = os.environ.get("PM_HOME")
    os.environ["PM_HOME"] = str(home)
    try:
        with store.connect(read_only=True) as con:
            frame = queries.readings(con, dataset)
    finally:
        if previous is None:
            os.environ.pop("PM_HOME")
        else:
            os.environ["PM_HOME"] = previous
    return request_readings(frame[frame["unit"] == unit])


def request_readings(rows: Any) -> list[dict[str, Any]]:
    """One engine's readings (a frame with ``cycle`` and the storage-named columns) as request objects, in cycle
    order: ``cycle`` plus mnemonics, as an operator would send them."""
    from core.data.sensors import mnemonic

    ordered = rows.drop(columns=[c for c in ("unit", "dataset") if c in rows.columns]).sort_values("cycle")
    return [{("cycle" if k == "cycle" else mnemonic(k)): (int(v) if k == "cycle" else float(v)) for k, v in r.items()}
            for r in ordered.to_dict(orient="records")]


def engine_body(home: Path, dataset: str, unit: int, engine: str) -> dict[str, Any]:
    """``{"engine", "readings"}`` for a stored engine."""
    return {"engine": engine, "readings": stored_readings(home, dataset, unit)}


@contextmanager
def api_client(home: Path, token: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """(TestClient, the app's parts) of the API on `home` with bearer `token`; the alert watcher is not started."""
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from core.server import asgi

    monkeypatch.setenv("PM_HOME", str(home))
    monkeypatch.setenv("PM_API_TOKEN", token)
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI", "PM_ALERT_WEBHOOK", "PM_API_MAX_BODY_MB",
                "PM_API_MAX_READINGS", "PM_API_MAX_ENGINE_READINGS"):
        monkeypatch.delenv(var, raising=False)
    parts = asgi.build(watch=False)
    app = Starlette(routes=parts.routes, middleware=parts.middleware, lifespan=parts.lifespan)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, parts
