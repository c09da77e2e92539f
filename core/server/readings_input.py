"""Readings from a JSON request turned into a model frame, with one sentence naming the field for each refusal.

A reading is an object of column: value pairs; columns are the sensor table's storage names or
mnemonics in any case (``sensor_3`` or ``T30``, ``setting_1`` or ``altitude``, see
:mod:`core.data.sensors`). Every reading needs ``cycle``, the three settings and the 21 sensors, each a
finite number; cycles must increase within an engine; engine ids follow the rule for names
(:mod:`core.data.names`); then the ingest bounds apply
(:func:`core.data.validation.validate_readings`). Limits: ``PM_API_MAX_READINGS`` readings per request
(default 250,000) and ``PM_API_MAX_ENGINE_READINGS`` per engine (default 5,000).
"""

from __future__ import annotations

import itertools
import json
import math
import operator
from collections.abc import Sequence
from typing import Any, TypeGuard

import numpy as np

from core.config import env_number
from core.data import names
from core.data.cmapss import SENSORS, SETTINGS
from core.data.sensors import canonical_column, label, mnemonic
from core.data.validation import UNIT_CYCLE_MAX, validate_readings
from core.errors import UserError

VALUE_COLUMNS = [*SETTINGS, *SENSORS]
NEEDED = ["cycle", *VALUE_COLUMNS]
DEFAULT_MAX_READINGS = 250_000
DEFAULT_MAX_ENGINE_READINGS = 5_000


class InputError(UserError):
    """A request the API refuses (HTTP 422): one sentence, and the JSON path of the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def max_readings() -> int:
    """Readings one request may carry (``PM_API_MAX_READINGS``)."""
    return int(env_number("PM_API_MAX_READINGS", DEFAULT_MAX_READINGS, 1, whole=True,
                          meaning="the readings one request may carry"))


def max_engine_readings() -> int:
    """Readings one engine may carry in one request (``PM_API_MAX_ENGINE_READINGS``)."""
    return int(env_number("PM_API_MAX_ENGINE_READINGS", DEFAULT_MAX_ENGINE_READINGS, 1, whole=True,
                          meaning="the readings one engine may carry in one request"))


def _shown(name: str) -> str:
    return mnemonic(name) if name != "cycle" else "cycle"


def _problem(value: object) -> str:
    """Why `value` is not a usable reading value (it is not a finite number)."""
    if value is None:
        return "is null, but readings must be finite numbers"
    if isinstance(value, float) and not math.isfinite(value):
        return f"is {value}, but readings must be finite numbers"
    return f"is {json.dumps(value) if isinstance(value, str | bool) else type(value).__name__}, which is not a number"


def readings_columns(readings: Sequence[object], paths: Sequence[str], id_key: bool = False) -> dict[str, Any]:
    """Check `readings` and return their columns: ``cycle`` (int64) and the storage-named values (float64).

    ``paths[i]`` is the JSON path of reading ``i`` for messages (e.g. ``engines[2].readings[7]``).
    With `id_key`, each reading also names its engine under ``engine`` (kept as a string column
    ``engine``, a list of strings). Raises :class:`InputError` naming the first offending field.
    """
    if not readings:
        raise InputError(paths[0] if paths else "readings", "The request holds no readings.")
    if len(readings) > max_readings():
        raise InputError("readings", f"The request holds {len(readings):,} readings, more than the "
                                     f"{max_readings():,} one request may carry; send them in parts.")
    if not _all_objects(readings):
        i = next(j for j, r in enumerate(readings) if not isinstance(r, dict))
        raise InputError(paths[i], f"{paths[i]} is not an object of column: value pairs.")
    first = readings[0].keys()
    uniform = all(map(first.__eq__, map(dict.keys, readings)))
    keys = set(first) if uniform else set().union(*map(dict.keys, readings))
    names: dict[str, str] = {}
    for key in sorted(keys):
        name = "engine" if id_key and key.strip().lower() in ("engine", "unit") else canonical_column(key)
        if name is None or (name == "unit" and not id_key):
            i = next(j for j, r in enumerate(readings) if key in r)
            hint = " (the engine is named once, outside the readings)" if name == "unit" else \
                "; use a storage name (sensor_3) or a mnemonic (T30) from the sensor table"
            raise InputError(f"{paths[i]}.{key}", f"{paths[i]} has the column '{key}', which is not allowed{hint}.")
        if name in names.values():
            other = next(k for k, v in names.items() if v == name)
            i = next(j for j, r in enumerate(readings) if key in r)
            raise InputError(f"{paths[i]}.{key}", f"{paths[i]}.{key} names {_shown(name)}, which the request already "
                                                  f"gives as '{other}'; use one name per column.")
        names[key] = name
    by_name = {v: k for k, v in names.items()}
    if id_key:
        _require(readings, paths, by_name, "engine", "engine")
    columns = _all_numbers(readings, [by_name.get(name) for name in NEEDED]) if uniform else None
    if columns is None:  # something is missing or not a finite number: find the first such field
        columns = {name: _numbers(readings, paths, by_name, name) for name in NEEDED}
    cycles = columns["cycle"]
    bad = np.flatnonzero((cycles < 1) | (cycles > UNIT_CYCLE_MAX) | (cycles != np.floor(cycles)))
    if bad.size:
        i = int(bad[0])
        field = f"{paths[i]}.{by_name['cycle']}"
        raise InputError(field, f"{field} is {cycles[i]:g}, but a cycle must be a whole number from 1 to "
                                f"{UNIT_CYCLE_MAX:,}.")
    columns["cycle"] = cycles.astype(np.int64)
    if not id_key:
        return columns
    return {"engine": _engine_ids(readings, paths, by_name["engine"]), **columns}


def _all_objects(readings: Sequence[object]) -> TypeGuard[Sequence[dict[str, Any]]]:
    """Whether every reading is a JSON object (a dict), in one pass over their types."""
    return set(map(type, readings)) == {dict}


def _all_numbers(readings: Sequence[dict], keys: list[str | None]) -> dict[str, Any] | None:
    """Every needed column as float64 in one pass (readings with the same keys), or None when a key is
    missing or a value is not a finite number."""
    if None in keys:
        return None
    rows = list(map(operator.itemgetter(*keys), readings))
    if not set(map(type, itertools.chain.from_iterable(rows))) <= {int, float}:
        return None
    array = np.array(rows, dtype=np.float64)
    if not np.isfinite(array).all():
        return None
    return {name: np.ascontiguousarray(array[:, j]) for j, name in enumerate(NEEDED)}


def _require(readings: Sequence[dict], paths: Sequence[str], by_name: dict[str, str], name: str, what: str) -> str:
    """The request's key for column `name`; InputError naming the first reading without it."""
    key = by_name.get(name)
    if key is not None:
        i = next((j for j, r in enumerate(readings) if key not in r), None)
        if i is None:
            return key
    else:
        i = 0
    raise InputError(f"{paths[i]}.{key or _shown(name)}", f"{paths[i]} lacks {what}; every reading needs "
                     f"{'engine, ' if 'engine' in by_name else ''}cycle, the three settings and the 21 sensors.")


