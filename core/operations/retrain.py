"""Starting a retrain: choose the training data, export its snapshot, launch the background job.

Shared by the CLI, the Models page, the first-run setup, the Data page's first load and the production simulation.

Training data is chosen by role: every ``history`` dataset (engines run to failure or removal, the copies of
engines closed by an outcome included, wherever they were in service), less those the operator deselected on
the Models page. That choice is kept in the store (:func:`save_selection`), so the page, the CLI and a first
training all start from the same default, and it survives a reload.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from typing import Any

from core.config import paths
from core.data import queries, snapshot, store
from core.errors import UserError
from core.operations import job_records, jobs, registry
from core.operations.gate import rules_before_training
from models.training import TrainConfig

DESELECTED_KEY = "training_deselected"
"""``store_meta`` key: the JSON list of history datasets the operator left out of training (new ones are in)."""


def _deselected(con: Any) -> set[str]:
    row = store.first_row(con, "SELECT value FROM store_meta WHERE key = ?", [DESELECTED_KEY])
    return set(json.loads(row[0])) if row else set()


def selection() -> tuple[list[str], list[str]]:
    """(every history dataset, the ones selected for training): the choice :func:`training_datasets` makes by
    default, without refusing an empty one."""
    with store.connect(read_only=True) as con:
        history = queries.dataset_names(con, "history")
        left_out = _deselected(con)
    return sorted(history), sorted(n for n in history if n not in left_out)


def save_selection(chosen: list[str]) -> None:
    """Keep `chosen` as the default training data: the history datasets not in it are left out from now on
    (datasets added later are in); UserError for a name that is not a history dataset."""
    def save(con: Any) -> None:
        history = set(queries.dataset_names(con, "history"))
        other = sorted(set(chosen) - history)
        if other:
            raise UserError(f"'{other[0]}' is not a history dataset; only history datasets are training data.")
        con.execute("INSERT OR REPLACE INTO store_meta VALUES (?, ?)",
                    [DESELECTED_KEY, json.dumps(sorted(history - set(chosen)))])

    store.write(save)


def training_datasets(subsets: list[str] | None = None, datasets: list[str] | None = None) -> list[str]:
    """Names to train on: the named history datasets, ``train_FD00x`` of the subsets, or by default every history
    dataset the operator has not deselected (:func:`selection`).

    Only ``history`` datasets (engines run to failure or removal, closed-out engines included) are
    training data, judged by role; naming a fleet or evaluation dataset, or having none, is a UserError.
    """
    with store.connect(read_only=True) as con:
        loaded = queries.list_datasets(con)
        left_out = _deselected(con)
    roles = dict(zip(loaded["name"], loaded["role"], strict=True))
    history = sorted(name for name, role in roles.items() if role == "history")
    if datasets:
        missing = [n for n in datasets if n not in roles]
        if missing:
            raise UserError(f"No dataset named {', '.join(repr(n) for n in missing)} is loaded.")
        other = [n for n in datasets if roles[n] != "history"]
        if other:
            raise UserError(f"'{other[0]}' is a {roles[other[0]]} dataset; only history datasets (engines run to "
                            "failure or removal) are training data.")
        return list(datasets)
    if subsets:
        wanted = [f"train_{s}" for s in subsets]
        missing = [n for n in wanted if n not in history]
        if missing:
            raise UserError(f"Load {', '.join(missing)} first (Data page or `python -m core ingest`).")
        return wanted
    if not history:
        raise UserError("No history data is loaded: load engines run to failure (e.g. train_FD00x) on the Data "
                        "page, or record failures of fleet engines, first.")
    chosen = [name for name in history if name not in left_out]
    if not chosen:
        raise UserError("Every history dataset is deselected for training: select at least one under Retrain → "
                        "Options on the Models page, or name them with --datasets.")
    return chosen


def make_config(
    *, epochs: int | None = None, trees: int | None = None, device: str = "auto", seed: int | None = None
) -> TrainConfig:
    """The default training config with the given overrides (None keeps the default)."""
    overrides: dict[str, Any] = {"device": device}
    if epochs is not None:
        overrides["epochs"] = epochs
    if trees is not None:
        overrides["n_trees"] = trees
    if seed is not None:
        overrides["seed"] = seed
    return TrainConfig.from_dict({**TrainConfig().to_dict(), **overrides})


def export_snapshot(names: list[str]) -> snapshot.Snapshot:
    """Write (or reuse) the Parquet snapshot of ``names`` and their matching test sets.

    A snapshot folder that cannot be written (a read-only ``PM_HOME``) is a UserError naming it.
    """
    with store.connect(read_only=True) as con:
        try:
            return snapshot.export(con, names)
        except OSError as err:
            where = err.filename or paths().snapshots
            raise UserError(f"The training snapshot cannot be written to {where} ({err.strerror or err}); "
                            "PM_HOME must be writable to train.") from err


def exclusive(kind: str, module: str, config: TrainConfig, snap: snapshot.Snapshot,
              created_by: str = "cli") -> AbstractContextManager[job_records.JobRecord]:
    """The single-training slot for a training or tuning run in this process (the foreground CLI); UserError,
    naming the running one, while another training or tuning is active."""
    return jobs.foreground(kind, module, config=config.to_dict(), data=snap.lineage(), created_by=created_by)


TRAIN_KIND = "train"
SIM_TRAIN_KIND = "sim-train"
"""Job kinds: a training of the served model, and a training inside the simulation's sandbox."""


def start_job(snap: snapshot.Snapshot, config: TrainConfig, created_by: str = "",
              kind: str = TRAIN_KIND) -> job_records.JobRecord:
    """Launch the background training job on a snapshot; UserError if a training is already running, or if a
    gate tolerance is malformed (checked before anything starts).

    The job registers into the model this process works on (:func:`core.operations.registry.model_name`),
    so one started inside the simulation's sandbox stays there; ``kind`` tells such jobs apart.
    """
    rules_before_training()
    return jobs.start(
        kind,
        "core.operations.train_job",
        ["--snapshot", str(snap.path), "--config", json.dumps(config.to_dict())],
        config=config.to_dict(),
        data=snap.lineage(),
        created_by=created_by,
    )


def first_model(created_by: str) -> tuple[str, str]:
    """Start training a first model when none is registered and none is training: (state, one sentence).

    The state is ``serving`` (a champion exists), ``training`` (a training already runs), ``started`` (a first
    training was started on the default training data) or ``not_started`` (the sentence says why, e.g. no
    history data yet). Used by ``core setup`` (`make run`) and after a load into a store without a model (the
    Data page and its folder load job), so the first training is the same everywhere.
    """
    try:
        version = registry.champion_version()
    except UserError as err:
        return "not_started", f"No first training was started: {err}"
    if version is not None:
        return "serving", f"Serving {registry.model_name()} v{version}."
    busy = jobs.running()
    if busy is not None:
        return "training", f"Training job {busy.id} is already running; follow it on the Models page."
    try:
        names = training_datasets()
        job = start_job(export_snapshot(names), make_config(), created_by=created_by)
    except UserError as err:
        return "not_started", f"No model trained yet: {err}"
    return "started", (f"Training a first model on {', '.join(names)} in the background (job {job.id}); follow it "
                       "on the Models page.")
