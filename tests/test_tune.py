"""Tuning with Optuna: validation-only objective, MLflow child runs, a recipe kept only when it is better."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from core.errors import UserError
from core.operations import jobs, registry, retrain, tune_job
from core.operations import tune as tune_module
from core.operations.tune import TUNED, apply_recipe, recipe_path, tune
from models.training import TrainConfig, TrainResult

TINY = TrainConfig(epochs=1, n_trees=10, early_stopping=4, samples_per_epoch=256, batch=64, threads=1, device="cpu",
                   seed=5)


@pytest.fixture
def registered_fd001(small_fd001: Path) -> Path:
    """The small FD001 home with the MLflow store initialised (tuning logs child runs)."""
    registry.init()
    return small_fd001


@pytest.mark.slow
def test_two_trials_log_child_runs_and_keep_a_better_recipe(registered_fd001: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    real_train, trained = tune_module.train, []

    def train(rows: pd.DataFrame, config: TrainConfig) -> TrainResult:
        result = real_train(rows, config)
        if not trained:  # the baseline: scored so badly that the best trial must replace it
            result.metrics["val_rmse"] = 1e6
        trained.append(config)
        return result

    monkeypatch.setattr(tune_module, "train", train)
    snap = retrain.export_snapshot(["train_FD001"])
    result = tune(snap.path, TINY, trials=2)
    assert len(trained) == 3, "the baseline and two trials are trained"
    assert result["trials"] == 2 and result["data"] == ["train_FD001"]
    assert result["recipe_saved"] is True and result["best_val_rmse"] < result["baseline_val_rmse"] == 1e6
    client = registry.client()
    experiment = client.get_experiment_by_name(registry.EXPERIMENT).experiment_id
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{result['mlflow_run_id']}'")
    assert sorted(r.info.run_name for r in children) == ["baseline", "trial-1", "trial-2"]
    for child in children:
        assert "val_rmse" in child.data.metrics and "val_rmse_lstm" in child.data.metrics
        assert not [k for k in child.data.metrics if k.startswith("test")]  # the objective never sees a test set
    scores = sorted(r.data.metrics["val_rmse"] for r in children if r.info.run_name != "baseline")
    assert result["best_val_rmse"] == pytest.approx(scores[0])
    recipe = json.loads(recipe_path().read_text())
    assert recipe["settings"] == {k: result["best_settings"][k] for k in TUNED}, "the best trial's settings"
    assert (recipe["val_rmse"], recipe["replaced_val_rmse"]) == (result["best_val_rmse"], 1e6)
    tuned = apply_recipe(TrainConfig(epochs=3))
    assert tuned.epochs == 3 and all(getattr(tuned, k) == v for k, v in recipe["settings"].items())


def test_a_recipe_no_trial_beats_is_not_saved(registered_fd001: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scores = iter([10.0, 12.0, 11.0])  # the baseline, then two worse trials
    monkeypatch.setattr(tune_module, "train", lambda rows, config: SimpleNamespace(metrics={"val_rmse": next(scores)}))
    result = tune(retrain.export_snapshot(["train_FD001"]).path, TINY, trials=2)
    assert (result["recipe_saved"], result["recipe"], result["best_val_rmse"]) == (False, None, 11.0)
    assert not recipe_path().exists() and apply_recipe(TINY) == TINY


def test_a_recipe_is_applied_and_a_broken_one_is_one_sentence(pm_home: Path) -> None:
    assert apply_recipe(TINY) == TINY
    recipe_path().parent.mkdir(parents=True, exist_ok=True)
    recipe_path().write_text(json.dumps({"settings": {"hidden": 16, "max_depth": 3}, "val_rmse": 20.0}))
    tuned = apply_recipe(TINY)
    assert (tuned.hidden, tuned.max_depth, tuned.epochs) == (16, 3, TINY.epochs)
    recipe_path().write_text("{broken")
    with pytest.raises(UserError, match="recipe .* is unreadable"):
        apply_recipe(TINY)


@pytest.mark.slow
def test_tuning_runs_as_a_background_job(registered_fd001: Path) -> None:
    snap = retrain.export_snapshot(["train_FD001"])
    job = tune_job.start_job(snap, TINY, trials=1, created_by="test")
    done = jobs.wait(job.id, timeout_s=600)
    assert done.state == "succeeded", (done.error, done.log_tail[-10:])
    assert done.kind == "tune" and done.result["trials"] == 1
    assert any("Trial 1" in line for line in done.log_tail)
