"""Each engine's week at the lowest total cost under shop capacity: a transportation problem, solved by HiGHS.

Engine e removed in week k costs ``C[e, k]``; not within the horizon it costs ``C[e, H]`` and takes no slot.
Each engine takes one option and week k at most ``S[k]`` engines. As an integer program with binaries
``x[e, k]`` this is a transportation problem: every column of its constraint matrix has a 1 in one engine row
and at most one week row, the incidence matrix of a bipartite graph, which is totally unimodular. Every vertex
of the LP relaxation is therefore integral, and HiGHS's interior point method with crossover returns a vertex:
the LP relaxation's solution is the integer optimum. :func:`assign` checks it (every value within
:data:`INTEGRAL_TOL` of a whole number) and, should that ever fail, solves the same problem as a MILP with HiGHS.

Before any LP, three exact reductions:

- engines whose expected costs are equal in every option (e.g. all those predicted at the RUL cap, with the same
  utilisation) form one class with a supply of that many engines: the problem stays a transportation problem
  (integer supplies and capacities, the same matrix), and the class's engines are handed its weeks in turn;
- an option costing no less than "not within the horizon" is dropped: that option has no capacity limit, so
  moving an engine there never costs more and frees a slot; engines left without options stay unplanned;
- when every engine's own cheapest option fits the capacity, those options are the optimum (no LP).

The LP then has one column per remaining (class, week) pair, relative to "not within the horizon":
``min sum (C[c,k] - C[c,H]) y[c,k]`` subject to ``sum_k y[c,k] <= n_c`` per class, ``sum_c y[c,k] <= S[k]``
per week, ``0 <= y[c,k] <= n_c``. At 20,000 engines and 26 weeks that is at most 520,000 columns and 20,026 rows;
in a fleet most engines drop out by the reductions (see BENCHMARKS.md, "Maintenance planning").
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from core.errors import UserError

GAIN_TOL = 1e-6
"""Dollars an option must save against "not within the horizon" to be kept."""
INTEGRAL_TOL = 1e-6
"""How far from a whole number a solution value may be and still count as integral."""


@dataclass(frozen=True)
class Solution:
    """Each engine's option (0..H-1 a week, H not within the horizon) and how it was found."""

    weeks: np.ndarray
    method: str
    """``own optimum`` (capacity never bound), ``LP (HiGHS), integral`` or ``MILP (HiGHS)``."""
    columns: int
    """Columns of the LP solved (0 when none was)."""
    seconds: float


def assign(costs: np.ndarray, capacity: np.ndarray) -> Solution:
    """The options minimising the total of `costs` (engines, H + 1; the last column: not within the horizon) with
    at most ``capacity[k]`` engines in week k (see the module doc)."""
    started = time.perf_counter()
    costs = np.asarray(costs, dtype=float)
    capacity = np.floor(np.maximum(np.asarray(capacity, dtype=float), 0.0))
    horizon = costs.shape[1] - 1
    if capacity.shape != (horizon,):
        raise UserError(f"The capacity names {capacity.shape[0]} week(s), but the costs {horizon}.")
    if not np.isfinite(costs).all():
        raise UserError("Some expected costs are not finite numbers, so no plan can be computed.")
    classes, inverse, supply = np.unique(costs, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    gains = classes[:, :horizon] - classes[:, horizon:]
    kept = gains < -GAIN_TOL
    own = np.where(kept.any(axis=1), np.argmin(np.where(kept, gains, np.inf), axis=1), horizon)
    if (np.bincount(own, weights=supply, minlength=horizon + 1)[:horizon] <= capacity).all():
        return Solution(own[inverse], "own optimum", 0, time.perf_counter() - started)
    group, weeks = np.nonzero(kept)
    m = len(group)
    rows = np.unique(group)
    row_of = np.full(len(classes), -1)
    row_of[rows] = np.arange(len(rows))
    ones = np.ones(m)
    matrix = sp.vstack([sp.csr_array((ones, (row_of[group], np.arange(m))), shape=(len(rows), m)),
                        sp.csr_array((ones, (weeks, np.arange(m))), shape=(horizon, m))]).tocsr()
    upper = np.concatenate([supply[rows].astype(float), capacity])
    objective = gains[group, weeks]
    bounds = (np.zeros(m), supply[group].astype(float))
    result = linprog(objective, A_ub=matrix, b_ub=upper, bounds=np.column_stack(bounds), method="highs-ipm")
    method = "LP (HiGHS), integral"
    y = result.x if result.status == 0 else None
    if y is None or np.max(np.abs(y - np.round(y))) > INTEGRAL_TOL:
        exact = milp(objective, constraints=LinearConstraint(matrix, -np.inf, upper), integrality=np.ones(m),
                     bounds=Bounds(*bounds))
        if exact.status != 0 or exact.x is None:
            raise UserError(f"The planning solver found no plan ({exact.message}).")
        y, method = exact.x, "MILP (HiGHS)"
    return Solution(_hand_out(inverse, supply, group, weeks, np.round(y).astype(int), horizon), method, m,
                    time.perf_counter() - started)


def _hand_out(inverse: np.ndarray, supply: np.ndarray, group: np.ndarray, weeks: np.ndarray, count: np.ndarray,
              horizon: int) -> np.ndarray:
    """Each engine's week from the engines per (class, week) `count`: a class's engines, in their order, take its
    weeks in week order; the rest of the class stays not within the horizon."""
    order = np.argsort(inverse, kind="stable")
    first_engine = np.cumsum(supply) - supply
    labels, owner = np.repeat(weeks, count), np.repeat(group, count)
    given = np.bincount(owner, minlength=len(supply))
    position = np.arange(len(labels)) - (np.cumsum(given) - given)[owner]
    out = np.full(len(inverse), horizon)
    out[order[first_engine[owner] + position]] = labels
    return out
