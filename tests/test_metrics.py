"""Accuracy metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core import metrics as m


def test_regression_errors():
    assert m.rmse([0, 0, 0, 0], [1, -1, 1, -1]) == 1.0
    assert m.mae([10, 20], [12, 16]) == 3.0
    with pytest.raises(ValueError):
        m.rmse([1, 2], [1])


def test_phm08_penalises_late_predictions_more():
    early = m.phm08_score([50], [37])  # 13 cycles early
    late = m.phm08_score([50], [60])  # 10 cycles late
    assert early == pytest.approx(math.e - 1)
    assert late == pytest.approx(math.e - 1)
    assert m.phm08_score([50], [60]) > m.phm08_score([50], [40])
    assert m.phm08_score([5, 7], [5, 7]) == 0.0


def test_classification_scores():
    y = [1, 1, 1, 1, 0, 0, 0, 0]
    p = [1, 1, 1, 0, 1, 0, 0, 0]
    assert m.precision(y, p) == 0.75
    assert m.recall(y, p) == 0.75
    assert m.f2(y, p) == pytest.approx(0.75)
    assert m.f2([1, 1, 0], [1, 0, 1]) == pytest.approx(5 * 0.5 * 0.5 / (4 * 0.5 + 0.5))
    assert m.precision([1, 0], [0, 0]) == 0.0
    assert math.isnan(m.recall([0, 0], [1, 0]))


def test_ranking_scores():
    assert m.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert m.pr_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert m.roc_auc([0, 1, 0, 1], [0.9, 0.1, 0.8, 0.2]) == 0.0
    assert math.isnan(m.roc_auc([1, 1], [0.2, 0.3]))


def test_interval_coverage_and_width():
    y = np.array([10, 20, 30, 40])
    assert m.interval_coverage(y, y - 1, y + 1) == 1.0
    assert m.interval_coverage(y, [11, 0, 0, 0], [12, 25, 30, 39]) == 0.5
    assert m.interval_width([0, 10], [4, 20]) == 7.0


def test_best_f2_threshold_prefers_recall():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.3, 0.35, 0.2, 0.1, 0.1, 0.05])
    threshold, score = m.best_fbeta_threshold(y, s)
    assert threshold == 0.3
    assert score == pytest.approx(m.f2(y, s >= 0.3))
    assert m.best_fbeta_threshold([0, 0], [0.1, 0.2]) == (1.0, 0.0)
