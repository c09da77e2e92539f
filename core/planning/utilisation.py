"""Utilisation (cycles per day) as users set it: per fleet dataset (table ``plan_utilisation``) and, for an engine
that flies more or less than its dataset, per engine (table ``plan_engine_utilisation``; it wins over the
dataset's). C-MAPSS readings carry cycles, not dates, so an engine's utilisation is what the operator sets.

Each table is created by its first write (``CREATE TABLE IF NOT EXISTS``, through the store's one writer path);
until then, and for any dataset without a row, :data:`core.planning.weeks.DEFAULT_CYCLES_PER_DAY` holds.
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb

from core.data import store
from core.data.queries import find_engine, get_dataset
from core.data.store import first_row, utc_now
from core.errors import UserError
from core.planning import weeks

TABLE = "plan_utilisation"
ENGINE_TABLE = "plan_engine_utilisation"
_CREATE = ("CREATE TABLE IF NOT EXISTS plan_utilisation (dataset_id INTEGER PRIMARY KEY, "
           "cycles_per_day DOUBLE NOT NULL, set_by VARCHAR NOT NULL, set_at TIMESTAMP NOT NULL)")
_CREATE_ENGINE = ("CREATE TABLE IF NOT EXISTS plan_engine_utilisation (dataset_id INTEGER NOT NULL, "
                  "unit INTEGER NOT NULL, cycles_per_day DOUBLE NOT NULL, set_by VARCHAR NOT NULL, "
                  "set_at TIMESTAMP NOT NULL, PRIMARY KEY (dataset_id, unit))")


def _exists(con: duckdb.DuckDBPyConnection, table: str = TABLE) -> bool:
    return first_row(con, "SELECT 1 FROM information_schema.tables WHERE table_name = ?", [table]) is not None


def read(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """Dataset name -> cycles per day, for the datasets whose utilisation was set."""
    if not _exists(con):
        return {}
    rows = con.execute("SELECT d.name, u.cycles_per_day FROM plan_utilisation u JOIN datasets d "
                       "ON d.id = u.dataset_id ORDER BY d.name").fetchall()
    return {str(name): float(value) for name, value in rows}


def of(names: list[str], stored: Mapping[str, float]) -> dict[str, float]:
    """Cycles per day of each dataset in `names`: the stored value or the default."""
    return {name: float(stored.get(name, weeks.DEFAULT_CYCLES_PER_DAY)) for name in names}


def save(values: Mapping[str, float], by: str) -> None:
    """Store the utilisation of each named dataset (one transaction; UserError for an unknown dataset or a value
    out of range, and nothing is written)."""
    checked = {str(name): weeks.check_utilisation(value, str(name)) for name, value in values.items()}

    def write(con: duckdb.DuckDBPyConnection) -> None:
        with store.transaction(con):
            con.execute(_CREATE)
            for name, value in checked.items():
                dataset_id = get_dataset(con, name)["id"]
                con.execute("INSERT OR REPLACE INTO plan_utilisation VALUES (?, ?, ?, ?)",
                            [dataset_id, value, str(by), utc_now()])

    store.write(write)


def read_engines(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], float]:
    """(dataset name, engine id) -> cycles per day, for the engines whose own utilisation was set."""
    if not _exists(con, ENGINE_TABLE):
        return {}
    rows = con.execute("SELECT d.name, e.engine, u.cycles_per_day FROM plan_engine_utilisation u "
                       "JOIN datasets d ON d.id = u.dataset_id "
                       "JOIN engines e ON e.dataset_id = u.dataset_id AND e.unit = u.unit ORDER BY d.name, e.engine"
                       ).fetchall()
    return {(str(name), str(engine)): float(value) for name, engine, value in rows}


def save_engines(values: Mapping[tuple[str, str], float | None], by: str) -> None:
    """Store each named engine's own utilisation ((dataset, engine) -> cycles per day; None: back to its
    dataset's), in one transaction; UserError for an unknown dataset or engine or a value out of range, and
    nothing is written."""
    checked = {(str(d), str(e)): None if v is None else weeks.check_utilisation(v, f"engine {e} of {d}")
               for (d, e), v in values.items()}

    def write(con: duckdb.DuckDBPyConnection) -> None:
        with store.transaction(con):
            con.execute(_CREATE_ENGINE)
            for (name, engine), value in checked.items():
                dataset_id = int(get_dataset(con, name)["id"])
                found = find_engine(con, name, engine)
                if found is None:
                    raise UserError(f"Dataset '{name}' has no engine '{engine}'; no utilisation was saved.")
                unit = int(found["unit"])
                if value is None:
                    con.execute("DELETE FROM plan_engine_utilisation WHERE dataset_id = ? AND unit = ?",
                                [dataset_id, unit])
                else:
                    con.execute("INSERT OR REPLACE INTO plan_engine_utilisation VALUES (?, ?, ?, ?, ?)",
                                [dataset_id, unit, value, str(by), utc_now()])

    store.write(write)
