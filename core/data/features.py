"""Features for the RUL models: targets, operating-regime normalisation, tree features and LSTM windows.

Input frames carry a ``dataset`` column plus :data:`core.data.cmapss.COLUMNS`; an engine is
``(dataset, unit)``. :class:`FeaturePipeline` is fitted on training engines and stored as
pure JSON. Every feature of a row depends only on that engine's readings up to that row,
so the same code serves training (all rows), fleet scoring (last row per engine) and
what-if (one engine's readings). The hot path is numpy only: rows are sorted once, window
statistics come from prefix sums (linear in the readings, whatever the window lengths),
and each LSTM window is gathered by index.

Regimes: the three settings are rounded on a fixed grid (altitude to 1, Mach to 0.05,
throttle angle to 1); every grid cell holding at least ``min_regime_share`` of the
training rows is a regime (six for FD002/FD004, one for FD001/FD003, six for mixtures)
and any row is assigned to the nearest regime centre. Sensors are z-scored per regime.

Near-constant sensors: a sensor is dropped when, within regimes, its most common value
covers at least ``constant_share`` of the training rows (constants and two-level flags).

LSTM windows: per step, the normalised sensors, their summary channels (``lstm_stats``: the
same window statistics as the trees', taken at that step, e.g. the mean and slope over the
whole history so far, scaled by their training spread) and the engine's age.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from core.data.cmapss import COLUMNS, FAIL_HORIZON, RUL_CAP, SENSORS, SETTINGS
from core.errors import UserError

FEATURES_VERSION = 2
SETTING_GRID = (1.0, 0.05, 1.0)
"""Rounding step of setting_1..3 (altitude kft, Mach, throttle resolver angle) that defines a regime cell."""
MAX_REGIMES = 12
DEFAULT_MEAN_WINDOWS = (5, 10, 30, 60, 0)
DEFAULT_STD_WINDOWS = (10, 30)
DEFAULT_SLOPE_WINDOWS = (10, 30, 60, 120, 0)
"""Trailing windows (in readings) of the tree features; 0 is the engine's whole history."""
AGE_SCALE = 100.0
"""The LSTM's age channel is ``cycle / AGE_SCALE``."""
DEFAULT_LSTM_STATS = ("mean10", "mean30", "meanall", "slope60", "slopeall")
"""Per-step summary channels of the LSTM, each one per kept sensor: ``{mean,std,slope}{window|all}``
over the readings up to that step (``all``: the engine's whole history so far)."""
_SETTING_COLS = np.array([COLUMNS.index(c) for c in SETTINGS])
_SENSOR_COLS = np.array([COLUMNS.index(c) for c in SENSORS])

Rows = Literal["last", "all"]


def _prefix(a: np.ndarray) -> np.ndarray:
    """Prefix sums with a leading zero row: ``p[j] - p[i]`` is the sum of rows i..j-1."""
    out = np.zeros((len(a) + 1, *a.shape[1:]))
    np.cumsum(a, axis=0, out=out[1:])
    return out


def targets(frame: pd.DataFrame, truth: pd.DataFrame | None = None, cap: int = RUL_CAP,
            horizon: int = FAIL_HORIZON) -> pd.DataFrame:
    """Per-row targets: ``rul_true`` (uncapped), ``rul`` (capped at `cap`) and ``fail`` (true RUL <= `horizon`).

    Without `truth` every engine is taken to run to failure (train files: RUL = last cycle - cycle).
    With `truth` (DataFrame[dataset, unit, rul], the RUL after each engine's last cycle, as in
    ``RUL_FD00x``) the series stop early and RUL = truth + last cycle - cycle.
    Returns DataFrame[dataset, unit, cycle, rul_true, rul, fail] in the frame's row order.
    """
    check_frame(frame)
    last = frame.groupby(["dataset", "unit"], sort=False)["cycle"].transform("max").to_numpy()
    rul_true = last - frame["cycle"].to_numpy()
    if truth is not None:
        keyed = truth.set_index(["dataset", "unit"])["rul"]
        index = pd.MultiIndex.from_arrays([frame["dataset"], frame["unit"]])
        after = keyed.reindex(index).to_numpy(dtype=float)
        if np.isnan(after).any():
            missing = frame.loc[np.isnan(after), ["dataset", "unit"]].iloc[0]
            raise UserError(f"No true RUL is given for engine {missing['unit']} of {missing['dataset']}.")
        rul_true = rul_true + after
    rul_true = rul_true.astype(float)
    return pd.DataFrame({
        "dataset": frame["dataset"].to_numpy(),
        "unit": frame["unit"].to_numpy(),
        "cycle": frame["cycle"].to_numpy(),
        "rul_true": rul_true,
        "rul": np.minimum(rul_true, cap),
        "fail": (rul_true <= horizon).astype(np.int8),
    })


