"""What is fitted on validation engines after the base models: blend weights, isotonic probability
calibration, split-conformal RUL intervals and the risk thresholds; each stored as JSON numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression

from core.errors import UserError
from core.metrics import best_fbeta_threshold

DEFAULT_BIN_EDGES = (15.0, 30.0, 45.0, 60.0, 80.0, 100.0, 115.0)
ENGINE_FOLDS = 5
"""Groups of validation engines held out in turn when the conformal quantile level is chosen."""
LEVEL_STEP = 0.005
MAX_LEVEL = 0.99
"""The conformal quantile level is raised from the nominal coverage in these steps, up to this level."""
QUANTILE_LEVELS = tuple(round(i / 100, 2) for i in range(101))
"""Probabilities at which each bin's residual quantiles are kept (:attr:`Conformal.quantiles`)."""


def fit_blend_weight(a: np.ndarray, b: np.ndarray, y: np.ndarray, loss: str) -> float:
    """Weight w in 0, 0.05, ..., 1 of `a` in ``w*a + (1-w)*b`` minimising squared error or log loss on `y`.

    The brief's 0.6 is tried first and kept unless another weight does strictly better.
    """
    best_w, best = 0.6, float("inf")
    for w in [0.6, *np.round(np.linspace(0.0, 1.0, 21), 2)]:
        mix = w * a + (1 - w) * b
        if loss == "logloss":
            q = np.clip(mix, 1e-6, 1 - 1e-6)
            value = -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))
        else:
            value = np.mean((mix - y) ** 2)
        if value < best - 1e-12:
            best_w, best = float(w), float(value)
    return best_w


@dataclass
class Calibrator:
    """Isotonic map from the blended probability to a calibrated one, stored as its knots."""

    x: list[float] = field(default_factory=lambda: [0.0, 1.0])
    y: list[float] = field(default_factory=lambda: [0.0, 1.0])

    @classmethod
    def fit(cls, p: np.ndarray, label: np.ndarray) -> Calibrator:
        """Fit an increasing step map on validation probabilities and labels."""
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, label)
        return cls(x=[float(v) for v in iso.X_thresholds_], y=[float(v) for v in iso.y_thresholds_])

    def apply(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (linear between knots, clipped at the ends)."""
        return np.interp(p, self.x, self.y)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"method": "isotonic", "x": self.x, "y": self.y}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        """Rebuild from :meth:`to_dict` output."""
        x, y = [float(v) for v in data["x"]], [float(v) for v in data["y"]]
        if len(x) != len(y) or not x or any(b < a for a, b in pairwise(x)):
            raise ValueError("calibration knots are not increasing pairs")
        return cls(x=x, y=y)


@dataclass
class Conformal:
    """Mondrian split-conformal RUL intervals: residual quantiles per bin of predicted RUL.

    Bins are narrower near failure, so intervals are tighter where errors are small. Interval
    for prediction r in bin b: ``[r + low[b], r + high[b]]`` clipped to ``[0, cap]``; it targets
    coverage `nominal` of the capped true RUL. The residual quantiles are taken at `level`, which is
    `nominal` or, when the validation rows' engines are known, the lowest level that reaches
    `nominal` on engines held out of the fit (see :meth:`fit`).
    """

    edges: list[float]
    low: list[float]
    high: list[float]
    nominal: float
    level: float
    cap: float
    counts: list[int] = field(default_factory=list)
    quantiles: list[list[float]] = field(default_factory=list)
    """Per bin, the residuals' quantiles at :data:`QUANTILE_LEVELS` (the whole distribution the interval's two
    bounds are taken from; empty in bundles from before it was kept). They do not enter :meth:`interval`."""

    @classmethod
    def fit(cls, pred: np.ndarray, truth: np.ndarray, nominal: float, cap: float,
            edges: tuple[float, ...] = DEFAULT_BIN_EDGES, min_count: int = 100,
            engines: np.ndarray | None = None, folds: int = ENGINE_FOLDS) -> Conformal:
        """Quantiles of ``truth - pred`` per bin, with the finite-sample correction; thin bins are merged.

        Readings of one engine are not exchangeable with each other: an engine whose wear runs ahead
        of its sensors misses by the same sign all its life, so quantiles taken over a few engines'
        readings cover new engines less often than `nominal`. Given each row's engine (`engines`), the
        quantile level is raised in steps of :data:`LEVEL_STEP` until intervals fitted on all but one
        of `folds` groups of engines cover `nominal` of the held-out engines' readings on average.
        """
        if len(pred) == 0:
            raise UserError("There are no validation readings to calibrate the RUL intervals on.")
        level = nominal
        if engines is not None:
            level = _engine_held_out_level(pred, truth, nominal, cap, edges, min_count, engines, folds)
        return cls._fit_at(pred, truth, nominal, level, cap, edges, min_count)

    @classmethod
    def _fit_at(cls, pred: np.ndarray, truth: np.ndarray, nominal: float, level: float, cap: float,
                edges: tuple[float, ...], min_count: int) -> Conformal:
        kept = list(edges)
        while kept:
            counts = np.bincount(np.digitize(pred, kept), minlength=len(kept) + 1)
            thin = int(np.argmin(counts))
            if counts[thin] >= min_count:
                break
            kept.pop(min(thin, len(kept) - 1))
        bins = np.digitize(pred, kept)
        alpha = 1.0 - level
        low, high, counts_out, quantiles = [], [], [], []
        for b in range(len(kept) + 1):
            r = (truth - pred)[bins == b]
            if len(r) == 0:
                r = truth - pred
            r, n = np.sort(r), len(r)
            k_lo = int(np.floor((n + 1) * alpha / 2))
            k_hi = int(np.ceil((n + 1) * (1 - alpha / 2)))
            low.append(float(r[min(max(k_lo, 1), n) - 1]))
            high.append(float(r[min(max(k_hi, 1), n) - 1]))
            counts_out.append(int(n))
            quantiles.append([float(v) for v in np.quantile(r, QUANTILE_LEVELS)])
        return cls(edges=[float(e) for e in kept], low=low, high=high, nominal=nominal, level=float(level), cap=cap,
                   counts=counts_out, quantiles=quantiles)

    def interval(self, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) bounds for predicted RULs."""
        b = np.digitize(pred, self.edges)
        lo = np.clip(pred + np.asarray(self.low)[b], 0.0, self.cap)
        hi = np.clip(pred + np.asarray(self.high)[b], 0.0, self.cap)
        return np.minimum(lo, pred), np.maximum(hi, pred)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"method": "mondrian-split-conformal", "edges": self.edges, "low": self.low, "high": self.high,
                "nominal": self.nominal, "level": self.level, "cap": self.cap, "counts": self.counts,
                "quantiles": self.quantiles}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conformal:
        """Rebuild from :meth:`to_dict` output (bundles from before ``level`` was stored took `nominal`)."""
        c = cls(edges=[float(v) for v in data["edges"]], low=[float(v) for v in data["low"]],
                high=[float(v) for v in data["high"]], nominal=float(data["nominal"]),
                level=float(data.get("level", data["nominal"])), cap=float(data["cap"]),
                counts=[int(v) for v in data.get("counts", [])],
                quantiles=[[float(v) for v in row] for row in data.get("quantiles", [])])
        if len(c.low) != len(c.edges) + 1 or len(c.high) != len(c.low):
            raise ValueError("conformal bins and quantiles differ in number")
        if c.quantiles and (len(c.quantiles) != len(c.low)
                            or any(len(row) != len(QUANTILE_LEVELS) for row in c.quantiles)):
            raise ValueError("the conformal residual quantiles do not match the bins and levels")
        return c


