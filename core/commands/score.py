"""``python -m core score``: predict RUL, interval, failure probability and risk for every engine."""

from __future__ import annotations

import argparse
from typing import Any

from core.data import names

HELP = "score every engine of a dataset at its last cycle and record the predictions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``score``."""
    parser.add_argument("--dataset", required=True, type=names.argument(names.DATASET),
                        help="dataset name, e.g. test_FD001")
    parser.add_argument("--model", default="champion", help="model version, 'champion' (default) or 'challenger'")
    parser.add_argument("--no-record", action="store_true", help="do not write the predictions to the store")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Score the dataset and return one record per engine.

    Each record carries ``ood`` (the engine ran outside the model's training experience) and
    ``ood_reason`` (which operating regime or sensors; '' when not flagged).
    """
    from core.serving import scoring

    version, ensemble = scoring.load_model(args.model)
    rows, truth = scoring.fleet_frame([args.dataset])
    predictions = scoring.score(ensemble, rows, truth)
    if not args.no_record:
        scoring.record(predictions, version)
    records = predictions.drop(columns=["dataset"]).astype(object).where(predictions.notna(), None)
    return {"dataset": args.dataset, "model_version": version, "out_of_experience": int(predictions["ood"].sum()),
            "engines": records.to_dict(orient="records")}


def render(result: dict[str, Any]) -> str:
    """A fixed-width table, one engine per line."""
    lines = [f"{result['dataset']} scored with rul-ensemble v{result['model_version']}"]
    lines.append(f"{'unit':>5} {'cycle':>6} {'rul':>7} {'interval':>17} {'p_fail_30':>9}  {'risk':<6}  ood")
    for e in result["engines"]:
        interval = f"[{e['rul_low']:.1f}, {e['rul_high']:.1f}]"
        lines.append(f"{e['unit']:>5} {e['cycle']:>6} {e['rul']:>7.1f} {interval:>17} {e['p_fail_30']:>9.3f}  "
                     f"{e['risk']:<6}  {'yes' if e['ood'] else ''}")
    flagged = [e for e in result["engines"] if e["ood"]]
    if flagged:
        lines.append(f"{len(flagged)} engine(s) out of the model's experience, e.g. unit {flagged[0]['unit']}: "
                     f"{flagged[0]['ood_reason']}")
    return "\n".join(lines)
