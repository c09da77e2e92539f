"""SHAP attributions of the ensemble's RUL prediction, for one engine or many at once.

Two parts, combined by the ensemble's RUL blend weight ``w`` (XGBoost's share):

- XGBoost: exact TreeSHAP values from ``booster.predict(dmatrix, pred_contribs=True)`` (the
  same numbers as ``shap.TreeExplainer``, computed by XGBoost itself). They add up to the
  regressor's raw output; the bias column is the regressor's expected value.
- LSTM: expected gradients (the estimator of ``shap.GradientExplainer``) against a small background
  of training windows, one value per (time step, input channel): the mean over sample points
  ``ref + t * (x - ref)`` (``ref`` a background window, ``t`` in [0, 1]) of the gradient times
  ``x - ref``. ``DeepExplainer`` does not support ``nn.LSTM``. Computed here in one batched
  forward and backward pass for all points of all engines explained together (with
  :func:`gradient_explainer_plan` the values equal GradientExplainer's); the points are drawn by
  :func:`stratified_plan` by default (see :class:`Explainer`). The network stays in ``eval()``
  mode (dropout off), as when predicting. They add up (approximately, by sampling) to the
  network's RUL output minus its mean over the background.

Both parts explain an RUL in cycles, so per sensor the combined attribution is
``w * (sum of the sensor's tree features) + (1 - w) * (sum over time of the sensor's LSTM
channels: its reading and its summary channels)``; the engine's age (tree feature ``cycle``, LSTM age channel) is one more input.
These add up to the blended RUL before it is clipped to ``[0, cap]``.

The explanation these values make, and how it adds up to the served RUL, is :mod:`models.explanation`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import xgboost as xgb
from torch import nn

from core.data.features import FeatureSet
from core.errors import UserError
from models.ensemble import Ensemble
from models.explanation import AGE, Explanation, TopFactors, sensor_label

RowIndex = Sequence[int] | np.ndarray
"""Rows of a feature set to explain: a list of row numbers or an integer array."""


_HELPERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="explain")
"""Threads that run parts of an explanation next to the caller: XGBoost's TreeSHAP and torch release the GIL,
so the parts use both cores (each part itself single-threaded, see :func:`core.serving.whatif.serving_setup`)."""


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


def tree_contributions(ensemble: Ensemble, tree: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values (n, features), bias (n,)) of the XGBoost RUL regressor for rows of tree features.

    The matrix is built with one thread and without the booster's 200-odd feature names (the columns are the
    pipeline's own, checked by count): on two busy cores XGBoost's default of one thread per core made
    building a one-row matrix cost about 16 ms of waiting for the second thread, against 0.7 ms.
    """
    x = np.asarray(tree, dtype=np.float32)
    booster = ensemble.xgb.reg
    if x.ndim != 2 or x.shape[1] != booster.num_features():
        raise UserError(f"The tree features have shape {x.shape} but the model expects {booster.num_features()} "
                        "columns.")
    contribs = booster.predict(xgb.DMatrix(x, nthread=1), pred_contribs=True, validate_features=False)
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


NSAMPLES = 16
"""Expected-gradient sample points per explained engine when serving (see :class:`Explainer`)."""
POINTS_PER_PASS = 128
"""Sample points per forward and backward pass of the LSTM: bounds the memory a batched explanation holds at once
(the pass keeps every LSTM step's activations for the gradient) at a cost that grows with the points anyway."""


