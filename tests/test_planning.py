"""Maintenance planning: the RUL distribution, the planner's capacity and optimality, baselines, the simulation,
utilisation and accepted plans in the store, the downloads, and ``python -m core plan --json``."""

from __future__ import annotations

import io
import json
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp

from core.cli import main as cli_main
from core.errors import UserError
from core.planning import accepted, exports, optimise, planner, policies, simulation, utilisation, weeks
from models.calibration import Conformal
from models.rul_distribution import RulDistribution
from tests.conftest import trains

CAP = 125.0


def _conformal(seed: int = 0, quantiles: bool = True) -> Conformal:
    """Intervals fitted on synthetic validation rows whose true RUL runs past the cap (as real engines do)."""
    rng = np.random.default_rng(seed)
    true = rng.uniform(0, 300, 6000)
    pred = np.clip(true + rng.normal(0, 12, len(true)), 0, CAP)
    fitted = Conformal.fit(pred, np.minimum(true, CAP), 0.9, CAP, engines=rng.integers(0, 60, len(true)))
    return fitted if quantiles else Conformal.from_dict({**fitted.to_dict(), "quantiles": []})


def _fleet(rul: np.ndarray, dataset: str = "fleet") -> pd.DataFrame:
    return pd.DataFrame({"dataset": dataset, "engine": [f"E{i}" for i in range(len(rul))], "unit": np.arange(len(rul)),
                         "cycle": 100, "rul": rul, "p_fail_30": np.clip(1 - rul / 60, 0, 1),
                         "risk": np.where(rul < 20, "HIGH", "LOW")})


MONDAY = date(2025, 6, 2)


# ------------------------------------------------------------------ the distribution
@pytest.mark.parametrize("quantiles", [True, False])
def test_distribution_quantiles_at_the_nominal_coverage_are_the_served_interval(quantiles: bool) -> None:
    conformal = _conformal(quantiles=quantiles)
    distribution = RulDistribution.from_conformal(conformal)
    assert distribution.source == ("validation residuals" if quantiles else "normal shape fitted to the interval")
    rul = np.linspace(0, CAP, 60)
    low, high = conformal.interval(rul)
    bounds = distribution.quantile(rul, np.array([0.05, 0.95]))
    inside = (low < rul) & (high > rul)  # the served interval also always holds the point prediction itself
    np.testing.assert_allclose(bounds[inside, 0], low[inside], atol=1e-6)
    np.testing.assert_allclose(bounds[inside, 1], high[inside], atol=1e-6)
    cdf = distribution.cdf(rul, np.vstack([low, high]).T)
    np.testing.assert_allclose(cdf[inside & (high < CAP), 1], 0.95, atol=1e-6)
    np.testing.assert_allclose(cdf[inside & (low > 0), 0], 0.05, atol=1e-6)


def test_distribution_is_a_cdf_that_stops_at_the_cap() -> None:
    distribution = RulDistribution.from_conformal(_conformal())
    rul = np.array([3.0, 40.0, 90.0, CAP])
    cycles = np.linspace(-10, 400, 300)
    cdf = distribution.cdf(rul, cycles)
    assert (np.diff(cdf, axis=1) >= -1e-12).all() and (cdf >= 0).all() and (cdf <= 1).all()
    assert (cdf[:, 0] == 0).all()
    beyond = cycles >= CAP
    just_below = distribution.cdf(rul, np.array([np.nextafter(CAP, 0.0)]))
    np.testing.assert_allclose(cdf[:, beyond], np.repeat(just_below, beyond.sum(), axis=1))
    assert cdf[0, cycles.searchsorted(30)] > 0.9 > cdf[2, cycles.searchsorted(30)]  # 3 cycles left fails first
    assert cdf[3, -1] < 0.5, "an engine predicted at the cap is mostly believed to last past it"


def test_conformal_keeps_its_residual_quantiles_through_json_and_reads_older_bundles() -> None:
    conformal = _conformal()
    again = Conformal.from_dict(json.loads(json.dumps(conformal.to_dict())))
    assert again.quantiles == conformal.quantiles and len(again.quantiles) == len(conformal.low)
    older = {k: v for k, v in conformal.to_dict().items() if k != "quantiles"}
    assert Conformal.from_dict(older).quantiles == []
    with pytest.raises(ValueError, match="quantiles"):
        Conformal.from_dict({**conformal.to_dict(), "quantiles": [[0.0, 1.0]]})


