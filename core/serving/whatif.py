"""One engine's prediction, explanation and what-if: shift recent sensor readings and predict again.

A what-if adds a fixed amount (raw sensor units) to chosen sensors over the engine's last
``last_n`` cycles, then recomputes features, the ensemble's RUL, interval, failure
probability, risk and SHAP explanation, next to the unmodified baseline. Each outcome's explanation adds up to
that outcome's served RUL (:meth:`models.explanation.Explanation.breakdown`), so its sentences quote the RUL its
metric shows.

Slider ranges come from the training data as the fitted feature pipeline stores it: per
kept sensor, σ is the mean over operating regimes of the within-regime standard deviation
of the training readings, and a shift may go from ``-SPAN_SIGMA * σ`` to ``+SPAN_SIGMA * σ``
(degradation moves C-MAPSS sensors by a few σ over an engine's life).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from core.data import queries, sensors, store
from core.data.cmapss import SENSORS
from core.errors import UserError
from models.ensemble import Ensemble
from models.explain import Explainer, background_windows
from models.explanation import Explanation

SPAN_SIGMA = 3.0
"""Slider half-range in training σ."""
SLIDER_STEPS = 60
"""Roughly how many steps a slider has from end to end."""
BACKGROUND_SIZE = 32
"""Training windows in the LSTM explanation's background."""
SERVING_THREADS = 1
"""CPU threads per prediction when serving (torch and XGBoost); see :func:`serving_setup`."""


@dataclass(frozen=True)
class SliderRange:
    """Range of the shift (raw units) a what-if slider offers for one sensor."""

    sensor: str
    low: float
    high: float
    step: float
    sigma: float
    """Training within-regime standard deviation of the sensor (raw units)."""


def _nice_step(value: float) -> float:
    """`value` rounded down to 1, 2 or 5 times a power of ten."""
    exponent = math.floor(math.log10(value))
    for mantissa in (5.0, 2.0, 1.0):
        step = mantissa * 10.0 ** exponent
        if step <= value:
            return step
    return 10.0 ** exponent


def slider_ranges(ensemble: Ensemble) -> dict[str, SliderRange]:
    """Slider range per sensor the model uses, from the training statistics in its feature pipeline."""
    pipeline = ensemble.pipeline
    ranges = {}
    for sensor in pipeline.sensors:
        sigma = float(np.mean(pipeline.sensor_std[:, SENSORS.index(sensor)]))
        step = _nice_step(2 * SPAN_SIGMA * sigma / SLIDER_STEPS)
        half = math.ceil(SPAN_SIGMA * sigma / step) * step
        ranges[sensor] = SliderRange(sensor=sensor, low=-half, high=half, step=step, sigma=sigma)
    return ranges


def serving_setup(ensemble: Ensemble, threads: int = SERVING_THREADS) -> Ensemble:
    """Set torch and the ensemble's boosters to `threads` CPU threads for serving; return the ensemble.

    The dashboard answers many small requests (one engine, one what-if) from several sessions
    at once, often next to a training job; on a small machine one thread per request avoids
    oversubscribing the cores, which made multi-threaded one-engine predictions many times
    slower in the latency benchmark. Idempotent; torch's setting is process-wide.
    """
    if threads < 1:
        raise UserError("Serving needs at least one CPU thread.")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    for booster in (ensemble.xgb.reg, ensemble.xgb.clf):
        booster.set_param({"nthread": threads})
    return ensemble


def engine_rows(frame: pd.DataFrame, dataset: str, unit: int) -> pd.DataFrame:
    """The readings of engine `unit` of `dataset` in `frame`, sorted by cycle; UserError if it has none."""
    rows = frame[(frame["dataset"] == dataset) & (frame["unit"] == unit)]
    if rows.empty:
        raise UserError(f"Engine {unit} of {dataset} has no readings.")
    return rows.sort_values("cycle").reset_index(drop=True)


def shift_recent(engine: pd.DataFrame, shifts: Mapping[str, float], last_n: int) -> pd.DataFrame:
    """A copy of one engine's readings with ``shifts[sensor]`` added over its last `last_n` cycles."""
    unknown = [s for s in shifts if s not in SENSORS]
    if unknown:
        raise UserError(f"'{unknown[0]}' is not a C-MAPSS sensor.")
    if last_n < 1:
        raise UserError("A what-if must shift at least the last cycle.")
    if not all(math.isfinite(float(v)) for v in shifts.values()):
        raise UserError("A what-if shift must be a finite number.")
    out = engine.sort_values("cycle").reset_index(drop=True)
    recent = np.arange(len(out)) >= len(out) - last_n
    for sensor, amount in shifts.items():
        if amount:
            out[sensor] = out[sensor].astype(float) + np.where(recent, float(amount), 0.0)
    return out