def check_frame(frame: pd.DataFrame) -> np.ndarray:
    """Raise UserError unless `frame` has a dataset column and the C-MAPSS columns with finite numbers.

    Returns the C-MAPSS columns as a float64 array (rows in frame order, columns as COLUMNS).
    """
    if not isinstance(frame, pd.DataFrame):
        raise UserError("Sensor readings must be a table (a pandas DataFrame).")
    missing = [c for c in ("dataset", *COLUMNS) if c not in frame.columns]
    if missing:
        raise UserError(f"The readings lack the column(s) {', '.join(missing)}.")
    if frame.empty:
        raise UserError("The readings are empty: there is no engine to compute features for.")
    dtypes = frame.dtypes
    bad = [c for c in COLUMNS if not pd.api.types.is_numeric_dtype(dtypes[c])]
    if bad:
        raise UserError(f"The column {bad[0]} holds values that are not numbers.")
    values = frame[COLUMNS].to_numpy(dtype=float)
    if not np.isfinite(values).all():
        col = COLUMNS[int(np.where(~np.isfinite(values))[1][0])]
        raise UserError(f"The column {col} holds a missing or infinite value.")
    return values


@dataclass
class Prepared:
    """Readings sorted by engine and cycle, normalised, with the engine structure as index arrays.

    Holds every reading, or (prepared for ``rows="last"``) each engine's trailing readings only.
    """

    dataset: np.ndarray
    """(n,) dataset name of every row, in sorted order."""
    unit: np.ndarray
    """(n,) unit number of every row."""
    cycle: np.ndarray
    """(n,) cycle of every row."""
    values: np.ndarray
    """(n, k) regime-normalised kept sensors, float64."""
    start: np.ndarray
    """(n,) row index of the first (kept) row of each row's engine."""
    last: np.ndarray
    """Row indices of the last row of every engine, in engine order."""
    engine: np.ndarray
    """(n,) engine number 0..E-1 of each row."""
    settings: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    """(n, 3) raw operating settings of every row."""
    regime_distance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(n,) distance (in setting-grid units) of every row's settings from its nearest training regime."""
    sums: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """Prefix sums behind the window statistics, computed on first use (see :func:`window_stats`)."""
    summary: np.ndarray | None = field(default=None, repr=False)
    """Scaled LSTM summary channels of every row, once :meth:`FeaturePipeline.cache_summary` has run."""

    def rows(self, which: Rows) -> np.ndarray:
        """Indices of the last row per engine (``"last"``) or of every row (``"all"``)."""
        return self.last if which == "last" else np.arange(len(self.cycle))

    def keys_at(self, rows: np.ndarray) -> pd.DataFrame:
        """DataFrame[dataset, unit, cycle] of the selected rows (index 0..len(rows)-1)."""
        return pd.DataFrame({"dataset": self.dataset[rows], "unit": self.unit[rows], "cycle": self.cycle[rows]})

    @property
    def keys(self) -> pd.DataFrame:
        """DataFrame[dataset, unit, cycle] of every row, in sorted order."""
        return self.keys_at(np.arange(len(self.cycle)))


