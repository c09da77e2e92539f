"""The fleet table's words (its order included), CSV and the expected cost of acting on risk levels. The table
itself (stored scores filtered, sorted over every filtered engine, paged and counted) is read in SQL by
:mod:`core.data.score_queries`.

Cost model (per engine, summed over the engines shown). A policy inspects every engine whose
risk level it names ("Inspect HIGH", "Inspect HIGH and MEDIUM"); "Do nothing" inspects none.
An engine "fails" when it fails within :data:`core.data.cmapss.FAIL_HORIZON` cycles.

- A failing engine that is not inspected is a *missed failure*: ``costs.miss`` (default $50,000).
- An inspected engine that would not have failed is a *needless inspection*: ``costs.inspection``
  (default $2,000). Inspecting an engine that would have failed costs nothing extra here: the
  inspection is what the maintenance budget is for, and it prevents the failure.
- Whether an engine fails: where the true RUL is known (test sets with ``RUL_FD00x``), it fails
  when true RUL <= horizon, and misses / needless inspections are counted. Elsewhere the
  calibrated probability ``p_fail_30`` stands in for it, and the counts and cost are expected values
  (a flagged engine costs ``(1 - p) * inspection``, an unflagged one ``p * miss``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data.cmapss import FAIL_HORIZON, RUL_CAP
from core.data.exports import csv_bytes
from core.data.score_queries import SORT_KEYS, FleetSort
from core.errors import UserError

CSV_DECIMALS = {"p_fail_30": 3, "rul": 1, "rul_low": 1, "rul_high": 1, "true_rul": 0}
"""Decimals kept per column in the CSV download."""
POLICIES: dict[str, tuple[str, ...]] = {
    "Inspect HIGH": ("HIGH",),
    "Inspect HIGH and MEDIUM": ("HIGH", "MEDIUM"),
    "Do nothing": (),
}
"""Each policy and the risk levels it inspects."""
BASELINE_POLICY = "Do nothing"

SORT_LABELS = {
    "risk": "risk (triage order)",
    "p_fail_30": "P(fail ≤ 30 cycles)",
    "rul": "predicted RUL",
    "rul_low": "RUL low",
    "rul_high": "RUL high",
    "true_rul": "true RUL",
    "cycle": "last cycle",
    "ood": "out of experience",
    "engine": "engine id",
    "dataset": "dataset",
}
"""The sort choices' names, as the table's headers say them (keys: :data:`core.data.score_queries.SORT_KEYS`)."""
_DIRECTIONS = {
    "risk": ("riskiest first", "least risky first"),
    "ood": ("out of experience first", "within experience first"),
    "engine": ("Z to A", "A to Z (numbers in order)"),
    "dataset": ("Z to A", "A to Z"),
}
"""(descending, ascending) in words where "highest first" / "lowest first" would not say it."""
FIRST_DESCENDING = {"risk": True, "p_fail_30": True, "rul": False, "rul_low": False, "rul_high": False,
                    "true_rul": False, "cycle": True, "ood": True, "engine": False, "dataset": False}
"""The direction a column is sorted in when first chosen: the end an engineer looks at first (riskiest, lowest
RUL, longest-running, out of experience, ids from A)."""


def risk_rule(thresholds: dict[str, float], horizon: int = FAIL_HORIZON) -> str:
    """The risk levels in words, from the ensemble's probability thresholds."""
    return (f"HIGH: P(fail within {horizon} cycles) ≥ {thresholds['high']:.0%}; "
            f"MEDIUM: ≥ {thresholds['medium']:.0%}; LOW: below.")


def rul_cap_note(cap: float = RUL_CAP) -> str:
    """Why no predicted RUL exceeds the cap."""
    return (f"Predicted RUL is capped at {cap:.0f} cycles: the models learn RUL as min(true RUL, {cap:.0f}), "
            f"so {cap:.0f} means \"{cap:.0f} cycles or more\".")


def direction_words(column: str, descending: bool) -> str:
    """The direction of a sort by `column` in words ("lowest first", "riskiest first", "A to Z")."""
    words = _DIRECTIONS.get(column, ("highest first", "lowest first"))
    return words[0] if descending else words[1]


