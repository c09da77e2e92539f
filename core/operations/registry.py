"""MLflow tracking and model registry for the RUL ensemble.

Every training is an MLflow run (params, per-epoch losses, validation and test metrics,
data lineage, versions, device). Its bundle is logged as plain artifacts (XGBoost JSON/UBJ,
torch state_dict, JSON) under ``bundle/`` and registered as a version of ``rul-ensemble``.
Alias ``champion`` is what the app serves; ``challenger`` is the newest candidate that the
promotion gate kept out.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core.config import ensure_home, paths
from core.errors import UserError

MODEL_NAME = "rul-ensemble"
EXPERIMENT = "rul-training"
CHAMPION = "champion"
CHALLENGER = "challenger"

_URI_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
_init_lock = threading.Lock()
_initialised: set[str] = set()


@dataclass(frozen=True)
class GateRules:
    """Promotion gate: a candidate replaces the champion only if it is not worse on validation.

    ``rmse_tolerance`` is the relative RMSE increase allowed (0.0 = must not be worse);
    ``f2_tolerance`` the absolute F2 drop allowed. Overridable by ``PM_GATE_RMSE_TOL`` and
    ``PM_GATE_F2_TOL``.
    """

    rmse_tolerance: float = 0.0
    f2_tolerance: float = 0.0

    @classmethod
    def from_env(cls) -> GateRules:
        """Rules with the tolerances read from the environment where set."""
        return cls(
            rmse_tolerance=float(os.environ.get("PM_GATE_RMSE_TOL", "0.0")),
            f2_tolerance=float(os.environ.get("PM_GATE_F2_TOL", "0.0")),
        )


def gate(candidate: dict[str, float], champion: dict[str, float] | None, rules: GateRules) -> tuple[bool, str]:
    """Decide whether ``candidate`` (validation metrics) may replace ``champion``; return (promote, reason)."""
    if champion is None:
        return True, "No champion yet: the first version becomes champion."
    cand_rmse, champ_rmse = candidate.get("val_rmse"), champion.get("val_rmse")
    cand_f2, champ_f2 = candidate.get("val_f2"), champion.get("val_f2")
    if None in (cand_rmse, champ_rmse, cand_f2, champ_f2):
        return False, "Kept out: validation RMSE or F2 is missing for the candidate or the champion."
    rmse_limit = champ_rmse * (1.0 + rules.rmse_tolerance)
    f2_limit = champ_f2 - rules.f2_tolerance
    if cand_rmse > rmse_limit:
        return False, f"Kept out: validation RMSE {cand_rmse:.2f} is worse than the champion's {champ_rmse:.2f}."
    if cand_f2 < f2_limit:
        return False, f"Kept out: validation F2 {cand_f2:.3f} is worse than the champion's {champ_f2:.3f}."
    return True, (
        f"Promoted: validation RMSE {cand_rmse:.2f} vs {champ_rmse:.2f}, F2 {cand_f2:.3f} vs {champ_f2:.3f}."
    )


def _mlflow() -> Any:
    """Import mlflow pointed at the configured tracking URI, initialising the store once per URI."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    uri = paths().mlflow_uri
    user_env = {name: os.environ.get(name) for name in _URI_ENV}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for name, value in user_env.items():  # mlflow exports the URIs; keep the user's environment as it was
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    with _init_lock:
        if uri not in _initialised:
            _ensure_experiment(mlflow)
            _initialised.add(uri)
    return mlflow


def _ensure_experiment(mlflow: Any) -> None:
    ensure_home()
    client = mlflow.MlflowClient()
    if client.get_experiment_by_name(EXPERIMENT) is None:
        client.create_experiment(EXPERIMENT, artifact_location=paths().artifacts.as_uri())


def init() -> None:
    """Create the tracking database and experiment before any concurrent use (SQLite has one writer)."""
    _mlflow()


def client() -> Any:
    """An ``MlflowClient`` on the configured tracking and registry URI."""
    return _mlflow().MlflowClient()


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}


