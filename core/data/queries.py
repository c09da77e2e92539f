"""Typed reads of the fleet store: datasets, engines, readings, RUL truth."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd

from core.data import names
from core.data.cmapss import COLUMNS
from core.data.store import READING_COLUMNS_SQL, first_row
from core.errors import UserError


def list_datasets(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """All datasets but the simulation's sandbox, oldest first.

    Columns: id, name, subset, role, source, sha256, rows, engines, loaded_at (first load), last_loaded_at,
    closed (engines closed by an outcome) and has_truth (RUL truth is stored).
    """
    return con.execute(
        "SELECT d.id, d.name, d.subset, d.role, d.source, d.sha256, d.rows, d.engines, d.loaded_at, "
        "coalesce((SELECT max(f.loaded_at) FROM loaded_files f WHERE f.dataset_id = d.id), d.loaded_at) "
        "AS last_loaded_at, "
        "(SELECT count(*) FROM engines e WHERE e.dataset_id = d.id AND e.closed_event IS NOT NULL) AS closed, "
        "EXISTS (SELECT 1 FROM rul_truth t WHERE t.dataset_id = d.id) AS has_truth "
        "FROM datasets d WHERE d.role <> 'sandbox' ORDER BY d.id"
    ).df()


def dataset_names(con: duckdb.DuckDBPyConnection, role: str | None = None) -> list[str]:
    """Names of loaded datasets (optionally of one role), in load order; the sandbox only when asked for."""
    if role is None:
        rows = con.execute("SELECT name FROM datasets WHERE role <> 'sandbox' ORDER BY id").fetchall()
    else:
        rows = con.execute("SELECT name FROM datasets WHERE role = ? ORDER BY id", [role]).fetchall()
    return [r[0] for r in rows]


def find_dataset(con: duckdb.DuckDBPyConnection, name: str) -> dict | None:
    """The dataset row as a dict, or None when no dataset has that name (compared as
    :func:`core.data.names.lookup_keys` says: folded, then as given)."""
    for key in names.lookup_keys(name):
        cur = con.execute(
            "SELECT id, name, subset, role, source, sha256, rows, engines, loaded_at FROM datasets WHERE name = ?",
            [key],
        )
        rows = cur.fetchall()
        if rows:
            return dict(zip([d[0] for d in cur.description], rows[0], strict=True))
    return None


def get_dataset(con: duckdb.DuckDBPyConnection, name: str) -> dict:
    """The dataset row as a dict; :class:`UserError` if no dataset has that name."""
    found = find_dataset(con, name)
    if found is None:
        raise UserError(f"No dataset named '{name}' is loaded.")
    return found


def find_by_sha256(con: duckdb.DuckDBPyConnection, sha256: str) -> str | None:
    """Name of the dataset (or ``RUL_`` truth file) already loaded with this content, if any."""
    row = first_row(con, "SELECT d.name FROM loaded_files f JOIN datasets d ON d.id = f.dataset_id "
                         "WHERE f.sha256 = ? ORDER BY d.id LIMIT 1", [sha256])
    if row:
        return row[0]
    row = first_row(con, "SELECT target FROM truth_files WHERE sha256 = ? LIMIT 1", [sha256])
    return f"RUL for {row[0]}" if row else None


def known_sha256(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """sha256 -> name of every loaded content (datasets, and RUL files as ``RUL for <test>``)."""
    rows = con.execute(
        "SELECT f.sha256, d.name FROM loaded_files f JOIN datasets d ON d.id = f.dataset_id "
        "UNION ALL SELECT sha256, 'RUL for ' || target FROM truth_files"
    ).fetchall()
    return {sha: name for sha, name in rows}


def readings(con: duckdb.DuckDBPyConnection, name: str) -> pd.DataFrame:
    """The readings of one dataset with :data:`COLUMNS`, sorted by unit and cycle."""
    dataset_id = get_dataset(con, name)["id"]
    return con.execute(
        f"SELECT {READING_COLUMNS_SQL} FROM readings WHERE dataset_id = ? ORDER BY unit, cycle", [dataset_id]
    ).df()


def readings_many(con: duckdb.DuckDBPyConnection, names: Sequence[str]) -> pd.DataFrame:
    """Readings of several datasets with a leading ``dataset`` column, in the order of `names`."""
    ids = [get_dataset(con, n)["id"] for n in names]
    frames = [
        con.execute(
            f"SELECT ? AS dataset, {READING_COLUMNS_SQL} FROM readings WHERE dataset_id = ? ORDER BY unit, cycle",
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


def engines(con: duckdb.DuckDBPyConnection, name: str) -> pd.DataFrame:
    """The engines of a dataset: unit, engine (id as the operator writes it), first and last cycle, readings,
    and closed_cycle / closed_event / closed_at when an outcome closed it; in unit order."""
    dataset_id = get_dataset(con, name)["id"]
    return con.execute(
        "SELECT e.unit, e.engine, min(r.cycle) AS first_cycle, max(r.cycle) AS last_cycle, count(r.cycle) AS readings, "
        "e.closed_cycle, e.closed_event, e.closed_at FROM engines e LEFT JOIN readings r "
        "ON r.dataset_id = e.dataset_id AND r.unit = e.unit WHERE e.dataset_id = ? "
        "GROUP BY e.unit, e.engine, e.closed_cycle, e.closed_event, e.closed_at ORDER BY e.unit",
        [dataset_id],
    ).df()


def engine_ids(con: duckdb.DuckDBPyConnection, name: str) -> dict[int, str]:
    """unit -> engine id of a dataset."""
    dataset_id = get_dataset(con, name)["id"]
    return {int(u): str(e) for u, e in con.execute(
        "SELECT unit, engine FROM engines WHERE dataset_id = ?", [dataset_id]).fetchall()}


def find_engine(con: duckdb.DuckDBPyConnection, name: str, engine: str) -> dict | None:
    """One engine of dataset `name` by its id (a dict like a row of :func:`engines`), or None; the id is
    compared as :func:`core.data.names.lookup_keys` says (folded, then as given)."""
    dataset_id = get_dataset(con, name)["id"]
    for key in names.lookup_keys(str(engine)):
        cur = con.execute(
            "SELECT e.unit, e.engine, min(r.cycle) AS first_cycle, max(r.cycle) AS last_cycle, e.closed_cycle, "
            "e.closed_event, e.closed_at FROM engines e LEFT JOIN readings r ON r.dataset_id = e.dataset_id "
            "AND r.unit = e.unit WHERE e.dataset_id = ? AND e.engine = ? "
            "GROUP BY e.unit, e.engine, e.closed_cycle, e.closed_event, e.closed_at",
            [dataset_id, key],
        )
        rows = cur.fetchall()
        if rows:
            return dict(zip([d[0] for d in cur.description], rows[0], strict=True))
    return None


def engine_readings(con: duckdb.DuckDBPyConnection, name: str, unit: int) -> pd.DataFrame:
    """The readings of one engine (:data:`COLUMNS`) in cycle order."""
    dataset_id = get_dataset(con, name)["id"]
    return con.execute(
        f"SELECT {READING_COLUMNS_SQL} FROM readings WHERE dataset_id = ? AND unit = ? ORDER BY cycle",
        [dataset_id, int(unit)],
    ).df()


def closed_since(con: duckdb.DuckDBPyConnection, when: object | None) -> int:
    """Engines closed by a failure or removal after `when` (a timestamp; every closed engine when None)."""
    sql = "SELECT count(*) FROM engines WHERE closed_event IN ('failure', 'removal')"
    row = first_row(con, sql + (" AND closed_at > ?" if when is not None else ""), [when] if when is not None else [])
    return int(row[0]) if row else 0


def readings_of_engines(con: duckdb.DuckDBPyConnection, name: str, units: Sequence[int]) -> pd.DataFrame:
    """Readings (with a leading ``dataset`` column) of the given engines of one dataset, by unit and cycle."""
    dataset_id = get_dataset(con, name)["id"]
    return con.execute(
        f"SELECT ? AS dataset, {READING_COLUMNS_SQL} FROM readings WHERE dataset_id = ? "
        "AND unit IN (SELECT unnest(?::INTEGER[])) ORDER BY unit, cycle",
        [name, dataset_id, [int(u) for u in units]],
    ).df()


def engine_sources(con: duckdb.DuckDBPyConnection, names: Sequence[str]) -> pd.DataFrame:
    """The lineage of the engines of datasets `names` that an outcome closed elsewhere (see ``engine_sources``).

    Columns: dataset, unit (the copy), source_dataset, source_engine (where it was closed) and source_unit (the
    engine's unit in that dataset today; missing once the source dataset or engine is gone).
    """
    return con.execute(
        "SELECT d.name AS dataset, s.unit, s.source_dataset, s.source_engine, se.unit AS source_unit "
        "FROM engine_sources s JOIN datasets d ON d.id = s.dataset_id "
        "LEFT JOIN datasets sd ON sd.name = s.source_dataset "
        "LEFT JOIN engines se ON se.dataset_id = sd.id AND se.engine = s.source_engine "
        "WHERE d.name IN (SELECT unnest(?::VARCHAR[])) ORDER BY d.name, s.unit",
        [list(names)],
    ).df()


def engine_count(con: duckdb.DuckDBPyConnection) -> int:
    """Engines in the store, each counted once: a closed engine's history copy is not counted while the engine it
    was copied from is still stored (the simulation's sandbox is left out, as in :func:`list_datasets`)."""
    row = first_row(
        con,
        "SELECT count(*) FROM engines e JOIN datasets d ON d.id = e.dataset_id WHERE d.role <> 'sandbox' "
        "AND NOT EXISTS (SELECT 1 FROM engine_sources s JOIN datasets sd ON sd.name = s.source_dataset "
        "JOIN engines se ON se.dataset_id = sd.id AND se.engine = s.source_engine "
        "WHERE s.dataset_id = e.dataset_id AND s.unit = e.unit)",
    )
    return int(row[0]) if row else 0
