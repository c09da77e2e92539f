"""Drift statistics: has the fleet's data changed since the reference (the model's training data)?

Each statistic is a pure function ``(reference, current, threshold) -> DriftResult``; a result is
*drifted* when its score reaches the threshold (``score >= threshold``). Per feature, a score below
the warn threshold is level ``none``, from warn up to the alert threshold ``warn``, and from the alert
threshold on ``alert``; a feature counts as *drifted* when it reaches ``alert``. The drift share is
the fraction of the *informative* compared features that drifted: a feature near-constant in the
reference (e.g. sensor_1 in FD001) has no scale to drift on and is reported but not counted.

Operating-regime normalisation lives here in a small self-contained form (settings rounded to a
grid; sensors z-scored per regime with the reference's statistics). It is independent of the
training-side feature pipeline on purpose: drift must be measurable without a model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from core.cmapss import FAIL_HORIZON, RUL_CAP, SENSORS, SETTINGS
from core.errors import UserError

Level = Literal["none", "warn", "alert"]
VerdictLevel = Literal["none", "warn", "alert", "retrain"]

METHODS: tuple[str, ...] = ("psi", "ks", "wasserstein")
DEFAULT_BINS = 10
EPSILON = 1e-4
"""Floor for a bin's share in PSI, so an empty bin gives a large but finite term."""
SETTING_RESOLUTION: tuple[float, float, float] = (1.0, 0.01, 1.0)
"""Grid the three settings are rounded to when finding operating conditions (altitude kft, Mach, TRA)."""
MAX_REGIMES = 12
"""More rounded setting groups than this in the reference means the settings are not discrete regimes."""
NEAR_CONSTANT_SHARE = 0.95
"""A feature whose most common reference value covers this share of rows is near-constant (uninformative)."""


@dataclass(frozen=True)
class DriftResult:
    """One statistic's verdict on one feature: ``drifted`` is ``score >= threshold``.

    ``p_value`` is informational only (KS): on thousands of rows it is ~0 for tiny shifts.
    """

    method: str
    score: float
    drifted: bool
    threshold: float
    p_value: float | None = None

    def to_dict(self) -> dict:
        """A JSON-serialisable copy."""
        return asdict(self)


@dataclass(frozen=True)
class Thresholds:
    """Warn/alert thresholds per statistic, and when to recommend retraining.

    Retraining is recommended when the drift share is *above* ``share`` or the prediction PSI is
    *above* ``prediction_psi``. The KS and Wasserstein defaults are heuristics of this project
    (Wasserstein is in units of the reference's standard deviation).
    """

    psi_warn: float = 0.1
    psi_alert: float = 0.25
    ks_warn: float = 0.1
    ks_alert: float = 0.2
    wasserstein_warn: float = 0.1
    wasserstein_alert: float = 0.25
    share: float = 0.3
    prediction_psi: float = 0.25

    def __post_init__(self) -> None:
        for method in METHODS:
            warn, alert = self.levels(method)
            if not (np.isfinite(warn) and np.isfinite(alert)) or warn < 0 or alert < warn:
                raise UserError(
                    f"The {method} thresholds must satisfy 0 <= warn <= alert; got warn {warn} and alert {alert}."
                )
        if not 0 <= self.share <= 1:
            raise UserError(f"The drift-share threshold must be between 0 and 1; got {self.share}.")
        if not (np.isfinite(self.prediction_psi) and self.prediction_psi >= 0):
            raise UserError(f"The prediction-PSI threshold must be a non-negative number; got {self.prediction_psi}.")

    def levels(self, method: str) -> tuple[float, float]:
        """``(warn, alert)`` for a statistic."""
        _check_method(method)
        return getattr(self, f"{method}_warn"), getattr(self, f"{method}_alert")

    def with_levels(self, method: str, warn: float | None = None, alert: float | None = None) -> Thresholds:
        """A copy with the warn and/or alert threshold of ``method`` replaced."""
        current_warn, current_alert = self.levels(method)
        values = asdict(self)
        values[f"{method}_warn"] = current_warn if warn is None else warn
        values[f"{method}_alert"] = current_alert if alert is None else alert
        return Thresholds(**values)

    def to_dict(self) -> dict:
        """A JSON-serialisable copy."""
        return asdict(self)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise UserError(f"Unknown drift method '{method}'; choose one of {', '.join(METHODS)}.")


def _sample(values: object, what: str) -> np.ndarray:
    """``values`` as a 1-D float array, refusing empty, non-numeric or non-finite input."""
    try:
        array = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError) as err:
        raise UserError(f"The {what} sample must be numeric ({err}).") from err
    if array.size == 0:
        raise UserError(f"The {what} sample is empty, so drift cannot be measured.")
    if not np.all(np.isfinite(array)):
        raise UserError(f"The {what} sample contains NaN or infinite values.")
    return array


