"""MLflow tracking and model registry for the RUL ensemble: opening the store, reading versions and aliases,
fetching bundles.

Every training is an MLflow run (:mod:`core.operations.run_logging`): params, per-epoch losses, validation and
test metrics, its Parquet snapshot as a dataset input, versions, device. Each registered version of
``rul-ensemble`` is an MLflow model (``pyfunc`` flavor, :mod:`core.operations.mlflow_model`) holding the bundle
(XGBoost JSON/UBJ, torch state_dict, JSON). Alias ``champion`` is what the app serves; ``challenger`` is the
newest candidate that the promotion gate kept out (:mod:`core.operations.promotion` moves them).

Every function works on the registered model named by ``PM_REGISTERED_MODEL`` (default
``rul-ensemble``). The production simulation runs inside :func:`sandbox`, which points that
variable at ``rul-ensemble-sim`` for its own process and the training jobs it starts, so its
versions and aliases never touch the model the app serves. Each version is tagged
``created_by`` (setup, dashboard, cli, simulation).

Integrity and concurrency:

- each version is tagged with the content hash of its bundle; :func:`bundle_dir` hands out a local
  copy keyed by run id and that hash (:mod:`core.operations.bundle_cache`), never by version number;
- an embedded tracking database deleted or replaced under a running process is reported
  (:mod:`core.operations.tracking_store`) before any registry use, not silently recreated; a new one is created
  with every experiment's artifacts under ``$PM_HOME/mlartifacts`` (none in the working directory);
- the gate's read-decide-write and every alias move hold one file lock (:func:`lock`), so two gates deciding at
  once compare against each other's outcome;
- :func:`init` cleans up after killed trainings (:mod:`core.operations.run_recovery`);
- the registry is never guessed: an alias that is not set reads as None, but a read that fails (a locked
  database, an unreachable server) is retried :data:`READ_ATTEMPTS` times with a short backoff and then raises
  :class:`RegistryReadError`; the gate then refuses to decide, the champion stays and the new version is kept as
  the challenger.
"""

from __future__ import annotations

import fcntl
import logging
import os
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
from core.operations.job_records import RECORD_ENV, read_record

MODEL_NAME = "rul-ensemble"
SIM_MODEL_NAME = "rul-ensemble-sim"
MODEL_ENV = "PM_REGISTERED_MODEL"
CREATED_BY_ENV = "PM_CREATED_BY"
CREATORS = ("setup", "dashboard", "cli", "simulation")
EXPERIMENT = "rul-training"
CHAMPION = "champion"
CHALLENGER = "challenger"

BUNDLE_TAG = "bundle_path"
"""Version tag: where the bundle lies inside the version's source (its MLflow model); absent: the source is the
bundle itself (versions registered before they carried an MLflow model)."""

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


def open_mlflow() -> Any:
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
    """Create the tracking store and :data:`EXPERIMENT`, each experiment's artifacts under ``$PM_HOME/mlartifacts``.

    MLflow creates a new database's Default experiment at ``./mlruns/0`` of the working directory (a checkout)
    unless the store is first opened with an artifact root: an embedded database is opened here with ours.
    """
    home = ensure_home()
    if tracking_store.sqlite_path(home.mlflow_uri) is not None:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        SqlAlchemyStore(home.mlflow_uri, home.artifacts.as_uri()).engine.dispose()
    client = mlflow.MlflowClient()
    if client.get_experiment_by_name(EXPERIMENT) is None:
        client.create_experiment(EXPERIMENT, artifact_location=paths().artifacts.as_uri())


def init() -> None:
    """Create the tracking database and experiment before any concurrent use (SQLite has one writer), then
    clean up after trainings that were killed (:func:`core.operations.run_recovery.recover`)."""
    from core.operations import run_recovery  # it builds on this module

    open_mlflow()
    run_recovery.recover()


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
    return open_mlflow().MlflowClient()


class RegistryReadError(UserError):
    """The registry could not be read (after :data:`READ_ATTEMPTS` tries); nothing may be concluded from it."""


def _missing(err: Exception) -> bool:
    """Whether an MLflow error says the thing asked for does not exist (as opposed to a failed read)."""
    return getattr(err, "error_code", "") == _MISSING


def _read(read: Callable[[], T], what: str) -> T:
    """``read()``, tried again after a short backoff when MLflow fails; an error saying the thing does not exist is
    raised at once (it is an answer), any other raises :class:`RegistryReadError` after the last try."""
    mlflow = open_mlflow()
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


def model_version(name: str, version: int) -> Any:
    """The registered ``ModelVersion`` ``version`` of ``name``; UserError when there is no such version,
    :class:`RegistryReadError` when the registry cannot be read."""
    mlflow = open_mlflow()
    try:
        return _read(lambda: mlflow.MlflowClient().get_model_version(name, str(version)),
                     f"version {version} of {name}")
    except mlflow.exceptions.MlflowException as err:
        raise UserError(f"Model version {version} of {name} does not exist.") from err


def aliases(name: str | None = None) -> dict[str, int]:
    """Every alias of ``name`` (default :func:`model_name`) and the version it points at; empty while the model
    is not registered. :class:`RegistryReadError` when the registry cannot be read (never an empty guess)."""
    mlflow = open_mlflow()
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
    mv = model_version(name or model_name(), version)
    return dict(_read(lambda: client().get_run(mv.run_id), f"the run of version {version}").data.metrics)


def training_datasets(version: int, name: str | None = None) -> list[str]:
    """The datasets ``version`` was trained on (its snapshot lineage), in the order logged."""
    mv = model_version(name or model_name(), version)
    return [d for d in client().get_run(mv.run_id).data.params.get("data_datasets", "").split(",") if d]


@contextmanager
def lock() -> Iterator[None]:
    """Hold ``$PM_HOME/registry.lock`` (across threads and processes) around a read-decide-write of aliases or a
    clean-up of what killed trainings left behind."""
    try:
        handle = open(ensure_home().home / "registry.lock", "a+b")  # noqa: SIM115 - closed by the with below
    except OSError as err:
        raise UserError(f"The registry lock in {paths().home} cannot be taken ({err.strerror or err}): "
                        "the folder must be writable to promote or register models.") from err
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def list_versions(name: str | None = None) -> pd.DataFrame:
    """Every version of ``name`` (default :func:`model_name`), newest first, with aliases, data, creator, metrics."""
    mlflow = open_mlflow()
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
    mv = model_version(model_name(), version)
    return bundle_cache.folder_name(mv.run_id, _content(mv))


def bundle_dir(version: int) -> Path:
    """Local folder holding the bundle of ``version``, verified each time, fetched from MLflow when needed.

    The copy is keyed by run id and content hash; a copy that no longer matches (a corrupt file) is
    fetched again, and an artifact store whose copy does not match either is a UserError. The bundle is read from
    inside the version's MLflow model (:data:`BUNDLE_TAG`).
    """
    mv = model_version(model_name(), version)
    source = f"{mv.source.rstrip('/')}/{mv.tags[BUNDLE_TAG]}" if mv.tags.get(BUNDLE_TAG) else mv.source
    mlflow = open_mlflow()
    what = f"model version {version} of {model_name()} (run {mv.run_id})"
    content = _content(mv)

    def fetch(staging: Path) -> Path:
        try:
            return Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(staging)))
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
