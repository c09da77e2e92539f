"""Immutable Parquet snapshots of training data, named by content hash.

Training jobs never open the DuckDB file: the app exports the rows a job needs into a
snapshot folder (``train.parquet``, ``test.parquet``, ``truth.parquet``, ``manifest.json``)
and hands the job its path. The hash is the run's data lineage in MLflow.

Training data is chosen by role (only ``history`` datasets), never by name. Training rows of an engine closed
by an outcome carry its lineage (:data:`SOURCE_COLUMNS`: the in-service dataset, engine id and unit it came from),
so the model records which evaluation engines it was trained on and leaves them out of its test-set figures
(:func:`models.training.evaluate`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from core.config import ensure_home
from core.data import queries
from core.errors import UserError


@dataclass(frozen=True)
class Snapshot:
    """A snapshot folder and what it holds."""

    path: Path
    sha256: str
    datasets: list[str]
    test_datasets: list[str]
    rows: int
    engines: int
    sources: list[str] = field(default_factory=list)
    """``dataset/engine`` of each in-service engine whose closed copy is in the training data."""

    def lineage(self) -> dict[str, object]:
        """The description logged to MLflow with a run."""
        info = asdict(self)
        info["path"] = str(self.path)
        info["datasets"] = ",".join(self.datasets)
        info["test_datasets"] = ",".join(self.test_datasets)
        info["sources"] = ",".join(self.sources)
        return info


def _digest(frames: list[pd.DataFrame], names: list[str]) -> str:
    h = hashlib.sha256("|".join(names).encode())
    for frame in frames:
        h.update(",".join(map(str, frame.columns)).encode())
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def matching_test_sets(con: duckdb.DuckDBPyConnection, train_names: list[str]) -> list[str]:
    """Test datasets of the same subsets as ``train_names`` that have true RUL, for reporting."""
    listing = queries.list_datasets(con)
    subsets = set(listing.loc[listing["name"].isin(train_names), "subset"])
    tests = listing[(listing["role"] == "evaluation") & listing["subset"].isin(subsets) & listing["has_truth"]]
    return sorted(tests["name"])


END_OF_LIFE_COLUMN = "rul_after_last"
"""Per training row: cycles from the engine's last reading to its end of life (a closed engine's outcome may come
after its last reading; see :mod:`core.data.fleet_ops`)."""


def _with_end_of_life(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    parts = [queries.rul_truth(con, name).assign(dataset=name) for name in names]
    truth = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["unit", "rul", "dataset"])
    if truth.empty:
        return rows
    keyed = truth.set_index(["dataset", "unit"])["rul"]
    index = pd.MultiIndex.from_arrays([rows["dataset"], rows["unit"]])
    return rows.assign(**{END_OF_LIFE_COLUMN: keyed.reindex(index).fillna(0).to_numpy(dtype=float)})


SOURCE_COLUMNS = ("source_dataset", "source_engine", "source_unit")
"""Per training row of an engine closed by an outcome: the in-service dataset, engine id and unit it was closed in
(absent when no training engine has a recorded source; the unit is missing once that engine is no longer stored)."""


def _with_sources(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    sources = queries.engine_sources(con, names)
    if sources.empty:
        return rows
    keyed = sources.set_index(["dataset", "unit"])
    index = pd.MultiIndex.from_arrays([rows["dataset"], rows["unit"]])
    found = keyed.reindex(index)
    return rows.assign(source_dataset=found["source_dataset"].to_numpy(dtype=object),
                       source_engine=found["source_engine"].to_numpy(dtype=object),
                       source_unit=found["source_unit"].to_numpy(dtype=float))


def _source_names(train: pd.DataFrame) -> list[str]:
    if SOURCE_COLUMNS[0] not in train.columns:
        return []
    pairs = train[list(SOURCE_COLUMNS[:2])].dropna().drop_duplicates()
    return sorted(f"{d}/{e}" for d, e in zip(pairs["source_dataset"], pairs["source_engine"], strict=True))


def export(con: duckdb.DuckDBPyConnection, train_names: list[str], test_names: list[str] | None = None) -> Snapshot:
    """Write (or reuse) the snapshot of ``train_names`` plus test sets with truth; return it.

    Only history datasets (engines run to failure or removal, closed engines included wherever they were in
    service) are training data, judged by their role.
    """
    if not train_names:
        raise UserError("Choose at least one training dataset to train on.")
    for name in train_names:
        role = queries.get_dataset(con, name)["role"]
        if role not in ("history", "sandbox"):
            raise UserError(f"'{name}' is a {role} dataset: only history datasets are training data; evaluation "
                            "sets are for reporting only.")
    tests = matching_test_sets(con, train_names) if test_names is None else list(test_names)
    train = _with_end_of_life(con, queries.readings_many(con, train_names), train_names)
    train = _with_sources(con, train, train_names)
    test = queries.readings_many(con, tests) if tests else pd.DataFrame(columns=train.columns)
    truth_parts = [queries.rul_truth(con, name).assign(dataset=name) for name in tests]
    truth = pd.concat(truth_parts, ignore_index=True) if truth_parts else pd.DataFrame(columns=["unit", "rul", "dataset"])
    truth = truth[["dataset", "unit", "rul"]]
    digest = _digest([train, test, truth], train_names + ["|"] + tests)
    home = ensure_home()
    target = home.snapshots / digest[:16]
    snap = Snapshot(
        path=target,
        sha256=digest,
        datasets=list(train_names),
        test_datasets=tests,
        rows=len(train),
        engines=int(train[["dataset", "unit"]].drop_duplicates().shape[0]),
        sources=_source_names(train),
    )
    if (target / "manifest.json").is_file():
        return snap
    staging = Path(tempfile.mkdtemp(prefix="snapshot-", dir=home.snapshots))
    try:
        train.to_parquet(staging / "train.parquet", index=False)
        test.to_parquet(staging / "test.parquet", index=False)
        truth.to_parquet(staging / "truth.parquet", index=False)
        (staging / "manifest.json").write_text(json.dumps(snap.lineage(), indent=2))
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "manifest.json").is_file():
            raise
    return snap


def read(path: Path) -> tuple[Snapshot, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Open a snapshot folder: (snapshot, train rows, test rows, test truth)."""
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        train = pd.read_parquet(path / "train.parquet")
        test = pd.read_parquet(path / "test.parquet")
        truth = pd.read_parquet(path / "truth.parquet")
    except (OSError, ValueError) as err:
        raise UserError(f"The training snapshot {path} is missing or unreadable: {err}") from err
    snap = Snapshot(
        path=path,
        sha256=manifest["sha256"],
        datasets=[n for n in manifest["datasets"].split(",") if n],
        test_datasets=[n for n in manifest["test_datasets"].split(",") if n],
        rows=int(manifest["rows"]),
        engines=int(manifest["engines"]),
        sources=[n for n in manifest.get("sources", "").split(",") if n],
    )
    return snap, train, test, truth
