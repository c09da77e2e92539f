"""Writes to the fleet store: datasets with their readings, RUL truth, predictions and feedback.

Each function writes inside the caller's connection, a read-write :func:`core.data.store.connect` (the
process's one writer path); callers wrap several writes in :func:`core.data.store.transaction` so a
failure leaves the store as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from core.data import names, sensors
from core.data.cmapss import COLUMNS
from core.data.queries import find_dataset, get_dataset, pending_truth_count, truth_file_sha
from core.data.store import (
    IN_SERVICE_ROLES,
    PREDICTION_COLUMNS,
    READING_COLUMNS_SQL,
    ROLES,
    VALUE_COLUMNS,
    first_row,
    transaction,
    utc_now,
)
from core.data.validation import validate_readings
from core.errors import UserError


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
        con.execute(
            "INSERT INTO reading_loads SELECT ?, (SELECT coalesce(max(load_no), 0) + 1 FROM reading_loads "
            "WHERE dataset_id = ?), CAST(unit AS INTEGER), CAST(min(cycle) AS INTEGER), CAST(max(cycle) AS INTEGER), "
            f"? FROM {view} GROUP BY unit",
            [dataset_id, dataset_id, utc_now()],
        )
    finally:
        con.unregister(view)
    return table.num_rows


def _insert_engines(con: duckdb.DuckDBPyConnection, dataset_id: int, units: np.ndarray, ids: np.ndarray) -> int:
    """Record the id of each new engine (unit numbers not yet known for the dataset)."""
    first = pd.DataFrame({"unit": units.astype(np.int64), "engine": ids}).drop_duplicates("unit")
    table = pa.Table.from_pandas(first, preserve_index=False)
    con.register("incoming_engines", table)
    try:
        con.execute("INSERT INTO engines (dataset_id, unit, engine) SELECT ?, CAST(unit AS INTEGER), engine "
                    "FROM incoming_engines", [dataset_id])
    finally:
        con.unregister("incoming_engines")
    return len(first)


def _record_file(con: duckdb.DuckDBPyConnection, dataset_id: int, sha256: str | None, source: str, rows: int) -> None:
    if sha256:
        con.execute("INSERT INTO loaded_files VALUES (?, ?, ?, ?, ?)", [dataset_id, sha256, source, rows, utc_now()])


def _refresh_counts(con: duckdb.DuckDBPyConnection, dataset_id: int) -> None:
    con.execute(
        "UPDATE datasets SET rows = (SELECT count(*) FROM readings WHERE dataset_id = ?), "
        "engines = (SELECT count(DISTINCT unit) FROM readings WHERE dataset_id = ?) WHERE id = ?",
        [dataset_id, dataset_id, dataset_id],
    )


def check_role(role: str) -> None:
    """UserError unless `role` is one of :data:`ROLES`."""
    if role not in ROLES:
        raise UserError(f"Role '{role}' is not one of {', '.join(r for r in ROLES if r != 'sandbox')}.")


def add_dataset(
    con: duckdb.DuckDBPyConnection,
    name: str,
    subset: str,
    role: str,
    source: str,
    arrays: Mapping[str, np.ndarray],
    sha256: str | None = None,
) -> int:
    """Insert a new dataset, its already validated readings and its engine ids, inside the caller's transaction.

    Pending RUL values for this (evaluation) dataset are moved into ``rul_truth``. Returns its id.
    """
    check_role(role)
    if not name.strip():
        raise UserError("A dataset needs a name.")
    if find_dataset(con, name) is not None:
        raise UserError(f"A dataset named '{name}' is already loaded; delete it first to replace it.")
    (dataset_id,) = con.execute(
        "INSERT INTO datasets (name, subset, role, source, sha256, loaded_at) VALUES (?, ?, ?, ?, ?, ?) "
        "RETURNING id",
        [name, subset, role, source, sha256, utc_now()],
    ).fetchall()[0]
    _insert_readings(con, dataset_id, arrays)
    _insert_engines(con, dataset_id, np.asarray(arrays["unit"]), _ids(arrays))
    _record_file(con, dataset_id, sha256, source, len(arrays["unit"]))
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


def _ids(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Each row's engine id as text (the unit number when the arrays carry no ``engine``)."""
    if "engine" in arrays:
        return np.asarray(arrays["engine"], dtype=object)
    return np.asarray(arrays["unit"]).astype(np.int64).astype(str).astype(object)


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
    role: str,
    source: str,
    frame: pd.DataFrame,
    sha256: str | None = None,
) -> int:
    """Validate `frame` (``engine`` or ``unit``, ``cycle`` and the value columns) and store it as a new dataset.

    One transaction; returns the new dataset id; :class:`UserError` if the name is taken or a row is bad.
    """
    arrays = validate_readings(frame, f"Dataset '{name}'")
    with transaction(con):
        return add_dataset(con, name, subset, role, source, arrays, sha256)


