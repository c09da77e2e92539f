"""One training, end to end: snapshot -> train -> test-set report -> MLflow run -> registry and gate.

Shared by the foreground CLI (`python -m core train`) and the background job
(`core.operations.train_job`), so both produce the same run, version and gate decision.
"""

from __future__ import annotations

import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from core.data import snapshot
from core.operations import promotion, registry, run_logging
from core.operations.gate import rules_before_training
from core.operations.tune import apply_recipe, load_recipe
from models.bundle import save_bundle
from models.device import resolve_device
from models.training import TrainConfig, XGBFit, evaluate, train

Progress = Callable[[dict[str, Any]], None]


def _versions() -> dict[str, str]:
    import duckdb
    import mlflow
    import sklearn
    import torch
    import xgboost

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "xgboost": xgboost.__version__,
        "mlflow": mlflow.__version__,
        "scikit-learn": sklearn.__version__,
        "duckdb": duckdb.__version__,
        "pandas": pd.__version__,
    }


def _prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}_{k}": v for k, v in metrics.items()}


def run_training(snapshot_path: Path, config: TrainConfig, progress: Progress | None = None,
                 fit_xgb: XGBFit | None = None, extra_tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Train on a snapshot, log and register the result; return version, metrics and the gate's decision.

    `fit_xgb` replaces the local XGBoost fit (the Dask path, :mod:`core.operations.dask_training`) and
    `extra_tags` are added to the MLflow run's tags.

    A tuned recipe (``core.operations.tune``) replaces the settings it holds in `config`. The gate's tolerances are
    checked before anything is trained (a bad one is a UserError naming its variable).

    Test-set figures leave out the evaluation engines the model was trained on (closed by an outcome, see
    :func:`models.training.evaluate`); ``test_FD00x_excluded`` counts them.

    The metrics hold the blend's and each member's validation and test RMSE (``val_rmse``,
    ``val_rmse_xgb``, ``val_rmse_lstm``, ``test_FD00x_rmse``, ``test_FD00x_rmse_xgb``,
    ``test_FD00x_rmse_lstm``), the fitted blend weights as flat ``weight_*`` numbers (logged to
    MLflow) and, in the returned dict only, as ``weights``.
    """
    started = time.time()
    rules = rules_before_training()
    snap, train_rows, test_rows, truth = snapshot.read(snapshot_path)
    recipe = load_recipe()
    config = apply_recipe(config)
    if progress:
        progress({"phase": "features", "device": resolve_device(config.device).name,
                  "message": f"Training on {', '.join(snap.datasets)} ({snap.engines} engines)."})
    result = train(train_rows, config, progress, fit_xgb)
    metrics = dict(result.metrics)
    for name in snap.test_datasets:
        if progress:
            progress({"phase": "report", "message": f"Scoring the test set {name} for the report."})
        rows = test_rows[test_rows["dataset"] == name]
        subset_truth = truth[truth["dataset"] == name]
        metrics.update(_prefixed(evaluate(result.ensemble, rows, subset_truth), f"test_{name.split('_')[-1]}"))
    device = result.ensemble.info.get("device", config.device)
    tags = {
        "device": str(device.get("name", device) if isinstance(device, dict) else device),
        "seed": str(config.seed),
        "snapshot_sha256": snap.sha256,
        "recipe": f"tuned (validation RMSE {recipe['val_rmse']:.3f})" if recipe else "default",
        **{f"version_{k}": v for k, v in _versions().items()},
        **(extra_tags or {}),
    }
    if progress:
        progress({"phase": "register", "message": "Logging the run to MLflow and registering the bundle."})
    with tempfile.TemporaryDirectory(prefix="bundle-") as tmp:
        save_bundle(result.ensemble, Path(tmp))
        run_id, version = run_logging.log_training(
            bundle_dir=Path(tmp),
            params=config.to_dict(),
            metrics=metrics,
            history=result.history,
            lineage=snap.lineage(),
            tags=tags,
            started=started,
            data=run_logging.TrainingData(snap.path, snap.sha256, train_rows, test_rows),
        )
    try:
        previous_champion = registry.champion_version()
    except registry.RegistryReadError:
        previous_champion = None  # unknown: the gate below retries the read and, failing, refuses to decide
    promoted, reason = promotion.register_outcome(version, metrics, rules)
    return {
        "version": version,
        "run_id": run_id,
        "metrics": {**metrics, "weights": dict(result.ensemble.weights)},
        "promoted": promoted,
        "reason": reason,
        "previous_champion": previous_champion,
        "device": tags["device"],
        "data": snap.datasets,
        "snapshot": snap.sha256,
    }