def _engine_held_out_level(pred: np.ndarray, truth: np.ndarray, nominal: float, cap: float,
                           edges: tuple[float, ...], min_count: int, engines: np.ndarray, folds: int) -> float:
    """The lowest quantile level (from `nominal` up to :data:`MAX_LEVEL`) whose intervals, fitted with one
    group of engines left out at a time, cover `nominal` of the left-out engines' readings on average."""
    ids = np.unique(engines, return_inverse=True)[1].ravel()
    n_engines = int(ids.max()) + 1 if len(ids) else 0
    folds = min(folds, n_engines)
    if folds < 2:
        return nominal
    order = np.random.default_rng(0).permutation(n_engines)
    fold = (order % folds)[ids]
    level = nominal
    while level < MAX_LEVEL:
        covered = []
        for k in range(folds):
            held = fold == k
            fitted = Conformal._fit_at(pred[~held], truth[~held], nominal, level, cap, edges, min_count)
            low, high = fitted.interval(pred[held])
            covered.append(np.mean((truth[held] >= low) & (truth[held] <= high)))
        if np.mean(covered) >= nominal:
            break
        level = round(level + LEVEL_STEP, 6)
    return min(level, MAX_LEVEL)


def fit_thresholds(p: np.ndarray, label: np.ndarray, medium_ratio: float = 0.5) -> dict[str, float]:
    """HIGH threshold maximising F2 of ``p >= t`` on validation rows; MEDIUM = `medium_ratio` * HIGH."""
    high, f2 = best_fbeta_threshold(label, p, beta=2.0)
    return {"high": high, "medium": high * medium_ratio, "validation_f2": f2}