@dataclass(frozen=True)
class Merge:
    """What appending readings to a dataset did: rows added, identical rows already stored, engines touched."""

    dataset: str
    added: int
    unchanged: int
    new_engines: list[str]
    changed_engines: list[str]

    def to_dict(self) -> dict:
        """A JSON-serialisable copy."""
        return {"dataset": self.dataset, "readings_added": self.added, "readings_unchanged": self.unchanged,
                "new_engines": self.new_engines, "changed_engines": self.changed_engines}


def _map_units(con: duckdb.DuckDBPyConnection, dataset_id: int, label: str,
               ids: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Unit number of each row's engine id: stored engines keep theirs, new ones follow the largest.

    A stored id is matched as given and folded (:func:`core.data.names.fold`), so an id stored before the rule
    for names (e.g. ``ＥＳＮ-7001``) is the same engine as the normalised one arriving (``ESN-7001``).
    """
    stored = con.execute("SELECT engine, unit, closed_cycle, closed_event FROM engines WHERE dataset_id = ?",
                         [dataset_id]).fetchall()
    known = {**{names.fold(engine): int(unit) for engine, unit, _, _ in stored},
             **{engine: int(unit) for engine, unit, _, _ in stored}}
    closed = {key: (cycle, event) for engine, _, cycle, event in stored if event is not None
              for key in (names.fold(engine), engine)}
    touched = set(pd.unique(pd.Series(ids)))
    for engine in sorted(touched & closed.keys()):
        cycle, event = closed[engine]
        raise UserError(f"{label}: engine {engine} was closed by a {event} at cycle {cycle}, so no readings can "
                        "be added to it.")
    new: dict[str, int] = {}
    next_unit = max(known.values(), default=0) + 1
    for engine in pd.unique(pd.Series(ids)):
        if engine not in known:
            new[engine] = next_unit
            next_unit += 1
    return pd.Series(ids).map({**known, **new}).to_numpy(dtype=np.int64), new


def _fresh_rows_of_stored_engines(con: duckdb.DuckDBPyConnection, dataset_id: int, label: str, ids: np.ndarray,
                                  incoming: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Of the incoming `rows` (those of engines the dataset already holds), the ones not stored yet.

    Refuses a row whose (engine, cycle) is stored with another value, and a new cycle that is not after the
    engine's last stored one. Only the stored readings of the engines concerned are read: the store's rows are
    in unit order, so the unit range prunes the rest of the dataset (an append of new engines reads none).
    """
    if not rows.size:
        return rows
    part = {c: incoming[c][rows] for c in COLUMNS}
    table = _arrow_readings(part).append_column("row_no", pa.array(rows.astype(np.int64)))
    touched = [dataset_id, int(part["unit"].min()), int(part["unit"].max())]
    stored = "SELECT * FROM readings WHERE dataset_id = ? AND unit BETWEEN ? AND ?"
    con.register("incoming_merge", table)
    try:
        differs = " OR ".join(f"i.{c} <> r.{c}" for c in VALUE_COLUMNS)
        conflict = first_row(
            con,
            "SELECT i.row_no, i.cycle, " + ", ".join(f"i.{c}, r.{c}" for c in VALUE_COLUMNS) +
            f" FROM incoming_merge i JOIN ({stored}) r ON r.unit = CAST(i.unit AS INTEGER) "
            f"AND r.cycle = CAST(i.cycle AS INTEGER) WHERE {differs} ORDER BY i.row_no LIMIT 1",
            touched,
        )
        if conflict:
            row, cycle, values = int(conflict[0]), int(conflict[1]), conflict[2:]
            for k, column in enumerate(VALUE_COLUMNS):
                new_value, stored_value = values[2 * k], values[2 * k + 1]
                if new_value != stored_value:
                    raise UserError(
                        f"{label} already holds engine {ids[row]} cycle {cycle} with {sensors.mnemonic(column)} "
                        f"{stored_value:g}, but the new readings give {new_value:g}; nothing was changed. "
                        "Delete the dataset to replace its readings.")
        fresh = con.execute(
            f"SELECT i.row_no FROM incoming_merge i ANTI JOIN ({stored}) r ON r.unit = CAST(i.unit AS INTEGER) "
            "AND r.cycle = CAST(i.cycle AS INTEGER) ORDER BY i.row_no",
            touched,
        ).fetchnumpy()["row_no"]
        late = first_row(
            con,
            f"WITH r AS ({stored}), fresh AS (SELECT i.* FROM incoming_merge i ANTI JOIN r "
            "ON r.unit = CAST(i.unit AS INTEGER) AND r.cycle = CAST(i.cycle AS INTEGER)) "
            "SELECT f.row_no, f.cycle, m.last FROM fresh f JOIN (SELECT unit, max(cycle) AS last FROM r GROUP BY unit) m "
            "ON m.unit = CAST(f.unit AS INTEGER) WHERE f.cycle <= m.last ORDER BY f.row_no LIMIT 1",
            touched,
        )
    finally:
        con.unregister("incoming_merge")
    if late:
        row, cycle, last = int(late[0]), int(late[1]), int(late[2])
        raise UserError(f"{label} holds engine {ids[row]} up to cycle {last}, so cycle {cycle} cannot be added: "
                        "an engine's new cycles must come after its last stored one.")
    return np.asarray(fresh, dtype=np.int64)


def merge_readings(
    con: duckdb.DuckDBPyConnection, name: str, arrays: Mapping[str, np.ndarray], source: str,
    sha256: str | None = None,
) -> Merge:
    """Append validated readings to the in-service dataset `name`, inside the caller's transaction.

    Rows identical to stored ones are a no-op; a different value for a stored (engine, cycle) is refused
    naming both values; an engine's new cycles must come after its last stored one; new engines are added.
    """
    found = find_dataset(con, name)
    if found is None:
        raise UserError(f"No dataset named '{name}' is loaded.")
    label = f"Dataset '{name}'"
    if found["role"] not in IN_SERVICE_ROLES:
        raise UserError(f"{label} is a {found['role']} dataset; readings are appended only to fleet or evaluation "
                        "datasets. Load new engines as a dataset of their own.")
    dataset_id = int(found["id"])
    ids = _ids(arrays)
    units, new = _map_units(con, dataset_id, label, ids)
    incoming = {**{c: np.asarray(arrays[c], dtype=np.float64) for c in COLUMNS}, "unit": units.astype(np.float64)}
    is_new = pd.Series(ids).isin(list(new)).to_numpy()
    stored_rows = np.flatnonzero(~is_new)
    known_fresh = _fresh_rows_of_stored_engines(con, dataset_id, label, ids, incoming, stored_rows)
    fresh = np.sort(np.concatenate([np.flatnonzero(is_new), known_fresh]))
    if fresh.size:
        _insert_readings(con, dataset_id, {c: incoming[c][fresh] for c in COLUMNS})
    if new:
        _insert_engines(con, dataset_id, units[is_new], ids[is_new])
    _record_file(con, dataset_id, sha256, source, len(units))
    _refresh_counts(con, dataset_id)
    changed = sorted(set(ids[fresh]) - set(new)) if fresh.size else []
    return Merge(dataset=name, added=int(fresh.size), unchanged=int(len(units) - fresh.size),
                 new_engines=list(new), changed_engines=changed)


def append_readings(
    con: duckdb.DuckDBPyConnection,
    name: str,
    subset: str,
    role: str,
    source: str,
    frame: pd.DataFrame,
) -> Merge:
    """Validate `frame` and append it to dataset `name` (created with `role` if missing) in one transaction."""
    check_role(role)
    arrays = validate_readings(frame, f"Dataset '{name}'")
    with transaction(con):
        found = find_dataset(con, name)
        if found is None:
            add_dataset(con, name, subset, role, source, arrays)
            ids = _ids(arrays)
            return Merge(dataset=name, added=len(ids), unchanged=0, new_engines=list(pd.unique(pd.Series(ids))),
                         changed_engines=[])
        if found["role"] != role:
            raise UserError(f"Dataset '{name}' is a {found['role']} dataset, not {role}.")
        if role == "sandbox":
            return _append_sandbox(con, found, arrays, source)
        return merge_readings(con, name, arrays, source)


def insert_history_engine(con: duckdb.DuckDBPyConnection, dataset_id: int, arrays: Mapping[str, np.ndarray]) -> None:
    """Add one closed engine's validated readings (a unit number new to the dataset) to a history dataset."""
    _insert_readings(con, dataset_id, arrays)
    _insert_engines(con, dataset_id, np.asarray(arrays["unit"]), _ids(arrays))
    _refresh_counts(con, dataset_id)


def _append_sandbox(con: duckdb.DuckDBPyConnection, found: dict, arrays: Mapping[str, np.ndarray],
                    source: str) -> Merge:
    """The simulation's stream: whole new engines or later cycles of known ones, by unit number."""
    dataset_id = int(found["id"])
    incoming = pa.table({"unit": np.asarray(arrays["unit"]), "cycle": np.asarray(arrays["cycle"])})
    con.register("incoming_keys", incoming)
    try:
        clash = first_row(
            con,
            "SELECT i.unit, i.cycle, m.last FROM incoming_keys i JOIN (SELECT unit, max(cycle) AS last "
            "FROM readings WHERE dataset_id = ? GROUP BY unit) m ON m.unit = i.unit "
            "WHERE i.cycle <= m.last LIMIT 1",
            [dataset_id],
        )
    finally:
        con.unregister("incoming_keys")
    if clash:
        raise UserError(f"Dataset '{found['name']}' already holds engine {int(clash[0])} up to cycle "
                        f"{int(clash[2])}, so cycle {int(clash[1])} cannot be appended; cycles must increase "
                        "within each engine.")
    units = np.asarray(arrays["unit"]).astype(np.int64)
    known = {int(u) for (u,) in con.execute("SELECT unit FROM engines WHERE dataset_id = ?", [dataset_id]).fetchall()}
    new_rows = np.flatnonzero(~np.isin(units, list(known)))
    _insert_readings(con, dataset_id, arrays)
    if new_rows.size:
        _insert_engines(con, dataset_id, units[new_rows], _ids(arrays)[new_rows])
    _refresh_counts(con, dataset_id)
    ids = _ids(arrays)
    return Merge(dataset=found["name"], added=len(units), unchanged=0,
                 new_engines=sorted(set(ids[new_rows])), changed_engines=sorted(set(ids) - set(ids[new_rows])))


def delete_dataset(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Delete a dataset with its readings, truth, predictions, feedback, drift history and fleet explanations, in one
    transaction."""
    dataset_id = get_dataset(con, name)["id"]
    with transaction(con):
        for table in ("readings", "rul_truth", "predictions", "feedback", "engines", "engine_sources", "loaded_files",
                      "reading_loads", "drift_history", "fleet_explanations", "fleet_shap"):
            con.execute(f"DELETE FROM {table} WHERE dataset_id = ?", [dataset_id])
        con.execute("DELETE FROM truth_files WHERE target = ?", [name])
        con.execute("DELETE FROM datasets WHERE id = ?", [dataset_id])


def insert_predictions(
    con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame, model_version: str
) -> int:
    """Store predictions (columns unit, cycle, rul, rul_low, rul_high, p_fail_30, risk, and optionally ood and
    ood_reason) for dataset `name`.

    All rows share one ``created_at`` timestamp; returns the number of rows written.
    """
    dataset_id = get_dataset(con, name)["id"]
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"Predictions for '{name}' lack the column(s) {', '.join(missing)}.")
    flagged = frame.reset_index(drop=True)
    if "ood" not in flagged.columns:
        flagged = flagged.assign(ood=None, ood_reason=None)
    flagged = flagged.assign(ood=flagged["ood"].astype(object), ood_reason=flagged["ood_reason"].astype(object))
    table = pa.Table.from_pandas(flagged[[*PREDICTION_COLUMNS, "ood", "ood_reason"]], preserve_index=False)
    con.register("incoming_predictions", table)
    try:
        with transaction(con):
            con.execute(
                "INSERT INTO predictions SELECT ?, ?, CAST(unit AS INTEGER), CAST(cycle AS INTEGER), ?, rul, "
                "rul_low, rul_high, p_fail_30, CAST(risk AS VARCHAR), CAST(ood AS BOOLEAN), "
                "CAST(ood_reason AS VARCHAR) FROM incoming_predictions",
                [utc_now(), dataset_id, str(model_version)],
            )
    finally:
        con.unregister("incoming_predictions")
    return table.num_rows
