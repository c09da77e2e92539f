"""Fleet table words, CSV and the cost of acting on risk levels (the table itself: tests/test_scoring_job.py)."""

from __future__ import annotations

import io
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
        "engine": ["ESN-7001", "N123AB-2", "ESN-7002", "1"],
        "cycle": [100, 120, 90, 150],
        "rul": [12.0, 35.0, 80.0, 50.0],
        "rul_low": [5.0, 20.0, 60.0, 30.0],
        "rul_high": [25.0, 50.0, 110.0, 70.0],
        "p_fail_30": [0.9, 0.6, 0.1, 0.3],
        "risk": ["HIGH", "HIGH", "LOW", "MEDIUM"],
        "true_rul": true_rul,
    })


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


def test_risk_rule_and_cap_note_state_the_model_numbers() -> None:
    assert fleet.risk_rule({"high": 0.42, "medium": 0.21}) == (
        "HIGH: P(fail within 30 cycles) ≥ 42%; MEDIUM: ≥ 21%; LOW: below.")
    assert "capped at 125 cycles" in fleet.rul_cap_note()


def test_csv_is_rounded_and_carries_model_version_and_scoring_time() -> None:
    table = _table([10.4, float("nan"), 20.0, 90.0]).assign(rul=[12.345, 35.0, 80.06, 50.0],
                                                            p_fail_30=[0.91234, 0.6, 0.1, 0.3])
    frame = pd.read_csv(io.BytesIO(fleet.csv_table(table, 7, "2026-11-23T04:00:00Z")))
    assert "unit" not in frame.columns and frame.columns[-2:].tolist() == ["model_version", "scored_at"]
    assert frame["rul"].tolist() == [12.3, 35.0, 80.1, 50.0]
    assert frame["p_fail_30"].iloc[0] == 0.912 and frame["true_rul"].iloc[0] == 10.0
    assert (frame["model_version"] == 7).all() and (frame["scored_at"] == "2026-11-23T04:00:00Z").all()
    assert frame["engine"].astype(str).tolist() == ["ESN-7001", "N123AB-2", "ESN-7002", "1"]


def test_a_header_click_sorts_by_its_column_and_a_second_click_reverses_it() -> None:
    from core.data.score_queries import TRIAGE, FleetSort

    by_rul = fleet.header_sort(TRIAGE, "rul")
    assert by_rul == FleetSort("rul", descending=False), "predicted RUL starts lowest first"
    assert fleet.header_sort(by_rul, "rul") == FleetSort("rul", descending=True)
    assert fleet.header_sort(by_rul, "p_fail_30") == FleetSort("p_fail_30", descending=True)
    assert fleet.header_sort(by_rul, "link") == by_rul and fleet.header_sort(by_rul, "ood_reason") == by_rul


def test_the_caption_says_the_order_in_force_over_the_whole_fleet() -> None:
    from core.data.score_queries import TRIAGE, FleetSort

    one = fleet.order_caption(TRIAGE, 1, 1)
    assert one.startswith("Page 1 of 1. Every engine the filters keep is sorted by risk (triage order), riskiest "
                          "first, then split into pages.")
    assert "⋮" not in one, "a single page: the grid's own sort orders the whole fleet too"
    assert "only the rows of this page" in fleet.order_caption(TRIAGE, 2, 3)
    assert "predicted RUL, lowest first, ties riskiest first" in fleet.order_caption(FleetSort("rul", False), 1, 1)
    assert "engine id, A to Z" in fleet.order_caption(FleetSort("engine", False), 1, 1)
    assert "without a true RUL last" in fleet.order_caption(FleetSort("true_rul", True), 1, 1)


def test_the_csv_neutralises_formula_cells() -> None:
    table = _table([10.0, 60.0, 20.0, 90.0]).assign(engine=["=1+2", '=HYPERLINK("http://x")', "-5", "ESN-7002"],
                                                    rul_low=[-4.5, 20.0, 60.0, 30.0])
    frame = pd.read_csv(io.BytesIO(fleet.csv_table(table, 7, "2026-11-23T04:00:00Z")))
    assert frame["engine"].tolist() == ["'=1+2", "'=HYPERLINK(\"http://x\")", "'-5", "ESN-7002"]
    assert frame["rul_low"].tolist() == [-4.5, 20.0, 60.0, 30.0]
