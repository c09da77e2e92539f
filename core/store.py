"""The DuckDB fleet store: schema, short-lived connections, and typed reads and writes.

Connections are opened per operation and closed at once, because DuckDB lets only one
process hold the file. Every write that touches several rows runs in one transaction.
Values always travel as ``?`` parameters; table and column names come only from the
fixed lists in this module.

Plausibility bounds applied to every reading (see :func:`validate_readings`):

- ``unit`` and ``cycle``: whole numbers from 1 to 1,000,000;
- ``setting_1..3``: from -1,000 to 1,000 (C-MAPSS: altitude 0-42 kft, Mach 0-0.84, TRA 60-100);
- ``sensor_1..21``: from 0 to 100,000 (C-MAPSS sensors are temperatures, pressures, speeds
  and ratios, all non-negative, the largest about 9,250 rpm).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from core import config
from core.cmapss import COLUMNS, SENSORS, SETTINGS
from core.errors import UserError

SPLITS = ("train", "test", "stream")
"""Splits a dataset may have (RUL files fill ``rul_truth`` and are not datasets)."""

UNIT_CYCLE_MAX = 1_000_000
SETTING_BOUNDS = (-1_000.0, 1_000.0)
SENSOR_BOUNDS = (0.0, 100_000.0)

_DEFAULT_LOCK_WAIT_S = 5.0


def lock_wait_s() -> float:
    """How long :func:`connect` retries while another process holds the file (``PM_DB_LOCK_WAIT_S``, default 5)."""
    raw = os.environ.get("PM_DB_LOCK_WAIT_S", str(_DEFAULT_LOCK_WAIT_S))
    try:
        return max(0.0, float(raw))
    except ValueError as err:
        raise UserError(f"PM_DB_LOCK_WAIT_S is '{raw}', which is not a number of seconds.") from err

_VALUE_COLUMNS = [*SETTINGS, *SENSORS]
_READING_COLUMNS_SQL = ", ".join(COLUMNS)
_PREDICTION_COLUMNS = ["unit", "cycle", "rul", "rul_low", "rul_high", "p_fail_30", "risk"]

_SCHEMA = [
    "CREATE SEQUENCE IF NOT EXISTS datasets_id_seq START 1",
    """CREATE TABLE IF NOT EXISTS datasets (
        id INTEGER PRIMARY KEY DEFAULT nextval('datasets_id_seq'),
        name VARCHAR NOT NULL UNIQUE,
        subset VARCHAR NOT NULL,
        split VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        sha256 VARCHAR,
        rows BIGINT NOT NULL DEFAULT 0,
        engines INTEGER NOT NULL DEFAULT 0,
        loaded_at TIMESTAMP NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS readings (dataset_id INTEGER NOT NULL, unit INTEGER NOT NULL, "
    "cycle INTEGER NOT NULL, "
    + ", ".join(f"{c} DOUBLE NOT NULL" for c in _VALUE_COLUMNS)
    + ", PRIMARY KEY (dataset_id, unit, cycle))",
    """CREATE TABLE IF NOT EXISTS rul_truth (
        dataset_id INTEGER NOT NULL, unit INTEGER NOT NULL, rul INTEGER NOT NULL,
        PRIMARY KEY (dataset_id, unit))""",
    """CREATE TABLE IF NOT EXISTS truth_files (
        target VARCHAR PRIMARY KEY, source VARCHAR NOT NULL, sha256 VARCHAR NOT NULL,
        rows INTEGER NOT NULL, loaded_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS pending_truth (
        target VARCHAR NOT NULL, position INTEGER NOT NULL, rul INTEGER NOT NULL,
        PRIMARY KEY (target, position))""",
    """CREATE TABLE IF NOT EXISTS predictions (
        created_at TIMESTAMP NOT NULL, dataset_id INTEGER NOT NULL, unit INTEGER NOT NULL,
        cycle INTEGER NOT NULL, model_version VARCHAR NOT NULL, rul DOUBLE, rul_low DOUBLE,
        rul_high DOUBLE, p_fail_30 DOUBLE, risk VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS feedback (
        created_at TIMESTAMP NOT NULL, dataset_id INTEGER NOT NULL, unit INTEGER NOT NULL,
        cycle INTEGER NOT NULL, outcome VARCHAR NOT NULL, note VARCHAR)""",
]
"""Tables. ``truth_files`` records each RUL file loaded (for de-duplication);
``pending_truth`` holds RUL values that arrived before their test dataset."""


def first_row(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> tuple | None:
    """The first row of a query, or None; fetches the whole result so the connection is free again.

    DuckDB 2.0 refuses further work on a connection whose last result was only partly
    fetched (``fetchone`` on a one-row result counts as partly fetched).
    """
    rows = con.execute(sql, list(params)).fetchall()
    return rows[0] if rows else None


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _is_lock_error(err: duckdb.Error) -> bool:
    text = str(err).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def _open(path: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(path, read_only=read_only)
    except duckdb.ConnectionException as err:
        if read_only and "different configuration" in str(err):
            return duckdb.connect(path)
        raise


@contextmanager
def connect(read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the fleet database at ``config.paths().duckdb`` for one operation, then close it.

    The schema is created when missing (not in ``read_only`` mode, where a missing file is
    a :class:`UserError`). While another process holds the file, retries for
    ``PM_DB_LOCK_WAIT_S`` seconds (default 5) and then raises :class:`UserError`.
    """
    path = config.paths().duckdb
    if read_only and not path.exists():
        raise UserError(f"The fleet database {path} does not exist yet; load data first with "
                        "'python -m core ingest' or the Data page.")
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_wait_s()
    while True:
        try:
            con = _open(str(path), read_only)
            break
        except duckdb.IOException as err:
            if not _is_lock_error(err):
                raise UserError(f"The fleet database {path} could not be opened: {err}.") from err
            if time.monotonic() >= deadline:
                raise UserError(f"The fleet database {path} is in use by another process; "
                                "close it (or stop the dashboard) and try again.") from err
            time.sleep(0.2)
    try:
        if not read_only:
            for statement in _SCHEMA:
                con.execute(statement)
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction: commit on success, roll back on any exception."""
    con.begin()
    try:
        yield con
    except BaseException:
        con.rollback()
        raise
    con.commit()


# ----------------------------------------------------------------------------- validation


def _default_where(index: int) -> str:
    return f"row {index + 1}"


def _fmt(value: float) -> str:
    return f"{value:g}" if isinstance(value, float | np.floating) else str(value)


def validate_readings(
    columns: Mapping[str, object],
    label: str,
    where: Callable[[int], str] = _default_where,
) -> dict[str, np.ndarray]:
    """Check readings and return them as float64 arrays keyed by :data:`COLUMNS`.

    `columns` maps column names to array-likes (a DataFrame works). `label` names the
    file or dataset in messages and `where(i)` names row ``i`` (e.g. ``"line 12"``).
    Raises :class:`UserError` with one sentence for: a missing column, non-numeric or
    missing values, NaN/inf, values outside the plausibility bounds, a unit or cycle that
    is not a positive whole number, a repeated (unit, cycle), cycles that do not increase
    within a unit, or no rows at all.
    """
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise UserError(f"{label} lacks the column(s) {', '.join(missing)}; a C-MAPSS reading needs "
                        f"the 26 columns {COLUMNS[0]}, {COLUMNS[1]}, setting_1..3 and sensor_1..21.")
    arrays: dict[str, np.ndarray] = {}
    for name in COLUMNS:
        raw = np.asarray(columns[name])
        if raw.dtype.kind not in "biuf":
            converted = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=float)
            bad = np.flatnonzero(np.isnan(converted) & ~pd.isna(pd.Series(raw)).to_numpy())
            if bad.size:
                i = int(bad[0])
                raise UserError(f"{label} {where(i)}: {name} is '{raw[i]}', which is not a number.")
            raw = converted
        arrays[name] = raw.astype(np.float64, copy=False)
    rows = len(arrays["unit"])
    if rows == 0:
        raise UserError(f"{label} holds no readings.")
    for name in COLUMNS:
        values = arrays[name]
        finite = np.isfinite(values)
        if not finite.all():
            i = int(np.flatnonzero(~finite)[0])
            shown = "missing" if np.isnan(values[i]) else _fmt(float(values[i]))
            raise UserError(f"{label} {where(i)}: {name} is {shown}, but readings must be finite numbers.")
    for name in ("unit", "cycle"):
        values = arrays[name]
        bad = np.flatnonzero((values < 1) | (values > UNIT_CYCLE_MAX) | (values != np.floor(values)))
        if bad.size:
            i = int(bad[0])
            raise UserError(f"{label} {where(i)}: {name} is {_fmt(float(values[i]))}, but it must be a "
                            f"positive whole number no larger than {UNIT_CYCLE_MAX:,}.")
    for names, (low, high), kind in ((SETTINGS, SETTING_BOUNDS, "setting"), (SENSORS, SENSOR_BOUNDS, "sensor")):
        for name in names:
            values = arrays[name]
            bad = np.flatnonzero((values < low) | (values > high))
            if bad.size:
                i = int(bad[0])
                raise UserError(f"{label} {where(i)}: {name} is {_fmt(float(values[i]))}, outside the "
                                f"plausible range {low:g} to {high:g} for a {kind}.")
    _check_order(arrays["unit"], arrays["cycle"], label, where)
    return arrays


def _check_order(unit: np.ndarray, cycle: np.ndarray, label: str, where: Callable[[int], str]) -> None:
    """Refuse repeated (unit, cycle) pairs and cycles that do not increase within a unit."""
    order = np.lexsort((np.arange(len(unit)), cycle, unit))
    su, sc = unit[order], cycle[order]
    dup = np.flatnonzero((su[1:] == su[:-1]) & (sc[1:] == sc[:-1]))
    if dup.size:
        first, again = sorted((int(order[dup[0]]), int(order[dup[0] + 1])))
        raise UserError(f"{label} {where(again)} repeats unit {int(unit[again])} cycle {int(cycle[again])}, "
                        f"already given on {where(first)}.")
    by_unit = np.lexsort((np.arange(len(unit)), unit))
    u, c = unit[by_unit], cycle[by_unit]
    back = np.flatnonzero((u[1:] == u[:-1]) & (c[1:] <= c[:-1]))
    if back.size:
        i = int(by_unit[back[0] + 1])
        prev = int(c[back[0]])
        raise UserError(f"{label} {where(i)}: unit {int(unit[i])} goes from cycle {prev} to cycle "
                        f"{int(cycle[i])}, but cycles must increase within each unit.")


# ----------------------------------------------------------------------------- reads


def list_datasets(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """All datasets, oldest first, with a ``has_truth`` flag for those with RUL truth."""
    return con.execute(
        "SELECT d.id, d.name, d.subset, d.split, d.source, d.sha256, d.rows, d.engines, d.loaded_at, "
        "EXISTS (SELECT 1 FROM rul_truth t WHERE t.dataset_id = d.id) AS has_truth "
        "FROM datasets d ORDER BY d.id"
    ).df()


def dataset_names(con: duckdb.DuckDBPyConnection, split: str | None = None) -> list[str]:
    """Names of loaded datasets (optionally of one split), in load order."""
    if split is None:
        rows = con.execute("SELECT name FROM datasets ORDER BY id").fetchall()
    else:
        rows = con.execute("SELECT name FROM datasets WHERE split = ? ORDER BY id", [split]).fetchall()
    return [r[0] for r in rows]


def find_dataset(con: duckdb.DuckDBPyConnection, name: str) -> dict | None:
    """The dataset row as a dict, or None when no dataset has that name."""
    cur = con.execute(
        "SELECT id, name, subset, split, source, sha256, rows, engines, loaded_at FROM datasets WHERE name = ?",
        [name],
    )
    rows = cur.fetchall()
    if not rows:
        return None
    return dict(zip([d[0] for d in cur.description], rows[0], strict=True))


def get_dataset(con: duckdb.DuckDBPyConnection, name: str) -> dict:
    """The dataset row as a dict; :class:`UserError` if no dataset has that name."""
    found = find_dataset(con, name)
    if found is None:
        raise UserError(f"No dataset named '{name}' is loaded.")
    return found


def find_by_sha256(con: duckdb.DuckDBPyConnection, sha256: str) -> str | None:
    """Name of the dataset (or ``RUL_`` truth file) already loaded with this content, if any."""
    row = first_row(con, "SELECT name FROM datasets WHERE sha256 = ? ORDER BY id LIMIT 1", [sha256])
    if row:
        return row[0]
    row = first_row(con, "SELECT target FROM truth_files WHERE sha256 = ? LIMIT 1", [sha256])
    return f"RUL for {row[0]}" if row else None


def known_sha256(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """sha256 -> name of every loaded content (datasets, and RUL files as ``RUL for <test>``)."""
    rows = con.execute(
        "SELECT sha256, name FROM datasets WHERE sha256 IS NOT NULL "
        "UNION ALL SELECT sha256, 'RUL for ' || target FROM truth_files"
    ).fetchall()
    return {sha: name for sha, name in rows}


def readings(con: duckdb.DuckDBPyConnection, name: str) -> pd.DataFrame:
    """The readings of one dataset with :data:`COLUMNS`, sorted by unit and cycle."""
    dataset_id = get_dataset(con, name)["id"]
    return con.execute(
        f"SELECT {_READING_COLUMNS_SQL} FROM readings WHERE dataset_id = ? ORDER BY unit, cycle", [dataset_id]
    ).df()


def readings_many(con: duckdb.DuckDBPyConnection, names: Sequence[str]) -> pd.DataFrame:
    """Readings of several datasets with a leading ``dataset`` column, in the order of `names`."""
    ids = [get_dataset(con, n)["id"] for n in names]
    frames = [
        con.execute(
            f"SELECT ? AS dataset, {_READING_COLUMNS_SQL} FROM readings WHERE dataset_id = ? ORDER BY unit, cycle",
            [name, dataset_id],
        ).df()
        for name, dataset_id in zip(names, ids, strict=True)
    ]
    if not frames:
        return pd.DataFrame(columns=["dataset", *COLUMNS])
    return pd.concat(frames, ignore_index=True)


def rul_truth(con: duckdb.DuckDBPyConnection, name: str) -> pd.DataFrame:
    """True RUL per unit for a test dataset, as columns ``unit, rul`` (empty if none)."""
    dataset_id = get_dataset(con, name)["id"]
    return con.execute("SELECT unit, rul FROM rul_truth WHERE dataset_id = ? ORDER BY unit", [dataset_id]).df()


def truth_file_sha(con: duckdb.DuckDBPyConnection, target: str) -> str | None:
    """sha256 of the RUL file loaded for the test dataset `target`, if one was loaded."""
    row = first_row(con, "SELECT sha256 FROM truth_files WHERE target = ?", [target])
    return row[0] if row else None


def pending_truth_count(con: duckdb.DuckDBPyConnection, target: str) -> int | None:
    """Number of RUL values waiting for test dataset `target` to be loaded, or None if none wait."""
    (count,) = first_row(con, "SELECT count(*) FROM pending_truth WHERE target = ?", [target]) or (0,)
    return int(count) or None


# ----------------------------------------------------------------------------- writes


def _arrow_readings(arrays: Mapping[str, np.ndarray]) -> pa.Table:
    return pa.table({name: np.asarray(arrays[name], dtype=np.float64) for name in COLUMNS})


def _insert_readings(con: duckdb.DuckDBPyConnection, dataset_id: int, arrays: Mapping[str, np.ndarray]) -> int:
    table = _arrow_readings(arrays)
    view = f"incoming_readings_{dataset_id}"
    con.register(view, table)
    try:
        con.execute(
            f"INSERT INTO readings (dataset_id, {_READING_COLUMNS_SQL}) SELECT ?, CAST(unit AS INTEGER), "
            f"CAST(cycle AS INTEGER), {', '.join(_VALUE_COLUMNS)} FROM {view}",
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
        [name, subset, split, source, sha256, _now()],
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
    con.execute("INSERT INTO truth_files VALUES (?, ?, ?, ?, ?)", [target, source, sha256, len(ruls), _now()])
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
    missing = [c for c in _PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"Predictions for '{name}' lack the column(s) {', '.join(missing)}.")
    table = pa.Table.from_pandas(frame[_PREDICTION_COLUMNS].reset_index(drop=True), preserve_index=False)
    con.register("incoming_predictions", table)
    try:
        with transaction(con):
            con.execute(
                "INSERT INTO predictions SELECT ?, ?, CAST(unit AS INTEGER), CAST(cycle AS INTEGER), ?, rul, "
                "rul_low, rul_high, p_fail_30, CAST(risk AS VARCHAR) FROM incoming_predictions",
                [_now(), dataset_id, str(model_version)],
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
    con.execute("INSERT INTO feedback VALUES (?, ?, ?, ?, ?, ?)", [_now(), dataset_id, int(unit), int(cycle),
                                                                   outcome, note])
