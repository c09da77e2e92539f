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

Integrity and concurrency:

- each version is tagged with the content hash of its bundle; :func:`bundle_dir` hands out a local
  copy keyed by run id and that hash (:mod:`core.operations.bundle_cache`), never by version number;
- an embedded tracking database deleted or replaced under a running process is reported
  (:mod:`core.operations.tracking_store`) before any registry use, not silently recreated;
- the gate's read-decide-write and every alias move hold one file lock (``$PM_HOME/registry.lock``),
  so two gates deciding at once compare against each other's outcome;
- every training run is tagged with its process; :func:`recover` (at :func:`init` and before each new
  training is logged) ends runs left RUNNING by a dead process and keeps out versions it never gated;
- the registry is never guessed: an alias that is not set reads as None, but a read that fails (a locked
  database, an unreachable server) is retried :data:`READ_ATTEMPTS` times with a short backoff and then raises
  :class:`RegistryReadError`; the gate then refuses to decide (:func:`register_outcome`), the champion stays and
  the new version is kept as the challenger.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from core.config import ensure_home, environment, paths
from core.errors import UserError
from core.operations import bundle_cache, tracking_store
from core.operations.gate import GateRules, gate
from core.operations.job_records import RECORD_ENV, read_record
from core.operations.jobs import process_alive, process_start_time

MODEL_NAME = "rul-ensemble"
SIM_MODEL_NAME = "rul-ensemble-sim"
MODEL_ENV = "PM_REGISTERED_MODEL"
CREATED_BY_ENV = "PM_CREATED_BY"
CREATORS = ("setup", "dashboard", "cli", "simulation")
EXPERIMENT = "rul-training"
CHAMPION = "champion"
CHALLENGER = "challenger"
PROCESS_TAGS = ("pm_host", "pm_pid", "pm_pid_start")
"""Run tags naming the process that logs the run, so a run or version it left behind can be told from a live one."""
END_REASON_TAG = "pm_end_reason"

READ_ATTEMPTS = 3
READ_BACKOFF_S = 0.25
"""A failed registry read is tried :data:`READ_ATTEMPTS` times in all, waiting ``READ_BACKOFF_S * attempt`` between."""
_MISSING = "RESOURCE_DOES_NOT_EXIST"
T = TypeVar("T")

LOG = logging.getLogger("core.operations.registry")
_URI_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
_init_lock = threading.Lock()
_initialised: set[str] = set()
_background: dict[str, threading.Thread] = {}


def model_name() -> str:
    """The registered model this process works on: ``PM_REGISTERED_MODEL`` or ``rul-ensemble``."""
    return os.environ.get(MODEL_ENV) or MODEL_NAME


@contextmanager
def sandbox(name: str = SIM_MODEL_NAME, created_by: str = "simulation") -> Iterator[str]:
    """Point this process (and the jobs it starts) at registered model ``name`` until the block ends.

    Versions registered inside are tagged ``created_by``; the previous environment is restored after.
    """
    with environment({MODEL_ENV: name, CREATED_BY_ENV: created_by}):
        yield name


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
            tracking_store.expect_inherited(uri)
            _ensure_experiment(mlflow)
            tracking_store.adopt(uri)
            _initialised.add(uri)
    tracking_store.check(uri)
    return mlflow


def _ensure_experiment(mlflow: Any) -> None:
    ensure_home()
    client = mlflow.MlflowClient()
    if client.get_experiment_by_name(EXPERIMENT) is None:
        client.create_experiment(EXPERIMENT, artifact_location=paths().artifacts.as_uri())


def init() -> None:
    """Create the tracking database and experiment before any concurrent use (SQLite has one writer), then
    clean up after trainings that were killed (:func:`recover`)."""
    _mlflow()
    recover()


