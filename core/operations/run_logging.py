"""Logging a training as an MLflow run and registering its model as a version of :func:`registry.model_name`.

A run holds the training's params, per-epoch losses, validation and test metrics, the snapshot's lineage, its
Parquet files as dataset inputs (``training`` and ``evaluation``, with the snapshot's digest and path as source)
and the model: an MLflow ``pyfunc`` model wrapping the bundle (:mod:`core.operations.mlflow_model`), which is what
the version registers. Its start and end times are the training's, not the logging's.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core.operations import bundle_cache, mlflow_model, registry, run_recovery

DIGEST_CHARS = 32
"""The snapshot hash's first characters, MLflow's dataset digest (it keeps at most 36)."""
MODEL_ARTIFACT = "model"
BUNDLE_ARTIFACT = "bundle"


@dataclass(frozen=True)
class TrainingData:
    """The snapshot a run trained on: its folder, content hash and the rows of its Parquet files."""

    snapshot: Path
    sha256: str
    train: pd.DataFrame
    test: pd.DataFrame


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}


def _log_inputs(mlflow: Any, data: TrainingData) -> None:
    """The snapshot's ``train.parquet`` (context ``training``) and ``test.parquet`` (``evaluation``, when it has rows)
    as the run's dataset inputs, each with the snapshot's digest and its file as source."""
    digest = data.sha256[:DIGEST_CHARS]
    for context, file, frame in (("training", "train.parquet", data.train), ("evaluation", "test.parquet", data.test)):
        if frame.empty:
            continue
        dataset = mlflow.data.from_pandas(frame, source=str(data.snapshot / file), digest=digest,
                                          name=f"snapshot-{data.sha256[:12]}-{context}")
        mlflow.log_input(dataset, context=context)


def log_training(
    *,
    bundle_dir: Path,
    params: dict[str, Any],
    metrics: dict[str, float],
    history: list[dict[str, Any]],
    lineage: dict[str, Any],
    tags: dict[str, str],
    started: float | None = None,
    data: TrainingData | None = None,
) -> tuple[str, int]:
    """Log one training as an MLflow run, register its model; return (run_id, version).

    ``metrics`` are flat names (``val_rmse``, ``test_FD001_rmse`` ...); ``history`` is the per-epoch record
    (``epoch`` plus loss values) logged as stepped metrics named by phase and model
    (``lstm_val_loss``, ``xgboost_rul_regressor_val_loss``); ``lineage`` describes the training-data snapshot and
    is stored as params and a JSON artifact. ``started`` (seconds since the epoch) is when the training began: the
    run starts then and ends when it is logged. With ``data``, the snapshot's files are logged as dataset inputs and
    the version registers an MLflow ``pyfunc`` model holding the bundle (its input example taken from
    ``data.train``); without, it registers the bundle folder alone. The version is registered inside the run
    (tagged with the bundle's content hash), so a process killed before the gate leaves a run
    :func:`run_recovery.recover` can find.
    """
    mlflow = registry.open_mlflow()
    run_recovery.recover()
    c = mlflow.MlflowClient()
    experiment = c.get_experiment_by_name(registry.EXPERIMENT)
    content = bundle_cache.content_sha256(bundle_dir)
    start_ms = int((time.time() if started is None else started) * 1000)
    created = c.create_run(experiment.experiment_id, start_time=start_ms, tags=run_recovery.process_tags())
    with mlflow.start_run(run_id=created.info.run_id) as run, tempfile.TemporaryDirectory(prefix="mlmodel-") as tmp:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_params({f"data_{k}": str(v)[:500] for k, v in lineage.items() if not isinstance(v, (list, dict))})
        tags = {**tags, "created_by": tags.get("created_by") or registry.current_creator(),
                bundle_cache.CONTENT_TAG: content}
        mlflow.set_tags(tags)
        mlflow.log_metrics(_finite(metrics))
        for row in history:
            step = int(row.get("epoch", row.get("step", 0)))
            model = str(row.get("model", "")).lower().replace(" ", "_")  # XGBoost's two boosters: one curve each
            prefix = "_".join(part for part in (str(row.get("phase", "lstm")), model) if part)
            values = {f"{prefix}_{k}": v for k, v in _finite(row).items() if k not in ("epoch", "step", "epochs")}
            if values:
                mlflow.log_metrics(values, step=step)
        mlflow.log_dict(lineage, "lineage.json")
        if data is None:
            mlflow.log_artifacts(str(bundle_dir), artifact_path=BUNDLE_ARTIFACT)
            source = f"{run.info.artifact_uri}/{BUNDLE_ARTIFACT}"
        else:
            _log_inputs(mlflow, data)
            saved = mlflow_model.save(bundle_dir, Path(tmp) / MODEL_ARTIFACT, data.train)
            mlflow.log_artifacts(str(saved), artifact_path=MODEL_ARTIFACT)
            source = f"{run.info.artifact_uri}/{MODEL_ARTIFACT}"
            tags = {**tags, registry.BUNDLE_TAG: mlflow_model.BUNDLE_PATH}
        version = new_version(source, run.info.run_id, tags)
    return run.info.run_id, version


def new_version(source: str, run_id: str, tags: dict[str, str]) -> int:
    """Register ``source`` (an MLflow model or bundle folder URI) as a new version of :func:`registry.model_name`."""
    mlflow = registry.open_mlflow()
    c = mlflow.MlflowClient()
    name = registry.model_name()
    try:
        c.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        description = "XGBoost + LSTM RUL ensemble for C-MAPSS fleets."
        if name != registry.MODEL_NAME:
            description = f"Sandbox of {registry.MODEL_NAME} (production simulation); never served by the app."
        c.create_registered_model(name, description=description)
    return int(c.create_model_version(name, source=source, run_id=run_id, tags=tags).version)


def copy_version(source_name: str, version: int) -> int:
    """Register the model of ``source_name`` v``version`` as a new version of :func:`registry.model_name` (same run)."""
    mv = registry.model_version(source_name, version)
    tags = {**mv.tags, "created_by": registry.current_creator(), "copied_from": f"{source_name} v{version}"}
    tags.pop("gate", None)
    return new_version(mv.source, mv.run_id, tags)
