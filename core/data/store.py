"""The DuckDB fleet store: schema and connections (reads in :mod:`core.data.queries`, writes in
:mod:`core.data.writes`, checks in :mod:`core.data.validation`).

Within one process there is one open handle per database file, in one configuration
(:class:`SharedStore`): every :func:`connect` takes a ``cursor()`` of it, and the handle is closed
when the last cursor is, because DuckDB lets only one process hold the file. The handle is
read-write when the file (and its folder) can be written, and read-only otherwise, so pages that
only read keep working on a read-only home. Every read-write :func:`connect` goes through the
process's one writer path (a lock), so two sessions of the server never write at the same time;
a conflict that still reaches DuckDB becomes a :class:`UserError` and nothing is changed. Every
write that touches several rows runs in one transaction (:func:`transaction`). Values always travel
as ``?`` parameters; table and column names come only from the fixed lists in this package.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

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
SCHEMA_VERSION = 6

_DEFAULT_LOCK_WAIT_S = 5.0
T = TypeVar("T")


def lock_wait_s() -> float:
    """How long :func:`connect` retries while another process holds the file (``PM_DB_LOCK_WAIT_S``, default 5)."""
    return config.env_number("PM_DB_LOCK_WAIT_S", _DEFAULT_LOCK_WAIT_S, 0.0,
                             meaning="how long a command waits for the fleet database, in seconds")


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
    """CREATE TABLE IF NOT EXISTS engine_sources (
        dataset_id INTEGER NOT NULL, unit INTEGER NOT NULL, source_dataset VARCHAR NOT NULL,
        source_engine VARCHAR NOT NULL, PRIMARY KEY (dataset_id, unit))""",
    """CREATE TABLE IF NOT EXISTS loaded_files (
        dataset_id INTEGER NOT NULL, sha256 VARCHAR NOT NULL, source VARCHAR NOT NULL,
        rows BIGINT NOT NULL, loaded_at TIMESTAMP NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS store_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    "CREATE SEQUENCE IF NOT EXISTS alert_episodes_id_seq START 1",
    """CREATE TABLE IF NOT EXISTS alert_episodes (
        id BIGINT PRIMARY KEY DEFAULT nextval('alert_episodes_id_seq'), key VARCHAR NOT NULL,
        kind VARCHAR NOT NULL, dataset VARCHAR, engine VARCHAR, message VARCHAR NOT NULL, value DOUBLE,
        opened_at TIMESTAMP NOT NULL, closed_at TIMESTAMP, state VARCHAR NOT NULL,
        acknowledged_by VARCHAR, acknowledged_at TIMESTAMP, snoozed_by VARCHAR, snoozed_at TIMESTAMP,
        snoozed_until TIMESTAMP, note VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS fleet_explanations (
        dataset_id INTEGER NOT NULL, model_version VARCHAR NOT NULL, computed_at TIMESTAMP NOT NULL,
        data_rows BIGINT NOT NULL, engines INTEGER NOT NULL, sampled INTEGER NOT NULL, seed INTEGER NOT NULL,
        weight_xgb DOUBLE NOT NULL, base DOUBLE NOT NULL, rul DOUBLE NOT NULL, approximation DOUBLE NOT NULL,
        PRIMARY KEY (dataset_id, model_version))""",
    """CREATE TABLE IF NOT EXISTS fleet_shap (
        dataset_id INTEGER NOT NULL, model_version VARCHAR NOT NULL, unit INTEGER NOT NULL, regime INTEGER NOT NULL,
        input VARCHAR NOT NULL, value DOUBLE NOT NULL, level DOUBLE NOT NULL, xgb DOUBLE NOT NULL,
        lstm DOUBLE NOT NULL, combined DOUBLE NOT NULL, PRIMARY KEY (dataset_id, model_version, unit, input))""",
]
"""Tables. ``engines`` maps each engine's id as the operator writes it to the integer ``unit`` the
readings use, and records when an outcome closed it; ``loaded_files`` holds the sha256 of every file
loaded into a dataset (for de-duplication); ``truth_files`` records each RUL file loaded;
``pending_truth`` holds RUL values that arrived before their test dataset; ``feedback`` holds the
outcomes engineers record, with the model version serving at the time; ``engine_sources`` records where a
history engine came from (the in-service dataset and engine id an outcome closed it in), its lineage;
``alert_episodes`` holds one row per alert episode (:mod:`core.server.alerts`): what it is about (``key``), when it opened and closed, and who
acknowledged or snoozed it (``state`` snoozed with no ``snoozed_until``: until the condition ends);
``fleet_explanations`` holds one row per (dataset, model version) whose fleet-wide SHAP was computed on a seeded sample
of its engines (schema 6; the data it saw, the sample, the sample's mean base, RUL and approximation) and
``fleet_shap`` that sample's attributions, one row per (engine, input) (:mod:`core.serving.fleet_explain`)."""