def order_caption(order: FleetSort, page: int, pages: int) -> str:
    """Which order the table is in, said over the whole filtered fleet (sorted in SQL, then split into pages),
    and what a header click does. With more than one page it also warns that the grid's own column menu (whose
    Sort items Streamlit keeps even when header clicks select columns) orders only the rows of the page shown."""
    missing = " (engines without a true RUL last)" if order.column == "true_rul" else ""
    then = "" if order.column == "risk" else ", ties riskiest first"
    text = (f"Page {page:,} of {pages:,}. Every engine the filters keep is sorted by {SORT_LABELS[order.column]}, "
            f"{direction_words(order.column, order.descending)}{missing}{then}, then split into pages. A click on "
            "a column's header sorts every engine by that column (a second click: the other way round).")
    if pages > 1:
        text += " The Sort items of a column's ⋮ menu order only the rows of this page."
    return text


def header_sort(current: FleetSort, clicked: str) -> FleetSort:
    """The order after a click on column `clicked`'s header: the column in force reverses its direction, another
    sortable column starts in its :data:`FIRST_DESCENDING` direction, and any other column leaves the order as it
    is."""
    if clicked not in SORT_KEYS:
        return current
    if clicked == current.column:
        return FleetSort(clicked, not current.descending)
    return FleetSort(clicked, FIRST_DESCENDING[clicked])


def csv_table(table: pd.DataFrame, model_version: int, scored_at: str) -> bytes:
    """The table as CSV for download (:func:`core.data.exports.csv_bytes`: formula prefixes neutralised):
    rounded (:data:`CSV_DECIMALS`), without the store's unit number, with the model version and scoring time on
    every row."""
    out = table.drop(columns="unit").round(CSV_DECIMALS)
    return csv_bytes(out.assign(model_version=model_version, scored_at=scored_at))


@dataclass(frozen=True)
class Costs:
    """What a missed failure and a needless inspection cost (dollars)."""

    miss: float = 50_000.0
    inspection: float = 2_000.0

    def __post_init__(self) -> None:
        for name, value in (("missed failure", self.miss), ("needless inspection", self.inspection)):
            if not math.isfinite(value) or value < 0:
                raise UserError(f"The cost of a {name} must be a non-negative number of dollars, not {value}.")


def failure_probability(table: pd.DataFrame, horizon: int = FAIL_HORIZON) -> np.ndarray:
    """Per engine: 1/0 where the true RUL is known (fails within `horizon`), else its ``p_fail_30``."""
    truth = table["true_rul"].to_numpy(dtype=float)
    known = ~np.isnan(truth)
    return np.where(known, (truth <= horizon).astype(float), table["p_fail_30"].to_numpy(dtype=float))


def policy_costs(table: pd.DataFrame, costs: Costs, horizon: int = FAIL_HORIZON) -> pd.DataFrame:
    """One row per policy: inspections, missed failures, needless inspections, cost and saving vs doing nothing.

    Counts are exact where the true RUL is known and expected values elsewhere (see the module doc).
    """
    fails = failure_probability(table, horizon)
    risk = table["risk"].to_numpy()
    records = []
    for policy, levels in POLICIES.items():
        flagged = np.isin(risk, list(levels))
        missed = float(np.sum(fails[~flagged]))
        needless = float(np.sum(1.0 - fails[flagged]))
        records.append({
            "policy": policy,
            "inspections": int(flagged.sum()),
            "missed_failures": missed,
            "needless_inspections": needless,
            "cost": missed * costs.miss + needless * costs.inspection,
        })
    frame = pd.DataFrame(records)
    baseline = float(frame.loc[frame["policy"] == BASELINE_POLICY, "cost"].iloc[0])
    frame["saving"] = baseline - frame["cost"]
    return frame


def cost_basis(table: pd.DataFrame) -> str:
    """One sentence saying on what the cost figures rest (true RUL, probabilities or both)."""
    known = int(table["true_rul"].notna().sum())
    unknown = len(table) - known
    if not len(table):
        return "No engines are shown, so nothing is counted."
    if not unknown:
        return f"Counted from the true RUL of all {known} engines."
    if not known:
        return f"Expected values from the predicted failure probability of all {unknown} engines (no true RUL)."
    return (f"Counted from the true RUL for {known} engines; expected values from the predicted failure "
            f"probability for the other {unknown}.")
