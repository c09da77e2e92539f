"""What an explanation of one served RUL is, how it adds up, and how it reads.

An explanation accounts for the RUL as served (:meth:`models.ensemble.Ensemble.predict_features`): ``base``
(the blend of the two models' expected values) plus the listed inputs' contributions plus one remainder equals it.
The remainder has two named parts (:class:`Breakdown`): ``other inputs``, the summed contributions of the inputs
not listed, and ``approximation``, what the attributions leave out: the clipping of each model's RUL and of the
blend to ``[0, cap]`` (the blend weights themselves are inside every contribution; the RUL has no calibration
step) and the sampling error of the LSTM's expected gradients. The sentences quote whole cycles rounded so that
they add up to the RUL printed (:func:`apportion`).

The attributions themselves are computed by :mod:`models.explain`; this module needs neither torch nor XGBoost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
import pandas as pd

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


APPROXIMATION = "approximation"
"""Name of the remainder term the attributions leave out (clipping to ``[0, cap]``, LSTM sampling error)."""


def apportion(values: Sequence[float], target: int) -> list[int]:
    """`values` as whole numbers that add up to `target` (largest remainders): each is its value rounded down or
    up, so that terms printed in a sentence add up to the total it prints. `target` is the rounded sum of the values
    (or of a whole they are part of)."""
    floors = [math.floor(v) for v in values]
    order = sorted(range(len(values)), key=lambda i: values[i] - floors[i], reverse=True)
    for i in order[:max(target - sum(floors), 0)]:
        floors[i] += 1
    return floors


@dataclass(frozen=True)
class Breakdown:
    """How one served RUL adds up: ``base + the factors' contributions + other_inputs + approximation == rul``."""

    rul: float
    """The RUL as served: the Fleet and Engine headline, the API's ``rul``."""
    base: float
    """The fleet-average prediction the contributions start from."""
    factors: tuple[tuple[str, float], ...]
    """The listed inputs and their combined contribution (cycles), largest effect first."""
    other_inputs: float
    """The summed contributions of the inputs not listed."""
    others: int
    """How many inputs ``other_inputs`` sums."""
    approximation: float
    """``rul`` minus ``base`` and every input's contribution: what the attributions leave out."""

    @property
    def remainder(self) -> float:
        """``other_inputs + approximation``: the one term that closes the sum."""
        return self.other_inputs + self.approximation


@dataclass(frozen=True)
class TopFactors(Sequence[tuple[str, float]]):
    """One row's top inputs: a sequence of (input, combined contribution), largest effect first, that also carries
    what the rest of its explanation adds. A slice keeps the inputs it drops in ``other_inputs``, so every slice
    adds up as the whole does (:meth:`breakdown`)."""

    factors: tuple[tuple[str, float], ...]
    base: float
    other_inputs: float
    """The summed contributions of the inputs not in ``factors``."""
    others: int
    attributed: float
    """``base`` plus every input's contribution: the blended RUL before clipping, as the attributions estimate it."""

    def __len__(self) -> int:
        return len(self.factors)

    @overload
    def __getitem__(self, index: int) -> tuple[str, float]: ...

    @overload
    def __getitem__(self, index: slice) -> TopFactors: ...

    def __getitem__(self, index: int | slice) -> tuple[str, float] | TopFactors:
        if not isinstance(index, slice):
            return self.factors[index]
        kept = range(len(self.factors))[index]
        dropped = [value for i, (_, value) in enumerate(self.factors) if i not in kept]
        return TopFactors(factors=tuple(self.factors[i] for i in kept), base=self.base,
                          other_inputs=self.other_inputs + float(sum(dropped)), others=self.others + len(dropped),
                          attributed=self.attributed)

    def __iter__(self) -> Iterator[tuple[str, float]]:
        return iter(self.factors)

    def breakdown(self, rul: float) -> Breakdown:
        """The sum for the served RUL `rul` (the prediction of the row these factors explain)."""
        return Breakdown(rul=rul, base=self.base, factors=self.factors, other_inputs=self.other_inputs,
                         others=self.others, approximation=rul - self.attributed)


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
    rul: float
    """The RUL as served for this engine (after the blend and clipping): what the explanation adds up to."""
    lstm_output: float
    """The LSTM's RUL output before clipping (cycles)."""
    cap: float
    """The RUL cap the served RUL is clipped to."""

    @property
    def base(self) -> float:
        """The combined starting point: the blend of the two parts' expected values."""
        return self.weight_xgb * self.tree_base + (1 - self.weight_xgb) * self.lstm_base

    @property
    def attributed(self) -> float:
        """``base`` plus every combined attribution: the blended RUL before clipping, as the attributions estimate
        it (the LSTM's part by sampling)."""
        return self.base + float(self.by_sensor["combined"].sum())

    @property
    def approximation(self) -> float:
        """The served RUL minus :attr:`attributed`: :attr:`clipping` plus :attr:`sampling`."""
        return self.rul - self.attributed

    @property
    def clipping(self) -> float:
        """What clipping each model's RUL and the blend to ``[0, cap]`` adds: the served RUL minus the blend of the
        two models' unclipped outputs."""
        xgb_output = self.tree_base + float(self.tree.sum())
        return self.rul - (self.weight_xgb * xgb_output + (1 - self.weight_xgb) * self.lstm_output)

    @property
    def sampling(self) -> float:
        """The part of the LSTM's output its sampled attributions miss, weighted by its share of the blend."""
        return self.approximation - self.clipping

    def breakdown(self, k: int | None = None, inputs: Sequence[str] | None = None) -> Breakdown:
        """The sum for the served RUL listing `inputs` (in that order), or else the `k` inputs with the largest
        effect (all when `k` is None); the rest go to ``other_inputs``."""
        effects = self.by_sensor.set_index("input")["combined"]
        listed = list(inputs) if inputs is not None else list(effects.index[:k])
        factors = tuple((name, float(effects[name])) for name in listed)
        rest = effects.drop(index=listed)
        return Breakdown(rul=self.rul, base=self.base, factors=factors, other_inputs=float(rest.sum()),
                         others=len(rest), approximation=self.approximation)

    def lstm_over_time(self) -> pd.DataFrame:
        """The LSTM's attributions summed over each input's channels: one row per input (largest total effect
        first), one column per step of the window (oldest first)."""
        frame = pd.DataFrame(self.lstm, columns=self.lstm_channels).T.groupby(level=0, sort=False).sum()
        return frame.loc[frame.sum(axis=1).abs().sort_values(ascending=False, kind="stable").index]

    def top_sensors(self, k: int) -> list[str]:
        """The `k` sensors (not age) with the largest absolute combined attribution."""
        return [s for s in self.by_sensor["input"] if s != AGE][:k]

    def sentences(self, k: int = 4, label: Callable[[str], str] = str) -> list[str]:
        """Plain-language lines that add up to the served RUL: the start, the `k` inputs that move it most (sensors
        named by `label`), the other inputs together and, when it rounds to a cycle or more, the approximation.

        The printed numbers are whole cycles rounded so that they add up to the RUL printed (:func:`apportion`).
        """
        b = self.breakdown(k)
        terms = apportion([b.base, *(value for _, value in b.factors), b.other_inputs, b.approximation], round(b.rul))
        base, effects, other, approximation = terms[0], terms[1:-2], terms[-2], terms[-1]
        start = (f"Starting from the fleet-average prediction of {_cycles(base)}, the inputs below bring this "
                 f"engine's predicted RUL to {_cycles(round(b.rul))}.")
        lines = [start]
        by_input = self.by_sensor.set_index("input")
        levels, changes = by_input["level"].astype(float).to_dict(), by_input["change"].astype(float).to_dict()
        for (name, _), effect in zip(b.factors, effects, strict=True):
            lines.append(describe(name, effect, levels[name], changes[name], label=label(name)))
        if b.others:
            lines.append(f"The other {b.others} inputs together {_moves(other)}.")
        if approximation:
            clipping, sampling = apportion([self.clipping, self.sampling], approximation)
            named = ((clipping, f"clipping the models' RUL to 0–{self.cap:.0f} cycles"),
                     (sampling, "the sampling error of the LSTM's attributions"))
            parts = [f"{what} ({_change(cycles)})" for cycles, what in named if cycles]
            lines.append(f"The approximation, what the attributions leave out, {_moves(approximation, singular=True)}"
                         f": {' and '.join(parts)}.")
        return lines