def log_training(
    *,
    bundle_dir: Path,
    params: dict[str, Any],
    metrics: dict[str, float],
    history: list[dict[str, Any]],
    lineage: dict[str, Any],
    tags: dict[str, str],
) -> tuple[str, int]:
    """Log one training as an MLflow run, register its bundle; return (run_id, version).

    ``metrics`` are flat names (``val_rmse``, ``test_FD001_rmse`` ...); ``history`` is the
    per-epoch record (``epoch`` plus loss values) logged as stepped metrics; ``lineage``
    describes the training-data snapshot and is stored as params and a JSON artifact.
    """
    mlflow = _mlflow()
    experiment = mlflow.MlflowClient().get_experiment_by_name(EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_params({f"data_{k}": str(v)[:500] for k, v in lineage.items() if not isinstance(v, (list, dict))})
        mlflow.set_tags(tags)
        mlflow.log_metrics(_finite(metrics))
        for row in history:
            step = int(row.get("epoch", row.get("step", 0)))
            prefix = str(row.get("phase", "lstm"))
            values = {f"{prefix}_{k}": v for k, v in _finite(row).items() if k not in ("epoch", "step", "epochs")}
            if values:
                mlflow.log_metrics(values, step=step)
        mlflow.log_dict(lineage, "lineage.json")
        mlflow.log_artifacts(str(bundle_dir), artifact_path="bundle")
        run_id = run.info.run_id
        artifact_uri = run.info.artifact_uri
    c = mlflow.MlflowClient()
    try:
        c.get_registered_model(MODEL_NAME)
    except mlflow.exceptions.MlflowException:
        c.create_registered_model(MODEL_NAME, description="XGBoost + LSTM RUL ensemble for C-MAPSS fleets.")
    version = c.create_model_version(MODEL_NAME, source=f"{artifact_uri}/bundle", run_id=run_id, tags=tags)
    return run_id, int(version.version)


def alias_version(alias: str) -> int | None:
    """The version an alias points at, or None if the alias (or the model) does not exist yet."""
    mlflow = _mlflow()
    try:
        return int(mlflow.MlflowClient().get_model_version_by_alias(MODEL_NAME, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def champion_version() -> int | None:
    """The version the app serves, or None before the first training."""
    return alias_version(CHAMPION)


def version_metrics(version: int) -> dict[str, float]:
    """The metrics logged by the run behind a registered version."""
    c = client()
    mv = c.get_model_version(MODEL_NAME, str(version))
    return dict(c.get_run(mv.run_id).data.metrics)


def set_alias(alias: str, version: int) -> None:
    """Point ``alias`` at ``version`` (promotion, rollback); raises UserError for an unknown version."""
    mlflow = _mlflow()
    c = mlflow.MlflowClient()
    try:
        c.get_model_version(MODEL_NAME, str(version))
    except mlflow.exceptions.MlflowException as err:
        raise UserError(f"Model version {version} of {MODEL_NAME} does not exist.") from err
    c.set_registered_model_alias(MODEL_NAME, alias, str(version))


def clear_alias(alias: str) -> None:
    """Remove ``alias`` if it is set."""
    mlflow = _mlflow()
    try:
        mlflow.MlflowClient().delete_registered_model_alias(MODEL_NAME, alias)
    except mlflow.exceptions.MlflowException:
        return


def register_outcome(version: int, metrics: dict[str, float], rules: GateRules | None = None) -> tuple[bool, str]:
    """Apply the promotion gate to a new version and move the aliases; return (promoted, reason)."""
    current = champion_version()
    champion_metrics = version_metrics(current) if current is not None else None
    promoted, reason = gate(metrics, champion_metrics, rules or GateRules.from_env())
    c = client()
    c.set_model_version_tag(MODEL_NAME, str(version), "gate", reason)
    if promoted:
        set_alias(CHAMPION, version)
        if alias_version(CHALLENGER) == version:
            clear_alias(CHALLENGER)
    else:
        set_alias(CHALLENGER, version)
    return promoted, reason


def list_versions() -> pd.DataFrame:
    """Every registered version, newest first, with aliases, data, device and metrics."""
    mlflow = _mlflow()
    c = mlflow.MlflowClient()
    try:
        aliases = c.get_registered_model(MODEL_NAME).aliases
        versions = c.search_model_versions(f"name='{MODEL_NAME}'")
    except mlflow.exceptions.MlflowException:
        return pd.DataFrame()
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    rows = []
    for mv in versions:
        run = c.get_run(mv.run_id)
        row: dict[str, Any] = {
            "version": int(mv.version),
            "aliases": ", ".join(sorted(by_version.get(str(mv.version), []))),
            "created": pd.Timestamp(mv.creation_timestamp, unit="ms"),
            "run_id": mv.run_id,
            "data": run.data.params.get("data_datasets", ""),
            "device": run.data.tags.get("device", ""),
            "gate": mv.tags.get("gate", ""),
        }
        row.update(run.data.metrics)
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).sort_values("version", ascending=False).reset_index(drop=True)


def bundle_dir(version: int) -> Path:
    """Local folder holding the bundle of ``version``, downloaded once from MLflow's artifacts."""
    target = paths().models_cache / f"v{version}"
    if target.is_dir():
        return target
    mlflow = _mlflow()
    c = mlflow.MlflowClient()
    try:
        mv = c.get_model_version(MODEL_NAME, str(version))
    except mlflow.exceptions.MlflowException as err:
        raise UserError(f"Model version {version} of {MODEL_NAME} does not exist.") from err
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"v{version}-", dir=target.parent))
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(staging))
    except (mlflow.exceptions.MlflowException, OSError) as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"The artifacts of model version {version} could not be read: {err}") from err
    try:
        os.replace(local, target)
    except OSError:
        if not target.is_dir():
            raise
    shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve(model: str | int | None) -> int:
    """Turn ``champion``/``challenger``/a version number into a version; UserError if there is none."""
    if model is None or str(model) in (CHAMPION, ""):
        version = champion_version()
        if version is None:
            raise UserError("No model is trained yet: run `python -m core train` or press Retrain on the Models page.")
        return version
    if str(model) == CHALLENGER:
        version = alias_version(CHALLENGER)
        if version is None:
            raise UserError("There is no challenger model at the moment.")
        return version
    try:
        return int(model)
    except ValueError as err:
        raise UserError(f"'{model}' is not a model version: use a number, 'champion' or 'challenger'.") from err
