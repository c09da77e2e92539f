"""Fleet explanations: what drives the model over the engines of a dataset, stored by model version.

For a dataset in service, a seeded sample of at most :data:`SAMPLE` of its open engines is explained at each
engine's last cycle with the serving explainer (:class:`models.explain.Explainer`): per engine and input the
XGBoost TreeSHAP value, the LSTM's expected gradients and their blend (cycles), the input's value (the last raw
reading; the engine's age for ``age``), its regime-normalised level (training σ) and the engine's operating
regime at that cycle. Mean |SHAP| per input over the sample (:func:`importance`) is the fleet's global
importance, for each member and the blend; the points themselves draw a dependence plot per input.

The sample bounds the work and what a page draws however large the fleet (20,000 engines cost what 500 do),
and the view says how many engines it is computed on. The sample adds up as each engine does: the sample's mean
served RUL is its mean base plus every input's mean blended effect plus the mean approximation
(:meth:`FleetExplanation.check_sum`).

Computing is heavy (seconds of SHAP), so it runs in the background job :mod:`core.operations.explain_job`,
after scoring; pages only read what it stored (:func:`load`). A stored explanation is *stale* for a dataset when
its readings or open engines changed since (:func:`stale_datasets`), and is computed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd

from core.data import score_queries, store
from core.data.store import first_row, utc_now
from core.errors import UserError

if TYPE_CHECKING:
    from models.ensemble import Ensemble
    from models.explain import Explainer

SAMPLE = 500
"""Most engines of a dataset explained (seeded sample): bounds the job's work and the points a page draws."""
SEED = 0
POINT_COLUMNS = ["unit", "regime", "input", "value", "level", "xgb", "lstm", "combined"]

_OPEN_ENGINES = "SELECT unit FROM engines WHERE dataset_id = ? AND closed_event IS NULL ORDER BY unit"
_STALE = (
    "SELECT d.name FROM datasets d LEFT JOIN fleet_explanations f ON f.dataset_id = d.id AND f.model_version = ? "
    "WHERE d.role IN ('fleet', 'evaluation') "
    "AND EXISTS (SELECT 1 FROM engines o WHERE o.dataset_id = d.id AND o.closed_event IS NULL) AND (f.dataset_id IS NULL OR f.data_rows <> d.rows "
    "OR f.engines <> (SELECT count(*) FROM engines e WHERE e.dataset_id = d.id AND e.closed_event IS NULL)) "
    "ORDER BY d.id"
)


@dataclass(frozen=True)
class FleetExplanation:
    """A dataset's stored fleet explanation for one model version."""

    dataset: str
    model_version: int
    computed_at: datetime
    engines: int
    """Open engines the dataset held when it was computed."""
    sampled: int
    """Engines explained (a seeded sample when fewer than :attr:`engines`)."""
    seed: int
    weight_xgb: float
    """XGBoost's weight in the RUL blend."""
    base: float
    """The sample's mean base (the blend of the two models' expected values)."""
    rul: float
    """The sample's mean served RUL."""
    approximation: float
    """The sample's mean approximation (what the attributions leave out: clipping, LSTM sampling)."""
    points: pd.DataFrame
    """One row per (engine, input): :data:`POINT_COLUMNS`."""

    def importance(self) -> pd.DataFrame:
        """:func:`importance` of the points."""
        return importance(self.points)

    def check_sum(self) -> float:
        """Mean served RUL minus (mean base + every input's mean blended effect + mean approximation): zero up to
        rounding, since each engine's explanation adds up to its served RUL."""
        effects = self.points.groupby("input")["combined"].sum().sum() / max(self.sampled, 1)
        return self.rul - (self.base + float(effects) + self.approximation)


def importance(points: pd.DataFrame) -> pd.DataFrame:
    """Mean |SHAP| per input over the engines in `points` for XGBoost, the LSTM and the blend (cycles), and the
    blend's mean signed effect: DataFrame[input, xgb, lstm, combined, mean_effect], largest blended first."""
    frame = points.assign(xgb=points["xgb"].abs(), lstm=points["lstm"].abs(), mean_effect=points["combined"],
                          combined=points["combined"].abs())
    table = frame.groupby("input", sort=False)[["xgb", "lstm", "combined", "mean_effect"]].mean().reset_index()
    return table.sort_values("combined", ascending=False, kind="stable").reset_index(drop=True)


def sample_units(units: list[int], size: int = SAMPLE, seed: int = SEED) -> list[int]:
    """At most `size` of `units`, drawn with `seed` (all of them when there are no more), in unit order."""
    if len(units) <= size:
        return sorted(units)
    rng = np.random.default_rng(seed)
    return sorted(int(u) for u in rng.choice(np.asarray(units), size=size, replace=False))