_MIGRATE_V1 = [
    "ALTER TABLE datasets RENAME COLUMN split TO role",
    ("UPDATE datasets SET role = CASE role WHEN 'train' THEN 'history' WHEN 'test' THEN 'evaluation' "
    "WHEN 'stream' THEN 'sandbox' ELSE role END"),
    "ALTER TABLE feedback ADD COLUMN IF NOT EXISTS model_version VARCHAR",
    ("INSERT INTO engines (dataset_id, unit, engine) SELECT DISTINCT dataset_id, unit, CAST(unit AS VARCHAR) "
    "FROM readings"),
    "INSERT INTO loaded_files SELECT id, sha256, source, rows, loaded_at FROM datasets WHERE sha256 IS NOT NULL",
]
"""A store written before dataset roles and engine ids (schema 1): ``split`` train/test/stream becomes
role history/evaluation/sandbox, and each engine's id is its unit number."""

_MIGRATE_V2 = [
    "ALTER TABLE predictions ADD COLUMN IF NOT EXISTS ood BOOLEAN",
    "ALTER TABLE predictions ADD COLUMN IF NOT EXISTS ood_reason VARCHAR",
]
"""Schema 2 to 3: stored predictions keep the out-of-experience flag and its reason."""

_MIGRATE_LINEAGE = [
    ("INSERT INTO engine_sources SELECT h.dataset_id, h.unit, d.name, h.engine FROM engines h "
    "JOIN datasets hd ON hd.id = h.dataset_id AND hd.role = 'history' "
    "JOIN datasets d ON hd.name = d.name || '-closed' AND d.role IN ('fleet', 'evaluation') "
    "JOIN engines e ON e.dataset_id = d.id AND e.engine = h.engine AND e.closed_event IS NOT NULL "
    "WHERE NOT EXISTS (SELECT 1 FROM engine_sources s WHERE s.dataset_id = h.dataset_id AND s.unit = h.unit)"),
]
"""Schema 3 to 5: engines closed before lineage was recorded get theirs from the only link those stores kept,
the history dataset ``<dataset>-closed`` holding a copy under the same engine id."""

_MIGRATE_ALERTS = [
    ("INSERT INTO alert_episodes (key, kind, dataset, engine, message, value, opened_at, state) "
     "SELECT CASE WHEN kind = 'drift' THEN regexp_replace(key, ':v[0-9]+$', '') ELSE key END AS subject, kind, "
     "dataset, engine, message, value, created_at, 'open' FROM alerts "
     "QUALIFY row_number() OVER (PARTITION BY subject ORDER BY created_at DESC) = 1 ORDER BY created_at"),
    "DROP TABLE alerts",
]
"""Schema 3 to 5: each alert stored once per key (table ``alerts``) becomes an open episode (a drift alert's key
loses its model version, so a dataset has one); run only where the ``alerts`` table exists."""


