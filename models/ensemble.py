"""The served model: XGBoost + LSTM blended, calibrated, with conformal RUL intervals and a risk level.

Everything fitted after the base models (blend weights, probability calibration, interval
quantiles, risk thresholds) is fitted on validation engines only and stored as JSON numbers.

Risk levels from the calibrated probability p of failing within the horizon:
HIGH when p >= ``thresholds["high"]`` (the threshold maximising F2 on validation rows),
MEDIUM when p >= ``thresholds["medium"]`` (``medium_ratio`` times the HIGH threshold,
half by default: worth a look at the next inspection), LOW otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.data.features import FeaturePipeline, FeatureSet, Rows
from models.calibration import Calibrator, Conformal
from models.lstm import LSTMModel
from models.ood import ExperienceCheck
from models.xgb import XGBModels

RISK_LEVELS = ("LOW", "MEDIUM", "HIGH")
OUTPUT_COLUMNS = ["dataset", "unit", "cycle", "rul", "rul_low", "rul_high", "p_fail_30", "risk", "ood", "ood_reason"]


@dataclass
class Ensemble:
    """Feature pipeline, the two model families and everything fitted on validation engines."""

    pipeline: FeaturePipeline
    xgb: XGBModels
    lstm: LSTMModel
    weights: dict[str, float]
    """``rul_xgb``: XGBoost's weight in the RUL blend; ``p_xgb``: its weight in the probability blend."""
    calibrator: Calibrator
    conformal: Conformal
    thresholds: dict[str, float]
    experience: ExperienceCheck
    """The out-of-experience check fitted on the training rows."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Device, seed, versions, config, validation metrics (what :attr:`info` reports)."""

    @property
    def cap(self) -> float:
        """The RUL cap the models predict up to."""
        return self.xgb.cap

    # -------------------------------------------------------------- features
    def features(self, frame: pd.DataFrame, rows: Rows = "last") -> FeatureSet:
        """Tree features, LSTM windows and out-of-experience flags of each engine's last row or of every row."""
        prep = self.pipeline.prepare(frame, rows)
        idx = prep.rows(rows)
        fs = self.pipeline.features_at(prep, idx)
        fs.ood, fs.ood_reason = self.experience.assess(prep, idx)
        return fs

    # ------------------------------------------------------------ prediction
    def member_outputs(self, fs: FeatureSet) -> dict[str, np.ndarray]:
        """Each model's raw outputs for the rows of `fs`: rul_xgb, rul_lstm, p_xgb, p_lstm."""
        rul_x, p_x = self.xgb.predict(fs.tree)
        rul_l, p_l = self.lstm.predict(fs.windows)
        return {"rul_xgb": rul_x, "rul_lstm": rul_l, "p_xgb": p_x, "p_lstm": p_l}

    def components(self, fs: FeatureSet) -> pd.DataFrame:
        """:meth:`member_outputs` as a table, one row per row of `fs`."""
        return pd.DataFrame(self.member_outputs(fs))

    def blend(self, parts: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(blended RUL, calibrated failure probability) from :meth:`member_outputs` (or :meth:`components`)."""
        w, v = self.weights["rul_xgb"], self.weights["p_xgb"]
        member = {name: np.asarray(parts[name], dtype=float) for name in ("rul_xgb", "rul_lstm", "p_xgb", "p_lstm")}
        rul = np.clip(w * member["rul_xgb"] + (1 - w) * member["rul_lstm"], 0.0, self.cap)
        p_raw = v * member["p_xgb"] + (1 - v) * member["p_lstm"]
        return rul, self.calibrator.apply(p_raw)

    def risk(self, p: np.ndarray) -> np.ndarray:
        """Risk level (LOW, MEDIUM, HIGH) of calibrated probabilities."""
        level = (p >= self.thresholds["medium"]).astype(int) + (p >= self.thresholds["high"]).astype(int)
        return np.asarray(RISK_LEVELS, dtype=object)[level]

    def predict_features(self, fs: FeatureSet) -> pd.DataFrame:
        """Predictions for the rows of a feature set, with :data:`OUTPUT_COLUMNS`.

        ``ood`` is True where the engine ran outside the model's experience (``ood_reason`` says
        which regime or sensors); both stay False/'' for a feature set built without the check.
        """
        rul, p = self.blend(self.member_outputs(fs))
        low, high = self.conformal.interval(rul)
        n = len(fs.keys)
        ood = np.zeros(n, dtype=bool) if fs.ood is None else np.asarray(fs.ood, dtype=bool)
        reason = np.full(n, "", dtype=object) if fs.ood_reason is None else fs.ood_reason
        return pd.DataFrame({
            "dataset": fs.keys["dataset"].to_numpy(), "unit": fs.keys["unit"].to_numpy(),
            "cycle": fs.keys["cycle"].to_numpy(), "rul": rul, "rul_low": low, "rul_high": high,
            "p_fail_30": p, "risk": self.risk(p), "ood": ood, "ood_reason": reason,
        }, columns=OUTPUT_COLUMNS)

    def predict_last(self, frame: pd.DataFrame) -> pd.DataFrame:
        """One row per engine at its last cycle, with :data:`OUTPUT_COLUMNS`."""
        return self.predict_features(self.features(frame, "last"))

    def predict_cycles(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The same columns for every (engine, cycle): the RUL trajectory."""
        return self.predict_features(self.features(frame, "all"))

    # ------------------------------------------------------------ persistence
    @property
    def info(self) -> dict[str, Any]:
        """Weights, thresholds, interval coverage, features, device, seed and versions, as plain JSON.

        ``device`` is the training device; predictions are always served on the CPU.
        """
        return {
            "weights": dict(self.weights),
            "thresholds": dict(self.thresholds),
            "coverage": {"nominal": self.conformal.nominal, **self.meta.get("coverage", {}),
                         "bins": self.conformal.to_dict()},
            "calibration": "isotonic",
            "features": {
                "sensors": list(self.pipeline.sensors),
                "dropped": list(self.pipeline.dropped),
                "regimes": len(self.pipeline.centres),
                "n_tree_features": len(self.pipeline.tree_names),
                "lstm_window": self.pipeline.lstm_window,
                "lstm_stats": list(self.pipeline.lstm_stats),
            },
            "out_of_experience": self.experience.to_dict(),
            "rul_cap": self.cap,
            "serving_device": "cpu",
            **{k: v for k, v in self.meta.items() if k != "coverage"},
        }
