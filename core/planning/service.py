"""A plan of the fleet in service, as the Plan page, ``python -m core plan`` and the API ask for it.

:func:`fleet_plan` reads the engines in service with the model's stored scores and the stored utilisation, and
plans them with the model's RUL distribution; :func:`as_record` gives the plan as JSON; :func:`week_readings` and
:func:`week_explanations` give what a week's work package shows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.data import score_queries, store
from core.errors import UserError
from core.planning import fleet, planner, utilisation
from models.calibration import Conformal
from models.rul_distribution import RulDistribution

if TYPE_CHECKING:
    from models.ensemble import Ensemble
    from models.explain import Explainer

EXPLAINED_INPUTS = 3
"""Inputs a work package's explanation of an engine names (the rest are summed)."""


def fleet_plan(model_version: int, conformal: Conformal, request: planner.PlanRequest,
               datasets: Sequence[str] | None = None) -> planner.Plan:
    """The plan of the engines in service (of `datasets`, default every fleet and evaluation dataset) scored by
    `model_version`, whose conformal intervals are `conformal`.

    Utilisation: the request's value for an engine it names, else the engine's stored one; for the others, the
    request's value for their dataset, else the stored one, else the default. ``meta``
    gains ``model_version``, ``datasets`` (those with engines planned) and ``stale`` (engines whose readings are
    newer than their stored score, or that have none: planned on the older score, or not at all).
    """
    names = None if datasets is None else [str(d) for d in datasets]
    with store.connect(read_only=True) as con:
        engines = fleet.in_service(con, model_version, names)
        stored = utilisation.read(con)
        stored_engines = utilisation.read_engines(con)
        stale = score_queries.stale_count(con, model_version, names)
    present = sorted(engines["dataset"].astype(str).unique())
    chosen = {**utilisation.of(present, stored), **dict(request.utilisation)}
    keys = set(zip(engines["dataset"].astype(str), engines["engine"].astype(str), strict=True))
    own = {key: value for key, value in stored_engines.items() if key in keys}
    own.update({(str(d), str(e)): v for d, e, v in request.engine_utilisation})
    request = dataclasses.replace(request, utilisation=tuple(sorted(chosen.items())),
                                  engine_utilisation=tuple(sorted((d, e, v) for (d, e), v in own.items())))
    plan = planner.make_plan(engines, RulDistribution.from_conformal(conformal), request)
    plan.meta.update(model_version=int(model_version), datasets=present, stale=int(stale))
    return plan


_INPUTS = (
    "SELECT (SELECT list(id ORDER BY id) FROM datasets), (SELECT list(loaded_at ORDER BY id) FROM datasets), "
    "(SELECT count(*) FROM readings), (SELECT count(*) FROM engines), (SELECT count(closed_event) FROM engines), "
    "(SELECT max(closed_at) FROM engines), "
    "(SELECT count(*) FROM predictions WHERE model_version = ?), "
    "(SELECT max(created_at) FROM predictions WHERE model_version = ?)"
)


def inputs_stamp(model_version: int) -> tuple:
    """What a plan of `model_version` reads, in a few numbers: the datasets, readings and engines in service, the
    model's stored scores, and the utilisation set. It changes when one of them does, and not when the store
    changes otherwise (an alert noted, a plan accepted), so a page keys its plan on it."""
    with store.connect(read_only=True) as con:
        row = con.execute(_INPUTS, [str(model_version), str(model_version)]).fetchall()[0]
        dataset_level = utilisation.read(con)
        engine_level = utilisation.read_engines(con)
    return (*(str(v) for v in row), tuple(sorted(dataset_level.items())), tuple(sorted(engine_level.items())))


def as_record(plan: planner.Plan, accepted_plan: int | None = None) -> dict[str, Any]:
    """A plan of :func:`fleet_plan` as plain JSON (what ``python -m core plan --json`` prints): the request, how it
    was solved, ``calendar`` (one record per week), ``policies`` (the plan's and the baselines' expected costs),
    ``engines`` (one record per engine, missing values as None) and ``accepted_plan`` (its id once stored)."""
    meta, asked = plan.meta, plan.meta["request"]
    engines = plan.engines.astype(object).where(plan.engines.notna(), None)
    return {"model_version": meta["model_version"], "datasets": meta["datasets"], "stale": meta["stale"],
            "start": asked["start"], "weeks": asked["weeks"], "slots": asked["slots"], "costs": asked["costs"],
            "utilisation": asked["utilisation"],
            "engine_utilisation": asked["engine_utilisation"], "distribution": meta["distribution"], "method": meta["method"],
            "solve_seconds": meta["solve_seconds"], "engines_in_service": meta["engines"], "planned": meta["planned"],
            "accepted_plan": accepted_plan, "calendar": plan.weeks.to_dict(orient="records"),
            "policies": plan.policies.to_dict(orient="records"), "engines": engines.to_dict(orient="records")}


def _week_rows(plan: planner.Plan, week: int, read: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """`read` (a reader of :mod:`core.planning.fleet`) of the engines planned in `week`, with ``dataset``."""
    part = plan.engines[plan.engines["week"] == week]
    with store.connect(read_only=True) as con:
        ids = dict(con.execute("SELECT name, id FROM datasets WHERE name IN (SELECT unnest(?::VARCHAR[]))",
                               [sorted(part["dataset"].unique())]).fetchall())
        gone = sorted(set(part["dataset"]) - set(ids))
        if gone:
            raise UserError(f"The dataset {gone[0]} is no longer loaded; compute the plan again.")
        rows = read(con, [ids[d] for d in part["dataset"]], part["unit"].tolist(), part["cycle"].tolist())
    names = {v: k for k, v in ids.items()}
    return rows.assign(dataset=rows["dataset_id"].map(names)).drop(columns="dataset_id")


def week_readings(plan: planner.Plan, week: int) -> pd.DataFrame:
    """The last reading of each engine planned in `week`: DataFrame[dataset, unit, cycle, setting_*, sensor_*]."""
    return _week_rows(plan, week, lambda con, ids, units, _until: fleet.latest_readings(con, ids, units))


def week_explanations(plan: planner.Plan, week: int, ensemble: Ensemble, explainer: Explainer,
                      k: int = EXPLAINED_INPUTS) -> dict[tuple[str, int], list[str]]:
    """(dataset, unit) -> the explanation in words of each engine planned in `week`: the SHAP attributions of the
    model's RUL at the cycle of the stored score the plan used (:func:`core.serving.whatif.labelled_sentences`:
    the start, the `k` inputs that move it most, the rest), so it adds up to the RUL the plan shows."""
    from core.serving import whatif  # torch comes with it: only a work package with explanations needs it

    rows = _week_rows(plan, week, fleet.engine_readings)
    if rows.empty:
        return {}
    fs = ensemble.features(rows, "last")
    keys = fs.keys
    explained = explainer.explain_rows(fs, np.arange(len(keys)))
    return {(str(d), int(u)): whatif.labelled_sentences(e, k)
            for d, u, e in zip(keys["dataset"], keys["unit"], explained, strict=True)}
