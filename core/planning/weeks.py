"""Calendar weeks and utilisation: how many cycles an engine flies until each week's slot.

Plans are in calendar weeks, Monday to Sunday. Week 0 is the rest of the week the plan starts in (from its start
date), week k the k-th week after it. An engine removed in week k is taken off at the end of that week: it flies
until then, so the risk counted against its slot is that of failing before the week's end. Utilisation is in
cycles (flights) per day, per fleet dataset; :data:`DEFAULT_CYCLES_PER_DAY` where none is set.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np

from core.errors import UserError

DEFAULT_CYCLES_PER_DAY = 2.0
"""Cycles per day of a dataset whose utilisation nobody set: two flights a day, so that the models' 125-cycle
horizon spans about nine weeks."""
MAX_CYCLES_PER_DAY = 50.0
MAX_WEEKS = 52


def check_horizon(weeks: int) -> int:
    """`weeks` as an int; UserError outside 1..:data:`MAX_WEEKS`."""
    if isinstance(weeks, bool) or not isinstance(weeks, int | np.integer) or not 1 <= weeks <= MAX_WEEKS:
        raise UserError(f"The horizon must be a whole number of weeks from 1 to {MAX_WEEKS}, not {weeks!r}.")
    return int(weeks)


def check_utilisation(cycles_per_day: float, dataset: str = "") -> float:
    """`cycles_per_day` as a float; UserError unless it is a number above 0 and at most :data:`MAX_CYCLES_PER_DAY`."""
    where = f" of {dataset}" if dataset else ""
    try:
        value = float(cycles_per_day)
    except (TypeError, ValueError) as err:
        raise UserError(f"The utilisation{where} must be a number of cycles per day, not {cycles_per_day!r}.") from err
    if not math.isfinite(value) or not 0.0 < value <= MAX_CYCLES_PER_DAY:
        raise UserError(f"The utilisation{where} must lie above 0 and at most {MAX_CYCLES_PER_DAY:g} cycles per day, "
                        f"not {cycles_per_day!r}.")
    return value


def week_starts(start: date, weeks: int) -> list[date]:
    """The first day of each week of the plan: `start` itself, then the following Mondays."""
    monday = start - timedelta(days=start.weekday())
    return [start] + [monday + timedelta(days=7 * k) for k in range(1, weeks)]


def days_to_slots(start: date, weeks: int) -> np.ndarray:
    """(weeks + 1,): days from `start` to the end of week k for k = 0..weeks (the last: the week after the
    horizon, where an engine not planned within it is next considered)."""
    return (7 - start.weekday()) + 7.0 * np.arange(weeks + 1)


def days_to_week_starts(start: date, weeks: int) -> np.ndarray:
    """(weeks,): days from `start` to the first day of week k (0 for week 0)."""
    return np.r_[0.0, days_to_slots(start, weeks)[:weeks - 1]] if weeks > 1 else np.zeros(1)
