"""Fixtures for page tests: a runtime home with real C-MAPSS files loaded and a tiny champion model.

- ``trained_home_factory(files=..., train=...)``: build (once per session and argument set) a
  ``PM_HOME`` with the named files loaded through ``core.data.ingest.load`` and, if `train` names
  training datasets, a champion trained on them through the real snapshot + training path with
  :data:`TINY_CONFIG`. Returns the home path; tests point ``PM_HOME`` at it with monkeypatch.
- ``trained_home``: the default: train_FD001, test_FD001 and RUL_FD001 loaded, a champion
  trained on train_FD001.
- ``app_env``: monkeypatches ``PM_HOME`` to ``trained_home`` for one test and returns the path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import trains

TINY_CONFIG: dict[str, object] = {
    "epochs": 1,
    "n_trees": 20,
    "samples_per_epoch": 2048,
    "hidden": 16,
    "layers": 1,
    "device": "cpu",
    "seed": 7,
}
"""A training config that runs in seconds on two cores (the model is poor, the code path is real)."""

DEFAULT_FILES = ("train_FD001", "test_FD001", "RUL_FD001")


def _file(folder: Path, name: str) -> Path:
    packed = folder / f"{name}.txt.gz"
    return packed if packed.is_file() else folder / f"{name}.txt"


def build_home(home: Path, folder: Path, files: tuple[str, ...], train: tuple[str, ...]) -> Path:
    """Load `files` from `folder` into a fresh home and, if `train` is not empty, train a tiny champion."""
    from core.data import ingest
    from core.operations import retrain
    from core.operations.training_run import run_training
    from models.training import TrainConfig

    home.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PM_HOME", str(home))
        for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI", "PM_MAX_FILE_MB", "PM_CMAPSS_URL"):
            mp.delenv(var, raising=False)
        ingest.load([_file(folder, name) for name in files])
        if train:
            snap = retrain.export_snapshot(list(train))
            config = TrainConfig.from_dict({**TrainConfig().to_dict(), **TINY_CONFIG})
            result = run_training(snap.path, config)
            assert result["promoted"], result["reason"]
    return home


@pytest.fixture(scope="session")
@trains
def trained_home_factory(tmp_path_factory: pytest.TempPathFactory,
                         cmapss_dir: Path) -> Callable[..., Path]:
    """A function (files=DEFAULT_FILES, train=("train_FD001",)) -> a built home, cached per arguments."""
    built: dict[tuple[tuple[str, ...], tuple[str, ...]], Path] = {}

    def factory(files: tuple[str, ...] = DEFAULT_FILES, train: tuple[str, ...] = ("train_FD001",)) -> Path:
        key = (tuple(files), tuple(train))
        if key not in built:
            built[key] = build_home(tmp_path_factory.mktemp("pm_home"), cmapss_dir, *key)
        return built[key]

    return factory


@pytest.fixture(scope="session")
def trained_home(trained_home_factory: Callable[..., Path]) -> Path:
    """FD001 train/test/RUL loaded and a tiny champion trained on train_FD001."""
    return trained_home_factory()


@pytest.fixture
def app_env(trained_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point this test's ``PM_HOME`` at :func:`trained_home`."""
    monkeypatch.setenv("PM_HOME", str(trained_home))
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    return trained_home