_MIGRATE_DRIFT = [
    """CREATE TABLE IF NOT EXISTS reading_loads (
        dataset_id INTEGER NOT NULL, load_no INTEGER NOT NULL, unit INTEGER NOT NULL, first_cycle INTEGER NOT NULL,
        last_cycle INTEGER NOT NULL, loaded_at TIMESTAMP NOT NULL, PRIMARY KEY (dataset_id, load_no, unit))""",
    ("INSERT INTO reading_loads SELECT r.dataset_id, 1, r.unit, min(r.cycle), max(r.cycle), any_value(d.loaded_at) "
     "FROM readings r JOIN datasets d ON d.id = r.dataset_id "
     "WHERE NOT EXISTS (SELECT 1 FROM reading_loads l WHERE l.dataset_id = r.dataset_id) GROUP BY r.dataset_id, r.unit"),
    """CREATE TABLE IF NOT EXISTS drift_history (
        dataset_id INTEGER NOT NULL, reference VARCHAR NOT NULL, period VARCHAR NOT NULL, period_key VARCHAR NOT NULL,
        starts_at TIMESTAMP NOT NULL, engines INTEGER NOT NULL, readings BIGINT NOT NULL, compared BIGINT NOT NULL,
        drift_share DOUBLE,
        drifted VARCHAR NOT NULL, out_of_range BIGINT NOT NULL, stamp VARCHAR NOT NULL, computed_at TIMESTAMP NOT NULL,
        PRIMARY KEY (dataset_id, reference, period, period_key))""",
]
"""Schema 5 to 6: ``reading_loads`` records which cycles of which engine each load (a file or an append) brought
(a store from before gets one load per dataset, at its load time); ``drift_history`` keeps the drift of a dataset's
readings per load or per calendar week of loading against a reference (:mod:`core.monitoring.history`)."""


def _file_stamp(path: Path) -> tuple[int, int] | None:
    """(modification time in ns, size) of a file, or None when it does not exist."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


def stamp() -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """(modification time in ns, size) of the store's file and of its write-ahead log, None where absent: a
    committed write changes one of them and a read changes neither, so it keys caches of what the store holds
    for a few file stats instead of a query."""
    database = config.paths().duckdb
    return _file_stamp(database), _file_stamp(database.with_name(database.name + ".wal"))


def first_row(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> tuple | None:
    """The first row of a query, or None; fetches the whole result so the connection is free again.

    DuckDB 2.0 refuses further work on a connection whose last result was only partly
    fetched (``fetchone`` on a one-row result counts as partly fetched).
    """
    rows = con.execute(sql, list(params)).fetchall()
    return rows[0] if rows else None


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


CONFLICT = ("Another change to the fleet store was being written at the same moment, so this one was not "
            "applied; nothing was changed. Try again.")
"""The sentence for a write DuckDB refused because another transaction changed the same rows first."""

_CONFLICTS = (duckdb.TransactionException,)
_CONFLICT_ATTEMPTS = 3
_STORAGE_FAILURES = (duckdb.IOException, duckdb.PermissionException, duckdb.OutOfMemoryException,
                     duckdb.FatalException)


def _is_lock_error(err: duckdb.Error) -> bool:
    text = str(err).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def _reason(err: duckdb.Error) -> str:
    """DuckDB's message without its closing punctuation, to end a sentence of ours."""
    return str(err).strip().rstrip(".!")


def _holder(err: duckdb.Error) -> str:
    """' (process 1234)' when DuckDB's lock message names the process holding the file, else ''."""
    found = re.search(r"\(PID (\d+)\)", str(err))
    return f" (process {found.group(1)})" if found else ""


def _writable(path: Path) -> bool:
    """Whether this process may write the database file: the file and its folder, or create them."""
    if path.exists():
        return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK)


def read_only_sentence(path: Path) -> str:
    """Why a write is refused on a store this process can only read."""
    return (f"The fleet database {path} is read-only here (its file or folder is not writable), so nothing can be "
            "loaded, deleted or recorded; pages and commands that only read keep working.")


