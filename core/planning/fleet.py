"""Reads of the planner's inputs: engines in service with their latest stored score, and their latest readings.

The plan uses the scores the background scoring job stored (as the Fleet page does) and never scores itself;
engines closed by a failure or removal have left service and are not planned.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd

from core.data.cmapss import COLUMNS

_ENGINES = (
    "WITH latest AS (SELECT * FROM predictions WHERE model_version = ? "
    "QUALIFY row_number() OVER (PARTITION BY dataset_id, unit ORDER BY cycle DESC, created_at DESC) = 1) "
    "SELECT d.name AS dataset, e.engine, l.unit, l.cycle, l.rul, l.p_fail_30, l.risk, l.dataset_id FROM latest l "
    "JOIN engines e ON e.dataset_id = l.dataset_id AND e.unit = l.unit JOIN datasets d ON d.id = l.dataset_id "
    "WHERE e.closed_event IS NULL AND d.role IN ('fleet', 'evaluation') "
    "AND (? OR d.name IN (SELECT unnest(?::VARCHAR[]))) ORDER BY d.name, e.engine"
)


def in_service(con: duckdb.DuckDBPyConnection, model_version: int,
               names: Sequence[str] | None = None) -> pd.DataFrame:
    """DataFrame[dataset, engine, unit, cycle, rul, p_fail_30, risk, dataset_id]: each engine in service (of the
    datasets `names`, default every fleet and evaluation dataset) with its latest stored score of the model."""
    chosen = [] if names is None else [str(n) for n in names]
    return con.execute(_ENGINES, [str(model_version), names is None, chosen]).df()


def latest_readings(con: duckdb.DuckDBPyConnection, dataset_ids: Sequence[int], units: Sequence[int]) -> pd.DataFrame:
    """The last reading (:data:`~core.data.cmapss.COLUMNS` and ``dataset_id``) of each engine (dataset_ids[i],
    units[i])."""
    return _readings_of(con, dataset_ids, units, "QUALIFY row_number() OVER (PARTITION BY r.dataset_id, r.unit "
                                                 "ORDER BY r.cycle DESC) = 1")


def engine_readings(con: duckdb.DuckDBPyConnection, dataset_ids: Sequence[int], units: Sequence[int],
                    until: Sequence[int]) -> pd.DataFrame:
    """Every reading up to cycle until[i] (:data:`~core.data.cmapss.COLUMNS` and ``dataset_id``) of each engine
    (dataset_ids[i], units[i]), in engine and cycle order."""
    return _readings_of(con, dataset_ids, units, "WHERE r.cycle <= w.until", until)


def _readings_of(con: duckdb.DuckDBPyConnection, dataset_ids: Sequence[int], units: Sequence[int], clause: str,
                 until: Sequence[int] | None = None) -> pd.DataFrame:
    pairs = pd.DataFrame({"dataset_id": [int(d) for d in dataset_ids], "unit": [int(u) for u in units],
                          "until": [0] * len(units) if until is None else [int(c) for c in until]})
    columns = ", ".join(f"r.{c}" for c in COLUMNS)
    con.register("wanted_engines", pairs)
    try:
        return con.execute(
            f"SELECT r.dataset_id, {columns} FROM readings r JOIN wanted_engines w ON w.dataset_id = r.dataset_id "
            f"AND w.unit = r.unit {clause} ORDER BY r.dataset_id, r.unit, r.cycle").df()
    finally:
        con.unregister("wanted_engines")
