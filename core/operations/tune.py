"""Hyper-parameter tuning of both members with Optuna, on validation engines only.

Every trial trains the whole ensemble (XGBoost and LSTM settings drawn together) on the
snapshot's training engines and is scored by the blend's validation RMSE: held-out training
engines, never a test set. The current recipe is trained first as the baseline, on the same
split, seed and budget. The baseline and each trial are MLflow child runs under one parent run.

The best settings become the recipe (``$PM_HOME/recipe.json``) only when they beat the current
recipe's validation RMSE; :func:`apply_recipe` puts them into every later training's config.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.config import ensure_home, paths
from core.data import snapshot
from core.errors import UserError
from core.operations import registry, run_recovery
from models.training import TrainConfig, train

Progress = Callable[[dict[str, Any]], None]
TUNED = ("max_depth", "learning_rate", "subsample", "colsample", "min_child_weight",
         "hidden", "layers", "dropout", "lr", "conv", "fail_weight", "lstm_stats")
"""The settings a tuning run searches; everything else (budgets, device, seed) stays as given."""
SUMMARY_SETS = ("mean10,mean30,meanall,slope60,slopeall", "mean10,meanall,slopeall")
"""The LSTM summary-channel sets tried (the best differed between subsets, see BENCHMARKS.md)."""


def recipe_path() -> Path:
    """Where the tuned recipe lives: ``$PM_HOME/recipe.json``."""
    return paths().home / "recipe.json"


def load_recipe() -> dict[str, Any] | None:
    """The saved recipe (settings, validation RMSE, where it came from), or None; UserError if unreadable."""
    path = recipe_path()
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        settings = dict(data["settings"])
        TrainConfig.from_dict(settings)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as err:
        raise UserError(f"The tuned recipe {path} is unreadable ({type(err).__name__}); delete it or tune again.") \
            from err
    return data


def apply_recipe(config: TrainConfig) -> TrainConfig:
    """`config` with the saved recipe's settings in place of its own (unchanged without a recipe)."""
    recipe = load_recipe()
    if recipe is None:
        return config
    return TrainConfig.from_dict({**config.to_dict(), **recipe["settings"]})


def _suggest(trial: Any) -> dict[str, Any]:
    return {
        "max_depth": trial.suggest_int("max_depth", 3, 8),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "subsample": trial.suggest_float("subsample", 0.6, 1.0),
        "colsample": trial.suggest_float("colsample", 0.3, 1.0),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 20.0, log=True),
        "hidden": trial.suggest_categorical("hidden", [32, 64, 96]),
        "layers": trial.suggest_int("layers", 1, 2),
        "dropout": trial.suggest_float("dropout", 0.0, 0.4),
        "lr": trial.suggest_float("lr", 3e-4, 3e-3, log=True),
        "conv": trial.suggest_categorical("conv", [0, 32, 64]),
        "fail_weight": trial.suggest_float("fail_weight", 0.03, 1.0, log=True),
        "lstm_stats": trial.suggest_categorical("lstm_stats", list(SUMMARY_SETS)),
    }


def _log_child(client: Any, experiment_id: str, parent: str, name: str, settings: dict[str, Any],
               metrics: dict[str, float]) -> None:
    run = client.create_run(experiment_id, run_name=name,
                            tags={"mlflow.parentRunId": parent, "kind": "tune-trial", **run_recovery.process_tags()})
    for key, value in settings.items():
        client.log_param(run.info.run_id, key, str(value))
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            client.log_metric(run.info.run_id, key, float(value))
    client.set_terminated(run.info.run_id)


def tune(snapshot_path: Path, base: TrainConfig, trials: int, progress: Progress | None = None) -> dict[str, Any]:
    """Score the current recipe, then run `trials` Optuna trials on a snapshot's training rows; save a better
    recipe. `base` fixes everything not tuned (budgets, device, seed)."""
    import optuna

    if trials < 1:
        raise UserError("Tuning needs at least one trial.")
    emit = progress or (lambda _event: None)
    snap, rows, _, _ = snapshot.read(snapshot_path)
    current = apply_recipe(base)
    client = registry.client()
    experiment_id = client.get_experiment_by_name(registry.EXPERIMENT).experiment_id
    parent = client.create_run(experiment_id, run_name=f"tune {', '.join(snap.datasets)}",
                               tags={"kind": "tune", "snapshot_sha256": snap.sha256,
                                     **run_recovery.process_tags()}).info.run_id
    started = time.perf_counter()
    emit({"phase": "tune", "epoch": 0, "epochs": trials, "message": "Scoring the current recipe (baseline)"})
    baseline_metrics = train(rows, current).metrics
    baseline = float(baseline_metrics["val_rmse"])
    _log_child(client, experiment_id, parent, "baseline", {k: getattr(current, k) for k in TUNED}, baseline_metrics)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=base.seed))

    def objective(trial: Any) -> float:
        settings = _suggest(trial)
        emit({"phase": "tune", "epoch": trial.number, "epochs": trials,
              "message": f"Trial {trial.number + 1} of {trials}"})
        config = TrainConfig.from_dict({**current.to_dict(), **settings})
        config.validate()
        metrics = train(rows, config).metrics
        _log_child(client, experiment_id, parent, f"trial-{trial.number + 1}", settings, metrics)
        emit({"phase": "tune", "epoch": trial.number + 1, "epochs": trials, "val_loss": metrics["val_rmse"],
              "message": f"Trial {trial.number + 1}: validation RMSE {metrics['val_rmse']:.3f} "
                         f"(baseline {baseline:.3f})"})
        return float(metrics["val_rmse"])

    study.optimize(objective, n_trials=trials)
    best = study.best_trial
    best_rmse = best.value
    assert best_rmse is not None, "optuna's best trial is a completed one, which always has a value"
    improved = best_rmse < baseline
    if improved:
        ensure_home()
        record = {"settings": {k: best.params[k] for k in TUNED}, "val_rmse": best_rmse,
                  "replaced_val_rmse": baseline, "datasets": snap.datasets, "snapshot_sha256": snap.sha256,
                  "trials": trials, "mlflow_run_id": parent}
        recipe_path().write_text(json.dumps(record, indent=1), encoding="utf-8")
    for key, value in {"baseline_val_rmse": baseline, "best_val_rmse": best_rmse}.items():
        client.log_metric(parent, key, value)
    client.set_tag(parent, "recipe_saved", str(improved).lower())
    client.set_terminated(parent)
    return {"trials": trials, "baseline_val_rmse": baseline, "best_val_rmse": best_rmse,
            "best_trial": best.number + 1, "best_settings": best.params, "recipe_saved": improved,
            "recipe": str(recipe_path()) if improved else None, "mlflow_run_id": parent, "data": snap.datasets,
            "seconds": time.perf_counter() - started}
