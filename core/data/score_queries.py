"""Reads behind "scores computed once": which engines a model version has not scored at their last cycle, the
readings scoring needs, and the fleet table of stored scores (filtered, sorted over every filtered engine, then
paged, and counted in SQL).

An engine is *stale* for a model version when it is in service (its dataset's role is fleet or evaluation, and
no failure or removal closed it) and has no stored prediction of that version at its last cycle.
Values travel as parameters; column names come only from the fixed lists here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from core.data.cmapss import COLUMNS
from core.data.store import first_row
from core.errors import UserError

_LAST = "SELECT dataset_id, unit, max(cycle) AS last_cycle FROM readings GROUP BY dataset_id, unit"
_SCORED = "SELECT dataset_id, unit, max(cycle) AS cycle FROM predictions WHERE model_version = ? GROUP BY ALL"
_STALE = (
    f"SELECT d.name AS dataset, e.dataset_id, e.unit, l.last_cycle FROM engines e "
    f"JOIN datasets d ON d.id = e.dataset_id JOIN ({_LAST}) l ON l.dataset_id = e.dataset_id AND l.unit = e.unit "
    f"LEFT JOIN ({_SCORED}) s ON s.dataset_id = e.dataset_id AND s.unit = e.unit "
    "WHERE d.role IN ('fleet', 'evaluation') AND e.closed_event IS NULL "
    "AND (s.cycle IS NULL OR s.cycle < l.last_cycle)"
)


def _ids(con: duckdb.DuckDBPyConnection, names: Sequence[str] | None) -> list[int] | None:
    if names is None:
        return None
    rows = con.execute("SELECT id FROM datasets WHERE name IN (SELECT unnest(?::VARCHAR[]))", [list(names)]).fetchall()
    return [int(r[0]) for r in rows]


def stale_engines(con: duckdb.DuckDBPyConnection, model_version: int, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Engines in service (of the datasets `names`, default all fleet and evaluation datasets) that model `model_version` has not
    scored at their last cycle: DataFrame[dataset, dataset_id, unit, last_cycle] by dataset and unit."""
    ids = _ids(con, names)
    where = "" if ids is None else " AND e.dataset_id IN (SELECT unnest(?::INTEGER[]))"
    params: list[object] = [str(model_version)] + ([] if ids is None else [ids])
    return con.execute(f"{_STALE}{where} ORDER BY e.dataset_id, e.unit", params).df()


def stale_count(con: duckdb.DuckDBPyConnection, model_version: int, names: Sequence[str] | None = None) -> int:
    """How many engines :func:`stale_engines` would list."""
    ids = _ids(con, names)
    where = "" if ids is None else " AND e.dataset_id IN (SELECT unnest(?::INTEGER[]))"
    params: list[object] = [str(model_version)] + ([] if ids is None else [ids])
    row = first_row(con, f"SELECT count(*) FROM ({_STALE}{where})", params)
    return int(row[0]) if row else 0


def scoring_readings(con: duckdb.DuckDBPyConnection, dataset_id: int, name: str, units: Sequence[int],
                     history: int | None) -> pd.DataFrame:
    """Readings (with a leading ``dataset`` column) of the engines `units` of one dataset, by unit and cycle.

    With `history` (how many trailing readings the features of the last row look at) only each engine's last
    `history` cycles are read. The unit range bounds the scan (readings are stored by dataset, unit and cycle,
    so DuckDB's zone maps skip the rest).
    """
    units = sorted(int(u) for u in units)
    columns = ", ".join(f"r.{c}" for c in COLUMNS)
    recent = "" if history is None else (
        " AND r.cycle > (SELECT max(m.cycle) FROM readings m WHERE m.dataset_id = r.dataset_id AND m.unit = r.unit) - ?")
    params: list[object] = [name, dataset_id, units[0], units[-1], units] + ([] if history is None else [int(history)])
    return con.execute(
        f"SELECT ? AS dataset, {columns} FROM readings r WHERE r.dataset_id = ? AND r.unit BETWEEN ? AND ? "
        f"AND r.unit IN (SELECT unnest(?::INTEGER[])){recent} ORDER BY r.unit, r.cycle", params).df()


