"""``python -m core simulate``: the streamed production simulation, in the foreground."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.monitoring import simulate, stream_plan, timelines

HELP = ("stream FD001..FD004 as quarters T0..T3, measure drift, prediction PSI and live error per step, "
        "and retrain on threshold crossings, all in a sandbox (registered model rul-ensemble-sim and its own "
        "DuckDB file): the served champion and the fleet store are never touched")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``simulate``."""
    defaults = stream_plan.Settings()
    parser.add_argument("--steps", type=int, default=defaults.steps,
                        help=f"steps in all, spread over the four quarters (default {defaults.steps})")
    parser.add_argument("--engines-per-step", type=int, default=defaults.engines_per_step,
                        help=f"whole engines streamed per step (default {defaults.engines_per_step})")
    parser.add_argument("--mix", type=int, default=defaults.mix,
                        help=f"engines of the next quarter in the last step of each quarter (default {defaults.mix})")
    parser.add_argument("--auto-retrain", action=argparse.BooleanOptionalAction, default=defaults.auto_retrain,
                        help="retrain when the verdict recommends it (default on)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs,
                        help=f"LSTM epochs of each retrain (default {defaults.epochs})")
    parser.add_argument("--trees", type=int, default=defaults.trees,
                        help=f"XGBoost trees of each retrain (default {defaults.trees})")
    parser.add_argument("--normalised", action="store_true", help="judge drift on regime-normalised sensors")
    parser.add_argument("--max-retrains", type=int, default=defaults.max_retrains,
                        help=f"at most this many retrains per run (default {defaults.max_retrains})")
    parser.add_argument("--retrain-gap", type=int, default=defaults.retrain_gap,
                        help=f"at least this many steps between retrains (default {defaults.retrain_gap})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help=f"seed of the engine draw (default {defaults.seed})")


def _progress(done: int, total: int, message: str) -> None:
    print(f"[{done}/{total}] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the simulation in the foreground (training jobs still run as background jobs) and return the timeline."""
    settings = stream_plan.Settings(
        steps=args.steps, engines_per_step=args.engines_per_step, mix=args.mix, auto_retrain=args.auto_retrain,
        epochs=args.epochs, trees=args.trees, normalise=args.normalised, retrain_gap=args.retrain_gap,
        max_retrains=args.max_retrains, seed=args.seed,
    )
    path = timelines.new_timeline_path("cli")
    timeline = simulate.run(settings, path, _progress, created_by="cli simulate")
    return {"timeline_path": str(path), "summary": timelines.summary(timeline), **timeline}


def render(result: dict[str, Any]) -> str:
    """One line per step, then the events and the summary."""
    lines = [f"{'step':>4} {'quarter':<7} {'sources':<28} {'model':>5} {'drift':>6} {'predPSI':>8} {'RMSE':>6}  events"]
    for step in result["steps"]:
        sources = ", ".join(f"{k.removeprefix('train_')}x{v}" for k, v in step["sources"].items())
        notes = [f"{m} crossed" for m in step["crossed"]]
        retrain = step.get("retrain")
        if retrain:
            version = f"v{retrain['version']}" if retrain.get("version") is not None else "no version"
            notes.append(f"retrain -> {version} {'promoted' if retrain.get('promoted') else 'not promoted'}")
        shadow = step.get("shadow")
        if shadow:
            notes.append(f"shadow v{shadow['version']} {'promoted' if shadow['promoted'] else 'stays out'}")
        psi = "n/a" if step["prediction_psi"] is None else f"{step['prediction_psi']:.2f}"
        lines.append(
            f"{step['step']:>4} {step['quarter']:<7} {sources:<28} {'v' + str(step['model_version']):>5} "
            f"{step['drift_share']:>6.2f} {psi:>8} {step['rmse']:>6.1f}  "
            + "; ".join(notes)
        )
    lines.append("events:")
    lines.extend(f"  - {e['text']}" for e in result["events"])
    s = result["summary"]
    lines.append(
        f"{s['status']}: {s['steps_done']}/{s['steps_total']} steps, {s['crossings']} crossings, "
        f"{s['retrains']} retrains ({s['promoted']} promoted), versions of {result['registered_model']} served "
        f"{', '.join('v' + str(v) for v in s['versions_served'])}, {s['elapsed_s']:.0f} s; "
        f"timeline in {result['timeline_path']}"
    )
    return "\n".join(lines)
