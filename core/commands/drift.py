"""``python -m core drift``: has the current dataset drifted from the model's training data (or a reference)?"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from core.data import names, queries, store
from core.errors import UserError
from core.monitoring import drift, prediction_drift, report, statistics, verdicts

HELP = ("compare a dataset with the serving model's training data (or a reference): per-sensor drift, drift share "
        "and a retraining verdict")

NO_MODEL_REASON = "no model"
"""Why prediction drift is not measured when the registry has no champion."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``drift``."""
    dataset = names.argument(names.DATASET)
    parser.add_argument("--reference", default=None, type=dataset,
                        help="reference dataset name, e.g. train_FD001 (an exploratory comparison); default: the "
                             "training data of --model, judged as the Drift page and the server's drift alert do")
    parser.add_argument("--current", required=True, type=dataset, help="current dataset name, e.g. train_FD002")
    parser.add_argument("--normalised", action="store_true", help="compare after operating-regime normalisation")
    parser.add_argument("--method", choices=statistics.METHODS, default="psi", help="statistic that decides (default psi)")
    parser.add_argument("--warn", type=float, default=None, help="warn threshold of the method (psi default 0.1)")
    parser.add_argument("--alert", type=float, default=None, help="alert threshold of the method (psi default 0.25)")
    parser.add_argument("--share", type=float, default=statistics.Thresholds.share,
                        help="drift share above which retraining is recommended (default 0.3)")
    parser.add_argument("--model", default="champion",
                        help="model whose predicted RUL is compared (and, without --reference, whose training data "
                             "is the reference): a version, champion (default) or challenger")
    parser.add_argument("--html", default=None, metavar="FILE",
                        help="also write a self-contained HTML report (charts embedded, opens offline) to FILE")


def _model(model: str) -> tuple[int | None, Any]:
    """(version, ensemble) of `model`, or (None, None) when it names the champion and there is none."""
    from core.operations import registry
    from core.serving import scoring

    if model in ("champion", "") and registry.champion_version() is None:
        return None, None
    return scoring.load_model(model)


def _training_data(version: int | None, loaded: list[str]) -> tuple[str, ...]:
    """The datasets model `version` was trained on, all of them loaded; UserError otherwise."""
    from core.operations import registry

    if version is None:
        raise UserError("No model is trained yet, so there is no training data to compare with: name a dataset with "
                        "--reference, or train a model first.")
    trained_on = registry.training_datasets(version, registry.MODEL_NAME)
    training = verdicts.default_reference(trained_on, loaded)
    if training is None:
        missing = ", ".join(n for n in trained_on if n not in loaded) or "its training data"
        raise UserError(f"The training data of model v{version} ({missing}) is not loaded; name a dataset with "
                        "--reference to compare with instead.")
    return training


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Read both sides from the store, measure prediction drift with the model if one exists, and decide with
    :func:`core.monitoring.verdicts.against_training` (the Drift page's comparison)."""
    thresholds = statistics.Thresholds(share=args.share).with_levels(args.method, args.warn, args.alert)
    version, ensemble = _model(args.model)
    reads: dict[tuple[str, ...], drift.Sample] = {}
    with store.connect(read_only=True) as con:
        listing = queries.list_datasets(con)
        current, current_read = drift.read_side(con, [args.current])
        sides: dict[tuple[str, ...], pd.DataFrame] = {}

        def read(names: tuple[str, ...]) -> pd.DataFrame:
            if names not in sides:
                sides[names], reads[names] = drift.read_side(con, names)
            return sides[names]

        against_model = args.reference is None
        training = _training_data(version, listing["name"].tolist()) if against_model else (args.reference,)
        roles = dict(zip(listing["name"], listing["role"], strict=True))
        matched = against_model and roles.get(args.current) != "history"
        predict = None if ensemble is None else (
            lambda _side, _names, rows: prediction_drift.predicted_rul(ensemble, rows))
        comparison = verdicts.against_training(training, current, read, predict, matched=matched, method=args.method,
                                               normalise=args.normalised, thresholds=thresholds,
                                               no_model_reason=NO_MODEL_REASON)
        judged = read(comparison.reference)
        extras = report.collect(con, training, args.current,
                                drift.match_life_stage(judged, current) if matched else judged,
                                current) if args.html else None
    reference = ",".join(comparison.reference)
    result = {"reference": reference, "current": args.current, "model_version": version,
            "against_model": against_model, "training_data": list(training) if against_model else None,
            "life_stage_matched": matched,
            "part_shares": {",".join(part): share for part, share in comparison.shares.items()},
            "reference_read": reads[comparison.reference].to_dict(), "current_read": current_read.to_dict(),
            **comparison.report.to_dict()}
    if extras is not None:
        label = (f"training data of model v{version} ({reference})" if against_model else reference)
        write_html(args.html, report.render(result, label, args.current, extras, read_notes(result)))
        result["html"] = str(args.html)
        result["multivariate"] = extras.multivariate.to_dict() if extras.multivariate else None
    return result


def read_notes(result: dict[str, Any]) -> list[str]:
    """What each side read, where a side was sampled."""
    return [f"{side}: a seeded sample of {read['engines']:,} of {read['total_engines']:,} engines "
            f"({read['readings']:,} of {read['total_readings']:,} readings); statistics are of the sample"
            for side, read in (("reference", result["reference_read"]), ("current", result["current_read"]))
            if read["sampled"]]


def write_html(path: str, text: str) -> None:
    """Write the report to `path` (UTF-8); a path that cannot be written is a UserError."""
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as err:
        raise UserError(f"Could not write the report to {path}: {err.strerror or err}.") from err


def render(result: dict[str, Any]) -> str:
    """A fixed-width table, one feature per line, then the drift share, verdict and thresholds."""
    view = "regime-normalised" if result["normalised"] else "raw"
    lines = [f"{result['current']} vs {result['reference']} ({view} values, decided by {result['method']})"]
    if result["against_model"]:
        part = (f"; judged against {result['reference']}, the part nearest to {result['current']}"
                if result["reference"] != ",".join(result["training_data"]) else "")
        matched = (", training engines cut at the current engines' ages" if result["life_stage_matched"] else "")
        lines.append(f"reference: the training data of model v{result['model_version']} "
                     f"({', '.join(result['training_data'])}){part}{matched}")
    lines.extend(read_notes(result))
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
    if result.get("multivariate"):
        mv = result["multivariate"]
        lines.append(f"multivariate: {mv['score']:.3f} (reference band {mv['lower']:.3f} to {mv['upper']:.3f}"
                     f"{', drifted' if mv['drifted'] else ''})")
    lines.extend(f"  - {sentence}" for sentence in verdict["explanation"])
    limits = result["thresholds"]
    method = result["method"]
    lines.append(
        f"thresholds: {method} warn {limits[f'{method}_warn']:g}, alert {limits[f'{method}_alert']:g}; "
        f"drift share > {limits['share']:g} or prediction PSI > {limits['prediction_psi']:g} recommends retraining"
    )
    if result.get("html"):
        lines.append(f"report written to {result['html']}")
    return "\n".join(lines)
