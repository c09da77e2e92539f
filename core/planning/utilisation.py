"""Utilisation (cycles per day) per fleet dataset, as users set it, kept in the table ``plan_utilisation``.

The table is created by the first write (``CREATE TABLE IF NOT EXISTS``, through the store's one writer path);
until then, and for any dataset without a row, :data:`core.planning.weeks.DEFAULT_CYCLES_PER_DAY` holds.
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb

from core.data import store
from core.data.queries import get_dataset
from core.data.store import first_row, utc_now
from core.planning import weeks

TABLE = "plan_utilisation"
_CREATE = ("CREATE TABLE IF NOT EXISTS plan_utilisation (dataset_id INTEGER PRIMARY KEY, "
           "cycles_per_day DOUBLE NOT NULL, set_by VARCHAR NOT NULL, set_at TIMESTAMP NOT NULL)")


def _exists(con: duckdb.DuckDBPyConnection) -> bool:
    return first_row(con, "SELECT 1 FROM information_schema.tables WHERE table_name = ?", [TABLE]) is not None


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
