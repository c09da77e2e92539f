"""Maintenance policies simulated week by week on engines whose failure times are known.

Each engine instance is a run-to-failure engine cut at an age (as NASA's test sets are): from then on it flies
``cycles_per_week`` cycles a week until it fails at the end of its recorded life, unless a policy removes it. At
the start of every week a policy sees each engine in service with the model's prediction at its current age and
chooses at most ``slots`` engines to remove at the end of that week. An engine that fails during the week fails,
chosen or not (an unscheduled failure: ``costs.failure``); one removed costs ``costs.removal`` plus
``costs.life_per_cycle`` for each cycle of life it still had. The week loop runs until every engine has failed or
been removed, so run to failure and late removals pay in full.

Policies: the plan (re-planned every week over its horizon from the RUL distributions, its week 0 carried
out), a fixed RUL threshold, "Inspect HIGH", run to failure; and perfect information, which knows every failure
time and assigns the weeks at the lowest realised cost under the same capacity (the same transportation problem
with the true costs): no policy that removes engines at the end of a week, at most ``slots`` a week, can do better.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np

from core.planning import optimise, planner, policies
from models.rul_distribution import RulDistribution

MONDAY = date(2024, 1, 1)
"""The simulated plans start on a Monday, so every week is a whole one."""

Policy = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]
"""(predicted RUL, P(fail within 30 cycles), at HIGH risk, slots) of the engines in service -> which to remove."""


@dataclass(frozen=True)
class Instances:
    """Engines cut at an age, with the model's predictions of their source engine at every cycle."""

    source: np.ndarray
    """(N,) row of each instance's engine in the prediction arrays."""
    start: np.ndarray
    """(N,) age (cycles) at the cut."""
    life: np.ndarray
    """(N,) age at which it fails (its engine's last recorded cycle)."""
    rul: np.ndarray
    """(engines, cycles + 1): predicted RUL of each engine at each cycle (NaN where it has no reading)."""
    p_fail: np.ndarray
    high: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


@dataclass(frozen=True)
class Outcome:
    """What a policy realised: total cost, unscheduled failures, planned removals, life given up (cycles)."""

    cost: float
    failures: int
    removals: int
    life_given_up: float

    def to_dict(self) -> dict[str, float]:
        """Plain dict, with the life given up per removal."""
        return {"cost": self.cost, "failures": self.failures, "removals": self.removals,
                "life_given_up": self.life_given_up,
                "life_per_removal": self.life_given_up / self.removals if self.removals else 0.0}


def simulate(fleet: Instances, policy: Policy, slots: int, cycles_per_week: int,
             costs: planner.PlanCosts) -> Outcome:
    """Run `policy` week by week until every engine has failed or been removed (see the module doc)."""
    alive = np.ones(len(fleet), dtype=bool)
    failures = removals = 0
    life = 0.0
    week = 0
    while alive.any():
        idx = np.flatnonzero(alive)
        age = fleet.start[idx] + week * cycles_per_week
        left = fleet.life[idx] - age
        src = fleet.source[idx]
        chosen = policy(fleet.rul[src, age], fleet.p_fail[src, age], fleet.high[src, age], slots)
        if chosen.sum() > slots:
            raise AssertionError(f"a policy removed {int(chosen.sum())} engines in a week of {slots} slots")
        fails = left <= cycles_per_week
        removed = chosen & ~fails
        failures += int(fails.sum())
        removals += int(removed.sum())
        life += float((left[removed] - cycles_per_week).sum())
        alive[idx[fails | removed]] = False
        week += 1
    cost = failures * costs.failure + removals * costs.removal + life * costs.life_per_cycle
    return Outcome(cost=cost, failures=failures, removals=removals, life_given_up=life)


def perfect_information(fleet: Instances, slots: int, cycles_per_week: int, costs: planner.PlanCosts) -> Outcome:
    """The lowest realised cost any policy could reach: weeks assigned knowing every failure time."""
    left = (fleet.life - fleet.start).astype(float)
    weeks = max(1, math.ceil(left.max() / cycles_per_week))
    slot_end = cycles_per_week * np.arange(1, weeks + 1)
    survives = left[:, None] > slot_end[None, :]
    removal = costs.removal + costs.life_per_cycle * (left[:, None] - slot_end[None, :])
    table = np.column_stack([np.where(survives, removal, costs.failure), np.full(len(left), costs.failure)])
    chosen = optimise.assign(table, np.full(weeks, float(slots))).weeks
    removed = chosen < weeks
    removed[removed] = survives[np.flatnonzero(removed), chosen[removed]]
    given_up = float((left[removed] - slot_end[chosen[removed]]).sum())
    failures = int(len(left) - removed.sum())
    return Outcome(cost=failures * costs.failure + int(removed.sum()) * costs.removal + given_up * costs.life_per_cycle,
                   failures=failures, removals=int(removed.sum()), life_given_up=given_up)


def plan_policy(distribution: RulDistribution, horizon: int, cycles_per_week: int, costs: planner.PlanCosts) -> Policy:
    """The planner, re-run each week over `horizon` weeks of `slots` each; this week's engines are removed."""
    per_day = cycles_per_week / 7.0

    def decide(rul: np.ndarray, p_fail: np.ndarray, high: np.ndarray, slots: int) -> np.ndarray:
        table = planner.cost_table(distribution, rul, np.full(len(rul), per_day), MONDAY, horizon, costs)
        return optimise.assign(table.costs, np.full(horizon, float(slots))).weeks == 0

    return decide


def threshold_policy(theta: float) -> Policy:
    """Remove engines whose predicted RUL is at most `theta`, lowest first."""
    def decide(rul: np.ndarray, p_fail: np.ndarray, high: np.ndarray, slots: int) -> np.ndarray:
        return policies.threshold_weeks(rul, np.zeros((len(rul), 1)), theta, np.array([slots])) == 0

    return decide


def high_risk_policy(rul: np.ndarray, p_fail: np.ndarray, high: np.ndarray, slots: int) -> np.ndarray:
    """"Inspect HIGH": remove engines at HIGH risk, most likely to fail first."""
    return policies.high_risk_weeks(p_fail, high, np.array([slots])) == 0


def run_to_failure(rul: np.ndarray, p_fail: np.ndarray, high: np.ndarray, slots: int) -> np.ndarray:
    """Never remove an engine before it fails."""
    return np.zeros(len(rul), dtype=bool)
