"""Predictions for API requests: engines given with their readings, or the stored engines of a dataset.

A request's engines become units 1..n of one frame (the model only sees integer units); each answer
carries the operator's engine id again. ``factors`` are the five inputs with the largest absolute
SHAP contribution to the blended RUL (XGBoost TreeSHAP and the LSTM's expected gradients, weighted as
the blend is), named by the sensor table. With them come ``base`` (the fleet-average prediction they start
from) and the ``remainder`` that closes the sum, ``base + sum(contribution) + remainder == rul``, split into
``other_inputs`` (the inputs not listed) and ``approximation`` (what the attributions leave out: clipping to
``[0, cap]`` and the LSTM's sampling error; see :class:`models.explanation.Breakdown`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.data import queries, sensors, store
from core.errors import UserError
from core.server.batcher import Batcher, Readings
from core.server.model_cache import ModelCache, Served
from models.explanation import AGE

if TYPE_CHECKING:
    from models.explanation import TopFactors

TOP_FACTORS = 5
ANSWER_COLUMNS = ("cycle", "rul", "rul_low", "rul_high", "p_fail_30", "risk", "ood", "ood_reason")
"""The columns an answer shares with the audit trail (``predictions``)."""


def _factor(name: str, contribution: float) -> dict[str, Any]:
    if name == AGE:
        return {"name": "age", "column": "cycle", "label": "engine age (cycles run)", "contribution": contribution}
    return {"name": sensors.mnemonic(name), "column": name, "label": sensors.label(name), "contribution": contribution}


def _answers(predictions: Mapping[str, np.ndarray] | pd.DataFrame, ids: dict[int, str], version: int) -> list[dict[str, Any]]:
    columns = {name: np.asarray(predictions[name]).tolist() for name in ("unit", *ANSWER_COLUMNS)}
    return [{"engine": ids[int(unit)], "cycle": int(cycle), "rul": float(rul), "rul_low": float(low),
             "rul_high": float(high), "p_fail_30": float(p), "risk": str(risk), "ood": bool(ood),
             "ood_reason": str(reason), "model_version": version}
            for unit, cycle, rul, low, high, p, risk, ood, reason in zip(*columns.values(), strict=True)]


def predict_frame(cache: ModelCache, served: Served, frame: Readings, ids: dict[int, str], factors: bool,
                  batcher: Batcher | None = None) -> list[dict[str, Any]]:
    """One answer per engine of `frame` (a model frame or its columns; units ``ids`` keys, 1..n) at its last cycle,
    with ``factors`` if asked.

    With a `batcher`, the model call and the explanation are shared with concurrent requests
    (:mod:`core.server.batcher`); without, all engines of `frame` are explained together.
    """
    explainer = cache.explainer(served) if factors else None
    predictions: Mapping[str, np.ndarray] | pd.DataFrame
    tops: list[TopFactors] | None
    if batcher is not None:
        shared = batcher.predict(served, frame, len(ids), explainer, TOP_FACTORS if factors else 0)
        predictions, tops = shared.predictions, shared.factors
    else:
        fs = served.ensemble.features(pd.DataFrame(frame), "last")
        predictions = served.ensemble.predict_features(fs)
        tops = explainer.top_factors(fs, np.arange(len(predictions)), TOP_FACTORS) if explainer is not None else None
    answers = _answers(predictions, ids, served.version)
    if tops is not None:
        for answer, top in zip(answers, tops, strict=True):
            parts = top.breakdown(answer["rul"])
            answer["factors"] = [_factor(name, contribution) for name, contribution in parts.factors]
            answer.update(base=parts.base, other_inputs=parts.other_inputs, approximation=parts.approximation,
                          remainder=parts.remainder)
    return answers


def stored_frame(dataset: str) -> tuple[pd.DataFrame, dict[int, str]]:
    """The readings of a stored dataset (with ``dataset``) and its unit -> engine id map."""
    from core.serving import scoring

    rows, _truth = scoring.fleet_frame([dataset])
    if rows.empty:
        raise UserError(f"Dataset {dataset} holds no readings.")
    with store.connect(read_only=True) as con:
        ids = engine_ids(con, dataset, rows["unit"].unique())
    return rows, ids


def engine_ids(con: Any, dataset: str, units: np.ndarray) -> dict[int, str]:
    """unit -> engine id for a stored dataset (the unit number as text where no id is recorded)."""
    known = queries.engine_ids(con, dataset)
    return {int(u): known.get(int(u), str(int(u))) for u in units}


def record(predictions: list[dict[str, Any]], dataset: str, ids: dict[int, str], version: int) -> None:
    """Store a dataset's predictions in the audit trail (``predictions``), as ``core score`` does."""
    from core.serving import scoring

    unit_of = {engine: unit for unit, engine in ids.items()}
    frame = pd.DataFrame([{**{k: p[k] for k in ANSWER_COLUMNS}, "unit": unit_of[p["engine"]], "dataset": dataset}
                          for p in predictions])
    scoring.record(frame, version)
