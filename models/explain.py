"""SHAP explanations of the ensemble's RUL prediction for one engine.

Two parts, combined by the ensemble's RUL blend weight ``w`` (XGBoost's share):

- XGBoost: exact TreeSHAP values from ``booster.predict(dmatrix, pred_contribs=True)`` (the
  same numbers as ``shap.TreeExplainer``, computed by XGBoost itself). They add up to the
  regressor's raw output; the bias column is the regressor's expected value.
- LSTM: expected gradients from ``shap.GradientExplainer`` against a small background of
  training windows, one value per (time step, input channel). ``DeepExplainer`` does not
  support ``nn.LSTM``. The network stays in ``eval()`` mode (dropout off), as when predicting.
  They add up (approximately, by sampling) to the network's RUL output minus its mean over
  the background.

Both parts explain an RUL in cycles, so per sensor the combined attribution is
``w * (sum of the sensor's tree features) + (1 - w) * (sum over time of the sensor's LSTM
channels: its reading and its summary channels)``; the engine's age (tree feature ``cycle``, LSTM age channel) is one more input.
These add up to the blended RUL before it is clipped to ``[0, cap]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shap
import torch
from torch import nn

from core.data.features import FeatureSet
from core.errors import UserError
from models.ensemble import Ensemble

AGE = "age"
"""Name of the combined input 'engine age' (tree feature ``cycle``, LSTM age channel)."""

SENSOR_NAMES: dict[str, str] = {
    "sensor_1": "T2, fan inlet temperature",
    "sensor_2": "T24, LPC outlet temperature",
    "sensor_3": "T30, HPC outlet temperature",
    "sensor_4": "T50, LPT outlet temperature",
    "sensor_5": "P2, fan inlet pressure",
    "sensor_6": "P15, bypass-duct pressure",
    "sensor_7": "P30, HPC outlet pressure",
    "sensor_8": "Nf, physical fan speed",
    "sensor_9": "Nc, physical core speed",
    "sensor_10": "epr, engine pressure ratio",
    "sensor_11": "Ps30, HPC outlet static pressure",
    "sensor_12": "phi, fuel flow to Ps30 ratio",
    "sensor_13": "NRf, corrected fan speed",
    "sensor_14": "NRc, corrected core speed",
    "sensor_15": "BPR, bypass ratio",
    "sensor_16": "farB, burner fuel-air ratio",
    "sensor_17": "htBleed, bleed enthalpy",
    "sensor_18": "Nf_dmd, demanded fan speed",
    "sensor_19": "PCNfR_dmd, demanded corrected fan speed",
    "sensor_20": "W31, HPT coolant bleed",
    "sensor_21": "W32, LPT coolant bleed",
}
"""What each C-MAPSS sensor measures (Saxena et al., 2008)."""

TREND_SIGMA = 0.5
"""A sensor whose fitted change over the last 30 cycles exceeds this many training σ is 'trending'."""
LEVEL_SIGMA = 1.0
"""A sensor whose 5-cycle mean is more than this many training σ from its regime mean reads 'high'/'low'."""


class _RULOutput(nn.Module):
    """The LSTM's RUL head in cycles, shaped (batch, 1) as GradientExplainer expects."""

    def __init__(self, net: nn.Module, cap: float) -> None:
        super().__init__()
        self.net = net
        self.cap = cap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """RUL in cycles (before clipping) for windows of shape (batch, window, channels)."""
        rul, _ = self.net(x)
        return (rul * self.cap).unsqueeze(-1)