def _open_handle(path: Path) -> tuple[duckdb.DuckDBPyConnection, bool]:
    """(handle, read_only): the file opened read-write when it may be written, read-only otherwise.

    Creates the file and brings its schema up to date when opened read-write. While another process
    holds the file, retries for :func:`lock_wait_s` seconds, then raises :class:`UserError`.
    """
    read_only = not _writable(path)
    if not path.exists():
        if read_only:
            raise UserError(f"The fleet database {path} does not exist and its folder is not writable, so it "
                            "cannot be created; set PM_HOME to a writable folder.")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"The folder of the fleet database {path} could not be created: "
                            f"{err.strerror or err}.") from err
    deadline = time.monotonic() + lock_wait_s()
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as err:
            if not read_only and path.exists() and "permission" in str(err).lower():
                read_only = True
                continue
            if not _is_lock_error(err):
                raise UserError(f"The fleet database {path} could not be opened: {_reason(err)}.") from err
            if time.monotonic() >= deadline:
                raise UserError(f"The fleet database {path} is in use by another process{_holder(err)}: only "
                                "one process may open it. Stop the dashboard (or the other command), or do this "
                                "from the dashboard, then try again.") from err
            time.sleep(0.2)
        except duckdb.ConnectionException as err:
            # Code outside this module holds the file with another configuration: wait for it to close.
            if "different configuration" not in str(err) or time.monotonic() >= deadline:
                raise UserError(f"The fleet database {path} could not be opened: {_reason(err)}.") from err
            time.sleep(0.02)
        except duckdb.Error as err:
            raise UserError(f"The fleet database {path} could not be opened: {_reason(err)}.") from err
    try:
        if read_only:
            _check_schema(con, path)
        else:
            _ensure_schema(con)
    except duckdb.Error as err:
        con.close()
        raise UserError(f"The fleet database {path} could not be prepared: {_reason(err)}.") from err
    except BaseException:
        con.close()
        raise
    return con, read_only