def _parse_stat(spec: str) -> tuple[str, int]:
    """``"slope30"`` -> ("slope", 30); ``"meanall"`` -> ("mean", 0); UserError for anything else."""
    match = re.fullmatch(r"(mean|std|slope)(all|[1-9][0-9]*)", spec)
    if match is None:
        raise UserError(f"The LSTM summary channel {spec!r} is not mean/std/slope followed by a window or 'all'.")
    return match.group(1), 0 if match.group(2) == "all" else int(match.group(2))


def window_stats(prep: Prepared, rows: np.ndarray, kind: str, w: int) -> np.ndarray:
    """(len(rows), k) mean, std or least-squares slope (per cycle) of each sensor over each row's trailing
    `w` readings (fewer where the series is shorter; 0: the whole history so far), from prefix sums."""
    if not prep.sums:
        x = prep.values
        t = (np.arange(len(x)) - prep.start).astype(float)[:, None]
        prep.sums.update(x=_prefix(x), xx=_prefix(x * x), t=_prefix(t), tt=_prefix(t * t), tx=_prefix(t * x))
    first = prep.start[rows]
    lo = first if w == 0 else np.maximum(first, rows - w + 1)
    n = (rows - lo + 1).astype(float)[:, None]
    s = {key: p[rows + 1] - p[lo] for key, p in prep.sums.items()}
    if kind == "mean":
        return s["x"] / n
    if kind == "std":
        mean = s["x"] / n
        return np.sqrt(np.maximum(s["xx"] / n - mean * mean, 0.0))
    denom = n * s["tt"] - s["t"] * s["t"]
    num = n * s["tx"] - s["t"] * s["x"]
    return np.divide(num, denom, out=np.zeros_like(num), where=denom > 0.5)


@dataclass
class FeatureSet:
    """Model inputs for selected rows: keys, the tree feature matrix and the LSTM windows."""

    keys: pd.DataFrame
    tree: np.ndarray
    windows: np.ndarray
    tree_names: list[str]
    ood: np.ndarray | None = None
    """Out-of-experience flag per row, when a model's check was applied (see ``models.ood``)."""
    ood_reason: np.ndarray | None = None
    """The sentence explaining each flag ('' for rows not flagged)."""