def _cycles(n: int) -> str:
    return f"{n} cycle{'s' if n != 1 else ''}"


def _change(cycles: int) -> str:
    """``down 3 cycles``, ``up 1 cycle``, ``under a cycle`` (0)."""
    return "under a cycle" if cycles == 0 else f"{'down' if cycles < 0 else 'up'} {_cycles(abs(cycles))}"


def _moves(cycles: int, singular: bool = False) -> str:
    """``push it down by 3 cycles``, ``push it up by 1 cycle``, ``move it by under a cycle`` (0); with `singular`
    the verb agrees with a singular subject (``pushes``)."""
    s = "s" if singular else ""
    if cycles == 0:
        return f"move{s} it by under a cycle"
    return f"push{'es' if singular else ''} it {'down' if cycles < 0 else 'up'} by {_cycles(abs(cycles))}"


def sensor_label(name: str) -> str:
    """``sensor_11 (Ps30, HPC outlet static pressure)``, or the name itself when unknown."""
    if name == AGE:
        return "engine age (cycles run)"
    meaning = SENSOR_NAMES.get(name)
    return f"{name} ({meaning})" if meaning else name


def describe(name: str, effect: float, level: float, change: float, label: str | None = None) -> str:
    """One sentence: what the input looks like and how many whole cycles it moves the RUL, e.g.
    ``sensor_11 reads high (+2.1σ) and is trending up: it pushes RUL down by 9 cycles.``; `label` names a sensor
    in the sentence (its storage name by default)."""
    level = round(level, 1) + 0.0  # no "-0.0σ"
    change = round(change, 1) + 0.0
    cycles = round(effect)
    push = ("barely moves RUL (under a cycle)" if cycles == 0
            else f"pushes RUL {'down' if cycles < 0 else 'up'} by {_cycles(abs(cycles))}")
    if name == AGE:
        return f"The engine's age ({level:.0f} cycles run) {push}."
    states = []
    if abs(level) > LEVEL_SIGMA:
        states.append(f"reads {'high' if level > 0 else 'low'} ({level:+.1f}σ)")
    if abs(change) > TREND_SIGMA:
        states.append(f"is trending {'up' if change > 0 else 'down'} ({change:+.1f}σ over 30 cycles)")
    state = " and ".join(states) if states else f"is near its usual level ({level:+.1f}σ)"
    return f"{label or name} {state}: it {push}."
