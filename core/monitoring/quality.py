"""Data-quality checks per load of a dataset (the readings each file or append brought, ``reading_loads``):

- **missing cycles**: cycles an engine skipped, counted from its cycle 1 (or from its last cycle in an earlier load)
  up to the last cycle this load brought;
- **repeated cycles**: a cycle whose settings and 21 sensors all equal the engine's previous cycle (a record sent
  twice under a new cycle number; the same (engine, cycle) twice is refused when loading);
- **stuck sensors**: a sensor holding one value for at least ``stuck_cycles`` consecutive cycles of an engine; only
  sensors that never hold a value that long in the reference are judged (a sensor that is near-constant by design,
  or per operating regime, is not stuck);
- **outside the training range**: readings with a sensor below the reference's minimum or above its maximum.

Everything is computed in DuckDB over the dataset's rows, so a large fleet is never read into pandas.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd

from core.data import queries
from core.data.cmapss import SENSORS, SETTINGS
from core.errors import UserError

STUCK_CYCLES = 20
"""Default run of one value, in consecutive cycles, from which a sensor counts as stuck."""
COLUMNS = ["load", "loaded_at", "engines", "readings", "missing_cycles", "engines_with_gaps", "repeated_cycles",
           "stuck", "out_of_range", "out_of_range_sensors"]


def _ids(con: duckdb.DuckDBPyConnection, names: Sequence[str]) -> list[int]:
    return [int(queries.get_dataset(con, name)["id"]) for name in names]


def _runs_sql(where: str) -> str:
    """Per (load, unit) and sensor, the longest run of one value, over the readings that ``where`` selects."""
    lag = ", ".join(f"{s} IS DISTINCT FROM lag({s}) OVER w AS c_{s}" for s in SENSORS)
    group = ", ".join(f"sum(CAST(c_{s} AS INTEGER)) OVER w AS g_{s}" for s in SENSORS)
    longest = ", ".join(f"max(run_{s}) AS run_{s}" for s in SENSORS)
    count = ", ".join(f"count(*) OVER (PARTITION BY load_no, unit, g_{s}) AS run_{s}" for s in SENSORS)
    window = "WINDOW w AS (PARTITION BY load_no, unit ORDER BY cycle)"
    return (f"SELECT load_no, unit, {longest} FROM (SELECT load_no, unit, {count} FROM ("
            f"SELECT load_no, unit, cycle, {group} FROM (SELECT load_no, unit, cycle, {lag} FROM ({where}) {window}) "
            f"{window})) GROUP BY load_no, unit")


def _loaded(dataset_ids: Sequence[int]) -> str:
    """The readings of the datasets (``?`` per id), each with the number of the load that brought it."""
    marks = ", ".join("?" for _ in dataset_ids)
    return ("SELECT l.load_no, r.* FROM readings r JOIN reading_loads l ON l.dataset_id = r.dataset_id "
            f"AND l.unit = r.unit AND r.cycle BETWEEN l.first_cycle AND l.last_cycle WHERE r.dataset_id IN ({marks})")


def reference_checks(con: duckdb.DuckDBPyConnection, reference: Sequence[str],
                     stuck_cycles: int = STUCK_CYCLES) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """(each sensor's (minimum, maximum) over the reference datasets, the sensors judged for being stuck: those
    never holding one value for ``stuck_cycles`` cycles of a reference engine)."""
    ids = _ids(con, reference)
    if not ids:
        raise UserError("No reference was named to check the data against.")
    marks = ", ".join("?" for _ in ids)
    bounds = con.execute(f"SELECT {', '.join(f'min({s}), max({s})' for s in SENSORS)} FROM readings "
                         f"WHERE dataset_id IN ({marks})", ids).fetchone()
    if bounds is None or bounds[0] is None:
        raise UserError("The reference holds no readings, so there is no training range to check against.")
    ranges = {s: (float(bounds[2 * i]), float(bounds[2 * i + 1])) for i, s in enumerate(SENSORS)}
    longest = con.execute(f"SELECT {', '.join(f'max(run_{s})' for s in SENSORS)} FROM ({_runs_sql(_loaded(ids))})",
                          ids).fetchone() or ()
    judged = [s for s, run in zip(SENSORS, longest, strict=True) if run is not None and run < stuck_cycles]
    return ranges, judged


def check(con: duckdb.DuckDBPyConnection, dataset: str, reference: Sequence[str],
          stuck_cycles: int = STUCK_CYCLES) -> pd.DataFrame:
    """One row per load of ``dataset`` (:data:`COLUMNS`); ``stuck`` and ``out_of_range_sensors`` name the sensors
    with the engines or readings concerned, e.g. ``sensor_7 (3 engines)``."""
    if stuck_cycles < 2:
        raise UserError(f"A sensor is stuck from at least 2 equal cycles on; got {stuck_cycles}.")
    ranges, judged = reference_checks(con, reference, stuck_cycles)
    (dataset_id,) = _ids(con, [dataset])
    values = [*SETTINGS, *SENSORS]
    same = " AND ".join(f"{c} = lag({c}) OVER w" for c in values)
    outside = {s: f"({s} < ? OR {s} > ?)" for s in SENSORS}
    out_params = [v for s in SENSORS for v in ranges[s]]
    per_sensor = ", ".join(f"count(*) FILTER (WHERE {outside[s]}) AS out_{s}" for s in SENSORS)
    loads = con.execute(
        "SELECT l.load_no, min(l.loaded_at) AS loaded_at, count(*) AS engines, "
        "sum(l.last_cycle - coalesce(p.last_cycle, 0)) AS expected FROM reading_loads l "
        "LEFT JOIN (SELECT unit, load_no, max(last_cycle) OVER (PARTITION BY unit ORDER BY load_no "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS last_cycle FROM reading_loads WHERE dataset_id = ?) p "
        "ON p.unit = l.unit AND p.load_no = l.load_no WHERE l.dataset_id = ? GROUP BY l.load_no",
        [dataset_id, dataset_id]).df()
    rows = con.execute(
        f"SELECT load_no, count(*) AS readings, count(DISTINCT unit) AS engines_read, "
        f"count(*) FILTER (WHERE repeated) AS repeated_cycles, "
        f"count(*) FILTER (WHERE {' OR '.join(outside.values())}) AS out_of_range, {per_sensor} "
        f"FROM (SELECT *, coalesce({same}, false) AS repeated FROM ({_loaded([dataset_id])}) "
        "WINDOW w AS (PARTITION BY unit ORDER BY cycle)) GROUP BY load_no",
        out_params + out_params + [dataset_id]).df()
    gaps = con.execute(
        "SELECT l.load_no, count(*) AS engines_with_gaps FROM reading_loads l JOIN ("
        "SELECT load_no, unit, count(*) AS n FROM (" + _loaded([dataset_id]) + ") GROUP BY load_no, unit) c "
        "ON c.load_no = l.load_no AND c.unit = l.unit "
        "LEFT JOIN (SELECT unit, load_no, max(last_cycle) OVER (PARTITION BY unit ORDER BY load_no "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before FROM reading_loads WHERE dataset_id = ?) p "
        "ON p.unit = l.unit AND p.load_no = l.load_no "
        "WHERE l.dataset_id = ? AND c.n < l.last_cycle - coalesce(p.before, 0) GROUP BY l.load_no",
        [dataset_id, dataset_id, dataset_id]).df()
    runs = con.execute(_runs_sql(_loaded([dataset_id])), [dataset_id]).df()
    table = loads.merge(rows, on="load_no", how="left").merge(gaps, on="load_no", how="left").fillna(
        {"engines_with_gaps": 0, "readings": 0, "repeated_cycles": 0, "out_of_range": 0})
    out = []
    for _, load in table.sort_values("load_no").iterrows():
        mine = runs[runs["load_no"] == load["load_no"]]
        stuck = [(s, int((mine[f"run_{s}"] >= stuck_cycles).sum())) for s in judged]
        outside_counts = [(s, int(load[f"out_{s}"])) for s in SENSORS]
        out.append({
            "load": int(load["load_no"]), "loaded_at": load["loaded_at"], "engines": int(load["engines"]),
            "readings": int(load["readings"]),
            "missing_cycles": max(0, int(load["expected"]) - int(load["readings"])),
            "engines_with_gaps": int(load["engines_with_gaps"]), "repeated_cycles": int(load["repeated_cycles"]),
            "stuck": ", ".join(f"{s} ({n} engine{'s' if n != 1 else ''})" for s, n in stuck if n),
            "out_of_range": int(load["out_of_range"]),
            "out_of_range_sensors": ", ".join(f"{s} ({n:,} reading{'s' if n != 1 else ''})"
                                              for s, n in outside_counts if n),
        })
    return pd.DataFrame(out, columns=COLUMNS)


def findings(table: pd.DataFrame, stuck_cycles: int = STUCK_CYCLES) -> list[str]:
    """The problems of a :func:`check` table in sentences, one per load with any; empty when all is well."""
    sentences = []
    for row in table.itertuples(index=False):
        parts = []
        if row.missing_cycles:
            parts.append(f"{row.missing_cycles:,} missing cycles in {row.engines_with_gaps:,} engines")
        if row.repeated_cycles:
            parts.append(f"{row.repeated_cycles:,} repeated cycles")
        if row.stuck:
            parts.append(f"stuck for {stuck_cycles}+ cycles: {row.stuck}")
        if row.out_of_range:
            parts.append(f"{row.out_of_range:,} readings outside the training range ({row.out_of_range_sensors})")
        if parts:
            sentences.append(f"Load {row.load} ({row.readings:,} readings of {row.engines:,} engines): "
                             + "; ".join(parts) + ".")
    return sentences


def training_reference(listing: pd.DataFrame, model_training: Sequence[str]) -> tuple[str, ...]:
    """What "the training range" means for the checks: the serving model's training datasets when all are loaded,
    else every loaded history dataset (the only data a model is trained on); empty when there is neither."""
    loaded = set(listing["name"])
    if model_training and all(name in loaded for name in model_training):
        return tuple(model_training)
    return tuple(listing.loc[listing["role"] == "history", "name"])