@dataclass
class FeaturePipeline:
    """Regime normalisation, sensor selection and feature construction, fitted on training engines."""

    lstm_window: int = 30
    mean_windows: tuple[int, ...] = DEFAULT_MEAN_WINDOWS
    std_windows: tuple[int, ...] = DEFAULT_STD_WINDOWS
    slope_windows: tuple[int, ...] = DEFAULT_SLOPE_WINDOWS
    min_regime_share: float = 0.01
    constant_share: float = 0.9
    lstm_stats: tuple[str, ...] = DEFAULT_LSTM_STATS
    lstm_scale: np.ndarray = field(default_factory=lambda: np.ones(0))
    """Training standard deviation of each summary channel (the LSTM sees them divided by it)."""
    centres: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    sensor_mean: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    sensor_std: np.ndarray = field(default_factory=lambda: np.ones((0, 0)))
    sensors: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    # ----------------------------------------------------------------- fitting
    def fit(self, frame: pd.DataFrame) -> FeaturePipeline:
        """Find regimes, per-regime sensor statistics and the sensors to keep from training rows."""
        numbers = check_frame(frame)
        settings = numbers[:, _SETTING_COLS]
        cells = np.round(settings / np.asarray(SETTING_GRID)).astype(np.int64)
        _, inverse, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        major = [i for i in order[:MAX_REGIMES] if counts[i] >= self.min_regime_share * len(frame)]
        if not major:
            major = [int(order[0])]
        self.centres = np.array([settings[inverse.ravel() == i].mean(axis=0) for i in major])
        regime = self.assign_regimes(settings)
        raw = numbers[:, _SENSOR_COLS]
        n_reg = len(self.centres)
        self.sensor_mean = np.zeros((n_reg, len(SENSORS)))
        self.sensor_std = np.ones((n_reg, len(SENSORS)))
        modal_rows = np.zeros(len(SENSORS))
        for r in range(n_reg):
            block = raw[regime == r]
            if len(block) == 0:
                continue
            self.sensor_mean[r] = block.mean(axis=0)
            std = block.std(axis=0)
            self.sensor_std[r] = np.where(std > 1e-12, std, 1.0)
            for j in range(len(SENSORS)):
                modal_rows[j] += np.unique(block[:, j], return_counts=True)[1].max()
        share = modal_rows / len(frame)
        self.sensors = [s for s, v in zip(SENSORS, share) if v < self.constant_share]
        self.dropped = [s for s, v in zip(SENSORS, share) if v >= self.constant_share]
        if not self.sensors:
            raise UserError("Every sensor is near-constant in the training readings, "
                            "so there is nothing to learn from.")
        self.lstm_scale = np.ones(len(self.lstm_stats) * len(self.sensors))
        if self.lstm_stats:
            prep = self.prepare(frame)
            std = self._summary(prep, np.arange(len(prep.cycle))).std(axis=0)
            self.lstm_scale = np.where(std > 1e-9, std, 1.0)
        return self

    def assign_regimes(self, settings: np.ndarray) -> np.ndarray:
        """Index of the nearest regime centre (in grid units) for each row of settings."""
        return self.nearest_regimes(settings)[0]

    def nearest_regimes(self, settings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index of the nearest regime centre, distance to it in setting-grid units) for each row of settings."""
        if len(self.centres) == 0:
            raise UserError("The feature pipeline has not been fitted.")
        grid = np.asarray(SETTING_GRID)
        diff = settings[:, None, :] / grid - self.centres[None, :, :] / grid
        squared = (diff * diff).sum(axis=2)
        nearest = np.argmin(squared, axis=1)
        return nearest, np.sqrt(squared[np.arange(len(settings)), nearest])

    # ------------------------------------------------------------- preparation
    def prepare(self, frame: pd.DataFrame, rows: Rows = "all") -> Prepared:
        """Validate, sort by (dataset, unit, cycle) and regime-normalise the kept sensors.

        With ``rows="last"`` and a finite :attr:`history` only each engine's trailing readings
        are kept, which is all that the features of its last row look at (fast fleet scoring).
        """
        numbers = check_frame(frame)
        ds_codes, ds_names = pd.factorize(frame["dataset"].astype(str).to_numpy(), sort=True)
        unit, cycle = numbers[:, 0], numbers[:, 1]
        order = np.lexsort((cycle, unit, ds_codes))
        ds_sorted, unit_sorted, cycle_sorted = ds_codes[order], unit[order], cycle[order]
        new_engine = np.ones(len(order), dtype=bool)
        new_engine[1:] = (ds_sorted[1:] != ds_sorted[:-1]) | (unit_sorted[1:] != unit_sorted[:-1])
        dup = ~new_engine[1:] & (cycle_sorted[1:] == cycle_sorted[:-1])
        if dup.any():
            i = int(np.argmax(dup)) + 1
            raise UserError(f"Engine {unit_sorted[i]:g} of {ds_names[ds_sorted[i]]} has cycle "
                            f"{cycle_sorted[i]:g} more than once.")
        if rows == "last" and self.history is not None:
            engine = np.cumsum(new_engine) - 1
            starts = np.flatnonzero(new_engine)
            ends = np.append(starts[1:], len(order))
            keep = np.arange(len(order)) >= ends[engine] - self.history
            order, kept = order[keep], engine[keep]
            new_engine = np.append(True, kept[1:] != kept[:-1])
        engine = np.cumsum(new_engine) - 1
        starts = np.flatnonzero(new_engine)
        start = starts[engine]
        data = numbers[order]
        regime, distance = self.nearest_regimes(data[:, _SETTING_COLS])
        cols = np.array([SENSORS.index(s) for s in self.sensors])
        values = (data[:, _SENSOR_COLS[cols]] - self.sensor_mean[regime[:, None], cols]) \
            / self.sensor_std[regime[:, None], cols]
        return Prepared(dataset=np.asarray(ds_names, dtype=object)[ds_codes[order]],
                        unit=frame["unit"].to_numpy()[order], cycle=frame["cycle"].to_numpy()[order],
                        values=values, start=start, last=np.append(starts[1:] - 1, len(order) - 1), engine=engine,
                        settings=data[:, _SETTING_COLS], regime_distance=distance)

    # ---------------------------------------------------------------- features
    @property
    def tree_names(self) -> list[str]:
        """Names of the tree feature columns, in matrix order (window 0 is named ``all``: the whole history)."""
        def tag(w: int) -> str:
            return str(w) if w else "all"

        names = ["cycle"]
        for s in self.sensors:
            names.append(f"{s}_last")
            names += [f"{s}_mean{tag(w)}" for w in self.mean_windows]
            names += [f"{s}_std{tag(w)}" for w in self.std_windows]
            names += [f"{s}_slope{tag(w)}" for w in self.slope_windows]
        return names

    @property
    def history(self) -> int | None:
        """How many trailing readings any feature of a row looks at (None: the whole history)."""
        windows = (*self.mean_windows, *self.std_windows, *self.slope_windows)
        stats = [_parse_stat(spec)[1] for spec in self.lstm_stats]
        if 0 in windows or 0 in stats:
            return None
        return max(self.lstm_window + max(stats, default=1) - 1, *windows)

    def tree_features(self, prep: Prepared, rows: np.ndarray) -> np.ndarray:
        """(len(rows), len(tree_names)) float32 tree features of the selected rows.

        Per kept sensor: the last value, then mean, standard deviation and least-squares slope
        (per cycle) over the trailing windows (fewer readings where the series is shorter;
        window 0 is the whole history). Window sums come from prefix sums, so the cost is
        linear in the number of readings whatever the window lengths.
        """
        blocks = [prep.values[rows]]
        blocks += [window_stats(prep, rows, "mean", w) for w in self.mean_windows]
        blocks += [window_stats(prep, rows, "std", w) for w in self.std_windows]
        blocks += [window_stats(prep, rows, "slope", w) for w in self.slope_windows]
        stacked = np.stack(blocks, axis=2).reshape(len(rows), -1)  # sensor-major, as tree_names
        cycle = prep.cycle[rows].astype(float)[:, None]
        return np.concatenate([cycle, stacked], axis=1).astype(np.float32)

    def _summary(self, prep: Prepared, rows: np.ndarray) -> np.ndarray:
        """(len(rows), len(lstm_stats) * k) unscaled summary channels, stat-major (as :attr:`lstm_inputs`)."""
        blocks = [window_stats(prep, rows, *_parse_stat(spec)) for spec in self.lstm_stats]
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(rows), 0))

    def windows(self, prep: Prepared, rows: np.ndarray) -> np.ndarray:
        """(len(rows), lstm_window, n_channels) float32 LSTM inputs, channels as :attr:`lstm_inputs`.

        Per step: the normalised sensors, then each summary channel of :attr:`lstm_stats` (the
        statistic over the readings up to that step, divided by its training standard deviation),
        then the age. Series shorter than the window are padded at the front with their first step.
        """
        offsets = np.arange(-(self.lstm_window - 1), 1)[None, :]
        idx = np.maximum(rows[:, None] + offsets, prep.start[rows][:, None])
        age = prep.cycle[idx].astype(float) / AGE_SCALE
        if prep.summary is not None:
            summary = prep.summary[idx]
        else:
            summary = (self._summary(prep, idx.ravel()) / self.lstm_scale).reshape(*idx.shape, -1)
        return np.concatenate([prep.values[idx], summary, age[:, :, None]], axis=2).astype(np.float32)

    def cache_summary(self, prep: Prepared) -> None:
        """Compute the scaled summary channels of every row of `prep` once (for training, which gathers
        windows over all rows again and again); :meth:`windows` then only indexes them."""
        prep.summary = (self._summary(prep, np.arange(len(prep.cycle))) / self.lstm_scale).astype(np.float32)

    @property
    def lstm_inputs(self) -> list[str]:
        """The input (sensor name or ``age``) behind each LSTM channel, in channel order."""
        return [*self.sensors * (1 + len(self.lstm_stats)), "age"]

    @property
    def n_channels(self) -> int:
        """Number of LSTM input channels (kept sensors, their summary channels, age)."""
        return len(self.sensors) * (1 + len(self.lstm_stats)) + 1

    def transform(self, frame: pd.DataFrame, rows: Rows = "last") -> FeatureSet:
        """Features of every engine's last row (``"last"``) or of every row (``"all"``)."""
        prep = self.prepare(frame, rows)
        return self.features_at(prep, prep.rows(rows))

    def features_at(self, prep: Prepared, idx: np.ndarray) -> FeatureSet:
        """Features of the rows `idx` of prepared readings."""
        return FeatureSet(
            keys=prep.keys_at(idx),
            tree=self.tree_features(prep, idx),
            windows=self.windows(prep, idx),
            tree_names=self.tree_names,
        )

    # -------------------------------------------------------------- JSON form
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable description of the fitted pipeline."""
        return {
            "version": FEATURES_VERSION,
            "lstm_window": self.lstm_window,
            "mean_windows": list(self.mean_windows),
            "std_windows": list(self.std_windows),
            "slope_windows": list(self.slope_windows),
            "min_regime_share": self.min_regime_share,
            "constant_share": self.constant_share,
            "lstm_stats": list(self.lstm_stats),
            "lstm_scale": self.lstm_scale.tolist(),
            "setting_grid": list(SETTING_GRID),
            "centres": self.centres.tolist(),
            "sensor_mean": self.sensor_mean.tolist(),
            "sensor_std": self.sensor_std.tolist(),
            "sensors": list(self.sensors),
            "dropped": list(self.dropped),
        }

    def to_json(self) -> str:
        """The fitted pipeline as a JSON string."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeaturePipeline:
        """Rebuild a pipeline from :meth:`to_dict` output; UserError if it is not one."""
        try:
            if data["version"] != FEATURES_VERSION:
                raise UserError(f"The feature pipeline has version {data['version']}, expected {FEATURES_VERSION}: "
                                "the model was trained by an older release; retrain it.")
            pipe = cls(
                lstm_window=int(data["lstm_window"]),
                mean_windows=tuple(int(w) for w in data["mean_windows"]),
                std_windows=tuple(int(w) for w in data["std_windows"]),
                slope_windows=tuple(int(w) for w in data["slope_windows"]),
                min_regime_share=float(data["min_regime_share"]),
                constant_share=float(data["constant_share"]),
                lstm_stats=tuple(str(spec) for spec in data["lstm_stats"]),
                lstm_scale=np.asarray(data["lstm_scale"], dtype=float).reshape(-1),
                centres=np.asarray(data["centres"], dtype=float).reshape(-1, 3),
                sensor_mean=np.asarray(data["sensor_mean"], dtype=float),
                sensor_std=np.asarray(data["sensor_std"], dtype=float),
                sensors=[str(s) for s in data["sensors"]],
                dropped=[str(s) for s in data["dropped"]],
            )
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"The feature pipeline description is malformed ({err!r}).") from err
        shape = (len(pipe.centres), len(SENSORS))
        if pipe.sensor_mean.shape != shape or pipe.sensor_std.shape != shape or not pipe.sensors \
                or any(s not in SENSORS for s in pipe.sensors) \
                or len(pipe.lstm_scale) != len(pipe.lstm_stats) * len(pipe.sensors):
            raise UserError("The feature pipeline description is inconsistent with the C-MAPSS sensors.")
        return pipe

    @classmethod
    def from_json(cls, text: str) -> FeaturePipeline:
        """Rebuild a pipeline from :meth:`to_json` output; UserError if the text is not one."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"The feature pipeline is not valid JSON ({err.msg}).") from err
        if not isinstance(data, dict):
            raise UserError("The feature pipeline JSON is not an object.")
        return cls.from_dict(data)
