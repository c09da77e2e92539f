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
    """Score the dataset and return one record per engine, named by its ``engine`` id as the operator writes it
    (the store's internal unit numbers are never shown).

    Each record carries ``ood`` (the engine ran outside the model's training experience) and
    ``ood_reason`` (which operating regime or sensors; '' when not flagged).
    """
    from core.data import queries, store
    from core.serving import scoring

    version, ensemble = scoring.load_model(args.model)
    rows, truth = scoring.fleet_frame([args.dataset])
    predictions = scoring.score(ensemble, rows, truth)
    if not args.no_record:
        scoring.record(predictions, version)
    with store.connect(read_only=True) as con:
        ids = queries.engine_ids(con, args.dataset)
    named = predictions.assign(unit=predictions["unit"].astype(int).map(ids)).rename(columns={"unit": "engine"})
    records = named.drop(columns=["dataset"]).astype(object).where(named.notna(), None)
    return {"dataset": args.dataset, "model_version": version, "out_of_experience": int(predictions["ood"].sum()),
            "engines": records.to_dict(orient="records")}


def render(result: dict[str, Any]) -> str:
    """A fixed-width table, one engine per line."""
    width = max([6, *(len(str(e["engine"])) for e in result["engines"])])
    lines = [f"{result['dataset']} scored with rul-ensemble v{result['model_version']}"]
    lines.append(f"{'engine':<{width}} {'cycle':>6} {'rul':>7} {'interval':>17} {'p_fail_30':>9}  {'risk':<6}  ood")
    for e in result["engines"]:
        interval = f"[{e['rul_low']:.1f}, {e['rul_high']:.1f}]"
        lines.append(f"{e['engine']:<{width}} {e['cycle']:>6} {e['rul']:>7.1f} {interval:>17} {e['p_fail_30']:>9.3f}  "
                     f"{e['risk']:<6}  {'yes' if e['ood'] else ''}")
    flagged = [e for e in result["engines"] if e["ood"]]
    if flagged:
        lines.append(f"{len(flagged)} engine(s) out of the model's experience, e.g. engine {flagged[0]['engine']}: "
                     f"{flagged[0]['ood_reason']}")
    return "\n".join(lines)