def gradient_explainer_plan(n_background: int, nsamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(background index, t) of each sample point, drawn as ``shap.GradientExplainer.shap_values(x,
    nsamples=nsamples, rseed=seed)`` draws them for one input: independent uniform picks."""
    rng = np.random.RandomState(seed)
    picks, ts = np.empty(nsamples, dtype=np.int64), np.empty(nsamples)
    for k in range(nsamples):
        picks[k] = rng.choice(n_background)
        ts[k] = rng.uniform()
    return picks, ts


def stratified_plan(n_background: int, nsamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(background index, t) of each sample point, stratified: every background window is used once before
    any is used twice (in random order), and ``t`` takes one uniform draw in each of `nsamples` equal parts
    of [0, 1] (in random order). Each point is still uniform over windows and ``t``, so the estimate has the
    expectation of GradientExplainer's independent draws, with less sampling error."""
    rng = np.random.default_rng(seed)
    rounds = -(-nsamples // n_background)
    picks = np.concatenate([rng.permutation(n_background) for _ in range(rounds)])[:nsamples]
    ts = (rng.permutation(nsamples) + rng.uniform(size=nsamples)) / nsamples
    return picks, ts


@dataclass
class Attributions:
    """Attributions (cycles) of several feature rows, per input in :attr:`Explainer.inputs` order."""

    tree: np.ndarray
    """(n, tree features) XGBoost TreeSHAP values."""
    tree_base: np.ndarray
    """(n,) the regressor's expected value."""
    lstm: np.ndarray
    """(n, window, channels) LSTM expected gradients."""
    xgb: np.ndarray
    """(n, inputs) TreeSHAP values summed per input."""
    lstm_by_input: np.ndarray
    """(n, inputs) LSTM values summed over time and over each input's channels."""
    combined: np.ndarray
    """(n, inputs) ``w * xgb + (1 - w) * lstm_by_input``."""


class Explainer:
    """SHAP for the ensemble's predictions; build once per model version and reuse (thread-safe to read).

    `background`: LSTM windows (n, window, channels) from training data, e.g. from
    :func:`background_windows`. `nsamples` expected-gradient sample points per explained engine,
    drawn once by `plan` (``plan(len(background), nsamples, seed)``, :func:`stratified_plan` by default)
    and used for every engine, so that equal inputs get equal attributions and an engine's attributions
    do not depend on the engines explained with it.

    Sampling error, measured against a 4,096-point reference (8 stratified runs of 512) on 40 engines
    of the four test sets and the all-four model of issue 14 (blend weight 0.7), 4 seeds each
    (``BENCHMARKS.md``, issue 14): the combined attribution of an input moved by a median of 1.26
    cycles (95th percentile 3.17) with 16 stratified points, against 1.22 (2.38) with GradientExplainer's
    32 independent points (the former default), 2.13 (3.91) with 16 independent points and 0.90 (2.39)
    with 32 stratified ones; the top 5 inputs agreed with the reference's in 91 %, 94 %, 88 % and 93 %
    of places. 16 stratified points halve the LSTM's cost for about the same accuracy.
    """

    def __init__(self, ensemble: Ensemble, background: np.ndarray, nsamples: int = NSAMPLES, seed: int = 0,
                 plan: Callable[[int, int, int], tuple[np.ndarray, np.ndarray]] = stratified_plan) -> None:
        channels = ensemble.pipeline.n_channels
        if background.ndim != 3 or background.shape[2] != channels or len(background) == 0:
            raise UserError(f"The explanation background must be LSTM windows with {channels} channels.")
        if nsamples < 1:
            raise UserError("An explanation needs at least one sample point.")
        self.ensemble = ensemble
        self.nsamples = nsamples
        self.seed = seed
        # A copy whose weights need no gradient: the attributions only need the inputs' (same values, about a
        # fifth less work in the backward pass), and the served network is left as it is.
        self._model = _RULOutput(copy.deepcopy(ensemble.lstm.net), ensemble.cap).eval().requires_grad_(False)
        self._background = torch.as_tensor(background, dtype=torch.float32)
        with torch.no_grad():
            self.lstm_base = float(self._model(self._background).mean())
        picks, ts = plan(len(background), nsamples, seed)
        self._refs = self._background[torch.as_tensor(picks)]
        self._t = torch.as_tensor(ts, dtype=torch.float32)[:, None, None]
        self.channels = [AGE if name == "age" else name for name in ensemble.pipeline.lstm_inputs]
        names = ensemble.pipeline.tree_names
        index = {name: i for i, name in enumerate(names)}
        sensors = list(ensemble.pipeline.sensors)
        self.inputs = [*sensors, AGE]
        """The explained inputs: the kept sensors, then the engine's age."""
        # Tree feature -> input and LSTM channel -> input sums; per sensor the column giving its current level
        # in training σ (5-cycle mean, else last value) and its 30-cycle slope column (-1 when there is none).
        self._tree_to_input = np.zeros((len(names), len(self.inputs)))
        for j, sensor in enumerate(sensors):
            self._tree_to_input[[i for i, n in enumerate(names) if n.startswith(f"{sensor}_")], j] = 1.0
        if "cycle" in index:
            self._tree_to_input[index["cycle"], -1] = 1.0
        self._channel_to_input = (np.asarray(self.channels)[:, None] == np.asarray(self.inputs)[None, :]).astype(float)
        self._level = np.array([index.get(f"{s}_mean5", index[f"{s}_last"]) for s in sensors])
        self._slope = np.array([index.get(f"{s}_slope30", -1) for s in sensors])

    def lstm_attributions(self, windows: np.ndarray) -> np.ndarray:
        """(n, window, channels) expected-gradient attributions (cycles) of the LSTM's RUL output.

        Several windows are split in two halves, one computed on a helper thread: each engine's points and
        attributions are its own, so the halves give the same values as one pass.
        """
        x = np.asarray(windows, dtype=np.float32)
        if len(x) < 2:
            return self._expected_gradients(x)
        half = (len(x) + 1) // 2
        first = _HELPERS.submit(self._expected_gradients, x[:half])
        second = self._expected_gradients(x[half:])
        return np.concatenate([first.result(), second])

    def _expected_gradients(self, windows: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(windows)
        out = np.empty(tuple(x.shape), dtype=float)
        step = max(1, POINTS_PER_PASS // self.nsamples)
        for start in range(0, len(x), step):
            part = x[start:start + step, None]
            points = (self._t * part + (1 - self._t) * self._refs).reshape(-1, *x.shape[1:]).requires_grad_()
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(self._model(points).sum(), points)
            delta = (part - self._refs).double()
            out[start:start + len(part)] = (grad.reshape(delta.shape).double() * delta).mean(dim=1).numpy()
        return out

    @staticmethod
    def _rows(fs: FeatureSet, rows: RowIndex) -> np.ndarray:
        """`rows` as an index array; UserError when one is not a row of `fs`."""
        index = np.asarray(rows, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(fs.keys)):
            bad = int(index[(index < 0) | (index >= len(fs.keys))][0])
            raise UserError(f"There is no row {bad} in the features to explain.")
        return index

    def attributions(self, fs: FeatureSet, rows: RowIndex) -> Attributions:
        """Both parts' attributions of the rows `rows` of a feature set: one XGBoost call, on a helper thread
        while the LSTM's batched passes run."""
        index = self._rows(fs, rows)
        tree = _HELPERS.submit(tree_contributions, self.ensemble, fs.tree[index])
        try:
            lstm = self.lstm_attributions(fs.windows[index])
        finally:
            values, bias = tree.result()
        xgb = values @ self._tree_to_input
        by_input = lstm.sum(axis=1) @ self._channel_to_input
        w = float(self.ensemble.weights["rul_xgb"])
        return Attributions(tree=values, tree_base=bias, lstm=lstm, xgb=xgb, lstm_by_input=by_input,
                            combined=w * xgb + (1 - w) * by_input)

    def combined(self, fs: FeatureSet, rows: RowIndex) -> np.ndarray:
        """(n, inputs) the combined attributions of :meth:`attributions`; when the blend gives the LSTM no RUL
        weight its attributions count for nothing, and only the XGBoost part is computed."""
        return self._combined_and_base(fs, rows)[0]

    def _combined_and_base(self, fs: FeatureSet, rows: RowIndex) -> tuple[np.ndarray, np.ndarray]:
        """((n, inputs) combined attributions, (n,) base: the blend of the two parts' expected values)."""
        w = float(self.ensemble.weights["rul_xgb"])
        if w >= 1.0:
            values, bias = tree_contributions(self.ensemble, fs.tree[self._rows(fs, rows)])
            return values @ self._tree_to_input, bias
        parts = self.attributions(fs, rows)
        return parts.combined, w * parts.tree_base + (1 - w) * self.lstm_base

    def top_factors(self, fs: FeatureSet, rows: RowIndex, k: int) -> list[TopFactors]:
        """Per row, the `k` inputs with the largest absolute combined attribution and that attribution
        (the head of :attr:`Explanation.by_sensor`), with the base and the other inputs' sum that complete it."""
        combined, base = self._combined_and_base(fs, rows)
        order = np.argsort(-np.abs(combined), axis=1, kind="stable")
        out = []
        for values, picks, start in zip(combined, order, base, strict=True):
            listed = picks[:k]
            out.append(TopFactors(factors=tuple((self.inputs[j], float(values[j])) for j in listed),
                                  base=float(start), other_inputs=float(values[picks[k:]].sum()),
                                  others=len(picks) - len(listed), attributed=float(start + values.sum())))
        return out

    def served_rul(self, fs: FeatureSet, rows: RowIndex) -> np.ndarray:
        """(n,) the RUL the ensemble serves at rows `rows` of `fs` (its blend, clipped; as
        :meth:`models.ensemble.Ensemble.predict_features` computes it)."""
        index = self._rows(fs, rows)
        part = FeatureSet(keys=fs.keys.iloc[index].reset_index(drop=True), tree=fs.tree[index],
                          windows=fs.windows[index], tree_names=fs.tree_names)
        return self.ensemble.blend(self.ensemble.member_outputs(part))[0]

    def explain_rows(self, fs: FeatureSet, rows: RowIndex,
                     rul: Sequence[float] | None = None) -> list[Explanation]:
        """Explanations of the RUL served at rows `rows` of a feature set, computed together.

        `rul`: the RUL served for those rows, when the caller has it (e.g. the headline's); computed with
        :meth:`served_rul` otherwise. Each explanation adds up to it (:meth:`Explanation.breakdown`).
        """
        index = self._rows(fs, rows)
        served = self.served_rul(fs, index) if rul is None else np.asarray(rul, dtype=float)
        if served.shape != index.shape:
            raise UserError(f"An explanation of {len(index)} rows needs {len(index)} served RUL values, not "
                            f"{served.size}.")
        parts = self.attributions(fs, index)
        with torch.no_grad():
            lstm_output = self._model(torch.as_tensor(fs.windows[index])).squeeze(-1).double().numpy()
        w = float(self.ensemble.weights["rul_xgb"])
        return [Explanation(tree=pd.Series(parts.tree[i], index=fs.tree_names), tree_base=float(parts.tree_base[i]),
                            lstm=parts.lstm[i], lstm_channels=list(self.channels), lstm_base=self.lstm_base,
                            weight_xgb=w, by_sensor=self._by_sensor(fs, int(row), parts, i), rul=float(served[i]),
                            lstm_output=float(lstm_output[i]), cap=float(self.ensemble.cap))
                for i, row in enumerate(index)]

    def explain(self, fs: FeatureSet, row: int = 0, rul: float | None = None) -> Explanation:
        """Explanation of the RUL served at row `row` of a feature set (e.g. ``ensemble.features(frame)``);
        `rul` as in :meth:`explain_rows`."""
        return self.explain_rows(fs, [row], None if rul is None else [rul])[0]

    def levels(self, fs: FeatureSet, rows: RowIndex) -> np.ndarray:
        """(n, inputs) each input's current level at rows `rows` of `fs`, in :attr:`inputs` order: a sensor's
        5-cycle mean (else its last value) in training σ from its regime's mean, and the engine's age in cycles."""
        index = self._rows(fs, rows)
        return np.column_stack([fs.tree[index][:, self._level].astype(float),
                                fs.keys["cycle"].to_numpy()[index].astype(float)])

    def _by_sensor(self, fs: FeatureSet, row: int, parts: Attributions, i: int) -> pd.DataFrame:
        features = fs.tree[row].astype(float)
        change = np.where(self._slope >= 0, features[self._slope] * 29.0, 0.0)
        frame = pd.DataFrame({
            "input": self.inputs,
            "label": [sensor_label(name) for name in self.inputs],
            "combined": parts.combined[i],
            "xgb": parts.xgb[i],
            "lstm": parts.lstm_by_input[i],
            "level": self.levels(fs, [row])[0],
            "change": [*change, 0.0],
        })
        order = np.argsort(-np.abs(parts.combined[i]), kind="stable")
        return frame.iloc[order].reset_index(drop=True)