EXPERIENCE = ("all", "outside", "within")
"""The experience filter's values: every engine; only engines flagged out of the model's experience (``ood``);
only engines within it."""


@dataclass(frozen=True)
class FleetFilter:
    """Which stored scores the Fleet page shows: datasets, risk levels, predicted-RUL range, engine-id text, and
    the model's experience (:data:`EXPERIENCE`: every engine, only those flagged out of it, or only the others)."""

    datasets: tuple[str, ...]
    risks: tuple[str, ...]
    rul_range: tuple[float, float]
    search: str = ""
    experience: str = "all"

    def __post_init__(self) -> None:
        if self.experience not in EXPERIENCE:
            raise UserError(f"The experience filter must be one of {', '.join(EXPERIENCE)}, not '{self.experience}'.")


_TABLE = (
    "WITH latest AS (SELECT * FROM predictions WHERE model_version = ? AND dataset_id IN "
    "(SELECT id FROM datasets WHERE name IN (SELECT unnest(?::VARCHAR[]))) "
    "QUALIFY row_number() OVER (PARTITION BY dataset_id, unit ORDER BY cycle DESC, created_at DESC) = 1), "
    "shown AS (SELECT l.risk, l.p_fail_30, l.rul, l.rul_low, l.rul_high, e.engine, d.name AS dataset, l.cycle, "
    "CAST(t.rul AS DOUBLE) AS true_rul, coalesce(l.ood, false) AS ood, coalesce(l.ood_reason, '') AS ood_reason, "
    "l.unit, l.created_at, l.dataset_id, "
    "CASE l.risk WHEN 'HIGH' THEN 2 WHEN 'MEDIUM' THEN 1 ELSE 0 END AS risk_score FROM latest l "
    "JOIN engines e ON e.dataset_id = l.dataset_id AND e.unit = l.unit JOIN datasets d ON d.id = l.dataset_id "
    "LEFT JOIN rul_truth t ON t.dataset_id = l.dataset_id AND t.unit = l.unit "
    "WHERE e.closed_event IS NULL AND l.risk IN (SELECT unnest(?::VARCHAR[])) AND l.rul BETWEEN ? AND ? "
    "AND contains(lower(e.engine), ?) AND (? = 'all' OR (? = 'outside') = coalesce(l.ood, false))) "
)
TRIAGE_ORDER = "risk_score DESC, p_fail_30 DESC, rul, dataset, engine"
"""Riskiest first: risk level (HIGH first), P(fail) (highest first), predicted RUL (lowest first), then id."""
_ENGINE_KEY = (r"list_transform(regexp_extract_all(engine, '\d+|\D+'), lambda x: CASE WHEN regexp_full_match(x, "
               r"'\d+') THEN lpad(x, 64, '0') ELSE lower(x) END)")
"""Engine ids in natural order: runs of digits compare as numbers (7 before 10), letters without case."""
SORT_KEYS: dict[str, tuple[str, ...]] = {
    "risk": ("risk_score", "p_fail_30", "-rul"),
    "p_fail_30": ("p_fail_30",),
    "rul": ("rul",),
    "rul_low": ("rul_low",),
    "rul_high": ("rul_high",),
    "true_rul": ("true_rul",),
    "cycle": ("cycle",),
    "ood": ("ood",),
    "engine": (_ENGINE_KEY,),
    "dataset": ("dataset",),
}
"""The columns the fleet table can be sorted by, each with the SQL expressions it orders by (a fixed whitelist:
no other text reaches ORDER BY). ``risk`` is the triage order: level, then P(fail), then predicted RUL."""


@dataclass(frozen=True)
class FleetSort:
    """The order of the whole filtered fleet table: a column of :data:`SORT_KEYS` and a direction (descending:
    largest, latest in the alphabet, HIGH risk or out of experience first). Ties fall back to the triage order,
    then dataset and engine id; engines without a value (no true RUL) come last either way."""

    column: str = "risk"
    descending: bool = True

    def __post_init__(self) -> None:
        if self.column not in SORT_KEYS:
            raise UserError(f"The fleet table cannot be sorted by '{self.column}'; choose one of "
                            f"{', '.join(SORT_KEYS)}.")

    def order_by(self) -> str:
        """The ORDER BY clause (without the keywords), built only from :data:`SORT_KEYS`."""
        direction = "DESC" if self.descending else "ASC"
        chosen = ", ".join(f"{key} {direction} NULLS LAST" for key in SORT_KEYS[self.column])
        return f"{chosen}, {TRIAGE_ORDER}"