def psi_bin_shares(
    reference: np.ndarray, current: np.ndarray, bins: int = DEFAULT_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Shares of ``reference`` and ``current`` per bin, bins cut at the reference's quantiles.

    Bins are right-closed, ``(edge[i-1], edge[i]]``, open-ended at both sides; tied quantiles
    collapse into one edge, so a discrete reference gets fewer bins. A constant reference ``c``
    gets the degenerate bins ``x < c``, ``x == c``, ``x > c``: any departure from ``c`` counts.
    """
    if bins < 2:
        raise UserError(f"PSI needs at least 2 bins; got {bins}.")
    low, high = reference.min(), reference.max()
    if low == high:
        ref_idx = np.ones(reference.size, dtype=int)
        cur_idx = np.where(current < low, 0, np.where(current > low, 2, 1))
        n_bins = 3
    else:
        edges = np.unique(np.quantile(reference, np.arange(1, bins) / bins))
        ref_idx = np.searchsorted(edges, reference, side="left")
        cur_idx = np.searchsorted(edges, current, side="left")
        n_bins = edges.size + 1
    ref_share = np.bincount(ref_idx, minlength=n_bins) / reference.size
    cur_share = np.bincount(cur_idx, minlength=n_bins) / current.size
    return ref_share, cur_share


def psi(
    reference: object,
    current: object,
    threshold: float = 0.25,
    bins: int = DEFAULT_BINS,
    epsilon: float = EPSILON,
) -> DriftResult:
    """Population stability index, ``sum((c - r) * ln(c / r))`` over reference-quantile bins.

    Shares are floored at ``epsilon`` (not renormalised) so empty bins stay finite.
    """
    ref = _sample(reference, "reference")
    cur = _sample(current, "current")
    ref_share, cur_share = psi_bin_shares(ref, cur, bins)
    r = np.maximum(ref_share, epsilon)
    c = np.maximum(cur_share, epsilon)
    score = float(np.sum((c - r) * np.log(c / r)))
    return DriftResult("psi", score, score >= threshold, threshold)


def ks(reference: object, current: object, threshold: float = 0.2) -> DriftResult:
    """Two-sample Kolmogorov-Smirnov statistic (``scipy.stats.ks_2samp``); judged on the statistic.

    The p-value is the asymptotic one (the exact one is slow on thousands of rows and, like any
    p-value on large samples, ~0 for tiny shifts), kept as information only.
    """
    ref = _sample(reference, "reference")
    cur = _sample(current, "current")
    from scipy import stats  # imported here: scipy.stats takes seconds to import, and the CLI lists this module

    test = stats.ks_2samp(ref, cur, method="asymp")
    score = float(test.statistic)
    return DriftResult("ks", score, score >= threshold, threshold, p_value=float(test.pvalue))


def wasserstein(reference: object, current: object, threshold: float = 0.25, normalise: bool = True) -> DriftResult:
    """Earth mover's distance (``scipy.stats.wasserstein_distance``).

    With ``normalise`` it is divided by the reference's standard deviation, so thresholds are in
    reference standard deviations; a constant reference has no scale and keeps the raw distance.
    """
    ref = _sample(reference, "reference")
    cur = _sample(current, "current")
    from scipy import stats

    score = float(stats.wasserstein_distance(ref, cur))
    scale = float(ref.std())
    if normalise and scale > 0:
        score /= scale
    return DriftResult("wasserstein", score, score >= threshold, threshold)


def level(score: float, warn: float, alert: float) -> Level:
    """``alert`` from ``alert`` up, ``warn`` from ``warn`` up, else ``none``."""
    if score >= alert:
        return "alert"
    if score >= warn:
        return "warn"
    return "none"


def prediction_drift(reference_rul: object, current_rul: object, threshold: float = 0.25) -> DriftResult:
    """Prediction drift: PSI of the predicted RUL of the current window against the reference's."""
    return psi(reference_rul, current_rul, threshold)


# Operating conditions ------------------------------------------------------------------------


def _require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"The {what} data lacks the column(s) {', '.join(missing)}.")
    if frame.empty:
        raise UserError(f"The {what} data has no rows.")


def condition_keys(frame: pd.DataFrame) -> np.ndarray:
    """Each row's operating condition: its three settings rounded to ``SETTING_RESOLUTION`` (int grid)."""
    settings = frame[SETTINGS].to_numpy(dtype=float)
    return np.rint(settings / np.asarray(SETTING_RESOLUTION)).astype(np.int64)


def count_operating_conditions(frame: pd.DataFrame) -> int:
    """How many distinct operating conditions (rounded setting groups) a frame runs at."""
    _require_columns(frame, SETTINGS, "given")
    return int(np.unique(condition_keys(frame), axis=0).shape[0])


