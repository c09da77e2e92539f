"""The DuckDB fleet store: schema and short-lived connections (reads in :mod:`core.data.queries`, writes in
:mod:`core.data.writes`, checks in :mod:`core.data.validation`).

Connections are opened per operation and closed at once, because DuckDB lets only one process hold the
file. Every write that touches several rows runs in one transaction (:func:`transaction`). Values always
travel as ``?`` parameters; table and column names come only from the fixed lists in this package.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone

import duckdb

from core import config
from core.data.cmapss import COLUMNS, SENSORS, SETTINGS
from core.errors import UserError

ROLES = ("history", "fleet", "evaluation", "sandbox")
"""What a dataset is for. ``history``: engines run to failure or removal, the only training data;
``fleet``: engines in service, scored and never trained on; ``evaluation``: in service with known RUL
(``rul_truth``), scored and evaluated; ``sandbox``: scratch data of the production simulation, never
listed for training or serving. RUL files fill ``rul_truth`` and are not datasets."""
IN_SERVICE_ROLES = ("fleet", "evaluation")
SCHEMA_VERSION = 3

_DEFAULT_LOCK_WAIT_S = 5.0


def lock_wait_s() -> float:
    """How long :func:`connect` retries while another process holds the file (``PM_DB_LOCK_WAIT_S``, default 5)."""
    raw = os.environ.get("PM_DB_LOCK_WAIT_S", str(_DEFAULT_LOCK_WAIT_S))
    try:
        return max(0.0, float(raw))
    except ValueError as err:
        raise UserError(f"PM_DB_LOCK_WAIT_S is '{raw}', which is not a number of seconds.") from err


VALUE_COLUMNS = [*SETTINGS, *SENSORS]
READING_COLUMNS_SQL = ", ".join(COLUMNS)
PREDICTION_COLUMNS = ["unit", "cycle", "rul", "rul_low", "rul_high", "p_fail_30", "risk"]

_SCHEMA = [
    "CREATE SEQUENCE IF NOT EXISTS datasets_id_seq START 1",
    """CREATE TABLE IF NOT EXISTS datasets (
        id INTEGER PRIMARY KEY DEFAULT nextval('datasets_id_seq'),
        name VARCHAR NOT NULL UNIQUE,
        subset VARCHAR NOT NULL,
        role VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        sha256 VARCHAR,
        rows BIGINT NOT NULL DEFAULT 0,
        engines INTEGER NOT NULL DEFAULT 0,
        loaded_at TIMESTAMP NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS readings (dataset_id INTEGER NOT NULL, unit INTEGER NOT NULL, "
    "cycle INTEGER NOT NULL, "
    + ", ".join(f"{c} DOUBLE NOT NULL" for c in VALUE_COLUMNS)
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
        rul_high DOUBLE, p_fail_30 DOUBLE, risk VARCHAR, ood BOOLEAN, ood_reason VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS feedback (
        created_at TIMESTAMP NOT NULL, dataset_id INTEGER NOT NULL, unit INTEGER NOT NULL,
        cycle INTEGER NOT NULL, outcome VARCHAR NOT NULL, note VARCHAR, model_version VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS engines (
        dataset_id INTEGER NOT NULL, unit INTEGER NOT NULL, engine VARCHAR NOT NULL,
        closed_cycle INTEGER, closed_event VARCHAR, closed_at TIMESTAMP,
        PRIMARY KEY (dataset_id, unit), UNIQUE (dataset_id, engine))""",
    """CREATE TABLE IF NOT EXISTS loaded_files (
        dataset_id INTEGER NOT NULL, sha256 VARCHAR NOT NULL, source VARCHAR NOT NULL,
        rows BIGINT NOT NULL, loaded_at TIMESTAMP NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS store_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    """CREATE TABLE IF NOT EXISTS alerts (
        key VARCHAR PRIMARY KEY, created_at TIMESTAMP NOT NULL, kind VARCHAR NOT NULL, message VARCHAR NOT NULL,
        dataset VARCHAR, engine VARCHAR, value DOUBLE)""",
]
"""Tables. ``engines`` maps each engine's id as the operator writes it to the integer ``unit`` the
readings use, and records when an outcome closed it; ``loaded_files`` holds the sha256 of every file
loaded into a dataset (for de-duplication); ``truth_files`` records each RUL file loaded;
``pending_truth`` holds RUL values that arrived before their test dataset; ``feedback`` holds the
outcomes engineers record, with the model version serving at the time."""

_MIGRATE_V1 = [
    "ALTER TABLE datasets RENAME COLUMN split TO role",
    "UPDATE datasets SET role = CASE role WHEN 'train' THEN 'history' WHEN 'test' THEN 'evaluation' "
    "WHEN 'stream' THEN 'sandbox' ELSE role END",
    "ALTER TABLE feedback ADD COLUMN IF NOT EXISTS model_version VARCHAR",
    "INSERT INTO engines (dataset_id, unit, engine) SELECT DISTINCT dataset_id, unit, CAST(unit AS VARCHAR) "
    "FROM readings",
    "INSERT INTO loaded_files SELECT id, sha256, source, rows, loaded_at FROM datasets WHERE sha256 IS NOT NULL",
]
"""A store written before dataset roles and engine ids (schema 1): ``split`` train/test/stream becomes
role history/evaluation/sandbox, and each engine's id is its unit number."""

_MIGRATE_V2 = [
    "ALTER TABLE predictions ADD COLUMN IF NOT EXISTS ood BOOLEAN",
    "ALTER TABLE predictions ADD COLUMN IF NOT EXISTS ood_reason VARCHAR",
]
"""Schema 2 to 3: stored predictions keep the out-of-experience flag and its reason."""


def first_row(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> tuple | None:
    """The first row of a query, or None; fetches the whole result so the connection is free again.

    DuckDB 2.0 refuses further work on a connection whose last result was only partly
    fetched (``fetchone`` on a one-row result counts as partly fetched).
    """
    rows = con.execute(sql, list(params)).fetchall()
    return rows[0] if rows else None


def utc_now() -> datetime:
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
        except duckdb.ConnectionException as err:
            # A read-only connection of this process (another thread) is open: they are short, wait for it.
            if "different configuration" not in str(err) or time.monotonic() >= deadline:
                raise UserError(f"The fleet database {path} could not be opened: {err}.") from err
            time.sleep(0.02)
    try:
        if not read_only:
            _ensure_schema(con)
        yield con
    finally:
        con.close()


def _ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables, or bring a schema-1 store (datasets with a ``split``) up to date, in one transaction.

    A store already at :data:`SCHEMA_VERSION` is only read, so concurrent connections do not write here.
    """
    current = first_row(con, "SELECT value FROM store_meta WHERE key = 'schema_version'") if first_row(
        con, "SELECT 1 FROM information_schema.tables WHERE table_name = 'store_meta'") else None
    if current and current[0] == str(SCHEMA_VERSION):
        return
    (old,) = first_row(con, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'datasets' "
                            "AND column_name = 'split'") or (0,)
    with transaction(con):
        for statement in _SCHEMA:
            con.execute(statement)
        if old:
            for statement in _MIGRATE_V1:
                con.execute(statement)
        for statement in _MIGRATE_V2:
            con.execute(statement)
        con.execute("INSERT OR REPLACE INTO store_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])


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
