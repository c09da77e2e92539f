"""The drift verdict in words: the overall call (none, warn, alert, retrain) and why, the full report
(:func:`assess`) that the page and the CLI show, and the comparison with a model's training data
(:func:`against_training`) that decides the Drift page's default verdict, ``python -m core drift`` without
``--reference``, the server's drift alert and its ``pm_drift_share`` metric.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.data.cmapss import SENSORS, SETTINGS
from core.errors import UserError
from core.monitoring.drift import compare_frames, drift_share, drift_table, match_life_stage, worst_level
from core.monitoring.prediction_drift import sample_engines
from core.monitoring.regimes import RegimeSummary, normalise_by_regime
from core.monitoring.statistics import Level, Thresholds, VerdictLevel, check_method, level, prediction_drift


@dataclass(frozen=True)
class Verdict:
    """The overall call and why, in plain language."""

    level: VerdictLevel
    retrain_recommended: bool
    explanation: tuple[str, ...]

    def to_dict(self) -> dict:
        """A JSON-serialisable copy."""
        return {
            "level": self.level,
            "retrain_recommended": self.retrain_recommended,
            "explanation": list(self.explanation),
        }


def verdict(
    share: float,
    feature_level: Level,
    prediction_psi: float | None = None,
    thresholds: Thresholds | None = None,
) -> Verdict:
    """``retrain`` when the drift share is above ``thresholds.share`` or the prediction PSI above
    ``thresholds.prediction_psi``; otherwise ``alert``/``warn`` from the worst feature level and the
    prediction PSI (PSI warn/alert thresholds); otherwise ``none``.
    """
    limits = thresholds or Thresholds()
    reasons: list[str] = []
    if share > limits.share:
        reasons.append(f"Drift share {share:.2f} is above {limits.share:.2f}: retraining is recommended.")
    if prediction_psi is not None and prediction_psi > limits.prediction_psi:
        reasons.append(
            f"Prediction PSI {prediction_psi:.3f} is above {limits.prediction_psi:.2f}: retraining is recommended."
        )
    if reasons:
        return Verdict("retrain", True, tuple(reasons))
    prediction_level: Level = "none"
    if prediction_psi is not None:
        prediction_level = level(prediction_psi, limits.psi_warn, limits.psi_alert)
    levels = {feature_level, prediction_level}
    overall: VerdictLevel = "alert" if "alert" in levels else "warn" if "warn" in levels else "none"
    if overall == "none":
        reasons.append("No feature and no prediction drift reaches the warn threshold.")
    else:
        if feature_level != "none":
            reasons.append(
                f"Some features reach the {feature_level} threshold, but the drift share {share:.2f} "
                f"is not above {limits.share:.2f}."
            )
        if prediction_level != "none":
            reasons.append(f"Prediction PSI {prediction_psi:.3f} reaches the {prediction_level} threshold.")
    return Verdict(overall, False, tuple(reasons))


# The whole assessment ------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftReport:
    """Everything the CLI and the drift page show for one comparison."""

    method: str
    normalised: bool
    features: pd.DataFrame
    drift_share: float
    raw_drift_share: float | None
    normalised_drift_share: float | None
    regimes: RegimeSummary | None
    prediction_psi: float | None
    prediction_psi_reason: str | None
    verdict: Verdict
    thresholds: Thresholds = field(default_factory=Thresholds)

    def to_dict(self) -> dict:
        """A JSON-serialisable copy (the feature table as a list of records)."""
        return {
            "method": self.method,
            "normalised": self.normalised,
            "features": self.features.to_dict(orient="records"),
            "drift_share": self.drift_share,
            "raw_drift_share": self.raw_drift_share,
            "normalised_drift_share": self.normalised_drift_share,
            "regimes": self.regimes.to_dict() if self.regimes else None,
            "prediction_psi": self.prediction_psi,
            "prediction_psi_reason": self.prediction_psi_reason,
            "verdict": self.verdict.to_dict(),
            "thresholds": self.thresholds.to_dict(),
        }


def _names(features: list[str], limit: int = 6) -> str:
    shown = ", ".join(features[:limit])
    return shown if len(features) <= limit else f"{shown} and {len(features) - limit} more"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _share_or_none(table: pd.DataFrame) -> float | None:
    return drift_share(table) if table["informative"].any() else None


def _view_note(table: pd.DataFrame, prefix: str, rule: str) -> str:
    """One sentence: how many informative features of a view drift, and which."""
    informative = table[table["informative"]]
    drifted = informative.loc[informative["drifted"], "feature"].tolist()
    if informative.empty:
        return f"{prefix} no feature varies in the reference, so nothing can be judged."
    head = f"{prefix} {len(drifted)} of {_plural(len(informative), 'informative feature')} drift ({rule})"
    return f"{head}: {_names(drifted)}." if drifted else f"{head}."


def _regime_note(summary: RegimeSummary) -> str:
    if summary.unseen_conditions or summary.current_conditions != summary.reference_conditions:
        return (
            f"The current data runs at {_plural(summary.current_conditions, 'operating condition')} "
            f"(setting clusters) vs {summary.reference_conditions} in the reference; "
            f"{summary.unseen_conditions} of them never occur in the reference."
        )
    return f"Both datasets run at {_plural(summary.reference_conditions, 'operating condition')} (setting clusters)."


def assess(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str] | None = None,
    method: str = "psi",
    normalise: bool = False,
    thresholds: Thresholds | None = None,
    prediction_psi: float | None = None,
    prediction_psi_reason: str | None = None,
) -> DriftReport:
    """Compare two frames raw and, when both carry the settings, regime-normalised, and decide.

    The table, drift share and verdict follow the view chosen by ``normalise``; the explanation
    also names the operating conditions and what the other view shows. ``prediction_psi`` is the
    PSI of predicted RUL when a model scored both frames; without it, ``prediction_psi_reason``
    says why (e.g. "no model").
    """
    limits = thresholds or Thresholds()
    names = list(features) if features is not None else list(SENSORS)
    has_settings = all(c in reference.columns and c in current.columns for c in SETTINGS)
    if normalise and not has_settings:
        raise UserError("Regime normalisation needs the three setting columns in both datasets.")
    check_method(method)
    _, alert = limits.levels(method)
    raw = compare_frames(reference, current, names, method, False, limits)
    normalised_table = None
    summary = None
    if has_settings:
        ref_norm, cur_norm, summary = normalise_by_regime(reference, current, names)
        normalised_table = drift_table(ref_norm, cur_norm, names, method, limits)
    table = normalised_table if normalise and normalised_table is not None else raw
    share = drift_share(table)

    rule = f"{method} >= {alert:g}"
    notes: list[str] = []
    if summary is not None:
        notes.append(_regime_note(summary))
    notes.append(_view_note(raw, "On raw values", rule))
    if normalised_table is not None:
        notes.append(_view_note(normalised_table, "After regime normalisation", rule))
        if summary is not None and summary.unseen_conditions:
            notes.append(
                f"Rows in the {_plural(summary.unseen_conditions, 'condition')} the reference lacks were "
                "centred on their own statistics, so for them only the shape of each distribution is compared."
            )
    skipped = table.loc[~table["informative"], "feature"].tolist()
    if skipped:
        notes.append(f"Near-constant in the reference, so not counted in the drift share: {_names(skipped)}.")
    reason = None if prediction_psi is not None else (prediction_psi_reason or "no predictions given")
    if reason is not None:
        notes.append(f"Prediction drift was not measured: {reason}.")
    decision = verdict(share, worst_level(table), prediction_psi, limits)
    return DriftReport(
        method=method,
        normalised=normalise,
        features=table,
        drift_share=share,
        raw_drift_share=_share_or_none(raw),
        normalised_drift_share=_share_or_none(normalised_table) if normalised_table is not None else None,
        regimes=summary,
        prediction_psi=prediction_psi,
        prediction_psi_reason=reason,
        verdict=Verdict(decision.level, decision.retrain_recommended, tuple(notes) + decision.explanation),
        thresholds=limits,
    )


# Against a model's training data ---------------------------------------------------------------

NO_MODEL_REASON = "no model is trained yet"

ReadSide = Callable[[tuple[str, ...]], pd.DataFrame]
"""The readings of some datasets (with a ``dataset`` column), as :func:`core.monitoring.drift.read_side` reads
them (callers cache it)."""
Predict = Callable[[str, tuple[str, ...], pd.DataFrame], np.ndarray]
"""``predict(side, names, rows)``: the model's predicted RUL at every cycle of `rows`, rows of the frame
``read(names)`` returned (side ``reference``, possibly cut at the current engines' ages) or of the current data
(side ``current``, names empty). Callers may cache it: an engine's prediction at a cycle depends only on its
readings up to that cycle."""


@dataclass(frozen=True)
class TrainingComparison:
    """A dataset compared with a model's training data: the training datasets, the part judged against, each
    part's drift share (when there are several), the report and the predicted-RUL samples behind its prediction
    PSI (None without a model)."""

    training: tuple[str, ...]
    reference: tuple[str, ...]
    shares: dict[tuple[str, ...], float]
    report: DriftReport
    reference_rul: np.ndarray | None = None
    current_rul: np.ndarray | None = None

    @property
    def nearest_part(self) -> bool:
        """True when the verdict is judged against one part of a mixed training set, not all of it."""
        return self.reference != self.training


def _part_share(reference: pd.DataFrame, current: pd.DataFrame, method: str, normalise: bool,
                limits: Thresholds) -> float:
    return drift_share(compare_frames(reference, current, method=method, normalise=normalise, thresholds=limits))


def against_training(
    training: Sequence[str],
    current: pd.DataFrame,
    read: ReadSide,
    predict: Predict | None = None,
    matched: bool = True,
    method: str = "psi",
    normalise: bool = False,
    thresholds: Thresholds | None = None,
    no_model_reason: str = NO_MODEL_REASON,
) -> TrainingComparison:
    """Compare `current` with the training data `training` (a model's training datasets, or any reference) and
    decide, as the Drift page does by default.

    With ``matched`` (the current engines are in service) each reference engine is cut at an age drawn from the
    current engines' (:func:`core.monitoring.drift.match_life_stage`). Data like any one part of a mixed training
    set is within the model's experience, so with several training datasets the verdict is judged against the
    nearest part: the dataset with the lowest drift share, or all of them pooled (tried only when every single
    part drifts; preferred on a tie). With `predict`, the prediction PSI compares the model's predicted RUL on a
    seeded sample of whole engines of each side (:func:`core.monitoring.prediction_drift.sample_engines`);
    without it the report says `no_model_reason`.
    """
    limits = thresholds or Thresholds()
    names = tuple(training)
    if not names:
        raise UserError("No training data was named to compare with.")

    def reference_of(part: tuple[str, ...]) -> pd.DataFrame:
        frame = read(part)
        return match_life_stage(frame, current) if matched else frame

    shares: dict[tuple[str, ...], float] = {}
    nearest = names
    if len(names) > 1:
        shares = {(name,): _part_share(reference_of((name,)), current, method, normalise, limits) for name in names}
        if min(shares.values()) > limits.share:
            shares[names] = _part_share(reference_of(names), current, method, normalise, limits)
        nearest = min(shares, key=lambda part: (shares[part], part != names))
    reference = reference_of(nearest)
    reference_rul = current_rul = None
    prediction_psi = None
    if predict is not None:
        reference_rul = predict("reference", nearest, sample_engines(reference))
        current_rul = predict("current", (), sample_engines(current))
        prediction_psi = prediction_drift(reference_rul, current_rul, limits.prediction_psi).score
    report = assess(reference, current, method=method, normalise=normalise, thresholds=limits,
                    prediction_psi=prediction_psi, prediction_psi_reason=None if predict else no_model_reason)
    return TrainingComparison(names, nearest, shares, report, reference_rul, current_rul)


def default_reference(training: Sequence[str], loaded: Sequence[str]) -> tuple[str, ...] | None:
    """The reference of the default comparison: the model's training datasets when every one of them is loaded,
    else None (the comparison would not be the model's training data, so there is no default verdict)."""
    names = tuple(training)
    return names if names and all(name in loaded for name in names) else None
