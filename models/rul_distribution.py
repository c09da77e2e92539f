"""Each engine's remaining useful life as a distribution, from the conformal residuals of validation engines.

The served interval of a prediction r in conformal bin b is ``[r + low[b], r + high[b]]``: two quantiles of the
residuals ``true RUL - r`` of validation engines' readings in that bin, taken at the conformal ``level`` (raised
above the nominal coverage so that the interval covers *unseen* engines at the nominal rate). The same residuals
give the whole distribution:

- bundles trained since the residuals' quantiles are kept (``Conformal.quantiles``) use them between the two
  served bounds, widened about their median, separately below and above it, so that the distribution's quantiles
  at ``(1 - nominal) / 2`` and ``(1 + nominal) / 2`` are exactly the served bounds: the residual spread of seen
  engines' readings is scaled to that of unseen engines, as the interval's level does. Beyond the bounds the tails
  are normal, each side's scale set by its bound (the bound is that side's normal quantile at the nominal
  coverage): the residuals of a few dozen validation engines, each contributing a run of correlated readings,
  cannot say how likely an error beyond the 5 % and 95 % quantiles is, and their extremes are one or two
  engines' errors (issue 27: the plan, which acts on a risk of failing within a week of about 0.3 %, removed
  engines early on such tails);
- older bundles, which keep only the two bounds, get a normal shape with those two bounds as the same quantiles.

``T = clip(r + residual, 0, cap)`` is the RUL in cycles, capped as the models' target is: ``P(T <= c)`` is the
probability of failing within ``c`` cycles for ``c`` below the cap; the cap itself means "this many cycles or
more", so for ``c`` at or beyond the cap the model only knows ``P(T < cap)``, which :meth:`RulDistribution.cdf`
returns there (planning beyond the cap takes the engine as lasting at least that long, and is redone as readings
arrive).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from models.calibration import QUANTILE_LEVELS, Conformal

LEVELS = np.asarray(QUANTILE_LEVELS, dtype=float)
_NORMAL_TAIL = 0.001
"""The normal shape of older bundles is drawn between these tail probabilities (its quantiles at 0 and 1 are
infinite)."""
_TIE_STEP = 1e-9
"""Cycles added per level to equal residual quantiles, so the CDF is interpolated on increasing points (a tie
becomes a step one nanocycle wide)."""


@dataclass(frozen=True)
class RulDistribution:
    """The RUL distribution of any predicted RUL: residual quantiles per conformal bin (see the module doc)."""

    edges: np.ndarray
    """Conformal bin edges of the predicted RUL."""
    residuals: np.ndarray
    """(bins, len(LEVELS)): each bin's residual quantiles at :data:`LEVELS`, non-decreasing."""
    cap: float
    source: str
    """``validation residuals`` or ``normal shape fitted to the interval`` (a bundle without residual quantiles)."""

    @classmethod
    def from_conformal(cls, conformal: Conformal) -> RulDistribution:
        """The distribution behind a fitted :class:`~models.calibration.Conformal` (see the module doc)."""
        low, high = np.asarray(conformal.low, dtype=float), np.asarray(conformal.high, dtype=float)
        u_low, u_high = (1.0 - conformal.nominal) / 2.0, (1.0 + conformal.nominal) / 2.0
        if conformal.quantiles:
            raw = np.asarray(conformal.quantiles, dtype=float)
            residuals = np.vstack([_widened(row, lo, hi, u_low, u_high) for row, lo, hi in zip(raw, low, high)])
            source = "validation residuals"
        else:
            z = norm.ppf(np.clip(LEVELS, _NORMAL_TAIL, 1.0 - _NORMAL_TAIL)) / norm.ppf(u_high)
            residuals = (low + high)[:, None] / 2.0 + (high - low)[:, None] / 2.0 * z[None, :]
            source = "normal shape fitted to the interval"
        return cls(edges=np.asarray(conformal.edges, dtype=float), residuals=np.maximum.accumulate(residuals, axis=1),
                   cap=float(conformal.cap), source=source)

    def _bins(self, rul: np.ndarray) -> np.ndarray:
        return np.digitize(rul, self.edges)

    def cdf(self, rul: np.ndarray, cycles: np.ndarray) -> np.ndarray:
        """(engines, len(cycles)): P(T <= c) for each predicted RUL `rul` and each number of cycles `cycles`.

        `cycles` is one row shared by every engine, or one row per engine (same shape as the result). Cycles at or
        beyond the cap give P(T < cap) (the model sees no further); negative cycles give 0.
        """
        rul = np.asarray(rul, dtype=float)
        cycles = np.asarray(cycles, dtype=float)
        grid = np.broadcast_to(cycles, (len(rul), cycles.shape[-1]))
        below_cap = np.minimum(grid, np.nextafter(self.cap, 0.0))
        out = np.zeros(grid.shape)
        bins = self._bins(rul)
        for b in np.unique(bins):
            rows = bins == b
            shift = below_cap[rows] - rul[rows, None]
            out[rows] = np.interp(shift, self.residuals[b] + _TIE_STEP * np.arange(len(LEVELS)), LEVELS,
                                  left=0.0, right=1.0)
        return np.where(grid < 0, 0.0, out)

    def quantile(self, rul: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        """(engines, len(probabilities)): the RUL (cycles, within 0 and the cap) at each probability."""
        rul = np.asarray(rul, dtype=float)
        u = np.asarray(probabilities, dtype=float)
        out = np.empty((len(rul), len(u)))
        bins = self._bins(rul)
        for b in np.unique(bins):
            rows = bins == b
            out[rows] = rul[rows, None] + np.interp(u, LEVELS, self.residuals[b])[None, :]
        return np.clip(out, 0.0, self.cap)


def _widened(row: np.ndarray, low: float, high: float, u_low: float, u_high: float) -> np.ndarray:
    """Residual quantiles `row` scaled about their median, below and above it apart, so that the quantiles at
    `u_low` and `u_high` become `low` and `high` (a side without spread is shifted instead)."""
    median = float(np.interp(0.5, LEVELS, row))
    at_low, at_high = float(np.interp(u_low, LEVELS, row)), float(np.interp(u_high, LEVELS, row))
    below, above = LEVELS < 0.5, LEVELS >= 0.5
    out = row.astype(float).copy()
    if median - at_low > 1e-9:
        out[below] = median + (row[below] - median) * (median - low) / (median - at_low)
    else:
        out[below] = row[below] + (low - at_low)
    if at_high - median > 1e-9:
        out[above] = median + (row[above] - median) * (high - median) / (at_high - median)
    else:
        out[above] = row[above] + (high - at_high)
    return _normal_tails(out, median, low, high, u_low, u_high)


def _normal_tails(row: np.ndarray, median: float, low: float, high: float, u_low: float, u_high: float) -> np.ndarray:
    """`row` with its quantiles below `u_low` and above `u_high` replaced by normal tails that meet the bounds `low`
    and `high` there: each side a normal about `median` whose quantile at that level is the bound."""
    out = row.copy()
    z = norm.ppf(np.clip(LEVELS, _NORMAL_TAIL, 1.0 - _NORMAL_TAIL))
    below, above = LEVELS < u_low, LEVELS > u_high
    out[below] = median + (median - low) * z[below] / norm.ppf(1.0 - u_low)
    out[above] = median + (high - median) * z[above] / norm.ppf(u_high)
    out[below] = np.minimum(out[below], low)
    out[above] = np.maximum(out[above], high)
    return out
