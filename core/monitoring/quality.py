"""Data-quality checks per load of a dataset (the readings each file or append brought, ``reading_loads``):

- **missing cycles**: cycles an engine skipped, counted from its cycle 1 (or from its last cycle in an earlier load)
  up to the last cycle this load brought;
- **repeated cycles**: a cycle whose settings and 21 sensors all equal the engine's previous cycle (a record sent
  twice under a new cycle number; the same (engine, cycle) twice is refused when loading);
- **stuck sensors**: a sensor holding one value for at least ``stuck_cycles`` consecutive cycles of an engine; only
  sensors that never hold a value that long in the reference are judged (a sensor that is near-constant by design,
  or per operating regime, is not stuck);
- **outside the training range**: readings with a sensor below the reference's minimum or above its maximum.

Missing cycles and the training range are counted in DuckDB over every reading; repeated cycles and stuck sensors
are looked for in each load's readings, or in a seeded sample of whole engines of a load holding more than
:data:`MAX_CHECKED_ROWS` readings (the table's ``checked_engines`` says how many).
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd

from core.data import queries
from core.data.cmapss import SENSORS, SETTINGS
from core.errors import UserError
from core.monitoring import drift
from core.monitoring.prediction_drift import choose_engines

STUCK_CYCLES = 20
"""Default run of one value, in consecutive cycles, from which a sensor counts as stuck."""
COLUMNS = ["load", "loaded_at", "engines", "readings", "missing_cycles", "engines_with_gaps", "checked_engines",
           "repeated_cycles", "stuck", "out_of_range", "out_of_range_sensors"]


MAX_CHECKED_ROWS = 65_000
"""Readings per load checked for repeated cycles and stuck sensors; a larger load is checked on a seeded sample of
whole engines (the table says how many engines were checked). Missing cycles and the training range are counted on
every reading."""


def _ids(con: duckdb.DuckDBPyConnection, names: Sequence[str]) -> list[int]:
    return [int(queries.get_dataset(con, name)["id"]) for name in names]


def _loaded(marks: str) -> str:
    """The readings of the datasets ``marks`` (``?`` per id), each with the number of the load that brought it."""
    return ("SELECT l.load_no, r.* FROM readings r JOIN reading_loads l ON l.dataset_id = r.dataset_id "
            f"AND l.unit = r.unit AND r.cycle BETWEEN l.first_cycle AND l.last_cycle WHERE r.dataset_id IN ({marks})")


def longest_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Per engine (``unit``) of a frame sorted by unit and cycle, the longest run of one value of each sensor."""
    units = frame["unit"].to_numpy()
    new_engine = np.concatenate(([True], units[1:] != units[:-1]))
    out = {}
    for sensor in SENSORS:
        values = frame[sensor].to_numpy()
        starts = np.flatnonzero(new_engine | np.concatenate(([True], values[1:] != values[:-1])))
        lengths = np.diff(np.append(starts, values.size))
        out[sensor] = pd.Series(lengths).groupby(units[starts]).max()
    return pd.DataFrame(out)


def repeated_cycles(frame: pd.DataFrame) -> int:
    """Rows of a frame sorted by unit and cycle whose settings and sensors all equal the engine's previous row."""
    values = frame[[*SETTINGS, *SENSORS]].to_numpy()
    units = frame["unit"].to_numpy()
    return int(np.sum((units[1:] == units[:-1]) & np.all(values[1:] == values[:-1], axis=1)))


def reference_checks(con: duckdb.DuckDBPyConnection, reference: Sequence[str],
                     stuck_cycles: int = STUCK_CYCLES) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """(each sensor's (minimum, maximum) over the reference datasets, the sensors judged for being stuck: those
    never holding one value for ``stuck_cycles`` cycles of a reference engine, on the reference as
    :func:`core.monitoring.drift.read_side` reads it)."""
    ids = _ids(con, reference)
    if not ids:
        raise UserError("No reference was named to check the data against.")
    marks = ", ".join("?" for _ in ids)
    bounds = con.execute(f"SELECT {', '.join(f'min({s}), max({s})' for s in SENSORS)} FROM readings "
                         f"WHERE dataset_id IN ({marks})", ids).fetchone()
    if bounds is None or bounds[0] is None:
        raise UserError("The reference holds no readings, so there is no training range to check against.")
    ranges = {s: (float(bounds[2 * i]), float(bounds[2 * i + 1])) for i, s in enumerate(SENSORS)}
    frame = drift.read_side(con, list(reference))[0]
    frame = frame.assign(unit=frame.groupby(["dataset", "unit"], sort=False).ngroup())
    longest = longest_runs(frame).max()
    return ranges, [s for s in SENSORS if longest[s] < stuck_cycles]


def _checked(con: duckdb.DuckDBPyConnection, dataset_id: int, load_no: int, max_rows: int,
             seed: int) -> pd.DataFrame:
    """The readings of one load sorted by unit and cycle: every engine, or a seeded sample of whole engines holding
    at most ``max_rows`` readings."""
    sizes = con.execute("SELECT unit, last_cycle - first_cycle + 1 AS n FROM reading_loads WHERE dataset_id = ? "
                        "AND load_no = ? ORDER BY unit", [dataset_id, load_no]).df().set_index("unit")["n"]
    units = sizes.index if sizes.sum() <= max_rows else choose_engines(sizes, max_rows, seed)
    return con.execute(
        f"SELECT r.unit, r.cycle, {', '.join(f'r.{c}' for c in [*SETTINGS, *SENSORS])} FROM readings r "
        "JOIN reading_loads l "
        "ON l.dataset_id = r.dataset_id AND l.unit = r.unit AND r.cycle BETWEEN l.first_cycle AND l.last_cycle "
        "WHERE r.dataset_id = ? AND l.load_no = ? AND r.unit IN (SELECT unnest(?::INTEGER[])) ORDER BY r.unit, r.cycle",
        [dataset_id, load_no, [int(u) for u in units]]).df()


