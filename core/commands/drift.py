"""``python -m core drift``: has the current dataset drifted from the reference?"""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from core.data import names, store
from core.monitoring import drift, statistics, verdicts

HELP = "compare a dataset with a reference: per-sensor drift, drift share and a retraining verdict"

NO_MODEL_REASON = "no model"
"""Why prediction drift is not measured when the registry has no champion."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``drift``."""
    dataset = names.argument(names.DATASET)
    parser.add_argument("--reference", required=True, type=dataset, help="reference dataset name, e.g. train_FD001")
    parser.add_argument("--current", required=True, type=dataset, help="current dataset name, e.g. train_FD002")
    parser.add_argument("--normalised", action="store_true", help="compare after operating-regime normalisation")
    parser.add_argument("--method", choices=statistics.METHODS, default="psi", help="statistic that decides (default psi)")
    parser.add_argument("--warn", type=float, default=None, help="warn threshold of the method (psi default 0.1)")
    parser.add_argument("--alert", type=float, default=None, help="alert threshold of the method (psi default 0.25)")
    parser.add_argument("--share", type=float, default=statistics.Thresholds.share,
                        help="drift share above which retraining is recommended (default 0.3)")
    parser.add_argument("--model", default="champion",
                        help="model whose predicted RUL is compared: a version, champion (default) or challenger")


def _prediction_drift(
    reference: pd.DataFrame, current: pd.DataFrame, model: str, threshold: float
) -> tuple[float | None, str | None, int | None]:
    """(prediction PSI, reason it is missing, model version): the model scores every cycle of both sides.

    Only a missing champion leaves it unmeasured; a named version that does not exist is an error.
    """
    from core.monitoring import prediction_drift
    from core.operations import registry
    from core.serving import scoring

    if model in ("champion", "") and registry.champion_version() is None:
        return None, NO_MODEL_REASON, None
    version, ensemble = scoring.load_model(model)
    measured = prediction_drift.measure(ensemble, reference, current, threshold, version)
    return measured.result.score, None, version


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Read both datasets from the store, measure prediction drift with the model if one exists, and assess."""
    thresholds = statistics.Thresholds(share=args.share).with_levels(args.method, args.warn, args.alert)
    with store.connect(read_only=True) as con:
        reference, reference_read = drift.read_side(con, [args.reference])
        current, current_read = drift.read_side(con, [args.current])
    prediction_psi, reason, version = _prediction_drift(reference, current, args.model, thresholds.prediction_psi)
    report = verdicts.assess(
        reference,
        current,
        method=args.method,
        normalise=args.normalised,
        thresholds=thresholds,
        prediction_psi=prediction_psi,
        prediction_psi_reason=reason,
    )
    return {"reference": args.reference, "current": args.current, "model_version": version,
            "reference_read": reference_read.to_dict(), "current_read": current_read.to_dict(), **report.to_dict()}


def render(result: dict[str, Any]) -> str:
    """A fixed-width table, one feature per line, then the drift share, verdict and thresholds."""
    view = "regime-normalised" if result["normalised"] else "raw"
    lines = [f"{result['current']} vs {result['reference']} ({view} values, decided by {result['method']})"]
    sides = [("reference", result["reference_read"]), ("current", result["current_read"])]
    for side, read in sides:
        if read["sampled"]:
            lines.append(f"{side}: a seeded sample of {read['engines']:,} of {read['total_engines']:,} engines "
                         f"({read['readings']:,} of {read['total_readings']:,} readings); statistics are of the sample")
    lines.append(f"{'feature':<10} {'psi':>8} {'ks':>6} {'wasserstein':>11}  level")
    for row in result["features"]:
        note = "" if row["informative"] else "  (near-constant in reference, not counted)"
        scores = f"{row['psi']:>8.3f} {row['ks']:>6.3f} {row['wasserstein']:>11.3f}"
        lines.append(f"{row['feature']:<10} {scores}  {row['level']}{note}")
    lines.append(f"drift_share: {result['drift_share']:.3f}")
    prediction = result["prediction_psi"]
    if prediction is None:
        lines.append(f"prediction_psi: n/a ({result['prediction_psi_reason']})")
    else:
        lines.append(f"prediction_psi: {prediction:.3f} (predicted RUL of model v{result['model_version']})")
    verdict = result["verdict"]
    advice = " (retraining recommended)" if verdict["retrain_recommended"] else ""
    lines.append(f"verdict: {verdict['level']}{advice}")
    lines.extend(f"  - {sentence}" for sentence in verdict["explanation"])
    limits = result["thresholds"]
    method = result["method"]
    lines.append(
        f"thresholds: {method} warn {limits[f'{method}_warn']:g}, alert {limits[f'{method}_alert']:g}; "
        f"drift share > {limits['share']:g} or prediction PSI > {limits['prediction_psi']:g} recommends retraining"
    )
    return "\n".join(lines)