# ------------------------------------------------------------------ the solver
def _milp_optimum(costs: np.ndarray, capacity: np.ndarray) -> float:
    """The same problem solved as a plain MILP over every (engine, option) binary, with no reductions."""
    n, options = costs.shape
    horizon = options - 1
    rows = np.repeat(np.arange(n), options)
    one_each = np.zeros((n, n * options))
    one_each[rows, np.arange(n * options)] = 1
    per_week = np.zeros((horizon, n * options))
    for k in range(horizon):
        per_week[k, np.arange(n) * options + k] = 1
    result = milp(costs.ravel(), integrality=np.ones(n * options), bounds=Bounds(0, 1),
                  constraints=[LinearConstraint(one_each, 1, 1), LinearConstraint(per_week, -np.inf, capacity)])
    assert result.status == 0
    return float(result.fun)


def test_the_plan_never_exceeds_capacity_and_is_optimal_over_random_fleets() -> None:
    rng = np.random.default_rng(20261204)
    distribution = RulDistribution.from_conformal(_conformal())
    for trial in range(40):
        n = int(rng.integers(0, 40))
        horizon = int(rng.integers(1, 7))
        capacity = rng.integers(0, 6, horizon).astype(float)
        rul = rng.choice([rng.uniform(0, CAP), CAP], n) if trial % 3 == 0 else rng.uniform(0, CAP, n)
        per_day = rng.choice([0.5, 2.0, 6.0], n)
        costs = planner.PlanCosts(failure=float(rng.uniform(5_000, 80_000)), removal=float(rng.uniform(500, 4_000)),
                                  life_per_cycle=float(rng.uniform(0, 30)))
        table = planner.cost_table(distribution, rul, per_day, MONDAY, horizon, costs)
        solution = optimise.assign(table.costs, capacity)
        counts = np.bincount(solution.weeks, minlength=horizon + 1)[:horizon]
        assert (counts <= capacity).all(), (trial, counts, capacity)
        total = table.costs[np.arange(n), solution.weeks].sum()
        if n:
            assert total == pytest.approx(_milp_optimum(table.costs, capacity), rel=1e-9, abs=1e-6), trial


def test_make_plan_keeps_every_week_within_its_slots_per_week() -> None:
    rng = np.random.default_rng(7)
    distribution = RulDistribution.from_conformal(_conformal())
    for _ in range(15):
        horizon = int(rng.integers(1, 10))
        slots = tuple(int(s) for s in rng.integers(0, 8, horizon))
        fleet = _fleet(rng.uniform(0, CAP, int(rng.integers(1, 120))))
        plan = planner.make_plan(fleet, distribution, planner.PlanRequest(weeks=horizon, slots=slots, start=MONDAY))
        assert (plan.weeks["planned"].to_numpy() <= np.asarray(slots)).all()
        counted = plan.engines["week"].dropna().astype(int).value_counts()
        assert all(counted.get(k, 0) <= slots[k] for k in range(horizon))
        assert set(plan.engines["status"]) <= set(planner.STATUSES)


def _alone(distribution: RulDistribution, rul: float, per_day: float, horizon: int, costs: planner.PlanCosts) -> int:
    """One engine's cheapest option, from its CDF integrated on a fine grid (not the planner's cost table); an engine
    predicted at the cap is planned as not failing within the horizon."""
    ends = per_day * weeks.days_to_slots(MONDAY, horizon)
    fine = np.linspace(0, ends[-1], 20_001)
    seen = float(rul < CAP)
    survive = 1 - distribution.cdf(np.array([rul]), fine)[0] * seen
    fail = distribution.cdf(np.array([rul]), ends)[0] * seen
    options = []
    for k, end in enumerate(ends):
        life = np.trapezoid(survive[fine >= end], fine[fine >= end]) if k < horizon else 0.0
        options.append(fail[k] * costs.failure + (1 - fail[k]) * costs.removal + costs.life_per_cycle * life)
    return int(np.argmin(options))


