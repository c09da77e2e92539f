"""Drift against the serving model's training data compares engines at comparable ages."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO

import pandas as pd

from core.data.cmapss import COLUMNS
from core.monitoring import drift, verdicts


def test_life_stage_matching_cuts_training_engines_at_the_current_engines_ages(
    cmapss_text: Callable[[str], str],
) -> None:
    def frame(name: str) -> pd.DataFrame:
        return pd.read_csv(StringIO(cmapss_text(name)), sep=r"\s+", header=None, names=COLUMNS)

    train, test = frame("train_FD001"), frame("test_FD001")
    matched = drift.match_life_stage(train, test)
    ages = set(test.groupby("unit")["cycle"].max())
    last = matched.groupby("unit")["cycle"].max()
    lives = train.groupby("unit")["cycle"].max()
    assert all(age in ages or age == lives[unit] for unit, age in last.items()), "cut at a current age or its end"
    assert set(matched["unit"]) == set(train["unit"]) and len(matched) < len(train)
    assert verdicts.assess(train, test).verdict.retrain_recommended, "run-to-failure vs in-service reads as drift"
    assert not verdicts.assess(matched, test).verdict.retrain_recommended, "at comparable ages it does not"
    other = frame("train_FD002")
    assert verdicts.assess(drift.match_life_stage(train, other), other).drift_share > 0.3, "real drift stays"
