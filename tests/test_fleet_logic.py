"""Fleet table logic: filters, KPIs and the cost of acting on risk levels vs doing nothing."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from core.errors import UserError
from core.serving import fleet


def _table(true_rul: list[float]) -> pd.DataFrame:
    """Four engines: a HIGH that fails, a HIGH that does not, a LOW that fails, a MEDIUM that does not."""
    return pd.DataFrame({
        "dataset": ["test_FD001", "test_FD001", "test_FD002", "test_FD002"],
        "unit": [1, 2, 1, 2],
        "cycle": [100, 120, 90, 150],
        "rul": [12.0, 35.0, 80.0, 50.0],
        "rul_low": [5.0, 20.0, 60.0, 30.0],
        "rul_high": [25.0, 50.0, 110.0, 70.0],
        "p_fail_30": [0.9, 0.6, 0.1, 0.3],
        "risk": ["HIGH", "HIGH", "LOW", "MEDIUM"],
        "true_rul": true_rul,
    })


def test_filters_by_dataset_risk_and_rul_range() -> None:
    table = _table([10.0, 60.0, 20.0, 90.0])
    assert fleet.filter_fleet(table, datasets=["test_FD002"])["unit"].tolist() == [1, 2]
    assert fleet.filter_fleet(table, risks=["HIGH"])["rul"].tolist() == [12.0, 35.0]
    assert fleet.filter_fleet(table, rul_range=(30.0, 50.0))["rul"].tolist() == [35.0, 50.0]
    both = fleet.filter_fleet(table, datasets=["test_FD001"], risks=["HIGH", "LOW"], rul_range=(0.0, 20.0))
    assert both[["dataset", "unit"]].values.tolist() == [["test_FD001", 1]]
    assert len(fleet.filter_fleet(table)) == 4
    with pytest.raises(UserError, match="RUL range"):
        fleet.filter_fleet(table, rul_range=(50.0, 10.0))


def test_kpis_count_engines_per_risk_level() -> None:
    table = _table([10.0, float("nan"), 20.0, float("nan")])
    assert fleet.kpis(table) == {"engines": 4, "HIGH": 2, "MEDIUM": 1, "LOW": 1, "with_truth": 2}
    assert fleet.kpis(table.iloc[:0]) == {"engines": 0, "HIGH": 0, "MEDIUM": 0, "LOW": 0, "with_truth": 0}


def test_costs_count_misses_and_needless_inspections_from_true_rul() -> None:
    # Engines 1 and 3 fail within 30 cycles (true RUL 10 and 20); 2 and 4 do not.
    costs = fleet.policy_costs(_table([10.0, 60.0, 20.0, 90.0]), fleet.Costs(miss=50_000, inspection=2_000))
    by = costs.set_index("policy")
    assert by.at["Inspect HIGH", "inspections"] == 2
    assert by.at["Inspect HIGH", "missed_failures"] == 1  # the LOW engine that fails
    assert by.at["Inspect HIGH", "needless_inspections"] == 1  # the HIGH engine that does not
    assert by.at["Inspect HIGH", "cost"] == 52_000
    assert by.at["Inspect HIGH and MEDIUM", "cost"] == 50_000 + 2 * 2_000
    assert by.at["Do nothing", "cost"] == 2 * 50_000
    assert by.at["Do nothing", "inspections"] == 0
    assert by.at["Inspect HIGH", "saving"] == 100_000 - 52_000
    assert by.at["Do nothing", "saving"] == 0


def test_costs_follow_the_edited_prices() -> None:
    table = _table([10.0, 60.0, 20.0, 90.0])
    cheap_misses = fleet.policy_costs(table, fleet.Costs(miss=1_000, inspection=2_000)).set_index("policy")
    assert cheap_misses.at["Inspect HIGH", "cost"] == 1_000 + 2_000
    assert cheap_misses.at["Do nothing", "cost"] == 2 * 1_000


def test_costs_without_truth_are_expected_values_from_the_probability() -> None:
    nan = float("nan")
    costs = fleet.policy_costs(_table([nan, nan, nan, nan]), fleet.Costs()).set_index("policy")
    # Inspect HIGH: misses expected from the unflagged engines (p 0.1 and 0.3), needless from flagged (1-0.9, 1-0.6).
    assert math.isclose(costs.at["Inspect HIGH", "missed_failures"], 0.4)
    assert math.isclose(costs.at["Inspect HIGH", "needless_inspections"], 0.5)
    assert math.isclose(costs.at["Inspect HIGH", "cost"], 0.4 * 50_000 + 0.5 * 2_000)
    assert math.isclose(costs.at["Do nothing", "cost"], (0.9 + 0.6 + 0.1 + 0.3) * 50_000)


def test_mixed_truth_counts_known_engines_and_expects_the_rest() -> None:
    table = _table([10.0, float("nan"), 20.0, float("nan")])
    fails = fleet.failure_probability(table)
    assert fails.tolist() == [1.0, 0.6, 1.0, 0.3]
    assert "true RUL for 2 engines" in fleet.cost_basis(table)
    assert fleet.cost_basis(_table([10.0, 60.0, 20.0, 90.0])).startswith("Counted from the true RUL of all 4")
    assert "no true RUL" in fleet.cost_basis(_table([float("nan")] * 4))


@pytest.mark.parametrize("miss, inspection", [(-1.0, 2_000.0), (50_000.0, float("nan"))])
def test_costs_reject_negative_or_missing_prices(miss: float, inspection: float) -> None:
    with pytest.raises(UserError, match="non-negative"):
        fleet.Costs(miss=miss, inspection=inspection)
