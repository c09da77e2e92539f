"""What a reference looks like, per sensor, so a much larger current side can be judged inside DuckDB: the PSI bin
edges (the reference's quantiles, as :meth:`core.monitoring.statistics.SortedPair.psi_shares` cuts them), the range
the reference spans and whether the sensor varies at all. The current side is then binned with SQL
(:func:`bin_sql`), never pulled into pandas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data.cmapss import SENSORS
from core.monitoring.regimes import sorted_near_constant
from core.monitoring.statistics import DEFAULT_BINS, EPSILON


@dataclass(frozen=True)
class SensorProfile:
    """One sensor of the reference: PSI bin edges, its minimum and maximum, and whether it is informative."""

    name: str
    edges: tuple[float, ...]
    low: float
    high: float
    informative: bool
    shares: tuple[float, ...]


@dataclass(frozen=True)
class Profile:
    """Every sensor of a reference (see :class:`SensorProfile`)."""

    sensors: tuple[SensorProfile, ...]

    @classmethod
    def of(cls, reference: pd.DataFrame, names: list[str] | None = None, bins: int = DEFAULT_BINS) -> Profile:
        """The profile of the sensor columns ``names`` (default all 21) of ``reference``."""
        found = []
        for name in names or list(SENSORS):
            values = np.sort(reference[name].to_numpy(dtype=float))
            low, high = float(values[0]), float(values[-1])
            if low == high:
                edges = np.array([np.nextafter(low, -np.inf), low])
            else:
                edges = np.unique(np.quantile(values, np.arange(1, bins) / bins))
            at_or_below = np.searchsorted(values, edges, side="right")
            shares = np.diff(np.concatenate(([0], at_or_below, [values.size]))) / values.size
            found.append(SensorProfile(name, tuple(float(e) for e in edges), low, high,
                                       not sorted_near_constant(values), tuple(float(s) for s in shares)))
        return cls(tuple(found))

    def sensor(self, name: str) -> SensorProfile:
        """The profile of sensor ``name``."""
        return next(s for s in self.sensors if s.name == name)


def bin_sql(sensor: SensorProfile) -> tuple[str, list[float]]:
    """A SQL expression giving each row's PSI bin of ``sensor`` (0 .. len(edges)), and its parameters: the number of
    edges the value exceeds, i.e. bins ``(edge[i-1], edge[i]]`` as the reference was cut."""
    terms = " + ".join(f"CAST({sensor.name} > ? AS INTEGER)" for _ in sensor.edges)
    return f"({terms})", list(sensor.edges)


def psi_from_counts(sensor: SensorProfile, counts: dict[int, int]) -> float:
    """PSI of a current side given as counts per bin (``{bin: rows}``) against the reference's shares, shares floored
    at :data:`core.monitoring.statistics.EPSILON` like :meth:`SortedPair.psi`."""
    current = np.array([counts.get(i, 0) for i in range(len(sensor.shares))], dtype=float)
    total = current.sum()
    c = np.maximum(current / total if total else current, EPSILON)
    r = np.maximum(np.asarray(sensor.shares), EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))
