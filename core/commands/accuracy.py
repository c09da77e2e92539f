"""``python -m core accuracy``: live accuracy of stored predictions on engines whose end of life is known.

Only predictions stored before an engine's outcome was recorded count: a model trained on the engine's closed
copy is trained after that, so none of its predictions on that engine is ever in these figures.
"""

from __future__ import annotations

import argparse
from typing import Any

from core.data import fleet_ops

HELP = "live accuracy by model version: stored predictions of closed engines against the realised RUL"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``accuracy`` takes no arguments beyond ``--json``."""


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Engines, predictions, RMSE, MAE, coverage and HIGH recall/precision per model version, and the closed
    engines by their ids (``by_engine``). Only predictions made before an engine's outcome was recorded count."""
    return fleet_ops.live_accuracy()


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else format(value, pattern)


def render(result: dict[str, Any]) -> str:
    """A table by model version."""
    if not result["by_version"]:
        return ("No closed engine has stored predictions yet: record failures or removals (`python -m core "
                "outcome`) of engines that were scored.")
    lines = [f"{result['predictions']:,} predictions of {result['engines']} closed engines.",
             (f"{'version':>8} {'engines':>8} {'preds':>7} {'RMSE':>7} {'MAE':>7} {'coverage':>9} {'HIGH recall':>12} "
             f"{'HIGH precision':>15}")]
    for r in result["by_version"]:
        lines.append(f"{r['model_version']:>8} {r['engines']:>8} {r['predictions']:>7} {r['rmse']:>7.2f} "
                     f"{r['mae']:>7.2f} {_fmt(r['coverage'], '>9.2f')} {_fmt(r['high_recall'], '>12.2f')} "
                     f"{_fmt(r['high_precision'], '>15.2f')}")
    lines.append("Closed engines: " + "; ".join(
        f"{e['engine']} of {e['dataset']} (closed at cycle {e['closed_cycle']}, {e['predictions']} predictions)"
        for e in result["by_engine"]) + ".")
    return "\n".join(lines)