def _numbers(readings: Sequence[dict], paths: Sequence[str], by_name: dict[str, str], name: str) -> np.ndarray:
    """Column `name` of every reading as float64; InputError for a reading without it or with a non-number."""
    what = label(name) if name in VALUE_COLUMNS else name
    key = _require(readings, paths, by_name, name, what)
    values = [r[key] for r in readings]
    if not all(type(v) is float or type(v) is int for v in values):
        i = next(j for j, v in enumerate(values) if not (type(v) is float or type(v) is int))
        raise InputError(f"{paths[i]}.{key}", f"{paths[i]}.{key} {_problem(values[i])}.")
    array = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(array)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise InputError(f"{paths[i]}.{key}", f"{paths[i]}.{key} {_problem(values[i])}.")
    return array


def _engine_ids(readings: Sequence[dict], paths: Sequence[str], key: str) -> list[str]:
    """Each reading's engine id as text (a non-empty string, or a whole number written without quotes),
    normalised by the rule for names (:mod:`core.data.names`); each distinct id is checked once."""
    checked: dict[str, str] = {}
    out = []
    for i, reading in enumerate(readings):
        value = reading[key]
        if type(value) is int:
            value = str(value)
        elif not isinstance(value, str) or not value.strip():
            raise InputError(f"{paths[i]}.{key}", f"{paths[i]}.{key} must name the engine as text, e.g. \"ESN-7001\".")
        if value not in checked:
            phrase = names.refusal(value, names.ENGINE)
            if phrase is not None:
                raise InputError(f"{paths[i]}.{key}", names.sentence(phrase, f"{paths[i]}.{key}"))
            checked[value] = names.fold(value)
        out.append(checked[value])
    return out


def check_engine(cycles: np.ndarray, paths: Sequence[str], engine: str) -> None:
    """Refuse too many readings for one engine and cycles that do not increase (rows in request order)."""
    if len(cycles) > max_engine_readings():
        raise InputError(paths[0].rsplit("[", 1)[0], f"Engine {engine} has {len(cycles):,} readings in the request, "
                                                     f"more than the {max_engine_readings():,} allowed per engine.")
    back = np.flatnonzero(np.diff(cycles) <= 0)
    if back.size:
        i = int(back[0]) + 1
        raise InputError(f"{paths[i]}.cycle", f"{paths[i]}.cycle is {cycles[i]} after cycle {cycles[i - 1]}, but "
                                              f"cycles must increase within engine {engine}.")


def model_columns(columns: dict[str, Any], units: np.ndarray, paths: Sequence[str],
                  label_: str) -> dict[str, np.ndarray]:
    """The columns the models take (``dataset``, integer ``unit``, ``cycle``, values) after the ingest bounds, as
    arrays: the batcher (:mod:`core.server.batcher`) makes one frame of several requests' columns."""
    data = {"unit": units.astype(np.int64), **{name: columns[name] for name in NEEDED}}
    try:
        validate_readings(data, label_, where=lambda i: paths[i])
    except UserError as err:
        raise InputError("readings", str(err)) from err
    return {"dataset": np.full(len(units), "request", dtype=object), **data}
