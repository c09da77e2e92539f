"""The production simulation on a shortened stream, and prediction drift in the drift command.

One module-scoped home holds the first engines of train_FD001..FD004 and a tiny champion trained
on train_FD001 (the T0 model), so the simulation serves it, sees the FD002 quarter drift, retrains
through the real job runner and registers a new version.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.cli import main
from core.data import queries, store, writes
from core.data.cmapss import COLUMNS
from core.errors import UserError
from core.monitoring import prediction_drift, simulate, stream_plan, timelines
from core.operations import jobs, registry, retrain
from core.operations.training_run import run_training
from models.training import TrainConfig
from tests.conftest import trains

ENGINES = 8
TINY = {"epochs": 1, "n_trees": 20, "samples_per_epoch": 1024, "hidden": 16, "layers": 1, "device": "cpu", "seed": 3}
SHORT = ["--steps", "4", "--engines-per-step", "3", "--mix", "1", "--epochs", "1", "--trees", "15",
         "--max-retrains", "1"]


def _slice(folder: Path, name: str, engines: int = ENGINES) -> pd.DataFrame:
    frame = pd.read_csv(folder / f"{name}.txt.gz", sep=r"\s+", header=None, names=COLUMNS)
    return frame[frame["unit"] <= engines]


@pytest.fixture(scope="module")
@trains
def sim_home(tmp_path_factory: pytest.TempPathFactory, cmapss_dir: Path) -> Iterator[Path]:
    """First engines of the four training sets and a tiny champion trained on train_FD001."""
    home = tmp_path_factory.mktemp("sim_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PM_HOME", str(home))
        for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI"):
            mp.delenv(var, raising=False)
        with store.connect() as con:
            for subset in ("FD001", "FD002", "FD003", "FD004"):
                writes.create_dataset(con, f"train_{subset}", subset, "history", "test slice",
                                     _slice(cmapss_dir, f"train_{subset}"))
        snap = retrain.export_snapshot(["train_FD001"])
        result = run_training(snap.path, TrainConfig.from_dict({**TrainConfig().to_dict(), **TINY}))
        assert result["promoted"]
        yield home


@pytest.fixture
def home(sim_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PM_HOME", str(sim_home))
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    return sim_home


def test_plan_streams_quarters_in_order_with_next_quarter_mixed_in_at_boundaries() -> None:
    units = [list(range(1, 11)) for _ in range(4)]
    plan = stream_plan.plan_stream(units, steps=8, engines_per_step=4, mix=1, seed=0)
    assert len(plan) == 8 and all(len(batch) == 4 for batch in plan)
    quarters = [[e.quarter for e in batch] for batch in plan]
    assert quarters == [[0] * 4, [0, 0, 0, 1], [1] * 4, [1, 1, 1, 2], [2] * 4, [2, 2, 2, 3], [3] * 4, [3] * 4]
    stream_units = [e.unit for batch in plan for e in batch]
    assert stream_units == list(range(1, 33))
    sources = {(e.source, e.source_unit) for batch in plan for e in batch}
    assert len(sources) == 32, "no engine is streamed twice"
    assert plan[1][-1].source == "train_FD002"
    with pytest.raises(UserError, match="Quarter T0"):
        stream_plan.plan_stream(units, steps=4, engines_per_step=11, mix=0, seed=0)


def test_settings_refuse_bad_values() -> None:
    with pytest.raises(UserError, match="steps must be at least 4"):
        stream_plan.Settings(steps=2).validate()
    with pytest.raises(UserError, match="mixed-in engines"):
        stream_plan.Settings(engines_per_step=2, mix=2).validate()
    with pytest.raises(UserError, match="Unknown simulation setting"):
        stream_plan.Settings.from_dict({"speed": 3})


def test_sample_engines_keeps_whole_engines() -> None:
    frame = pd.DataFrame({"unit": np.repeat(np.arange(1, 11), 100), "cycle": np.tile(np.arange(1, 101), 10)})
    sample = prediction_drift.sample_engines(frame, max_rows=350, seed=1)
    assert len(sample) == 300 and sample.groupby("unit").size().eq(100).all()
    assert prediction_drift.sample_engines(frame, max_rows=5000) is frame


def test_drift_command_measures_prediction_drift_with_the_champion(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    champion = registry.champion_version()
    pair = ["drift", "--reference", "train_FD001", "--current", "train_FD002"]
    assert main([*pair, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model_version"] == champion
    assert result["prediction_psi"] > 0.25 and result["prediction_psi_reason"] is None
    assert any("Prediction PSI" in s for s in result["verdict"]["explanation"])
    assert main(["drift", "--reference", "train_FD001", "--current", "train_FD001", "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["prediction_psi"] < 0.01
    assert main(pair) == 0
    assert f"(predicted RUL of model v{champion})" in capsys.readouterr().out
    assert main([*pair, "--model", "99"]) == 1
    assert "does not exist" in capsys.readouterr().err


def _served_state(capsys: pytest.CaptureFixture[str]) -> tuple[dict, dict]:
    """What `core models --json` and `core score --dataset train_FD001 --json` say about the served model."""
    assert main(["models", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)
    assert main(["score", "--dataset", "train_FD001", "--no-record", "--json"]) == 0
    return models, json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_simulation_crosses_thresholds_and_retrains_in_its_sandbox(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models_before, scores_before = _served_state(capsys)
    champion = models_before["champion"]
    assert champion is not None and models_before["versions"][0]["created_by"] == "CLI"
    assert main(["simulate", *SHORT, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    steps = out["steps"]
    assert out["status"] == "succeeded" and [s["step"] for s in steps] == [1, 2, 3, 4]
    assert [s["quarter"] for s in steps] == ["T0", "T1", "T2", "T3"]
    assert out["registered_model"] == registry.SIM_MODEL_NAME
    sandbox = registry.list_versions(registry.SIM_MODEL_NAME)
    t0 = steps[0]["model_version"]
    assert sandbox.set_index("version").loc[t0, "copied_from"] == f"{registry.MODEL_NAME} v{champion}"
    assert any(s["crossed"] for s in steps), "FD002 drifts from FD001, so a threshold is crossed"
    retrains = [s["retrain"] for s in steps if s["retrain"]]
    assert len(retrains) == 1 and retrains[0]["state"] == "succeeded"
    new_version = retrains[0]["version"]
    assert new_version in set(sandbox["version"])
    assert sandbox.set_index("version").loc[new_version, "created_by"] == "simulation"
    assert jobs.get(retrains[0]["job"]).kind == retrain.SIM_TRAIN_KIND
    assert out["summary"]["retrains"] == 1 and t0 in out["summary"]["versions_served"]
    assert timelines.read_timeline(out["timeline_path"])["steps"] == steps

    models_after, scores_after = _served_state(capsys)
    assert models_after == models_before, "the served model's versions and aliases are untouched"
    assert scores_after == scores_before, "the served numbers are unchanged"
    assert jobs.list_jobs(limit=1, kind=retrain.TRAIN_KIND) == [], "no simulation training shows as latest training"
    with store.connect(read_only=True) as con:
        assert queries.find_dataset(con, stream_plan.STREAM_NAME) is None, "the fleet store holds no stream"
    with simulate.scratch_store(read_only=True) as con:
        stream = queries.get_dataset(con, stream_plan.STREAM_NAME)
    assert stream["role"] == "sandbox" and stream["rows"] == steps[-1]["stream_rows"] and stream["engines"] == 12


def test_models_command_lists_the_served_model_or_the_sandbox(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{registry.MODEL_NAME}: champion v") and "Validation RMSE" in text
    assert main(["models", "--simulation", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == registry.SIM_MODEL_NAME


@pytest.mark.slow
def test_simulation_job_runs_in_the_background_without_retraining(home: Path) -> None:
    versions = len(registry.list_versions(registry.SIM_MODEL_NAME))
    settings = stream_plan.Settings(steps=4, engines_per_step=2, mix=1, auto_retrain=False)
    record = simulate.start_job(settings, created_by="test")
    assert not record.exclusive and simulate.latest_job().id == record.id
    with pytest.raises(UserError, match="already running"):
        simulate.start_job(settings)
    final = jobs.wait(record.id, timeout_s=300)
    assert final.state == "succeeded", final.error
    timeline = timelines.read_timeline(final.data["timeline"])
    assert timeline["status"] == "succeeded" and len(timeline["steps"]) == 4
    assert all(s["retrain"] is None for s in timeline["steps"])
    assert final.result["summary"]["retrains"] == 0 and len(registry.list_versions(registry.SIM_MODEL_NAME)) == versions
    assert timelines.latest_timeline()[1]["job_id"] == record.id


def test_a_second_simulation_on_the_same_store_is_refused(home: Path) -> None:
    settings = stream_plan.Settings(steps=4, engines_per_step=2, mix=1, auto_retrain=False)
    with simulate._one_run(), pytest.raises(UserError, match="already running on this store"):
        simulate.run(settings, home / "refused.json")
    assert not (home / "refused.json").exists()