def test_with_ample_capacity_each_engine_gets_the_week_it_would_get_alone() -> None:
    distribution = RulDistribution.from_conformal(_conformal())
    rng = np.random.default_rng(3)
    rul = np.r_[rng.uniform(0, CAP, 70), np.full(10, CAP)]
    costs = planner.PlanCosts()
    plan = planner.make_plan(_fleet(rul), distribution,
                             planner.PlanRequest(weeks=10, slots=(1_000,), costs=costs, start=MONDAY))
    assert plan.meta["method"] == "own optimum"
    got = plan.engines.set_index("engine")["week"].fillna(10).astype(int)
    expected = {f"E{i}": _alone(distribution, r, weeks.DEFAULT_CYCLES_PER_DAY, 10, costs) for i, r in enumerate(rul)}
    assert 0 < (got < 10).sum() < len(rul), "some engines are planned, some are not"
    assert got.to_dict() == expected


def test_scarce_slots_go_where_they_save_most_and_every_engine_has_a_reason() -> None:
    distribution = RulDistribution.from_conformal(_conformal())
    fleet = _fleet(np.array([4.0, 8.0, 12.0, 60.0, 120.0, CAP]))
    plan = planner.make_plan(fleet, distribution, planner.PlanRequest(weeks=4, slots=(1,), start=MONDAY))
    rows = plan.engines.set_index("engine")
    assert plan.meta["method"].startswith(("LP", "MILP"))
    assert rows.loc["E2", "week"] == 0, "week 0's slot saves most on the engine likeliest to last until its end"
    assert "lack of slots" in rows.loc["E0", "reason"] and "have it seen at once" in rows.loc["E0", "reason"]
    assert "Deferred from week 0" in rows.loc["E1", "reason"]
    assert "too low to pay" in rows.loc["E4", "reason"] and "RUL cap" in rows.loc["E5", "reason"]
    assert rows.loc["E5", "p_fail_before"] == 0, "an engine at the cap is planned as not failing within the horizon"
    by_policy = plan.policies.set_index("policy")["expected_cost"]
    assert by_policy["Plan"] <= by_policy.min() + 1e-6, "no baseline beats the plan in expectation"


def test_scheduled_and_excluded_engines_keep_their_place() -> None:
    distribution = RulDistribution.from_conformal(_conformal())
    fleet = _fleet(np.array([4.0, 8.0, 12.0, 20.0]))
    request = planner.PlanRequest(weeks=3, slots=(1,), start=MONDAY, scheduled=(("fleet", "E3", 0),),
                                  excluded=(("fleet", "E0"),))
    rows = planner.make_plan(fleet, distribution, request).engines.set_index("engine")
    assert rows.loc["E3", "week"] == 0 and rows.loc["E3", "status"] == "scheduled before"
    assert rows.loc["E0", "status"] == "excluded" and pd.isna(rows.loc["E0", "week"])
    others = rows.loc[["E1", "E2"], "week"].dropna()
    assert len(others) and (others != 0).all(), "week 0's one slot is taken by the engine scheduled before"
    assert others.is_unique
    with pytest.raises(UserError, match="week 5"):
        planner.make_plan(fleet, distribution, planner.PlanRequest(weeks=3, scheduled=(("fleet", "E1", 5),)))
    with pytest.raises(UserError, match="one per week"):
        planner.make_plan(fleet, distribution, planner.PlanRequest(weeks=3, slots=(1, 2)))
    with pytest.raises(UserError, match="non-negative"):
        planner.PlanCosts(failure=-1.0)
    with pytest.raises(UserError, match="utilisation"):
        planner.make_plan(fleet, distribution, planner.PlanRequest(utilisation=(("fleet", 0.0),)))


def test_expected_removals_add_up_and_weeks_follow_the_calendar() -> None:
    distribution = RulDistribution.from_conformal(_conformal())
    friday = date(2025, 6, 6)
    plan = planner.make_plan(_fleet(np.linspace(2, 110, 30)), distribution,
                             planner.PlanRequest(weeks=4, slots=(3,), start=friday))
    assert list(plan.weeks["week_start"]) == ["2025-06-06", "2025-06-09", "2025-06-16", "2025-06-23"]
    assert weeks.days_to_slots(friday, 2).tolist() == [3.0, 10.0, 17.0]
    w = plan.weeks
    assert (w["removals_low"] <= w["expected_removals"]).all() and (w["expected_removals"] <= w["removals_high"]).all()
    assert (w["expected_failures"] <= w["expected_removals"] + 1e-9).all()
    rows = plan.engines
    unplanned_failures = rows.loc[rows["week"].isna(), "p_fail_before"].sum()
    assert w["expected_removals"].sum() == pytest.approx(rows["week"].notna().sum() + unplanned_failures)


