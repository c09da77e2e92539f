"""Writes to the fleet store: datasets with their readings, RUL truth, predictions and feedback.

Each function writes inside the caller's connection; callers wrap several writes in
:func:`core.data.store.transaction` so a failure leaves the store as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from core.data.cmapss import COLUMNS
from core.data.queries import find_dataset, get_dataset, pending_truth_count, truth_file_sha
from core.data.store import (
    PREDICTION_COLUMNS,
    READING_COLUMNS_SQL,
    SPLITS,
    VALUE_COLUMNS,
    first_row,
    transaction,
    utc_now,
)
from core.data.validation import validate_readings
from core.errors import UserError

# ----------------------------------------------------------------------------- writes


def _arrow_readings(arrays: Mapping[str, np.ndarray]) -> pa.Table:
    return pa.table({name: np.asarray(arrays[name], dtype=np.float64) for name in COLUMNS})


def _insert_readings(con: duckdb.DuckDBPyConnection, dataset_id: int, arrays: Mapping[str, np.ndarray]) -> int:
    table = _arrow_readings(arrays)
    view = f"incoming_readings_{dataset_id}"
    con.register(view, table)
    try:
        con.execute(
            f"INSERT INTO readings (dataset_id, {READING_COLUMNS_SQL}) SELECT ?, CAST(unit AS INTEGER), "
            f"CAST(cycle AS INTEGER), {', '.join(VALUE_COLUMNS)} FROM {view}",
            [dataset_id],
        )
    finally:
        con.unregister(view)
    return table.num_rows


def _refresh_counts(con: duckdb.DuckDBPyConnection, dataset_id: int) -> None:
    con.execute(
        "UPDATE datasets SET rows = (SELECT count(*) FROM readings WHERE dataset_id = ?), "
        "engines = (SELECT count(DISTINCT unit) FROM readings WHERE dataset_id = ?) WHERE id = ?",
        [dataset_id, dataset_id, dataset_id],
    )


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise UserError(f"Split '{split}' is not one of {', '.join(SPLITS)}.")


def add_dataset(
    con: duckdb.DuckDBPyConnection,
    name: str,
    subset: str,
    split: str,
    source: str,
    arrays: Mapping[str, np.ndarray],
    sha256: str | None = None,
) -> int:
    """Insert a new dataset and its already validated readings, inside the caller's transaction.

    Pending RUL values for this (test) dataset are moved into ``rul_truth``. Returns its id.
    """
    _check_split(split)
    if find_dataset(con, name) is not None:
        raise UserError(f"A dataset named '{name}' is already loaded; delete it first to replace it.")
    (dataset_id,) = con.execute(
        "INSERT INTO datasets (name, subset, split, source, sha256, loaded_at) VALUES (?, ?, ?, ?, ?, ?) "
        "RETURNING id",
        [name, subset, split, source, sha256, utc_now()],
    ).fetchall()[0]
    _insert_readings(con, dataset_id, arrays)
    _refresh_counts(con, dataset_id)
    pending = pending_truth_count(con, name)
    if pending is not None:
        units = np.unique(np.asarray(arrays["unit"]))
        if len(units) != pending:
            raise UserError(f"{name} has {len(units)} engines but the RUL file loaded for it has {pending} "
                            "values; they must match.")
        values = con.execute("SELECT rul FROM pending_truth WHERE target = ? ORDER BY position", [name]).fetchall()
        set_truth(con, dataset_id, units.astype(int).tolist(), [v[0] for v in values])
        con.execute("DELETE FROM pending_truth WHERE target = ?", [name])
    return int(dataset_id)


def set_truth(con: duckdb.DuckDBPyConnection, dataset_id: int, units: Sequence[int], ruls: Sequence[int]) -> int:
    """Replace the RUL truth of a dataset (caller's transaction); returns the rows written."""
    con.execute("DELETE FROM rul_truth WHERE dataset_id = ?", [dataset_id])
    frame = pa.table({"unit": pa.array(units, pa.int32()), "rul": pa.array(ruls, pa.int32())})
    con.register("incoming_truth", frame)
    try:
        con.execute("INSERT INTO rul_truth SELECT ?, unit, rul FROM incoming_truth", [dataset_id])
    finally:
        con.unregister("incoming_truth")
    return frame.num_rows


def add_truth_file(
    con: duckdb.DuckDBPyConnection, target: str, source: str, sha256: str, ruls: Sequence[int]
) -> tuple[int, bool]:
    """Record a RUL file for test dataset `target` (caller's transaction).

    If `target` is loaded, its ``rul_truth`` is filled (values in unit order) and the
    number of rows written is returned with ``True``; otherwise the values wait in
    ``pending_truth`` until it is loaded, and ``(0, False)`` is returned.
    """
    if truth_file_sha(con, target) is not None:
        raise UserError(f"RUL truth for {target} is already loaded from other content; delete {target} "
                        "first to replace it.")
    con.execute("INSERT INTO truth_files VALUES (?, ?, ?, ?, ?)", [target, source, sha256, len(ruls), utc_now()])
    found = find_dataset(con, target)
    if found is None:
        frame = pa.table({"position": pa.array(range(len(ruls)), pa.int32()), "rul": pa.array(ruls, pa.int32())})
        con.register("incoming_pending", frame)
        try:
            con.execute("INSERT INTO pending_truth SELECT ?, position, rul FROM incoming_pending", [target])
        finally:
            con.unregister("incoming_pending")
        return 0, False
    units = [r[0] for r in con.execute(
        "SELECT DISTINCT unit FROM readings WHERE dataset_id = ? ORDER BY unit", [found["id"]]).fetchall()]
    if len(units) != len(ruls):
        raise UserError(f"The RUL file for {target} has {len(ruls)} values but {target} has {len(units)} "
                        "engines; they must match.")
    return set_truth(con, found["id"], units, ruls), True


def create_dataset(
    con: duckdb.DuckDBPyConnection,
    name: str,
    subset: str,
    split: str,
    source: str,
    frame: pd.DataFrame,
    sha256: str | None = None,
) -> int:
    """Validate `frame` (the 26 :data:`COLUMNS`) and store it as a new dataset in one transaction.

    Returns the new dataset id; :class:`UserError` if the name is taken or a row is bad.
    """
    arrays = validate_readings(frame, f"Dataset '{name}'")
    with transaction(con):
        return add_dataset(con, name, subset, split, source, arrays, sha256)


def append_readings(
    con: duckdb.DuckDBPyConnection,
    name: str,
    subset: str,
    split: str,
    source: str,
    frame: pd.DataFrame,
) -> int:
    """Append validated rows to dataset `name` (created if missing) in one transaction.

    New cycles of a unit must come after the cycles already stored for it. Used by the
    production simulation (``split="stream"``). Returns the number of rows added.
    """
    label = f"Dataset '{name}'"
    arrays = validate_readings(frame, label)
    with transaction(con):
        found = find_dataset(con, name)
        if found is None:
            add_dataset(con, name, subset, split, source, arrays)
            return len(arrays["unit"])
        if (found["subset"], found["split"]) != (subset, split):
            raise UserError(f"{label} is a {found['split']} dataset of {found['subset']}, not {split} of {subset}.")
        incoming = pa.table({"unit": arrays["unit"], "cycle": arrays["cycle"]})
        con.register("incoming_keys", incoming)
        try:
            clash = first_row(
                con,
                "SELECT i.unit, i.cycle, m.last FROM incoming_keys i JOIN (SELECT unit, max(cycle) AS last "
                "FROM readings WHERE dataset_id = ? GROUP BY unit) m ON m.unit = i.unit "
                "WHERE i.cycle <= m.last LIMIT 1",
                [found["id"]],
            )
        finally:
            con.unregister("incoming_keys")
        if clash:
            raise UserError(f"{label} already holds unit {int(clash[0])} up to cycle {int(clash[2])}, so cycle "
                            f"{int(clash[1])} cannot be appended; cycles must increase within each unit.")
        added = _insert_readings(con, found["id"], arrays)
        _refresh_counts(con, found["id"])
        return added


def delete_dataset(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Delete a dataset with its readings, truth, predictions and feedback, in one transaction."""
    dataset_id = get_dataset(con, name)["id"]
    with transaction(con):
        for table in ("readings", "rul_truth", "predictions", "feedback"):
            con.execute(f"DELETE FROM {table} WHERE dataset_id = ?", [dataset_id])
        con.execute("DELETE FROM truth_files WHERE target = ?", [name])
        con.execute("DELETE FROM datasets WHERE id = ?", [dataset_id])


def insert_predictions(
    con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame, model_version: str
) -> int:
    """Store predictions (columns unit, cycle, rul, rul_low, rul_high, p_fail_30, risk) for dataset `name`.

    All rows share one ``created_at`` timestamp; returns the number of rows written.
    """
    dataset_id = get_dataset(con, name)["id"]
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"Predictions for '{name}' lack the column(s) {', '.join(missing)}.")
    table = pa.Table.from_pandas(frame[PREDICTION_COLUMNS].reset_index(drop=True), preserve_index=False)
    con.register("incoming_predictions", table)
    try:
        with transaction(con):
            con.execute(
                "INSERT INTO predictions SELECT ?, ?, CAST(unit AS INTEGER), CAST(cycle AS INTEGER), ?, rul, "
                "rul_low, rul_high, p_fail_30, CAST(risk AS VARCHAR) FROM incoming_predictions",
                [utc_now(), dataset_id, str(model_version)],
            )
    finally:
        con.unregister("incoming_predictions")
    return table.num_rows


def insert_feedback(
    con: duckdb.DuckDBPyConnection, name: str, unit: int, cycle: int, outcome: str, note: str | None = None
) -> None:
    """Record an engineer's observed outcome (e.g. ``failed``, ``inspected_ok``) for one engine at a cycle."""
    dataset_id = get_dataset(con, name)["id"]
    if not outcome.strip():
        raise UserError("A feedback outcome must not be empty.")
    con.execute("INSERT INTO feedback VALUES (?, ?, ?, ?, ?, ?)", [utc_now(), dataset_id, int(unit), int(cycle),
                                                                   outcome, note])