@dataclass
class Explanation:
    """Why the ensemble predicts what it does for one engine at one cycle."""

    tree: pd.Series
    """XGBoost TreeSHAP value (cycles) per tree feature, in feature order."""
    tree_base: float
    """The regressor's expected value (its SHAP bias)."""
    lstm: np.ndarray
    """(window, channels) LSTM attributions in cycles; channel c belongs to input ``lstm_channels[c]``
    (a sensor's own reading and its summary channels all name the sensor)."""
    lstm_channels: list[str]
    lstm_base: float
    """The LSTM's mean RUL over the background windows."""
    weight_xgb: float
    """XGBoost's weight in the RUL blend."""
    by_sensor: pd.DataFrame
    """One row per input (sensors and ``age``): xgb, lstm, combined (cycles), level and change (σ),
    sorted by decreasing ``|combined|``."""

    @property
    def base(self) -> float:
        """The combined starting point: the blend of the two parts' expected values."""
        return self.weight_xgb * self.tree_base + (1 - self.weight_xgb) * self.lstm_base

    @property
    def total(self) -> float:
        """``base`` plus every combined attribution: the blended RUL the explanation accounts for."""
        return self.base + float(self.by_sensor["combined"].sum())

    def top_sensors(self, k: int) -> list[str]:
        """The `k` sensors (not age) with the largest absolute combined attribution."""
        return [s for s in self.by_sensor["input"] if s != AGE][:k]

    def sentences(self, k: int = 4) -> list[str]:
        """Plain-language lines for the `k` inputs that move the prediction most."""
        lines = [f"Starting from the fleet-average prediction of {self.base:.0f} cycles, the readings below "
                 f"move this engine's RUL to about {self.total:.0f} cycles."]
        for row in self.by_sensor.head(k).itertuples(index=False):
            lines.append(describe(row.input, float(row.combined), float(row.level), float(row.change)))
        return lines


def sensor_label(name: str) -> str:
    """``sensor_11 (Ps30, HPC outlet static pressure)``, or the name itself when unknown."""
    if name == AGE:
        return "engine age (cycles run)"
    meaning = SENSOR_NAMES.get(name)
    return f"{name} ({meaning})" if meaning else name


def describe(name: str, effect: float, level: float, change: float) -> str:
    """One sentence: what the input looks like and how many cycles it moves the RUL, e.g.
    ``sensor_11 reads high (+2.1σ) and is trending up: it pushes RUL down by 9 cycles.``"""
    level = round(level, 1) + 0.0  # no "-0.0σ"
    change = round(change, 1) + 0.0
    direction = "down" if effect < 0 else "up"
    push = f"pushes RUL {direction} by {abs(effect):.0f} cycle{'s' if round(abs(effect)) != 1 else ''}"
    if name == AGE:
        return f"The engine's age ({level:.0f} cycles run) {push}."
    states = []
    if abs(level) > LEVEL_SIGMA:
        states.append(f"reads {'high' if level > 0 else 'low'} ({level:+.1f}σ)")
    if abs(change) > TREND_SIGMA:
        states.append(f"is trending {'up' if change > 0 else 'down'} ({change:+.1f}σ over 30 cycles)")
    state = " and ".join(states) if states else f"is near its usual level ({level:+.1f}σ)"
    return f"{name} {state}: it {push}."


