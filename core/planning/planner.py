"""The plan: each engine's week (or none within the horizon) at the lowest total expected cost under capacity.

Expected cost of removing engine e at the end of week k, after ``t_k`` cycles (its dataset's utilisation times
the days until then, :mod:`core.planning.weeks`), with ``F(c) = P(T <= c)`` from its RUL distribution
(:mod:`models.rul_distribution`):

    F(t_k) * failure + (1 - F(t_k)) * removal + life_per_cycle * integral from t_k to t_H of (1 - F(s)) ds

an unscheduled failure if it fails before the slot, a planned removal otherwise, and the cycles of life the
removal gives up before ``t_H``, the end of the week after the horizon. An engine not planned within the horizon
costs ``F(t_H) * failure + (1 - F(t_H)) * removal``: it is next considered in the week after the horizon, and
fails before then or is removed then (life given up later than ``t_H`` would be the same for every option of the
engine, so it is left out of all of them). The integral is taken by the trapezoid rule on
:data:`SUBSTEPS` points per week. :func:`core.planning.optimise.assign` then chooses the weeks.

An engine predicted at the RUL cap ("the cap or more") is planned as one that does not fail within the horizon:
the intervals are calibrated on validation readings within 150 cycles of failure, so below the cap their top bin
describes engines about to reach it, not a young engine; such an engine enters the plan once its prediction drops
below the cap, which a rolling re-plan picks up week by week.

The result says, per engine, the week, the probability of failing before its slot (not planned: before the
horizon's end), the expected cost and the reason in words; per week, the engines planned, the slots, and the
removals the shop should expect (planned ones that do not fail first, and failures) with a 90 % band from the
engines' probabilities; and the expected cost of the baselines of :mod:`core.planning.policies` under the same
distributions and capacity.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from core.errors import UserError
from core.planning import optimise, policies, weeks
from models.rul_distribution import RulDistribution

SUBSTEPS = 8
"""Points per week at which the life given up is integrated."""
BAND_Z = 1.645
"""The band of expected removals per week: mean +- this many standard deviations (90 % for a normal sum)."""
ENGINE_COLUMNS = ["dataset", "engine", "unit", "cycle", "rul", "p_fail_30", "risk"]
"""What the planner needs of each engine (``unit`` is the store's key, kept for links and storage)."""
NOT_PLANNED = "not within horizon"
STATUSES = ("planned", NOT_PLANNED, "scheduled before", "excluded")
LIKELY_NOW = 0.5
"""From this probability of failing before week 0 ends the reason asks for the engine to be seen at once."""


@dataclass(frozen=True)
class PlanCosts:
    """Dollars: an unscheduled failure, a planned removal, and each cycle of life a removal gives up.

    The default life cost spreads a removal's cost over a typical life (2,000 over about 200 cycles): removing an
    engine early makes its next removal come that much sooner.
    """

    failure: float = 50_000.0
    removal: float = 2_000.0
    life_per_cycle: float = 10.0

    def __post_init__(self) -> None:
        for name, value in (("an unscheduled failure", self.failure), ("a planned removal", self.removal),
                            ("a cycle of life given up", self.life_per_cycle)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise UserError(f"The cost of {name} must be a non-negative number of dollars, not {value!r}.")


@dataclass(frozen=True)
class PlanRequest:
    """What a plan is asked for (hashable, so a page can cache a plan by it).

    `slots` holds one number per week (or one number for every week); `utilisation` is ((dataset, cycles per
    day), ...) for the datasets whose utilisation differs from :data:`core.planning.weeks.DEFAULT_CYCLES_PER_DAY`;
    `engine_utilisation` ((dataset, engine, cycles per day), ...) for engines that fly more or less than their
    dataset (it wins over the dataset's); `scheduled` is ((dataset, engine, week), ...) for engines already given a week, `excluded` ((dataset,
    engine), ...) for engines left out.
    """

    weeks: int = 8
    slots: tuple[int, ...] = (5,)
    costs: PlanCosts = field(default_factory=PlanCosts)
    start: date = field(default_factory=date.today)
    utilisation: tuple[tuple[str, float], ...] = ()
    engine_utilisation: tuple[tuple[str, str, float], ...] = ()
    scheduled: tuple[tuple[str, str, int], ...] = ()
    excluded: tuple[tuple[str, str], ...] = ()

    def capacity(self) -> np.ndarray:
        """Slots per week as an array of :attr:`weeks` numbers; UserError for a bad count."""
        horizon = weeks.check_horizon(self.weeks)
        slots = list(self.slots)
        if len(slots) == 1:
            slots = slots * horizon
        if len(slots) != horizon:
            raise UserError(f"Give one number of slots for every week or one per week ({horizon}), "
                            f"not {len(slots)}.")
        for value in slots:
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise UserError(f"Slots per week must be whole numbers of engines, 0 or more, not {value!r}.")
        return np.asarray(slots, dtype=float)

    def cycles_per_day(self) -> dict[str, float]:
        """Utilisation per dataset named in the request, checked."""
        return {str(name): weeks.check_utilisation(value, str(name)) for name, value in self.utilisation}

    def engine_cycles_per_day(self) -> dict[tuple[str, str], float]:
        """Utilisation per engine named in the request, checked."""
        return {(str(d), str(e)): weeks.check_utilisation(value, f"engine {e} of {d}")
                for d, e, value in self.engine_utilisation}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {"weeks": self.weeks, "slots": list(self.slots), "costs": asdict(self.costs),
                "start": self.start.isoformat(), "utilisation": dict(self.utilisation),
                "engine_utilisation": [list(u) for u in self.engine_utilisation],
                "scheduled": [list(s) for s in self.scheduled], "excluded": [list(e) for e in self.excluded]}


@dataclass
class CostTable:
    """Per engine: slot cycles, P(fail before each slot) and expected cost of each option (week 0..H-1, then
    not within the horizon)."""

    slot_cycles: np.ndarray
    fail_before: np.ndarray
    costs: np.ndarray


def cost_table(distribution: RulDistribution, rul: np.ndarray, cycles_per_day: np.ndarray, start: date,
               horizon: int, costs: PlanCosts) -> CostTable:
    """Expected cost of every option of every engine (see the module doc)."""
    days = weeks.days_to_slots(start, horizon)
    slot_cycles = cycles_per_day[:, None] * days[None, :]
    seen = rul[:, None] < distribution.cap
    fail = distribution.cdf(rul, slot_cycles) * seen
    step = cycles_per_day * 7.0 / SUBSTEPS
    grid = slot_cycles[:, :1] + step[:, None] * np.arange(SUBSTEPS * horizon + 1)[None, :]
    alive = 1.0 - distribution.cdf(rul, grid) * seen
    area = np.concatenate([np.zeros((len(rul), 1)),
                           np.cumsum((alive[:, 1:] + alive[:, :-1]) / 2.0 * step[:, None], axis=1)], axis=1)
    given_up = area[:, -1:] - area[:, ::SUBSTEPS][:, :horizon]
    table = fail * costs.failure + (1.0 - fail) * costs.removal
    table[:, :horizon] += costs.life_per_cycle * given_up
    return CostTable(slot_cycles=slot_cycles, fail_before=fail, costs=table)


@dataclass
class Plan:
    """A computed plan (see the module doc): engines, weeks, baselines and how it was solved."""

    engines: pd.DataFrame
    weeks: pd.DataFrame
    policies: pd.DataFrame
    meta: dict[str, Any]


def _keys(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(frame["dataset"].astype(str), frame["engine"].astype(str), strict=True))


def make_plan(engines: pd.DataFrame, distribution: RulDistribution, request: PlanRequest,
              high_risk: float | None = None) -> Plan:
    """The plan of `engines` (:data:`ENGINE_COLUMNS`) under `request`; `high_risk` is the probability threshold of
    risk HIGH for the "Inspect HIGH" baseline (default: the engines' own ``risk`` column)."""
    missing = [c for c in ENGINE_COLUMNS if c not in engines.columns]
    if missing:
        raise UserError(f"The engines to plan lack the column(s) {', '.join(missing)}.")
    capacity = request.capacity()
    horizon = len(capacity)
    utilisation = request.cycles_per_day()
    frame = engines.reset_index(drop=True)
    keys = _keys(frame)
    index = {key: i for i, key in enumerate(keys)}
    excluded = np.zeros(len(frame), dtype=bool)
    for dataset, engine in request.excluded:
        if (str(dataset), str(engine)) in index:
            excluded[index[(str(dataset), str(engine))]] = True
    fixed = np.full(len(frame), -1)
    for dataset, engine, week in request.scheduled:
        key = (str(dataset), str(engine))
        if key not in index:
            raise UserError(f"Engine {engine} of {dataset} is scheduled, but it is not among the engines in service "
                            "with a current score.")
        if isinstance(week, bool) or not isinstance(week, int | np.integer) or not 0 <= week < horizon:
            raise UserError(f"Engine {engine} of {dataset} is scheduled in week {week!r}, outside weeks 0 to "
                            f"{horizon - 1}.")
        fixed[index[key]] = int(week)
    fixed[excluded] = -1
    cpd = frame["dataset"].astype(str).map(lambda d: utilisation.get(d, weeks.DEFAULT_CYCLES_PER_DAY)).to_numpy(
        dtype=float, copy=True)
    for (dataset, engine), value in request.engine_cycles_per_day().items():
        if (dataset, engine) not in index:
            raise UserError(f"Engine {engine} of {dataset} has a utilisation of its own, but it is not among the "
                            "engines in service with a current score.")
        cpd[index[(dataset, engine)]] = value
    rul = frame["rul"].to_numpy(dtype=float)
    pairs, inverse = np.unique(np.column_stack([rul, cpd]), axis=0, return_inverse=True)
    shared = cost_table(distribution, pairs[:, 0], pairs[:, 1], request.start, horizon, request.costs)
    inverse = inverse.ravel()
    table = CostTable(slot_cycles=shared.slot_cycles[inverse], fail_before=shared.fail_before[inverse],
                      costs=shared.costs[inverse])

    free = (fixed < 0) & ~excluded
    taken = np.bincount(fixed[fixed >= 0], minlength=horizon).astype(float)
    solution = optimise.assign(table.costs[free], np.maximum(capacity - taken, 0.0))
    assigned = np.full(len(frame), horizon)
    assigned[free] = solution.weeks
    assigned[fixed >= 0] = fixed[fixed >= 0]
    own = np.argmin(table.costs, axis=1)

    rows = _engine_rows(frame, table, assigned, own, fixed, excluded, cpd, request, distribution.cap)
    meta = {"request": request.to_dict(), "engines": len(frame), "planned": int((assigned < horizon).sum()),
            "method": solution.method, "lp_columns": solution.columns, "solve_seconds": solution.seconds,
            "distribution": distribution.source,
            "overbooked_weeks": [int(k) for k in np.flatnonzero(taken > capacity)]}
    active = ~excluded
    high = (frame["risk"].astype(str) == "HIGH").to_numpy() if high_risk is None else \
        frame["p_fail_30"].to_numpy(dtype=float) >= high_risk
    baselines = _baselines(table, assigned, active, fixed, capacity, rul, cpd, request, frame, high)
    return Plan(engines=rows, weeks=_week_rows(table, assigned, active, capacity, request), policies=baselines, meta=meta)


def _pick(matrix: np.ndarray, week: np.ndarray) -> np.ndarray:
    return matrix[np.arange(len(week)), week]


def _reason(k: int, own: int, status: str, fail: np.ndarray, horizon: int, at_cap: bool) -> str:
    """One engine's reason in words (`fail`: its P(fail before each slot))."""
    if status == "excluded":
        return "Excluded from planning."
    if status == "scheduled before":
        text = f"Scheduled before in week {k}: P(fail before the slot) {fail[k]:.1%}."
    elif k == horizon:
        end = fail[horizon - 1]
        if at_cap:
            text = ("Not within the horizon: predicted at the model's RUL cap (the cap or more), so no failure risk it "
                    "can quantify; it enters the plan once its prediction drops below the cap.")
        elif own == horizon:
            text = (f"Not within the horizon: P(fail before week {horizon - 1} ends) {end:.1%}, too low to pay for a "
                    "removal and the life it gives up.")
        else:
            text = (f"Not within the horizon for lack of slots: alone it would go in week {own} (P(fail before it) "
                    f"{fail[own]:.1%}), but the slots save more on other engines; P(fail before week "
                    f"{horizon - 1} ends) {end:.1%}.")
    elif own == k:
        later = f", {fail[k + 1]:.1%} a week later" if k + 1 < horizon else ""
        text = f"Week {k} is its cheapest: P(fail before the slot) {fail[k]:.1%}{later}."
    elif own > k:
        text = (f"Brought forward from week {own}, its cheapest, whose slots save more on other engines: "
                f"P(fail before the slot) {fail[k]:.1%}.")
    else:
        text = (f"Deferred from week {own}, its cheapest, whose slots save more on other engines: P(fail before the "
                f"slot) {fail[k]:.1%} instead of {fail[own]:.1%}.")
    if fail[0] >= LIKELY_NOW and status != "excluded":
        text += f" It is likely ({fail[0]:.0%}) to fail before this week ends: have it seen at once."
    return text


def _engine_rows(frame: pd.DataFrame, table: CostTable, week: np.ndarray, own: np.ndarray, fixed: np.ndarray,
                 excluded: np.ndarray, cpd: np.ndarray, request: PlanRequest, cap: float) -> pd.DataFrame:
    horizon = table.costs.shape[1] - 1
    status = np.where(excluded, "excluded", np.where(fixed >= 0, "scheduled before",
                                                     np.where(week < horizon, "planned", NOT_PLANNED)))
    starts = weeks.week_starts(request.start, horizon)
    end = np.where(week < horizon, week, horizon - 1)
    at_cap = frame["rul"].to_numpy(dtype=float) >= cap
    reasons = [_reason(int(k), int(o), str(s), f, horizon, bool(c))
               for k, o, s, f, c in zip(week, own, status, table.fail_before, at_cap, strict=True)]
    planned = week < horizon
    out = frame[ENGINE_COLUMNS].copy()
    out["engine"] = out["engine"].astype(str)
    out["dataset"] = out["dataset"].astype(str)
    out["cycles_per_day"] = cpd
    out["week"] = pd.Series(week, dtype="Int64").mask(~planned)
    out["week_start"] = [starts[k].isoformat() if k < horizon else "" for k in week]
    out["status"] = status
    out["p_fail_before"] = np.where(excluded, np.nan, _pick(table.fail_before, end))
    out["expected_cost"] = np.where(excluded, np.nan, _pick(table.costs, week))
    out["own_week"] = pd.Series(own, dtype="Int64").mask(own >= horizon)
    out["reason"] = reasons
    order = np.lexsort((out["engine"].to_numpy(), out["dataset"].to_numpy(),
                        -out["p_fail_before"].fillna(-1.0).to_numpy(), week, excluded))
    return out.iloc[order].reset_index(drop=True)


def arrival_probabilities(fail: np.ndarray, week: np.ndarray) -> np.ndarray:
    """(engines, H): probability that each engine reaches the shop in each week: it fails in that week before its
    slot, or its slot is that week and it has not failed earlier (`fail`: P(fail before each slot); H: not
    planned)."""
    horizon = fail.shape[1] - 1
    previous = np.concatenate([np.zeros((len(fail), 1)), fail[:, :horizon - 1]], axis=1)
    weekly = fail[:, :horizon] - previous
    k = np.arange(horizon)[None, :]
    out = np.where(k < week[:, None], weekly, 0.0)
    return np.where(k == week[:, None], 1.0 - previous, out)


def _week_rows(table: CostTable, week: np.ndarray, active: np.ndarray, capacity: np.ndarray,
               request: PlanRequest) -> pd.DataFrame:
    horizon = len(capacity)
    arrive = arrival_probabilities(table.fail_before[active], week[active])
    mean = arrive.sum(axis=0)
    sd = np.sqrt((arrive * (1.0 - arrive)).sum(axis=0))
    planned = np.bincount(week[active], minlength=horizon + 1)[:horizon]
    fails = arrive - np.where(np.arange(horizon)[None, :] == week[active][:, None],
                              1.0 - table.fail_before[active][:, :horizon], 0.0)
    return pd.DataFrame({
        "week": np.arange(horizon), "week_start": [d.isoformat() for d in weeks.week_starts(request.start, horizon)],
        "slots": capacity.astype(int), "planned": planned, "expected_removals": mean,
        "removals_low": np.maximum(mean - BAND_Z * sd, 0.0), "removals_high": mean + BAND_Z * sd,
        "expected_failures": fails.sum(axis=0),
    })


def _baselines(table: CostTable, week: np.ndarray, active: np.ndarray, fixed: np.ndarray, capacity: np.ndarray,
               rul: np.ndarray, cpd: np.ndarray, request: PlanRequest, frame: pd.DataFrame,
               high: np.ndarray) -> pd.DataFrame:
    """Expected cost of the plan and of each baseline under the same distributions; engines scheduled before keep
    their week in every policy."""
    horizon = len(capacity)
    free = active & (fixed < 0)
    taken = np.bincount(fixed[fixed >= 0], minlength=horizon).astype(float)
    room = np.maximum(capacity - taken, 0.0)
    elapsed = cpd[free, None] * weeks.days_to_week_starts(request.start, horizon)[None, :]
    p_fail = frame["p_fail_30"].to_numpy(dtype=float)

    def summary(name: str, chosen: np.ndarray) -> dict[str, Any]:
        full = week.copy()
        full[free] = chosen
        full, fail = full[active], table.fail_before[active]
        at = np.where(full < horizon, full, horizon - 1)
        return {"policy": name, "expected_cost": float(_pick(table.costs[active], full).sum()),
                "planned": int((full < horizon).sum()), "expected_failures": float(_pick(fail, at).sum())}

    by_threshold = {theta: policies.threshold_weeks(rul[free], elapsed, theta, room) for theta in policies.THRESHOLDS}
    cost_of = {theta: float(_pick(table.costs[free], w).sum()) for theta, w in by_threshold.items()}
    best = min(cost_of, key=lambda theta: (cost_of[theta], theta))
    return pd.DataFrame([
        summary("Plan", week[free]),
        summary(f"RUL threshold {best} cycles (the best fixed one here)", by_threshold[best]),
        summary("Inspect HIGH", policies.high_risk_weeks(p_fail[free], high[free], room)),
        summary("Nothing within the horizon", policies.nothing_weeks(int(free.sum()), horizon)),
    ])
