"""Tuning with Optuna: validation-only objective, MLflow child runs, a recipe kept only when it is better."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import UserError
from core.operations import jobs, registry, retrain, tune_job
from core.operations.tune import TUNED, apply_recipe, recipe_path, tune
from models.training import TrainConfig

TINY = TrainConfig(epochs=1, n_trees=10, early_stopping=4, samples_per_epoch=256, batch=64, threads=1, device="cpu",
                   seed=5)


@pytest.fixture
def registered_fd001(small_fd001: Path) -> Path:
    """The small FD001 home with the MLflow store initialised (tuning logs child runs)."""
    registry.init()
    return small_fd001


def test_two_trials_log_child_runs_and_keep_only_a_better_recipe(registered_fd001: Path) -> None:
    snap = retrain.export_snapshot(["train_FD001"])
    result = tune(snap.path, TINY, trials=2)
    assert result["trials"] == 2 and result["data"] == ["train_FD001"]
    assert result["recipe_saved"] == (result["best_val_rmse"] < result["baseline_val_rmse"])
    assert recipe_path().is_file() == result["recipe_saved"]
    client = registry.client()
    experiment = client.get_experiment_by_name(registry.EXPERIMENT).experiment_id
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{result['mlflow_run_id']}'")
    assert sorted(r.info.run_name for r in children) == ["baseline", "trial-1", "trial-2"]
    for child in children:
        assert "val_rmse" in child.data.metrics and "val_rmse_lstm" in child.data.metrics
        assert not [k for k in child.data.metrics if k.startswith("test")]  # the objective never sees a test set
    scores = sorted(r.data.metrics["val_rmse"] for r in children if r.info.run_name != "baseline")
    assert result["best_val_rmse"] == pytest.approx(scores[0])
    if result["recipe_saved"]:
        recipe = json.loads(recipe_path().read_text())
        assert set(recipe["settings"]) == set(TUNED) and recipe["val_rmse"] < recipe["replaced_val_rmse"]
        tuned = apply_recipe(TrainConfig(epochs=3))
        assert tuned.epochs == 3 and all(getattr(tuned, k) == v for k, v in recipe["settings"].items())


def test_a_recipe_is_applied_and_a_broken_one_is_one_sentence(pm_home: Path) -> None:
    assert apply_recipe(TINY) == TINY
    recipe_path().parent.mkdir(parents=True, exist_ok=True)
    recipe_path().write_text(json.dumps({"settings": {"hidden": 16, "max_depth": 3}, "val_rmse": 20.0}))
    tuned = apply_recipe(TINY)
    assert (tuned.hidden, tuned.max_depth, tuned.epochs) == (16, 3, TINY.epochs)
    recipe_path().write_text("{broken")
    with pytest.raises(UserError, match="recipe .* is unreadable"):
        apply_recipe(TINY)


def test_tuning_runs_as_a_background_job(registered_fd001: Path) -> None:
    snap = retrain.export_snapshot(["train_FD001"])
    job = tune_job.start_job(snap, TINY, trials=1, created_by="test")
    done = jobs.wait(job.id, timeout_s=600)
    assert done.state == "succeeded", (done.error, done.log_tail[-10:])
    assert done.kind == "tune" and done.result["trials"] == 1
    assert any("Trial 1" in line for line in done.log_tail)
