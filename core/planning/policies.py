"""The baselines a plan is compared with, as week assignments: a fixed RUL threshold, "Inspect HIGH", nothing.

Each baseline is a queue: an engine joins it in the week its rule names, and each week takes the engines waiting
in the rule's order of urgency up to its capacity; the others wait for the next week. The same rules decide one
week at a time in :mod:`core.planning.simulation` (a horizon of one week).
"""

from __future__ import annotations

import numpy as np

THRESHOLDS = tuple(range(0, 126, 5))
"""The fixed RUL thresholds (cycles) tried: remove an engine once its predicted RUL is at most this."""


def queue(wanted: np.ndarray, urgency: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Weeks (H = not within the horizon) of engines joining the queue in week ``wanted[e]`` (H: never), each
    week k taking at most ``capacity[k]`` of those waiting, lowest `urgency` first."""
    horizon = len(capacity)
    order = np.argsort(urgency, kind="stable")
    joins = wanted[order]
    weeks = np.full(len(wanted), horizon)
    for k in range(horizon):
        take = np.flatnonzero((joins <= k) & (weeks == horizon))[:max(int(capacity[k]), 0)]
        weeks[take] = k
    out = np.empty_like(weeks)
    out[order] = weeks
    return out


def threshold_weeks(rul: np.ndarray, elapsed: np.ndarray, theta: float, capacity: np.ndarray) -> np.ndarray:
    """Remove an engine once its predicted RUL, less the cycles flown by the start of the week (`elapsed`, engines x
    weeks), is at most `theta`; lowest predicted RUL first."""
    due = (rul[:, None] - elapsed) <= theta
    wanted = np.where(due.any(axis=1), np.argmax(due, axis=1), len(capacity))
    return queue(wanted, rul, capacity)


def high_risk_weeks(p_fail: np.ndarray, high: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """"Inspect HIGH": every engine at HIGH risk from week 0 on, most likely to fail first."""
    return queue(np.where(high, 0, len(capacity)), -p_fail, capacity)


def nothing_weeks(n: int, horizon: int) -> np.ndarray:
    """No engine within the horizon."""
    return np.full(n, horizon)