@dataclass(frozen=True)
class RegimeSummary:
    """What regime normalisation found: conditions per frame and those new to the current data."""

    reference_conditions: int
    current_conditions: int
    unseen_conditions: int
    unseen_rows: int

    def to_dict(self) -> dict:
        """A JSON-serialisable copy."""
        return asdict(self)


def near_constant(values: object, share: float = NEAR_CONSTANT_SHARE) -> bool:
    """True when the most common value covers at least ``share`` of the sample."""
    array = _sample(values, "given")
    _, counts = np.unique(array, return_counts=True)
    return bool(counts.max() >= share * array.size)


def _moments(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations; a constant column gets its exact value and std 0."""
    mean = block.mean(axis=0)
    std = block.std(axis=0)
    constant = block.max(axis=0) == block.min(axis=0)
    mean[constant] = block[0, constant]
    std[constant] = 0.0
    return mean, std


def _zscore(values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(values - mean) / std`` with a zero std replaced by 1 (a constant sensor is only centred)."""
    return (values - mean) / np.where(std > 0, std, 1.0)


def normalise_by_regime(
    reference: pd.DataFrame, current: pd.DataFrame, features: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, RegimeSummary]:
    """Z-score ``features`` per operating regime, with regimes and statistics fitted on the reference.

    Regimes are the reference's rounded setting groups. A current row joins the nearest reference
    regime when its settings lie within one grid step of that regime's mean settings (on every
    setting); rows further away belong to conditions the reference never saw. Those are grouped
    by their own rounded settings and centred on their own statistics, so for them only the
    shape of the distribution is compared, not its level. A constant sensor (std 0) is only centred.
    Returns the normalised copies (features only) and a summary.
    """
    _require_columns(reference, [*SETTINGS, *features], "reference")
    _require_columns(current, [*SETTINGS, *features], "current")
    ref_keys = condition_keys(reference)
    regimes, ref_regime = np.unique(ref_keys, axis=0, return_inverse=True)
    ref_regime = ref_regime.ravel()
    if regimes.shape[0] > MAX_REGIMES:
        raise UserError(
            f"The reference's settings form {regimes.shape[0]} groups, more than {MAX_REGIMES}, "
            "so they are not discrete operating conditions and regime normalisation does not apply."
        )
    ref_values = reference[features].to_numpy(dtype=float)
    ref_settings = reference[SETTINGS].to_numpy(dtype=float)
    resolution = np.asarray(SETTING_RESOLUTION)
    ref_out = np.empty_like(ref_values)
    centres = np.empty((regimes.shape[0], len(SETTINGS)))
    means = np.empty((regimes.shape[0], len(features)))
    stds = np.empty_like(means)
    for i in range(regimes.shape[0]):
        rows = ref_regime == i
        centres[i] = ref_settings[rows].mean(axis=0)
        means[i], stds[i] = _moments(ref_values[rows])
        ref_out[rows] = _zscore(ref_values[rows], means[i], stds[i])

    cur_values = current[features].to_numpy(dtype=float)
    cur_settings = current[SETTINGS].to_numpy(dtype=float)
    steps = np.abs(cur_settings[:, None, :] - centres[None, :, :]) / resolution
    distance = steps.max(axis=2)
    nearest = distance.argmin(axis=1)
    seen = distance[np.arange(nearest.size), nearest] <= 1.0
    cur_out = np.empty_like(cur_values)
    for i in np.unique(nearest[seen]):
        rows = seen & (nearest == i)
        cur_out[rows] = _zscore(cur_values[rows], means[i], stds[i])
    unseen_keys = condition_keys(current)[~seen]
    new_regimes, new_regime = np.unique(unseen_keys, axis=0, return_inverse=True)
    unseen_values = cur_values[~seen]
    unseen_out = np.empty_like(unseen_values)
    for j in range(new_regimes.shape[0]):
        rows = new_regime.ravel() == j
        block = unseen_values[rows]
        unseen_out[rows] = _zscore(block, *_moments(block))
    cur_out[~seen] = unseen_out

    summary = RegimeSummary(
        reference_conditions=int(regimes.shape[0]),
        current_conditions=count_operating_conditions(current),
        unseen_conditions=int(new_regimes.shape[0]),
        unseen_rows=int((~seen).sum()),
    )
    return (
        pd.DataFrame(ref_out, columns=features, index=reference.index),
        pd.DataFrame(cur_out, columns=features, index=current.index),
        summary,
    )


# Comparing frames ----------------------------------------------------------------------------


def compare_frames(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str] | None = None,
    method: str = "psi",
    normalise: bool = False,
    thresholds: Thresholds | None = None,
) -> pd.DataFrame:
    """Per-feature drift of ``current`` against ``reference``.

    Returns one row per feature: ``feature, psi, ks, ks_p_value, wasserstein, drifted, level,
    informative``; ``level`` and ``drifted`` (= level ``alert``) come from ``method`` and its
    thresholds; ``informative`` is False for a feature near-constant in the reference (in the view
    compared), which the drift share leaves out. With
    ``normalise`` the features are first z-scored per operating regime (:func:`normalise_by_regime`).
    """
    _check_method(method)
    limits = thresholds or Thresholds()
    names = list(features) if features is not None else list(SENSORS)
    if not names:
        raise UserError("No features were given to compare.")
    _require_columns(reference, names, "reference")
    _require_columns(current, names, "current")
    if normalise:
        reference, current, _ = normalise_by_regime(reference, current, names)
    return _table(reference, current, names, method, limits)