def normalised(ensemble: Ensemble, engine: pd.DataFrame) -> pd.DataFrame:
    """One engine's regime-normalised kept sensors (training σ units) with its cycles, as the models see them."""
    prep = ensemble.pipeline.prepare(engine)
    frame = pd.DataFrame(prep.values, columns=ensemble.pipeline.sensors)
    frame.insert(0, "cycle", prep.keys["cycle"].to_numpy())
    return frame


@dataclass
class Outcome:
    """The ensemble's answer for one engine at its last cycle."""

    cycle: int
    rul: float
    rul_low: float
    rul_high: float
    p_fail_30: float
    risk: str
    explanation: Explanation | None = None
    ood: bool = False
    """The engine ran outside the model's experience (:mod:`models.ood`)."""
    ood_reason: str = ""
    """Which operating regime or sensors, in a sentence ('' when not flagged)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain values (the explanation left out)."""
        return {"cycle": self.cycle, "rul": self.rul, "rul_low": self.rul_low, "rul_high": self.rul_high,
                "p_fail_30": self.p_fail_30, "risk": self.risk, "ood": self.ood, "ood_reason": self.ood_reason}


def predict_one(ensemble: Ensemble, explainer: Explainer | None, engine: pd.DataFrame) -> Outcome:
    """Features, blended RUL, interval, probability, risk and (with an explainer) SHAP for one engine."""
    fs = ensemble.features(engine, "last")
    if len(fs.keys) != 1:
        raise UserError("A what-if works on the readings of exactly one engine.")
    row = ensemble.predict_features(fs).iloc[0]
    rul = float(row["rul"])
    return Outcome(
        cycle=int(row["cycle"]), rul=rul, rul_low=float(row["rul_low"]),
        rul_high=float(row["rul_high"]), p_fail_30=float(row["p_fail_30"]), risk=str(row["risk"]),
        explanation=explainer.explain(fs, rul=rul) if explainer is not None else None,
        ood=bool(row["ood"]), ood_reason=str(row["ood_reason"]),
    )


@dataclass
class WhatIf:
    """Baseline and modified outcomes of one what-if."""

    baseline: Outcome
    modified: Outcome
    shifts: dict[str, float] = field(default_factory=dict)
    last_n: int = 1

    @property
    def rul_change(self) -> float:
        """Modified minus baseline predicted RUL (cycles)."""
        return self.modified.rul - self.baseline.rul


def what_if(ensemble: Ensemble, explainer: Explainer | None, engine: pd.DataFrame, shifts: Mapping[str, float],
            last_n: int, baseline: Outcome | None = None) -> WhatIf:
    """Predict with `shifts` applied over the last `last_n` cycles, next to the baseline (computed if not given)."""
    base = baseline if baseline is not None else predict_one(ensemble, explainer, engine)
    active = {s: float(v) for s, v in shifts.items() if v}
    modified = predict_one(ensemble, explainer, shift_recent(engine, active, last_n)) if active else base
    return WhatIf(baseline=base, modified=modified, shifts=active, last_n=last_n)


def training_background(ensemble: Ensemble, n: int = BACKGROUND_SIZE, seed: int = 0) -> np.ndarray:
    """LSTM background windows drawn from the model's training datasets as loaded in the store.

    Falls back to every loaded training dataset when the model's own are no longer loaded;
    UserError if no training data is loaded at all.
    """
    trained_on = list(ensemble.meta.get("trained_on", {}).get("datasets", []))
    with store.connect(read_only=True) as con:
        train_names = queries.dataset_names(con, role="history")
        names = [name for name in trained_on if name in train_names] or train_names
        if not names:
            raise UserError("Load the training data (train_FD00x) to explain predictions: the explanation "
                            "compares against training engines.")
        frame = queries.readings_many(con, names)
    return background_windows(ensemble, frame, n=n, seed=seed)


def build_explainer(ensemble: Ensemble, n: int = BACKGROUND_SIZE, seed: int = 0) -> Explainer:
    """An explainer for `ensemble` with a background from its training data (see :func:`training_background`)."""
    return Explainer(ensemble, training_background(ensemble, n=n, seed=seed), seed=seed)


def labelled_sentences(explanation: Explanation, k: int = 4) -> list[str]:
    """:meth:`Explanation.sentences` with each sensor named by its label (``Ps30 HPC static pressure (psia)``)."""
    return explanation.sentences(k, label=sensors.label)