def explain_engines(ensemble: Ensemble, explainer: Explainer, rows: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """(points, sums) for the engines in `rows` (readings with a ``dataset`` column) at their last cycle.

    points: :data:`POINT_COLUMNS`, one row per (engine, input); sums: the engines' mean ``base``, ``rul`` (served)
    and ``approximation`` (served RUL minus base minus every input's effect)."""
    fs = ensemble.features(rows, "last")
    n = len(fs.keys)
    if n == 0:
        raise UserError("There are no engines to explain.")
    index = np.arange(n)
    parts = explainer.attributions(fs, index)
    served = explainer.served_rul(fs, index)
    w = float(ensemble.weights["rul_xgb"])
    base = w * parts.tree_base + (1 - w) * explainer.lstm_base
    approximation = served - base - parts.combined.sum(axis=1)
    last = rows.sort_values(["dataset", "unit", "cycle"]).groupby(["dataset", "unit"], sort=True).tail(1)
    keys = fs.keys[["dataset", "unit"]].merge(last, on=["dataset", "unit"], how="left")
    regime = ensemble.pipeline.assign_regimes(keys[["setting_1", "setting_2", "setting_3"]].to_numpy(float))
    inputs = explainer.inputs
    sensors = [name for name in inputs if name in keys.columns]
    value = np.column_stack([keys[sensors].to_numpy(float), fs.keys["cycle"].to_numpy(float)])
    k = len(inputs)
    points = pd.DataFrame({
        "unit": np.repeat(fs.keys["unit"].to_numpy(int), k),
        "regime": np.repeat(regime.astype(int) + 1, k),
        "input": np.tile(np.asarray(inputs, dtype=object), n),
        "value": value.ravel(),
        "level": explainer.levels(fs, index).ravel(),
        "xgb": parts.xgb.ravel(),
        "lstm": parts.lstm_by_input.ravel(),
        "combined": parts.combined.ravel(),
    })
    sums = {"base": float(base.mean()), "rul": float(served.mean()), "approximation": float(approximation.mean()),
            "weight_xgb": w}
    return points, sums


def compute(name: str, version: int, ensemble: Ensemble, explainer: Explainer, size: int = SAMPLE,
            seed: int = SEED) -> FleetExplanation:
    """Explain a seeded sample of the open engines of dataset `name` with model `version` and store it (replacing
    that version's earlier one for the dataset, in one transaction). Reads only the sampled engines' readings."""
    with store.connect(read_only=True) as con:
        found = first_row(con, "SELECT id, rows FROM datasets WHERE name = ?", [name])
        if found is None:
            raise UserError(f"There is no dataset named '{name}'.")
        dataset_id, data_rows = int(found[0]), int(found[1])
        units = [int(u) for (u,) in con.execute(_OPEN_ENGINES, [dataset_id]).fetchall()]
        if not units:
            raise UserError(f"Dataset '{name}' has no open engines to explain.")
        chosen = sample_units(units, size, seed)
        rows = score_queries.scoring_readings(con, dataset_id, name, chosen, ensemble.pipeline.history)
    points, sums = explain_engines(ensemble, explainer, rows)
    when = utc_now()

    def write(con: duckdb.DuckDBPyConnection) -> None:
        with store.transaction(con):
            for table in ("fleet_shap", "fleet_explanations"):
                con.execute(f"DELETE FROM {table} WHERE dataset_id = ? AND model_version = ?",
                            [dataset_id, str(version)])
            con.execute("INSERT INTO fleet_explanations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [dataset_id, str(version), when, data_rows, len(units), len(chosen), seed,
                         sums["weight_xgb"], sums["base"], sums["rul"], sums["approximation"]])
            frame = points.assign(dataset_id=dataset_id, model_version=str(version))
            con.register("fleet_shap_new", frame)
            try:
                con.execute("INSERT INTO fleet_shap SELECT dataset_id, model_version, " + ", ".join(POINT_COLUMNS)
                            + " FROM fleet_shap_new")
            finally:
                con.unregister("fleet_shap_new")

    store.write(write)
    return FleetExplanation(dataset=name, model_version=version, computed_at=when, engines=len(units),
                            sampled=len(chosen), seed=seed, weight_xgb=sums["weight_xgb"], base=sums["base"],
                            rul=sums["rul"], approximation=sums["approximation"], points=points)


def load(con: duckdb.DuckDBPyConnection, name: str, version: int) -> FleetExplanation | None:
    """The stored fleet explanation of dataset `name` for model `version`, or None when none is stored."""
    head = first_row(con, "SELECT f.dataset_id, f.computed_at, f.engines, f.sampled, f.seed, f.weight_xgb, f.base, "
                          "f.rul, f.approximation FROM fleet_explanations f JOIN datasets d ON d.id = f.dataset_id "
                          "WHERE d.name = ? AND f.model_version = ?", [name, str(version)])
    if head is None:
        return None
    points = con.execute("SELECT " + ", ".join(POINT_COLUMNS) + " FROM fleet_shap WHERE dataset_id = ? AND "
                         "model_version = ? ORDER BY unit, input", [head[0], str(version)]).df()
    return FleetExplanation(dataset=name, model_version=version, computed_at=head[1], engines=int(head[2]),
                            sampled=int(head[3]), seed=int(head[4]), weight_xgb=float(head[5]), base=float(head[6]),
                            rul=float(head[7]), approximation=float(head[8]), points=points)


def stale_datasets(con: duckdb.DuckDBPyConnection, version: int) -> list[str]:
    """Datasets in service with open engines whose fleet explanation for model `version` is missing, or was
    computed on other readings or another set of open engines than they now hold."""
    return [str(name) for (name,) in con.execute(_STALE, [str(version)]).fetchall()]