TABLE_COLUMNS: tuple[str, ...] = (
    "feature", "psi", "ks", "ks_p_value", "wasserstein", "drifted", "level", "informative"
)


def _table(
    reference: pd.DataFrame, current: pd.DataFrame, names: list[str], method: str, limits: Thresholds
) -> pd.DataFrame:
    """The per-feature drift table of two frames already in the view to compare."""
    warn, alert = limits.levels(method)
    rows = []
    for name in names:
        r, c = reference[name].to_numpy(dtype=float), current[name].to_numpy(dtype=float)
        results = {
            "psi": psi(r, c, limits.psi_alert),
            "ks": ks(r, c, limits.ks_alert),
            "wasserstein": wasserstein(r, c, limits.wasserstein_alert),
        }
        feature_level = level(results[method].score, warn, alert)
        rows.append(
            {
                "feature": name,
                "psi": results["psi"].score,
                "ks": results["ks"].score,
                "ks_p_value": results["ks"].p_value,
                "wasserstein": results["wasserstein"].score,
                "drifted": feature_level == "alert",
                "level": feature_level,
                "informative": not near_constant(r),
            }
        )
    return pd.DataFrame(rows, columns=[*TABLE_COLUMNS])


def drift_share(table: pd.DataFrame) -> float:
    """Fraction of the informative compared features that drifted (reached the alert threshold)."""
    informative = table[table["informative"]]
    if informative.empty:
        raise UserError("None of the compared features varies in the reference, so there is no drift share.")
    return float(informative["drifted"].mean())


def worst_level(table: pd.DataFrame) -> Level:
    """The highest level among the informative features of a drift table."""
    levels = set(table.loc[table["informative"], "level"])
    return "alert" if "alert" in levels else "warn" if "warn" in levels else "none"


# Live error ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveError:
    """Accuracy on a window where the truth is known.

    ``f2`` is None when the window has no actual and no predicted failure (F2 is undefined).
    """

    n: int
    rmse: float
    f2: float | None
    horizon: int

    def to_dict(self) -> dict:
        """A JSON-serialisable copy."""
        return asdict(self)


def live_error(
    true_rul: object,
    predicted_rul: object,
    p_fail: object | None = None,
    p_threshold: float = 0.5,
    horizon: int = FAIL_HORIZON,
    cap: int | None = RUL_CAP,
) -> LiveError:
    """RMSE of predicted RUL and F2 of the 'fails within ``horizon`` cycles' call on one window.

    The truth is capped at ``cap`` for the RMSE, like the training target. An engine truly fails
    within the horizon when its true RUL is ``<= horizon``; it is predicted to when ``p_fail >=
    p_threshold`` or, without probabilities, when its predicted RUL is ``<= horizon``.
    """
    truth = _sample(true_rul, "true RUL")
    predicted = _sample(predicted_rul, "predicted RUL")
    if truth.size != predicted.size:
        raise UserError(f"Got {truth.size} true RUL values but {predicted.size} predictions.")
    capped = np.minimum(truth, cap) if cap is not None else truth
    rmse = float(np.sqrt(np.mean((predicted - capped) ** 2)))
    actual = truth <= horizon
    if p_fail is None:
        called = predicted <= horizon
    else:
        probs = _sample(p_fail, "failure probability")
        if probs.size != truth.size:
            raise UserError(f"Got {truth.size} true RUL values but {probs.size} failure probabilities.")
        called = probs >= p_threshold
    tp = int(np.sum(actual & called))
    fp = int(np.sum(~actual & called))
    fn = int(np.sum(actual & ~called))
    denominator = 5 * tp + 4 * fn + fp
    f2 = 5 * tp / denominator if denominator else None
    return LiveError(n=int(truth.size), rmse=rmse, f2=f2, horizon=horizon)


# Verdict -------------------------------------------------------------------------------------


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
    _check_method(method)
    _, alert = limits.levels(method)
    raw = compare_frames(reference, current, names, method, False, limits)
    normalised_table = None
    summary = None
    if has_settings:
        ref_norm, cur_norm, summary = normalise_by_regime(reference, current, names)
        normalised_table = _table(ref_norm, cur_norm, names, method, limits)
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
