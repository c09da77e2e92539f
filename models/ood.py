"""Out of experience: does a prediction rest on readings unlike anything the model was trained on?

Two checks, both fitted on the training rows and stored as JSON numbers:

- Operating regime: every reading's settings lie at some distance (in setting-grid units, see
  :data:`core.data.features.SETTING_GRID`) from the nearest training regime centre. A reading
  more than ``regime_margin`` grid steps beyond the farthest training reading of any regime ran
  in a regime the model never saw. The whole-history features look at every reading so far,
  so a prediction is flagged once any reading of the engine up to it is such a reading.
- Sensor level: after regime normalisation, the mean of each kept sensor over the trailing
  ``smooth`` readings is compared with the range that mean took over the training rows; more
  than ``sensor_margin`` training standard deviations outside it is out of experience.

Each flagged prediction carries one sentence naming the regime (its settings) or the sensor(s).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.data import sensors as sensor_table
from core.data.features import FeaturePipeline, Prepared, window_stats

REGIME_MARGIN = 1.0
"""Grid steps (1 kft altitude, 0.05 Mach, 1 % throttle) beyond the training spread of a regime."""
SENSOR_MARGIN = 3.0
"""Training standard deviations beyond a sensor's training range."""
SMOOTH = 5
"""Trailing readings averaged before a sensor is compared with its range (one noisy reading is no regime)."""
MAX_SENSORS_NAMED = 3


@dataclass
class ExperienceCheck:
    """Training regime spread and per-sensor training ranges (normalised), with the margins that flag."""

    regime_radius: float
    """Largest distance (grid units) of a training reading from its nearest regime centre."""
    sensors: list[str]
    low: list[float]
    """Per kept sensor: the lowest trailing-mean level (training σ) seen in training."""
    high: list[float]
    regime_margin: float = REGIME_MARGIN
    sensor_margin: float = SENSOR_MARGIN
    smooth: int = SMOOTH
    centres: list[list[float]] = field(default_factory=list)

    @classmethod
    def fit(cls, pipeline: FeaturePipeline, prep: Prepared) -> ExperienceCheck:
        """Fit on the prepared training rows of `pipeline`."""
        level = window_stats(prep, np.arange(len(prep.cycle)), "mean", SMOOTH)
        return cls(regime_radius=float(prep.regime_distance.max(initial=0.0)), sensors=list(pipeline.sensors),
                   low=[float(v) for v in level.min(axis=0)], high=[float(v) for v in level.max(axis=0)],
                   centres=pipeline.centres.tolist())

    def assess(self, prep: Prepared, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flag, reason) for each selected row of `prep` (prepared by the same pipeline); reason '' when unflagged."""
        unseen = prep.regime_distance > self.regime_radius + self.regime_margin
        count = np.cumsum(unseen)
        before = np.where(prep.start > 0, count[np.maximum(prep.start - 1, 0)], 0)
        unseen_so_far: np.ndarray = (count - before)[rows]
        latest = np.maximum.accumulate(np.where(unseen, np.arange(len(unseen)), -1))[rows]
        level = window_stats(prep, rows, "mean", self.smooth)
        beyond = np.maximum(np.asarray(self.low) - level, level - np.asarray(self.high))
        flags = (unseen_so_far > 0) | (beyond > self.sensor_margin).any(axis=1)
        reasons = np.full(len(rows), "", dtype=object)
        for i in np.flatnonzero(flags):
            if unseen_so_far[i] > 0:  # sensor levels normalised for the wrong regime say nothing more
                reasons[i] = self._regime_sentence(prep, int(latest[i]), int(unseen_so_far[i]),
                                                   int(rows[i] - prep.start[rows[i]] + 1))
            else:
                reasons[i] = self._sensor_sentence(level[i], beyond[i])
        return flags, reasons

    def _regime_sentence(self, prep: Prepared, row: int, unseen: int, total: int) -> str:
        altitude, mach, throttle = (float(v) for v in prep.settings[row])
        return (f"{unseen} of its {total} readings so far ran in an operating regime never seen in training "
                f"(latest: altitude {altitude:.1f} kft, Mach {mach:.2f}, throttle {throttle:.0f} %; "
                f"the model knows {len(self.centres)} regime{'s' if len(self.centres) != 1 else ''}).")

    def _sensor_sentence(self, level: np.ndarray, beyond: np.ndarray) -> str:
        worst = [j for j in np.argsort(-beyond) if beyond[j] > self.sensor_margin][:MAX_SENSORS_NAMED]
        named = [f"{sensor_table.mnemonic(self.sensors[j])} ({self.sensors[j]}) at {level[j]:+.1f}σ, "
                 f"{beyond[j]:.1f}σ {'above' if level[j] > self.high[j] else 'below'} its training range"
                 for j in worst]
        return (f"Sensor level{'s' if len(named) > 1 else ''} far outside the training range after regime "
                f"normalisation: {'; '.join(named)}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperienceCheck:
        """Rebuild from :meth:`to_dict` output; ValueError if the ranges do not match the sensors."""
        check = cls(regime_radius=float(data["regime_radius"]), sensors=[str(s) for s in data["sensors"]],
                    low=[float(v) for v in data["low"]], high=[float(v) for v in data["high"]],
                    regime_margin=float(data["regime_margin"]), sensor_margin=float(data["sensor_margin"]),
                    smooth=int(data["smooth"]), centres=[[float(v) for v in c] for c in data["centres"]])
        if not len(check.sensors) == len(check.low) == len(check.high) or check.smooth < 1:
            raise ValueError("out-of-experience ranges do not match its sensors")
        return check