def test_baseline_queues_respect_capacity_and_order() -> None:
    rul = np.array([50.0, 5.0, 30.0, 10.0])
    assert policies.threshold_weeks(rul, np.zeros((4, 1)), 30, np.array([2])).tolist() == [1, 0, 1, 0]
    elapsed = np.array([[0.0, 14.0, 28.0]] * 4)
    assert policies.threshold_weeks(rul, elapsed, 30, np.array([1, 1, 1])).tolist() == [3, 0, 2, 1]
    assert policies.high_risk_weeks(np.array([0.2, 0.9, 0.5]), np.array([True, True, False]),
                                    np.array([1, 5])).tolist() == [1, 0, 2]


# ------------------------------------------------------------------ the simulation
def _instances(seed: int) -> simulation.Instances:
    rng = np.random.default_rng(seed)
    life = rng.integers(120, 260, 12)
    cycles = np.arange(life.max() + 1)
    noise = rng.normal(0, 8, (len(life), 1))
    rul = np.clip(life[:, None] - cycles[None, :] + noise, 0, CAP)
    rul[cycles[None, :] > life[:, None]] = np.nan
    p_fail = np.clip(1 - rul / 40, 0, 1)
    source = np.repeat(np.arange(len(life)), 3)
    start = rng.integers(31, life[source] - 5)
    return simulation.Instances(source=source, start=start, life=life[source], rul=rul, p_fail=p_fail,
                                high=p_fail > 0.5)


def test_no_policy_beats_perfect_information_and_run_to_failure_fails_everything() -> None:
    costs = planner.PlanCosts()
    distribution = RulDistribution.from_conformal(_conformal())
    for seed in range(3):
        fleet = _instances(seed)
        for slots in (1, 3, len(fleet)):
            bound = simulation.perfect_information(fleet, slots, 14, costs)
            runs = [simulation.simulate(fleet, p, slots, 14, costs) for p in (
                simulation.plan_policy(distribution, 6, 14, costs), simulation.threshold_policy(30),
                simulation.high_risk_policy, simulation.run_to_failure)]
            assert all(r.cost >= bound.cost - 1e-6 for r in runs), (seed, slots)
            assert all(r.failures + r.removals == len(fleet) for r in [*runs, bound])
            assert runs[-1].failures == len(fleet) and runs[-1].cost == len(fleet) * costs.failure


# ------------------------------------------------------------------ the store and the downloads
def test_utilisation_is_stored_per_dataset_and_checked(small_fd001: Path) -> None:
    from core.data import store

    with store.connect(read_only=True) as con:
        assert utilisation.read(con) == {}, "no table yet: every dataset has the default"
    utilisation.save({"test_FD001": 3.5}, by="ada")
    with pytest.raises(UserError, match="No dataset named"):
        utilisation.save({"test_FD001": 1.0, "nope": 2.0}, by="ada")
    with pytest.raises(UserError, match="cycles per day"):
        utilisation.save({"test_FD001": -1}, by="ada")
    with store.connect(read_only=True) as con:
        stored = utilisation.read(con)
    assert stored == {"test_FD001": 3.5}, "a refused save changed nothing"
    assert utilisation.of(["test_FD001", "train_FD001"], stored) == {"test_FD001": 3.5,
                                                                      "train_FD001": weeks.DEFAULT_CYCLES_PER_DAY}


