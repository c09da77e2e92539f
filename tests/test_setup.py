"""First-run setup behind `make run`: data from PM_DATA_DIR or a download, then a first model in the background."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from core import cli
from core.data import queries, store
from core.operations import jobs, registry, retrain
from models.training import TrainConfig

TINY = {"epochs": 1, "n_trees": 10, "samples_per_epoch": 512, "hidden": 8, "layers": 1, "device": "cpu"}


@pytest.fixture
def small_folder(tmp_path: Path, cmapss_slice: Callable[..., list[str]]) -> Path:
    folder = tmp_path / "cmapss"
    folder.mkdir()
    (folder / "train_FD001.txt").write_text("\n".join(cmapss_slice("train_FD001", units=8)) + "\n")
    return folder


def _setup(capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    assert cli.main(["setup", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_setup_loads_pm_data_dir_and_trains_a_first_model(pm_home: Path, small_folder: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PM_DATA_DIR", str(small_folder))
    monkeypatch.setattr(retrain, "make_config", lambda **_: TrainConfig.from_dict({**TrainConfig().to_dict(), **TINY}))
    result = _setup(capsys)
    assert result["data"].startswith("Loaded 1 datasets")
    assert "in the background (job " in result["model"]
    job = jobs.list_jobs(limit=1)[0]
    assert jobs.wait(job.id, timeout_s=600).state == "succeeded"
    assert registry.champion_version() == 1

    again = _setup(capsys)
    assert again["data"] == "1 datasets are already loaded."
    assert again["model"] == "Serving rul-ensemble v1."


def test_setup_without_network_or_folder_still_lets_the_dashboard_start(pm_home: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    monkeypatch.delenv("PM_DATA_DIR", raising=False)
    monkeypatch.setenv("PM_CMAPSS_URL", f"http://127.0.0.1:{closed_port}/cmapss.zip")
    result = _setup(capsys)
    assert result["data"].startswith("No data loaded: Could not download")
    assert "Data page" in result["data"]
    assert result["model"].startswith("No model trained yet: No history data is loaded")
    with store.connect(read_only=True) as con:
        assert queries.list_datasets(con).empty