class SharedStore:
    """The one handle of a database file in this process, shared by cursors, with its one writer lock.

    The handle opens with the first cursor and closes with the last, so other processes (the CLI,
    background jobs) can open the file whenever this process is not using it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer = threading.RLock()
        """Held around every read-write :func:`connect`: the process's one writer path."""
        self._state = threading.Lock()
        self._handle: duckdb.DuckDBPyConnection | None = None
        self._read_only = False
        self._users = 0

    def cursor(self) -> tuple[duckdb.DuckDBPyConnection, bool]:
        """(a new cursor of the handle, whether the handle is read-only), opening the handle if needed.

        Every cursor must be given back with :meth:`release`.
        """
        with self._state:
            if self._handle is None:
                self._handle, self._read_only = _open_handle(self.path)
            try:
                cursor = self._handle.cursor()
            except duckdb.Error as err:
                if self._users == 0:
                    self._close()
                raise UserError(f"The fleet database {self.path} could not be read: {_reason(err)}.") from err
            self._users += 1
            return cursor, self._read_only

    def release(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """Close a cursor from :meth:`cursor`; the last one closes the handle."""
        try:
            cursor.close()
        finally:
            with self._state:
                self._users -= 1
                if self._users == 0:
                    self._close()

    def _close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                handle.close()
            except duckdb.Error as err:
                raise UserError(f"The fleet database {self.path} could not be written back: {_reason(err)}.") from err


_SHARED: dict[Path, SharedStore] = {}
_SHARED_LOCK = threading.Lock()


def shared(path: Path) -> SharedStore:
    """This process's :class:`SharedStore` of the database file `path`."""
    with _SHARED_LOCK:
        return _SHARED.setdefault(path, SharedStore(path))


def _sentence(err: duckdb.Error, path: Path) -> UserError | None:
    """The UserError for a failure a user can meet (a conflict, a duplicate, a full or unwritable disk); None for
    defects. An aborted transaction is judged by the error that aborted it."""
    cause = err.__context__
    if isinstance(err, duckdb.TransactionException) and isinstance(cause, duckdb.Error) and "aborted" in str(err):
        err = cause
    if isinstance(err, duckdb.ConstraintException):
        return UserError(f"The change would store a second copy of data the fleet store already holds "
                         f"({_reason(err)}); nothing was changed.")
    if isinstance(err, _CONFLICTS):
        return UserError(CONFLICT)
    if isinstance(err, _STORAGE_FAILURES):
        return UserError(f"The fleet database {path} could not be written or read: {_reason(err)}; nothing was "
                         "changed.")
    return None


@contextmanager
def connect(read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection (a cursor of this process's one handle) to ``config.paths().duckdb`` for one operation.

    ``read_only``: the operation only reads; a missing file is then a :class:`UserError`. Otherwise
    the operation may write: it waits for the process's writer lock, the file and its schema are
    created when missing, and a store this process can only read is refused with
    :func:`read_only_sentence`. A conflict or storage failure DuckDB raises inside the block becomes a
    :class:`UserError` (the transaction it hit was rolled back). While another process holds the file,
    retries for ``PM_DB_LOCK_WAIT_S`` seconds (default 5), then raises :class:`UserError`.
    """
    path = config.paths().duckdb
    if read_only and not path.exists():
        raise UserError(f"The fleet database {path} does not exist yet; load data first with "
                        "'python -m core ingest' or the Data page.")
    store = shared(path)
    with nullcontext() if read_only else store.writer:
        con, handle_read_only = store.cursor()
        try:
            if handle_read_only and not read_only:
                raise UserError(read_only_sentence(path))
            yield con
        except duckdb.Error as err:
            sentence = _sentence(err, path)
            if sentence is None:
                raise
            raise sentence from err
        finally:
            store.release(con)


def write(operation: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
    """Run ``operation(con)`` in a read-write :func:`connect`, again (up to three times in all) when
    DuckDB reports a conflict with another transaction; a conflict that remains is a :class:`UserError`."""
    attempt = 1
    while True:
        try:
            with connect() as con:
                return operation(con)
        except UserError as err:
            if attempt == _CONFLICT_ATTEMPTS or str(err) != CONFLICT:
                raise
            attempt += 1


def prepare() -> bool:
    """Create the fleet database and its schema (or upgrade an old one) when this process may write it.

    Returns whether the store is writable; a read-only store, or none in an unwritable home, is left
    as it is (reads work or say the store is missing; writes say why they cannot).
    """
    path = config.paths().duckdb
    if not _writable(path):
        return False
    store = shared(path)
    con, read_only = store.cursor()
    store.release(con)
    return not read_only


def _check_schema(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """UserError unless a store opened read-only is at :data:`SCHEMA_VERSION` (it cannot be upgraded)."""
    tables = first_row(con, "SELECT 1 FROM information_schema.tables WHERE table_name = 'store_meta'")
    current = first_row(con, "SELECT value FROM store_meta WHERE key = 'schema_version'") if tables else None
    if current is None or current[0] != str(SCHEMA_VERSION):
        raise UserError(f"The fleet database {path} is read-only here and was written by an older version; "
                        "open it once with write access (e.g. `python -m core datasets` as its owner) to upgrade it.")


def _ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables, or bring a schema-1 to -5 store up to date, in one transaction.

    Runs when the handle opens read-write, before any cursor exists, so no thread of this process
    works on the store meanwhile; DuckDB's file lock keeps other processes out. The schema is read
    again inside the transaction, so a store upgraded meanwhile is left as it is; a store already at
    :data:`SCHEMA_VERSION` is only read.
    """
    with transaction(con):
        tables = first_row(con, "SELECT 1 FROM information_schema.tables WHERE table_name = 'store_meta'")
        current = first_row(con, "SELECT value FROM store_meta WHERE key = 'schema_version'") if tables else None
        if current and current[0] == str(SCHEMA_VERSION):
            return
        (old,) = first_row(con, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'datasets' "
                                "AND column_name = 'split'") or (0,)
        for statement in _SCHEMA:
            con.execute(statement)
        if old:
            for statement in _MIGRATE_V1:
                con.execute(statement)
        for statement in _MIGRATE_V2 + _MIGRATE_LINEAGE:
            con.execute(statement)
        if first_row(con, "SELECT 1 FROM information_schema.tables WHERE table_name = 'alerts'"):
            for statement in _MIGRATE_ALERTS:
                con.execute(statement)
        for statement in _MIGRATE_DRIFT:
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