def test_an_accepted_plan_is_stored_with_who_when_and_the_model(small_fd001: Path) -> None:
    from core.data import store

    fleet = _fleet(np.array([4.0, 30.0, 90.0]), dataset="test_FD001").assign(engine=["1", "2", "3"], unit=[1, 2, 3])
    plan = planner.make_plan(fleet, RulDistribution.from_conformal(_conformal()),
                             planner.PlanRequest(weeks=3, slots=(1,), start=MONDAY))
    first = accepted.accept(plan, model_version=4, by="ada")
    second = accepted.accept(plan, model_version=4, by="bo")
    with store.connect(read_only=True) as con:
        listed = accepted.list_plans(con)
        rows = accepted.plan_rows(con, first)
        with pytest.raises(UserError, match="No accepted plan"):
            accepted.plan_rows(con, 99)
    assert list(listed["id"]) == [second, first] and list(listed["accepted_by"]) == ["bo", "ada"]
    assert set(listed["model_version"]) == {"4"} and listed["accepted_at"].notna().all()
    stored = rows.set_index("engine")
    expected = plan.engines.set_index("engine")
    assert len(rows) == 3 and stored["week"].fillna(-1).to_dict() == expected["week"].fillna(-1).to_dict()
    assert stored["reason"].to_dict() == expected["reason"].to_dict()
    with pytest.raises(UserError, match="no longer loaded"):
        accepted.accept(planner.make_plan(fleet.assign(dataset="gone"), RulDistribution.from_conformal(_conformal()),
                                          planner.PlanRequest(weeks=3, start=MONDAY)), 4, "ada")
    with store.connect(read_only=True) as con:
        assert len(accepted.list_plans(con)) == 2, "the refused plan left nothing behind"


def test_downloads_neutralise_formulas_and_escape_markup() -> None:
    hostile = ["=HYPERLINK(\"http://x\")", "<script>alert(1)</script>", "+1", "ok"]
    fleet = _fleet(np.array([3.0, 5.0, 7.0, 9.0])).assign(engine=hostile, dataset="-cmd")
    plan = planner.make_plan(fleet, RulDistribution.from_conformal(_conformal()),
                             planner.PlanRequest(weeks=2, slots=(4,), start=MONDAY))
    text = exports.plan_csv(plan, 3).decode()
    table = pd.read_csv(io.StringIO(text), dtype=str)
    assert set(table["engine"]) == {"'=HYPERLINK(\"http://x\")", "<script>alert(1)</script>", "'+1", "ok"}
    assert set(table["dataset"]) == {"'-cmd"} and set(table["model_version"]) == {"3"}
    readings = pd.DataFrame({"dataset": "-cmd", "unit": [0, 1], "cycle": [100, 100], "sensor_2": [642.1, 643.0]})
    page = exports.work_package_html(plan, 0, readings, 3, ["sensor_2"])
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "642.1" in page and "T24" in page and page.count("<tr>") >= 3


# ------------------------------------------------------------------ the command line
@pytest.fixture(scope="module")
@trains
def scored_home(tmp_path_factory: pytest.TempPathFactory, cmapss_dir: Path) -> Path:
    """FD001 loaded, a tiny champion, and its scores of test_FD001 stored (what the scoring job leaves)."""
    from tests.api_support import build_trained_home

    home = build_trained_home(tmp_path_factory.mktemp("plan_home"), cmapss_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PM_HOME", str(home))
        from core.operations import scoring_job

        scoring_job.score_stale()
    return home


def test_cli_plan_prints_json_and_stores_an_accepted_plan(scored_home: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    home = Path(shutil.copytree(scored_home, tmp_path / "home"))
    monkeypatch.setenv("PM_HOME", str(home))
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    assert cli_main(["plan", "--weeks", "4", "--slots", "2", "--start", "2025-06-02", "--utilisation",
                     "test_FD001=3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["engines_in_service"] == 100 and result["weeks"] == 4 and result["slots"] == [2]
    assert result["utilisation"] == {"test_FD001": 3.0} and result["accepted_plan"] is None
    planned = [e for e in result["engines"] if e["week"] is not None]
    assert 0 < len(planned) <= 8 and all(sum(e["week"] == k for e in planned) <= 2 for k in range(4))
    assert [w["week_start"] for w in result["calendar"]] == ["2025-06-02", "2025-06-09", "2025-06-16", "2025-06-23"]
    assert result["policies"][0]["policy"] == "Plan"
    assert cli_main(["plan", "--weeks", "2", "--slots", "1", "--accept", "--by", "ada"]) == 0
    assert "Stored as accepted plan 1." in capsys.readouterr().out
    assert cli_main(["plan", "--weeks", "0"]) == 1
    assert "horizon must be a whole number of weeks" in capsys.readouterr().err
