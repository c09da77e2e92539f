"""MLflow tracking and model registry for the RUL ensemble.

Every training is an MLflow run (params, per-epoch losses, validation and test metrics,
data lineage, versions, device). Its bundle is logged as plain artifacts (XGBoost JSON/UBJ,
torch state_dict, JSON) under ``bundle/`` and registered as a version of ``rul-ensemble``.
Alias ``champion`` is what the app serves; ``challenger`` is the newest candidate that the
promotion gate kept out.

Every function works on the registered model named by ``PM_REGISTERED_MODEL`` (default
``rul-ensemble``). The production simulation runs inside :func:`sandbox`, which points that
variable at ``rul-ensemble-sim`` for its own process and the training jobs it starts, so its
versions and aliases never touch the model the app serves. Each version is tagged
``created_by`` (setup, dashboard, cli, simulation).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core.config import ensure_home, paths
from core.errors import UserError
from core.operations.job_records import RECORD_ENV, read_record

MODEL_NAME = "rul-ensemble"
SIM_MODEL_NAME = "rul-ensemble-sim"
MODEL_ENV = "PM_REGISTERED_MODEL"
CREATED_BY_ENV = "PM_CREATED_BY"
CREATORS = ("setup", "dashboard", "cli", "simulation")
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


def model_name() -> str:
    """The registered model this process works on: ``PM_REGISTERED_MODEL`` or ``rul-ensemble``."""
    return os.environ.get(MODEL_ENV) or MODEL_NAME


@contextmanager
def sandbox(name: str = SIM_MODEL_NAME, created_by: str = "simulation") -> Iterator[str]:
    """Point this process (and the jobs it starts) at registered model ``name`` until the block ends.

    Versions registered inside are tagged ``created_by``; the previous environment is restored after.
    """
    saved = {var: os.environ.get(var) for var in (MODEL_ENV, CREATED_BY_ENV)}
    os.environ[MODEL_ENV], os.environ[CREATED_BY_ENV] = name, created_by
    try:
        yield name
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def creator_kind(created_by: str) -> str:
    """One of :data:`CREATORS` for a free-form ``created_by`` ("cli simulate" -> cli); "" when unknown."""
    text = (created_by or "").lower()
    if "simulat" in text:
        return "simulation"
    return next((kind for kind in CREATORS if text.startswith(kind)), "")


def current_creator() -> str:
    """Who registers a version from this process: ``PM_CREATED_BY``, else the job record's creator (one of
    :data:`CREATORS` where it names one, else as written, e.g. "api"), else cli."""
    explicit = os.environ.get(CREATED_BY_ENV)
    if explicit:
        return creator_kind(explicit) or explicit
    record = os.environ.get(RECORD_ENV)
    if record:
        try:
            created_by = read_record(Path(record)).created_by
        except UserError:
            return "cli"
        return creator_kind(created_by) or created_by or "cli"
    return "cli"


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


def _model_version(name: str, version: int) -> Any:
    """The registered ``ModelVersion`` ``version`` of ``name``; UserError when there is no such version."""
    mlflow = _mlflow()
    try:
        return mlflow.MlflowClient().get_model_version(name, str(version))
    except mlflow.exceptions.MlflowException as err:
        raise UserError(f"Model version {version} of {name} does not exist.") from err


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
        tags = {**tags, "created_by": tags.get("created_by") or current_creator()}
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
    return run_id, _new_version(f"{artifact_uri}/bundle", run_id, tags)


def _new_version(source: str, run_id: str, tags: dict[str, str]) -> int:
    """Register ``source`` (a bundle folder URI) as a new version of :func:`model_name`."""
    mlflow = _mlflow()
    c = mlflow.MlflowClient()
    name = model_name()
    try:
        c.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        description = "XGBoost + LSTM RUL ensemble for C-MAPSS fleets."
        if name != MODEL_NAME:
            description = f"Sandbox of {MODEL_NAME} (production simulation); never served by the app."
        c.create_registered_model(name, description=description)
    return int(c.create_model_version(name, source=source, run_id=run_id, tags=tags).version)


def copy_version(source_name: str, version: int) -> int:
    """Register the bundle of ``source_name`` v``version`` as a new version of :func:`model_name` (same run)."""
    mv = _model_version(source_name, version)
    tags = {**mv.tags, "created_by": current_creator(), "copied_from": f"{source_name} v{version}"}
    tags.pop("gate", None)
    return _new_version(mv.source, mv.run_id, tags)


def alias_version(alias: str, name: str | None = None) -> int | None:
    """The version an alias points at (of ``name``, default :func:`model_name`), or None if there is none."""
    mlflow = _mlflow()
    try:
        return int(mlflow.MlflowClient().get_model_version_by_alias(name or model_name(), alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def champion_version(name: str | None = None) -> int | None:
    """The version the app serves (of ``name``, default :func:`model_name`), or None before the first training."""
    return alias_version(CHAMPION, name)


def version_metrics(version: int, name: str | None = None) -> dict[str, float]:
    """The metrics logged by the run behind a registered version (of ``name``, default :func:`model_name`)."""
    mv = _model_version(name or model_name(), version)
    return dict(client().get_run(mv.run_id).data.metrics)


def training_datasets(version: int, name: str | None = None) -> list[str]:
    """The datasets ``version`` was trained on (its snapshot lineage), in the order logged."""
    mv = _model_version(name or model_name(), version)
    return [d for d in client().get_run(mv.run_id).data.params.get("data_datasets", "").split(",") if d]


def set_alias(alias: str, version: int) -> None:
    """Point ``alias`` at ``version`` (promotion, rollback); raises UserError for an unknown version."""
    _model_version(model_name(), version)
    client().set_registered_model_alias(model_name(), alias, str(version))


def clear_alias(alias: str) -> None:
    """Remove ``alias`` if it is set."""
    mlflow = _mlflow()
    try:
        mlflow.MlflowClient().delete_registered_model_alias(model_name(), alias)
    except mlflow.exceptions.MlflowException:
        return


def register_outcome(version: int, metrics: dict[str, float], rules: GateRules | None = None) -> tuple[bool, str]:
    """Apply the promotion gate to a new version and move the aliases; return (promoted, reason)."""
    current = champion_version()
    champion_metrics = version_metrics(current) if current is not None else None
    promoted, reason = gate(metrics, champion_metrics, rules or GateRules.from_env())
    c = client()
    c.set_model_version_tag(model_name(), str(version), "gate", reason)
    if promoted:
        set_alias(CHAMPION, version)
        if alias_version(CHALLENGER) == version:
            clear_alias(CHALLENGER)
    else:
        set_alias(CHALLENGER, version)
    return promoted, reason


def list_versions(name: str | None = None) -> pd.DataFrame:
    """Every version of ``name`` (default :func:`model_name`), newest first, with aliases, data, creator, metrics."""
    mlflow = _mlflow()
    c = mlflow.MlflowClient()
    name = name or model_name()
    try:
        aliases = c.get_registered_model(name).aliases
        versions = c.search_model_versions(f"name='{name}'")
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
            "created_by": mv.tags.get("created_by", ""),
            "copied_from": mv.tags.get("copied_from", ""),
            "gate": mv.tags.get("gate", ""),
        }
        row.update(run.data.metrics)
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).sort_values("version", ascending=False).reset_index(drop=True)


def bundle_dir(version: int) -> Path:
    """Local folder holding the bundle of ``version``, downloaded once from MLflow's artifacts."""
    name = model_name()
    target = paths().models_cache / (f"v{version}" if name == MODEL_NAME else f"{name}-v{version}")
    if target.is_dir():
        return target
    mv = _model_version(name, version)
    mlflow = _mlflow()
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
