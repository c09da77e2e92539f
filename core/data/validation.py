"""Checks applied to every reading before it is written (:func:`validate_readings`).

Plausibility bounds:

- ``unit`` and ``cycle``: whole numbers from 1 to 1,000,000;
- ``setting_1..3``: from -1,000 to 1,000 (C-MAPSS: altitude 0-42 kft, Mach 0-0.84, TRA 60-100);
- ``sensor_1..21``: from 0 to 100,000 (C-MAPSS sensors are temperatures, pressures, speeds
  and ratios, all non-negative, the largest about 9,250 rpm).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from core.data import names, sensors
from core.data.cmapss import COLUMNS, SENSORS, SETTINGS
from core.errors import UserError

UNIT_CYCLE_MAX = 1_000_000
SETTING_BOUNDS = (-1_000.0, 1_000.0)
SENSOR_BOUNDS = (0.0, 100_000.0)


def _default_where(index: int) -> str:
    return f"row {index + 1}"


def _fmt(value: float) -> str:
    return f"{value:g}" if isinstance(value, float | np.floating) else str(value)


ENGINE_ID_MAX_CHARS = names.ENGINE_MAX_CHARS


def engine_ids(values: object, label: str, where: Callable[[int], str] = _default_where) -> np.ndarray:
    """Engine ids as the operator writes them (text; whole numbers such as 7 or 7.0 become '7').

    Text ids follow the rule for names (:mod:`core.data.names`): they are normalised (NFKC, surrounding
    whitespace removed), so look-alikes such as ``ＥＳＮ-7001`` and ``ESN-7001`` are one engine. Refuses an
    empty or missing id, a number that is not whole, an id holding a control or format character, and ids
    longer than :data:`ENGINE_ID_MAX_CHARS` characters. Each distinct id is checked and converted once, and
    every row of the result refers to its engine's one string, so millions of rows cost one pointer each.
    """
    return _engines(values, label, where)[0]


def _engines(values: object, label: str, where: Callable[[int], str]) -> tuple[np.ndarray, np.ndarray]:
    """(each row's engine id, each row's engine number 0..n-1 in order of first appearance); see :func:`engine_ids`."""
    raw = np.asarray(values)
    if raw.dtype.kind == "b":
        raise UserError(f"{label} {where(0)}: the engine id is {raw[0]}, which is not an id.")
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)

    def first_row(bad_uniques: np.ndarray) -> int | None:
        rows = np.flatnonzero(np.isin(codes, bad_uniques)) if bad_uniques.size else np.zeros(0, np.int64)
        return int(rows[0]) if rows.size else None

    missing_row = first_row(np.array([-1]))
    if raw.dtype.kind in "iuf":
        number = np.asarray(uniques, dtype=float)
        bad = first_row(np.flatnonzero(~np.isfinite(number) | (number != np.floor(number))))
        if missing_row is not None and (bad is None or missing_row < bad):
            bad = missing_row
        if bad is not None:
            shown = _fmt(float(raw[bad]))
            raise UserError(f"{label} {where(bad)}: the engine id is {shown}, which is not an id; "
                            "use text or whole numbers.")
        return number.astype(np.int64).astype(str).astype(object)[codes], codes
    given = pd.Series(np.asarray(uniques, dtype=object)).astype(str)
    plain = given.str.fullmatch(r"[\x20-\x7e]*").to_numpy(dtype=bool)
    text = given.str.strip()
    text[~plain] = np.array([names.fold(value) for value in given[~plain]], dtype=object)
    empty = first_row(np.flatnonzero((text == "").to_numpy()))
    if missing_row is not None and (empty is None or missing_row < empty):
        empty = missing_row
    if empty is not None:
        raise UserError(f"{label} {where(empty)}: the engine id is missing.")
    refusals = {int(k): names.refusal(given[k], names.ENGINE)
                for k in np.flatnonzero(~plain | (text.str.len() > ENGINE_ID_MAX_CHARS).to_numpy())}
    bad = first_row(np.array([k for k, phrase in refusals.items() if phrase is not None], dtype=np.int64))
    if bad is not None:
        raise UserError(f"{label} {where(bad)}: {refusals[int(codes[bad])]}.")
    merged, distinct = pd.factorize(text, sort=False)
    return np.asarray(distinct, dtype=object)[merged][codes], merged[codes]


def validate_readings(
    columns: Mapping[str, object] | pd.DataFrame,
    label: str,
    where: Callable[[int], str] = _default_where,
) -> dict[str, np.ndarray]:
    """Check readings and return them as float64 arrays keyed by :data:`COLUMNS`, plus ``engine``.

    `columns` maps column names to array-likes (a DataFrame works); the engine is given either as
    ``engine`` (ids as text, as the operator writes them) or as ``unit`` (whole numbers). In the
    result ``engine`` holds each row's id as text and ``unit`` numbers the engines 1..n in order of
    first appearance (or keeps the given whole numbers). `label` names the file or dataset in messages
    and `where(i)` names row ``i`` (e.g. ``"line 12"``).
    Raises :class:`UserError` with one sentence for: a missing column, non-numeric or
    missing values, NaN/inf, values outside the plausibility bounds, a cycle that is not a positive
    whole number, a missing or over-long engine id or one holding a control or format character
    (:mod:`core.data.names`), a repeated (engine, cycle), cycles that do not
    increase within an engine, or no rows at all.
    """
    given: dict[str, object] = (dict(columns.items()) if not isinstance(columns, pd.DataFrame)
                                else {str(c): columns[c] for c in columns})
    if "engine" in given and "unit" not in given:
        ids, codes = _engines(given["engine"], label, where)
        given["unit"] = (codes + 1).astype(np.float64)
    else:
        ids = None
    missing = [c for c in COLUMNS if c not in given]
    if missing:
        lacking = ", ".join(sensors.mnemonic(c) if c != "unit" else "engine" for c in missing)
        raise UserError(f"{label} lacks the column(s) {lacking}; a C-MAPSS reading needs "
                        "the 26 columns engine, cycle, the 3 settings and the 21 sensors.")
    arrays: dict[str, np.ndarray] = {}
    for name in COLUMNS:
        raw = np.asarray(given[name])
        if raw.dtype.kind not in "biuf":
            converted = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=float)
            bad = np.flatnonzero(np.isnan(converted) & ~pd.isna(pd.Series(raw)).to_numpy())
            if bad.size:
                i = int(bad[0])
                raise UserError(f"{label} {where(i)}: {sensors.display_name(name)} is '{raw[i]}', which is not a number.")
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
            raise UserError(f"{label} {where(i)}: {sensors.display_name(name)} is {shown}, but readings must be finite numbers.")
    for name in ("unit", "cycle"):
        values = arrays[name]
        bad = np.flatnonzero((values < 1) | (values > UNIT_CYCLE_MAX) | (values != np.floor(values)))
        if bad.size:
            i = int(bad[0])
            raise UserError(f"{label} {where(i)}: {sensors.display_name(name)} is {_fmt(float(values[i]))}, but it must be a "
                            f"positive whole number no larger than {UNIT_CYCLE_MAX:,}.")
    for group, (low, high), kind in ((SETTINGS, SETTING_BOUNDS, "setting"), (SENSORS, SENSOR_BOUNDS, "sensor")):
        for name in group:
            values = arrays[name]
            bad = np.flatnonzero((values < low) | (values > high))
            if bad.size:
                i = int(bad[0])
                raise UserError(f"{label} {where(i)}: {sensors.display_name(name)} is {_fmt(float(values[i]))}, outside the "
                                f"plausible range {low:g} to {high:g} for a {kind}.")
    if ids is None:
        ids = engine_ids(arrays["unit"], label, where)
    arrays["engine"] = ids
    _check_order(arrays["unit"], arrays["cycle"], ids, label, where)
    return arrays


def _check_order(unit: np.ndarray, cycle: np.ndarray, ids: np.ndarray, label: str,
                 where: Callable[[int], str]) -> None:
    """Refuse repeated (engine, cycle) pairs and cycles that do not increase within an engine.

    Stable sorts on one int64 key (engine, then cycle) keep the temporary arrays to a few per row.
    """
    key = unit.astype(np.int64) * (UNIT_CYCLE_MAX + 1) + cycle.astype(np.int64)
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    dup = np.flatnonzero(ordered[1:] == ordered[:-1])
    del key, ordered
    if dup.size:
        first, again = sorted((int(order[dup[0]]), int(order[dup[0] + 1])))
        raise UserError(f"{label} {where(again)} repeats engine {ids[again]} cycle {int(cycle[again])}, "
                        f"already given on {where(first)}.")
    del order
    by_unit = np.argsort(unit, kind="stable")
    u, c = unit[by_unit], cycle[by_unit]
    back = np.flatnonzero((u[1:] == u[:-1]) & (c[1:] <= c[:-1]))
    if back.size:
        i = int(by_unit[back[0] + 1])
        prev = int(c[back[0]])
        raise UserError(f"{label} {where(i)}: engine {ids[i]} goes from cycle {prev} to cycle "
                        f"{int(cycle[i])}, but cycles must increase within each engine.")