def check(con: duckdb.DuckDBPyConnection, dataset: str, reference: Sequence[str],
          stuck_cycles: int = STUCK_CYCLES, max_rows: int = MAX_CHECKED_ROWS, seed: int = 0) -> pd.DataFrame:
    """One row per load of ``dataset`` (:data:`COLUMNS`); ``stuck`` and ``out_of_range_sensors`` name the sensors
    with the engines or readings concerned, e.g. ``sensor_7 (3 engines)``; ``checked_engines`` says on how many
    engines repeated cycles and stuck sensors were looked for (all, unless the load holds more than ``max_rows``
    readings)."""
    if stuck_cycles < 2:
        raise UserError(f"A sensor is stuck from at least 2 equal cycles on; got {stuck_cycles}.")
    ranges, judged = reference_checks(con, reference, stuck_cycles)
    (dataset_id,) = _ids(con, [dataset])
    outside = {s: f"({s} < ? OR {s} > ?)" for s in SENSORS}
    out_params = [v for s in SENSORS for v in ranges[s]]
    per_sensor = ", ".join(f"count(*) FILTER (WHERE {outside[s]}) AS out_{s}" for s in SENSORS)
    before = ("LEFT JOIN (SELECT unit, load_no, max(last_cycle) OVER (PARTITION BY unit ORDER BY load_no "
              "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before FROM reading_loads WHERE dataset_id = ?) p "
              "ON p.unit = l.unit AND p.load_no = l.load_no")
    loads = con.execute(
        "SELECT l.load_no, min(l.loaded_at) AS loaded_at, count(*) AS engines, "
        f"sum(l.last_cycle - coalesce(p.before, 0)) AS expected FROM reading_loads l {before} "
        "WHERE l.dataset_id = ? GROUP BY l.load_no", [dataset_id, dataset_id]).df()
    rows = con.execute(
        f"SELECT load_no, count(*) AS readings, count(*) FILTER (WHERE {' OR '.join(outside.values())}) "
        f"AS out_of_range, {per_sensor} FROM ({_loaded('?')}) GROUP BY load_no",
        out_params + out_params + [dataset_id]).df()
    gaps = con.execute(
        "SELECT l.load_no, count(*) AS engines_with_gaps FROM reading_loads l JOIN ("
        f"SELECT load_no, unit, count(*) AS n FROM ({_loaded('?')}) GROUP BY load_no, unit) c "
        f"ON c.load_no = l.load_no AND c.unit = l.unit {before} "
        "WHERE l.dataset_id = ? AND c.n < l.last_cycle - coalesce(p.before, 0) GROUP BY l.load_no",
        [dataset_id, dataset_id, dataset_id]).df()
    table = loads.merge(rows, on="load_no", how="left").merge(gaps, on="load_no", how="left").fillna(0)
    out = []
    for _, load in table.sort_values("load_no").iterrows():
        checked = _checked(con, dataset_id, int(load["load_no"]), max_rows, seed)
        runs = longest_runs(checked)
        stuck = [(s, int((runs[s] >= stuck_cycles).sum())) for s in judged]
        outside_counts = [(s, int(load[f"out_{s}"])) for s in SENSORS]
        out.append({
            "load": int(load["load_no"]), "loaded_at": load["loaded_at"], "engines": int(load["engines"]),
            "readings": int(load["readings"]),
            "missing_cycles": max(0, int(load["expected"]) - int(load["readings"])),
            "engines_with_gaps": int(load["engines_with_gaps"]), "checked_engines": int(checked["unit"].nunique()),
            "repeated_cycles": repeated_cycles(checked),
            "stuck": ", ".join(f"{s} ({n} engine{'s' if n != 1 else ''})" for s, n in stuck if n),
            "out_of_range": int(load["out_of_range"]),
            "out_of_range_sensors": ", ".join(f"{s} ({n:,} reading{'s' if n != 1 else ''})"
                                              for s, n in outside_counts if n),
        })
    return pd.DataFrame(out, columns=COLUMNS)


def findings(table: pd.DataFrame, stuck_cycles: int = STUCK_CYCLES) -> list[str]:
    """The problems of a :func:`check` table in sentences, one per load with any; empty when all is well."""
    sentences = []
    for row in table.to_dict("records"):
        parts = []
        if row['missing_cycles']:
            parts.append(f"{row['missing_cycles']:,} missing cycles in {row['engines_with_gaps']:,} engines")
        sampled = "" if row['checked_engines'] == row['engines'] else f" (of {row['checked_engines']:,} engines checked)"
        if row['repeated_cycles']:
            parts.append(f"{row['repeated_cycles']:,} repeated cycles{sampled}")
        if row['stuck']:
            parts.append(f"stuck for {stuck_cycles}+ cycles: {row['stuck']}{sampled}")
        if row['out_of_range']:
            parts.append(f"{row['out_of_range']:,} readings outside the training range ({row['out_of_range_sensors']})")
        if parts:
            sentences.append(f"Load {row['load']} ({row['readings']:,} readings of {row['engines']:,} engines): "
                             + "; ".join(parts) + ".")
    return sentences


def training_reference(listing: pd.DataFrame, model_training: Sequence[str]) -> tuple[str, ...]:
    """What "the training range" means for the checks: the serving model's training datasets when all are loaded,
    else every loaded history dataset (the only data a model is trained on); empty when there is neither."""
    loaded = set(listing["name"])
    if model_training and all(name in loaded for name in model_training):
        return tuple(model_training)
    return tuple(listing.loc[listing["role"] == "history", "name"])