TRIAGE = FleetSort()
"""The default order: riskiest first."""
TABLE_COLUMNS = ["risk", "p_fail_30", "rul", "rul_low", "rul_high", "engine", "dataset", "cycle", "true_rul", "ood",
                 "ood_reason", "unit"]
"""Columns of the fleet table: triage first, then who the engine is and whether it ran outside the model's
experience (``ood``, with the reason); ``unit`` is the store's integer key."""
_COLUMNS_SQL = ", ".join(TABLE_COLUMNS)


def _params(model_version: int, chosen: FleetFilter) -> list[object]:
    low, high = chosen.rul_range
    return [str(model_version), list(chosen.datasets), list(chosen.risks), float(low), float(high),
            chosen.search.strip().lower(), chosen.experience, chosen.experience]


def fleet_page(con: duckdb.DuckDBPyConnection, model_version: int, chosen: FleetFilter, offset: int,
               limit: int, order: FleetSort = TRIAGE) -> pd.DataFrame:
    """One page of the fleet table (stored scores of `model_version`, filtered): every filtered engine is sorted
    by `order`, then the rows from `offset` are taken."""
    return con.execute(f"{_TABLE}SELECT {_COLUMNS_SQL} FROM shown ORDER BY {order.order_by()} LIMIT ? OFFSET ?",
                       [*_params(model_version, chosen), int(limit), int(offset)]).df()


def fleet_all(con: duckdb.DuckDBPyConnection, model_version: int, chosen: FleetFilter,
              order: FleetSort = TRIAGE) -> pd.DataFrame:
    """Every row of the filtered fleet table sorted by `order` (for the CSV download)."""
    return con.execute(f"{_TABLE}SELECT {_COLUMNS_SQL} FROM shown ORDER BY {order.order_by()}",
                       _params(model_version, chosen)).df()

def fleet_summary(con: duckdb.DuckDBPyConnection, model_version: int, chosen: FleetFilter) -> dict[str, object]:
    """KPIs of the filtered table: engines, per risk level, out of the model's experience, with known truth,
    newest scoring time."""
    row = first_row(con, f"{_TABLE}SELECT count(*), count(*) FILTER (risk = 'HIGH'), count(*) FILTER "
                         "(risk = 'MEDIUM'), count(*) FILTER (risk = 'LOW'), count(*) FILTER (ood), count(true_rul), "
                         "max(created_at) FROM shown", _params(model_version, chosen))
    engines, high, medium, low, ood, truth, scored_at = row or (0, 0, 0, 0, 0, 0, None)
    return {"engines": int(engines), "HIGH": int(high), "MEDIUM": int(medium), "LOW": int(low), "ood": int(ood),
            "with_truth": int(truth), "scored_at": scored_at}


def fleet_sample(con: duckdb.DuckDBPyConnection, model_version: int, chosen: FleetFilter, size: int) -> pd.DataFrame:
    """At most `size` rows of the filtered table, a fixed pseudo-random sample (by a hash of each engine's key,
    so the same engines are drawn on every rerun), for the chart."""
    return con.execute(f"{_TABLE}SELECT {_COLUMNS_SQL} FROM shown ORDER BY hash(dataset_id, unit) LIMIT ?",
                       [*_params(model_version, chosen), int(size)]).df()


def fleet_costs_input(con: duckdb.DuckDBPyConnection, model_version: int, chosen: FleetFilter) -> pd.DataFrame:
    """risk, p_fail_30 and true_rul of every filtered engine: what the cost of the policies is counted from."""
    return con.execute(f"{_TABLE}SELECT risk, p_fail_30, true_rul FROM shown", _params(model_version, chosen)).df()
