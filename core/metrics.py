"""Accuracy metrics for RUL regression, failure classification and prediction intervals.

Every function takes array-likes and returns a float (NaN where a metric is undefined,
e.g. an AUC on a single class).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, roc_auc_score


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=float).ravel()
    b = np.asarray(y_pred, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"Metric inputs differ in length: {a.size} and {b.size}.")
    return a, b


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error."""
    a, b = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((b - a) ** 2))) if a.size else float("nan")


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error."""
    a, b = _pair(y_true, y_pred)
    return float(np.mean(np.abs(b - a))) if a.size else float("nan")


def phm08_score(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """PHM08 challenge score (lower is better): sum of exp(-d/13)-1 for early and exp(d/10)-1 for late predictions.

    ``d = predicted - true``; late predictions (d > 0) are penalised more than early ones.
    """
    a, b = _pair(y_true, y_pred)
    d = b - a
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def confusion(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[int, int, int, int]:
    """(true positives, false positives, false negatives, true negatives) of boolean labels."""
    a, b = _pair(y_true, y_pred)
    t, p = a.astype(bool), b.astype(bool)
    return int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum()), int((~t & ~p).sum())


def precision(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Share of predicted positives that are positive (0 when nothing is predicted positive)."""
    tp, fp, _, _ = confusion(y_true, y_pred)
    return tp / (tp + fp) if tp + fp else 0.0


def recall(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Share of positives that are predicted positive (NaN when there is no positive)."""
    tp, _, fn, _ = confusion(y_true, y_pred)
    return tp / (tp + fn) if tp + fn else float("nan")


def fbeta(y_true: ArrayLike, y_pred: ArrayLike, beta: float = 2.0) -> float:
    """F-beta score; beta = 2 weighs recall four times as much as precision (0 when there is no hit)."""
    tp, fp, fn, _ = confusion(y_true, y_pred)
    b2 = beta * beta
    denom = (1 + b2) * tp + b2 * fn + fp
    return (1 + b2) * tp / denom if denom else 0.0


def f2(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """F2 score of boolean predictions."""
    return fbeta(y_true, y_pred, 2.0)


def roc_auc(y_true: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve (NaN when only one class is present)."""
    a, b = _pair(y_true, score)
    if len(np.unique(a)) < 2:
        return float("nan")
    return float(roc_auc_score(a.astype(int), b))


def pr_auc(y_true: ArrayLike, score: ArrayLike) -> float:
    """Area under the precision-recall curve as average precision (NaN when only one class is present)."""
    a, b = _pair(y_true, score)
    if len(np.unique(a)) < 2:
        return float("nan")
    return float(average_precision_score(a.astype(int), b))


def interval_coverage(y_true: ArrayLike, low: ArrayLike, high: ArrayLike) -> float:
    """Share of true values inside the closed interval [low, high]."""
    a, lo = _pair(y_true, low)
    _, hi = _pair(y_true, high)
    return float(np.mean((a >= lo) & (a <= hi))) if a.size else float("nan")


def interval_width(low: ArrayLike, high: ArrayLike) -> float:
    """Mean width of the intervals."""
    lo, hi = _pair(low, high)
    return float(np.mean(hi - lo)) if lo.size else float("nan")


def best_fbeta_threshold(y_true: ArrayLike, score: ArrayLike, beta: float = 2.0) -> tuple[float, float]:
    """The threshold t maximising F-beta of ``score >= t`` and that F-beta (ties: the highest such t).

    Candidates are the distinct scores. Returns (1.0, 0.0) when there is no positive.
    """
    a, s = _pair(y_true, score)
    pos = a.astype(bool)
    if not pos.any():
        return 1.0, 0.0
    order = np.argsort(-s, kind="stable")
    s_sorted, pos_sorted = s[order], pos[order]
    tp = np.cumsum(pos_sorted)
    fp = np.cumsum(~pos_sorted)
    last_of_value = np.append(s_sorted[1:] != s_sorted[:-1], True)
    tp, fp, thr = tp[last_of_value], fp[last_of_value], s_sorted[last_of_value]
    fn = pos.sum() - tp
    b2 = beta * beta
    score_f = (1 + b2) * tp / ((1 + b2) * tp + b2 * fn + fp)
    best = int(np.argmax(score_f))
    return float(thr[best]), float(score_f[best])