def tree_contributions(ensemble: Ensemble, tree: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values (n, features), bias (n,)) of the XGBoost RUL regressor for rows of tree features."""
    contribs = ensemble.xgb.reg.predict(ensemble.xgb.dmatrix(np.asarray(tree, dtype=np.float32)),
                                        pred_contribs=True)
    return contribs[:, :-1].astype(float), contribs[:, -1].astype(float)


def background_windows(ensemble: Ensemble, frame: pd.DataFrame, n: int = 32, seed: int = 0) -> np.ndarray:
    """LSTM windows at `n` random (engine, cycle) rows of `frame` (training readings), seeded.

    Each sampled engine is cut at its sampled cycle and scored at its last row, so only `n`
    windows are built however large `frame` is.
    """
    if frame.empty:
        raise UserError("There are no readings to draw the explanation's background from.")
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(len(frame), size=min(n, len(frame)), replace=False))
    groups = frame.groupby(["dataset", "unit"], sort=False)
    parts = []
    for i, row in enumerate(frame.iloc[picks].itertuples(index=False)):
        engine = groups.get_group((row.dataset, row.unit))
        parts.append(engine[engine["cycle"] <= row.cycle].assign(dataset=f"background_{i:04d}"))
    return ensemble.features(pd.concat(parts, ignore_index=True), "last").windows


class Explainer:
    """SHAP for one engine's prediction; build once per model version and reuse (it is thread-safe to read).

    `background`: LSTM windows (n, window, channels) from training data, e.g. from
    :func:`background_windows`. `nsamples`: expected-gradient samples per explanation (against a
    1024-sample reference, on the all-four model of issue 14 and four test_FD002 engines, the LSTM
    part of an input moved by at most 12 cycles with 16 samples, 6 with 32, 5 with 64; 32 is the
    trade-off with the what-if's latency); `seed` fixes the samples so that equal inputs get equal
    attributions.
    """

    def __init__(self, ensemble: Ensemble, background: np.ndarray, nsamples: int = 32, seed: int = 0) -> None:
        channels = ensemble.pipeline.n_channels
        if background.ndim != 3 or background.shape[2] != channels or len(background) == 0:
            raise UserError(f"The explanation background must be LSTM windows with {channels} channels.")
        self.ensemble = ensemble
        self.nsamples = nsamples
        self.seed = seed
        self._model = _RULOutput(ensemble.lstm.net, ensemble.cap).eval()
        self._background = torch.as_tensor(background, dtype=torch.float32)
        with torch.no_grad():
            self.lstm_base = float(self._model(self._background).mean())
        self._gradient = shap.GradientExplainer(self._model, self._background, batch_size=nsamples)
        self.channels = [AGE if name == "age" else name for name in ensemble.pipeline.lstm_inputs]
        names = ensemble.pipeline.tree_names
        self._tree_index = {name: i for i, name in enumerate(names)}
        sensors = ensemble.pipeline.sensors
        # Per sensor: its tree feature columns, the column giving its current level in training σ
        # (5-cycle mean, else last value) and its 30-cycle slope column (-1 when there is none).
        self._columns = {s: np.array([i for i, n in enumerate(names) if n.startswith(f"{s}_")]) for s in sensors}
        self._level = {s: self._tree_index.get(f"{s}_mean5", self._tree_index[f"{s}_last"]) for s in sensors}
        self._slope = {s: self._tree_index.get(f"{s}_slope30", -1) for s in sensors}

    def lstm_attributions(self, windows: np.ndarray) -> np.ndarray:
        """(n, window, channels) expected-gradient attributions (cycles) of the LSTM's RUL output."""
        x = torch.as_tensor(windows, dtype=torch.float32)
        state = np.random.get_state()  # shap reseeds numpy's global generator; leave it as it was
        try:
            values = self._gradient.shap_values(x, nsamples=self.nsamples, rseed=self.seed)
        finally:
            np.random.set_state(state)
        values = np.asarray(values[0] if isinstance(values, list) else values, dtype=float)
        return values.reshape(x.shape)

    def explain(self, fs: FeatureSet, row: int = 0) -> Explanation:
        """Explanation of the blended RUL at row `row` of a feature set (e.g. ``ensemble.features(frame)``)."""
        if not 0 <= row < len(fs.keys):
            raise UserError(f"There is no row {row} in the features to explain.")
        values, bias = tree_contributions(self.ensemble, fs.tree[row:row + 1])
        lstm = self.lstm_attributions(fs.windows[row:row + 1])[0]
        tree = pd.Series(values[0], index=fs.tree_names)
        w = float(self.ensemble.weights["rul_xgb"])
        return Explanation(tree=tree, tree_base=float(bias[0]), lstm=lstm, lstm_channels=list(self.channels),
                           lstm_base=self.lstm_base, weight_xgb=w,
                           by_sensor=self._by_sensor(fs, row, tree, lstm, w))

    def _by_sensor(self, fs: FeatureSet, row: int, tree: pd.Series, lstm: np.ndarray, w: float) -> pd.DataFrame:
        features, values = fs.tree[row].astype(float), tree.to_numpy()
        xgb_part = [float(values[cols].sum()) for cols in self._columns.values()]
        level = [float(features[i]) for i in self._level.values()]
        change = [float(features[i]) * 29.0 if i >= 0 else 0.0 for i in self._slope.values()]
        cycle_col = self._tree_index.get("cycle")
        per_channel, inputs = lstm.sum(axis=0), np.asarray(self.channels)
        frame = pd.DataFrame({
            "input": [*self._columns, AGE],
            "xgb": [*xgb_part, float(values[cycle_col]) if cycle_col is not None else 0.0],
            "lstm": [float(per_channel[inputs == name].sum()) for name in [*self._columns, AGE]],
            "level": [*level, float(fs.keys["cycle"].iloc[row])],
            "change": [*change, 0.0],
        })
        frame["combined"] = w * frame["xgb"] + (1 - w) * frame["lstm"]
        frame["label"] = frame["input"].map(sensor_label)
        order = np.argsort(-frame["combined"].abs().to_numpy(), kind="stable")
        return frame.iloc[order][["input", "label", "combined", "xgb", "lstm", "level", "change"]].reset_index(drop=True)