def init_in_background(after: Callable[[], None] | None = None, delay_s: float = 0.0,
                       stop: threading.Event | None = None) -> threading.Thread:
    """Run :func:`init` (importing MLflow takes seconds) in a daemon thread after `delay_s`, then `after`; return
    the thread.

    The server starts it at start-up, so it answers at once and its first page is drawn before MLflow is
    imported (a page or request that needs the registry sooner opens it itself; the two are serialised).
    :func:`opening` says whether it is still to open. Nothing is done once `stop` is set (the server is
    stopping) or when the process has moved to another registry meanwhile. A failure is logged here and raised
    again to the first caller that needs the registry.
    """
    uri = paths().mlflow_uri
    stopping = stop or threading.Event()

    def work() -> None:
        if stopping.wait(delay_s) or paths().mlflow_uri != uri:
            return
        try:
            init()
        except UserError as err:
            LOG.warning("The model registry could not be opened: %s", err)
            return
        if after is not None and not stopping.is_set():
            after()

    thread = threading.Thread(target=work, name="registry-init", daemon=True)
    _background[uri] = thread
    thread.start()
    return thread


def opening() -> bool:
    """Whether :func:`init_in_background` is still to open the registry at the configured URI."""
    uri = paths().mlflow_uri
    thread = _background.get(uri)
    return thread is not None and thread.is_alive() and uri not in _initialised


def check_store() -> None:
    """Raise UserError if the tracking database this process started with was deleted or replaced since."""
    tracking_store.check(paths().mlflow_uri)


def client() -> Any:
    """An ``MlflowClient`` on the configured tracking and registry URI."""
    return _mlflow().MlflowClient()


class RegistryReadError(UserError):
    """The registry could not be read (after :data:`READ_ATTEMPTS` tries); nothing may be concluded from it."""


def _missing(err: Exception) -> bool:
    """Whether an MLflow error says the thing asked for does not exist (as opposed to a failed read)."""
    return getattr(err, "error_code", "") == _MISSING


