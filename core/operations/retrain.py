"""Starting a retrain: choose the training data, export its snapshot, launch the background job.

Shared by the CLI, the Models page, the first-run setup and the production simulation.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from typing import Any

from core.config import paths
from core.data import queries, snapshot, store
from core.errors import UserError
from core.operations import job_records, jobs
from models.training import TrainConfig


def training_datasets(subsets: list[str] | None = None, datasets: list[str] | None = None) -> list[str]:
    """Names to train on: the named history datasets, ``train_FD00x`` of the subsets, or every history dataset.

    Only ``history`` datasets (engines run to failure or removal, closed-out engines included) are
    training data; naming a fleet or evaluation dataset, or having none, is a UserError.
    """
    with store.connect(read_only=True) as con:
        loaded = queries.list_datasets(con)
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
    return history


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
    """Launch the background training job on a snapshot; UserError if a training is already running.

    The job registers into the model this process works on (:func:`core.operations.registry.model_name`),
    so one started inside the simulation's sandbox stays there; ``kind`` tells such jobs apart.
    """
    return jobs.start(
        kind,
        "core.operations.train_job",
        ["--snapshot", str(snap.path), "--config", json.dumps(config.to_dict())],
        config=config.to_dict(),
        data=snap.lineage(),
        created_by=created_by,
    )