def _read(read: Callable[[], T], what: str) -> T:
    """``read()``, tried again after a short backoff when MLflow fails; an error saying the thing does not exist is
    raised at once (it is an answer), any other raises :class:`RegistryReadError` after the last try."""
    mlflow = _mlflow()
    attempt = 1
    while True:
        try:
            return read()
        except mlflow.exceptions.MlflowException as err:
            if _missing(err):
                raise
            if attempt >= READ_ATTEMPTS:
                first = (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(".")
                raise RegistryReadError(f"The model registry could not be read ({what}) after {READ_ATTEMPTS} "
                                        f"tries: {first}.") from err
            LOG.warning("Reading the model registry (%s) failed, trying again: %s", what, err)
        time.sleep(READ_BACKOFF_S * attempt)
        attempt += 1


def _model_version(name: str, version: int) -> Any:
    """The registered ``ModelVersion`` ``version`` of ``name``; UserError when there is no such version,
    :class:`RegistryReadError` when the registry cannot be read."""
    mlflow = _mlflow()
    try:
        return _read(lambda: mlflow.MlflowClient().get_model_version(name, str(version)),
                     f"version {version} of {name}")
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
    The version is registered inside the run (tagged with the bundle's content hash), so a
    process killed before the gate leaves a run :func:`recover` can find.
    """
    mlflow = _mlflow()
    recover()
    experiment = mlflow.MlflowClient().get_experiment_by_name(EXPERIMENT)
    content = bundle_cache.content_sha256(bundle_dir)
    with mlflow.start_run(experiment_id=experiment.experiment_id, tags=process_tags()) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_params({f"data_{k}": str(v)[:500] for k, v in lineage.items() if not isinstance(v, (list, dict))})
        tags = {**tags, "created_by": tags.get("created_by") or current_creator(), bundle_cache.CONTENT_TAG: content}
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
        version = _new_version(f"{run.info.artifact_uri}/bundle", run_id, tags)
    return run_id, version


def process_tags() -> dict[str, str]:
    """The :data:`PROCESS_TAGS` of this process (host, pid, pid start time) for a run it logs."""
    return dict(zip(PROCESS_TAGS, (socket.gethostname(), str(os.getpid()),
                                   str(process_start_time(os.getpid()) or "")), strict=True))


def _logged_by_live_process(run_tags: dict[str, str]) -> bool:
    """True if the process named in a run's tags still runs, or runs on another host (so cannot be checked)."""
    if not run_tags.get("pm_pid", "").isdigit():
        return False
    if run_tags.get("pm_host") != socket.gethostname():
        return True
    start = run_tags.get("pm_pid_start", "")
    return process_alive(int(run_tags["pm_pid"]), int(start) if start.isdigit() else None)


def _run_tags(c: Any, run_id: str) -> dict[str, str]:
    """The tags of a run, or none when the run is gone (deleted from the tracking store)."""
    from mlflow.exceptions import MlflowException

    try:
        return dict(c.get_run(run_id).data.tags)
    except MlflowException:
        return {}


def _left_behind(c: Any, experiment_id: str) -> tuple[list[Any], list[Any]]:
    """(runs still RUNNING, versions never gated) whose process is gone; copies of versions are never gated."""
    runs = [run for run in c.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'")
            if not _logged_by_live_process(run.data.tags)]
    versions = [mv for mv in c.search_model_versions() if "gate" not in mv.tags and "copied_from" not in mv.tags
                and not _logged_by_live_process(_run_tags(c, mv.run_id))]
    return runs, versions


def recover() -> list[str]:
    """End what killed trainings left behind; return one sentence per thing cleaned up.

    A run still RUNNING whose process is gone is ended as KILLED (tag ``pm_end_reason``); a version no gate
    decided on (no ``gate`` tag, not a copy) whose run's process is gone is kept out (its ``gate`` tag says
    why) and never served. Runs of live processes (a training in progress) are left alone. Nothing is
    written (and no lock taken) when nothing was left behind, so a read-only home still starts.
    """
    c = _mlflow().MlflowClient()
    experiment_id = c.get_experiment_by_name(EXPERIMENT).experiment_id
    if not any(_left_behind(c, experiment_id)):
        return []
    done: list[str] = []
    with _registry_lock():
        runs, versions = _left_behind(c, experiment_id)  # again: another process may have cleaned up meanwhile
        for run in runs:
            c.set_tag(run.info.run_id, END_REASON_TAG, "Its process stopped before the run finished (found at a "
                                                       "later start).")
            c.set_terminated(run.info.run_id, status="KILLED")
            done.append(f"Run {run.info.run_id} was left running by a stopped process and is now marked killed.")
        for mv in versions:
            c.set_model_version_tag(mv.name, mv.version, "gate", "Kept out: its training stopped before the gate "
                                                                 "decided on it; it was never served.")
            done.append(f"{mv.name} v{mv.version} was registered by a stopped training and is now kept out.")
    return done


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


def aliases(name: str | None = None) -> dict[str, int]:
    """Every alias of ``name`` (default :func:`model_name`) and the version it points at; empty while the model
    is not registered. :class:`RegistryReadError` when the registry cannot be read (never an empty guess)."""
    mlflow = _mlflow()
    name = name or model_name()
    try:
        model = _read(lambda: mlflow.MlflowClient().get_registered_model(name), f"the aliases of {name}")
    except mlflow.exceptions.MlflowException:
        return {}
    return {str(alias): int(version) for alias, version in model.aliases.items()}


def alias_version(alias: str, name: str | None = None) -> int | None:
    """The version an alias points at (of ``name``, default :func:`model_name`), or None if it is not set;
    :class:`RegistryReadError` when the registry cannot be read."""
    return aliases(name).get(alias)


def champion_version(name: str | None = None) -> int | None:
    """The version the app serves (of ``name``, default :func:`model_name`), or None before the first training."""
    return alias_version(CHAMPION, name)


def version_metrics(version: int, name: str | None = None) -> dict[str, float]:
    """The metrics logged by the run behind a registered version (of ``name``, default :func:`model_name`)."""
    mv = _model_version(name or model_name(), version)
    return dict(_read(lambda: client().get_run(mv.run_id), f"the run of version {version}").data.metrics)


def training_datasets(version: int, name: str | None = None) -> list[str]:
    """The datasets ``version`` was trained on (its snapshot lineage), in the order logged."""
    mv = _model_version(name or model_name(), version)
    return [d for d in client().get_run(mv.run_id).data.params.get("data_datasets", "").split(",") if d]


@contextmanager
def _registry_lock() -> Iterator[None]:
    """Hold ``$PM_HOME/registry.lock`` (across threads and processes) around a read-decide-write of aliases."""
    try:
        handle = open(ensure_home().home / "registry.lock", "a+b")  # noqa: SIM115 - closed by the with below
    except OSError as err:
        raise UserError(f"The registry lock in {paths().home} cannot be taken ({err.strerror or err}): "
                        "the folder must be writable to promote or register models.") from err
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _point(alias: str, version: int) -> None:
    _model_version(model_name(), version)
    client().set_registered_model_alias(model_name(), alias, str(version))


def _unpoint(alias: str) -> None:
    mlflow = _mlflow()
    try:
        mlflow.MlflowClient().delete_registered_model_alias(model_name(), alias)
    except mlflow.exceptions.MlflowException:
        return


def set_alias(alias: str, version: int) -> None:
    """Point ``alias`` at ``version`` (promotion, rollback); raises UserError for an unknown version."""
    with _registry_lock():
        _point(alias, version)


def clear_alias(alias: str) -> None:
    """Remove ``alias`` if it is set."""
    with _registry_lock():
        _unpoint(alias)


def register_outcome(version: int, metrics: dict[str, float], rules: GateRules | None = None) -> tuple[bool, str]:
    """Apply the promotion gate to a new version and move the aliases; return (promoted, reason).

    Reading the champion, deciding and moving the aliases happen under one cross-process lock, so a
    gate deciding at the same time waits and then compares against this outcome. When the champion (its
    alias or its metrics) cannot be read, even after retries, nothing is decided: the champion stays, the
    version becomes the challenger and the reason says why.
    """
    rules = rules or GateRules.from_env()
    with _registry_lock():
        try:
            current = aliases().get(CHAMPION)
            champion_metrics = version_metrics(current) if current is not None else None
        except RegistryReadError as err:
            return False, _undecided(version, err)
        promoted, reason = gate(metrics, champion_metrics, rules)
        client().set_model_version_tag(model_name(), str(version), "gate", reason)
        if promoted:
            _point(CHAMPION, version)
            if aliases().get(CHALLENGER) == version:
                _unpoint(CHALLENGER)
        else:
            _point(CHALLENGER, version)
    return promoted, reason


def _undecided(version: int, err: RegistryReadError) -> str:
    """Keep ``version`` as the challenger, the champion as it is, and say why the gate did not decide."""
    mlflow = _mlflow()
    said = str(err).rstrip(".")
    reason = (f"Not decided: {said[:1].lower()}{said[1:]}, so the gate could not compare with the champion. The champion "
              f"stays as it was and v{version} is kept as the challenger; promote it on the Models page if it "
              "should serve.")
    try:
        client().set_model_version_tag(model_name(), str(version), "gate", reason)
        client().set_registered_model_alias(model_name(), CHALLENGER, str(version))
    except mlflow.exceptions.MlflowException as write_err:
        LOG.warning("Version %s could not be marked as the challenger: %s", version, write_err)
        reason += f" (The registry also refused to mark it: {(str(write_err).splitlines() or [''])[0]})"
    return reason


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


def _content(mv: Any) -> str | None:
    """The content hash registered with a version (None for versions registered before hashes were kept)."""
    return mv.tags.get(bundle_cache.CONTENT_TAG) or None


def bundle_key(version: int) -> str:
    """What identifies the bundle of ``version`` (of :func:`model_name`): its run id and content hash.

    Caches of loaded models key on this, not on the version number, which a new registry reuses.
    """
    mv = _model_version(model_name(), version)
    return bundle_cache.folder_name(mv.run_id, _content(mv))


def bundle_dir(version: int) -> Path:
    """Local folder holding the bundle of ``version``, verified each time, fetched from MLflow when needed.

    The copy is keyed by run id and content hash; a copy that no longer matches (a corrupt file) is
    fetched again, and an artifact store whose copy does not match either is a UserError.
    """
    mv = _model_version(model_name(), version)
    mlflow = _mlflow()
    what = f"model version {version} of {model_name()} (run {mv.run_id})"
    content = _content(mv)

    def fetch(staging: Path) -> Path:
        try:
            return Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(staging)))
        except (mlflow.exceptions.MlflowException, OSError) as err:
            raise UserError(f"The artifacts of {what} are missing or unreadable in the artifact store: "
                            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from err

    return bundle_cache.cached_copy(paths().models_cache, bundle_cache.folder_name(mv.run_id, content), content,
                                    fetch, what)


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
