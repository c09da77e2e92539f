"""``python -m core plan``: which engines in service go to the shop in which week, at the lowest expected cost."""

from __future__ import annotations

import argparse
import getpass
from datetime import date
from typing import Any

from core.errors import UserError

HELP = ("plan which engines in service to remove in which week under shop capacity, at the lowest expected cost, "
        "from the stored scores of the serving model")


def _slots(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of slots or a comma-separated list of them.") \
            from None


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date written YYYY-MM-DD.") from None


def _utilisation(text: str) -> tuple[str, float]:
    name, _, value = text.rpartition("=")
    try:
        if name:
            return name, float(value)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"'{text}' is not DATASET=CYCLES_PER_DAY.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``plan``."""
    parser.add_argument("--weeks", type=int, default=8, help="horizon in calendar weeks (default 8)")
    parser.add_argument("--slots", type=_slots, default=(5,), metavar="S[,S...]",
                        help="shop slots per week: one number for every week, or one per week (default 5)")
    parser.add_argument("--failure-cost", type=float, default=50_000.0, help="dollars per unscheduled failure")
    parser.add_argument("--removal-cost", type=float, default=2_000.0, help="dollars per planned removal")
    parser.add_argument("--life-cost", type=float, default=10.0, help="dollars per cycle of life a removal gives up")
    parser.add_argument("--start", type=_day, default=None, metavar="YYYY-MM-DD", help="first day (default today)")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                        help="in-service datasets to plan (default: every fleet and evaluation dataset)")
    parser.add_argument("--utilisation", type=_utilisation, action="append", default=[], metavar="DATASET=N",
                        help="cycles per day of a dataset for this plan (default: the stored value, else 2)")
    parser.add_argument("--engine-utilisation", nargs=3, action="append", default=[],
                        metavar=("DATASET", "ENGINE", "N"),
                        help="cycles per day of one engine for this plan (repeatable; default: the engine's stored "
                             "value, else its dataset's)")
    parser.add_argument("--exclude", nargs=2, action="append", default=[], metavar=("DATASET", "ENGINE"),
                        help="leave an engine out of the plan (repeatable)")
    parser.add_argument("--scheduled", nargs=3, action="append", default=[], metavar=("DATASET", "ENGINE", "WEEK"),
                        help="an engine already given a week (repeatable)")
    parser.add_argument("--model", default="champion", help="model version whose stored scores are planned")
    parser.add_argument("--accept", action="store_true", help="store the plan as accepted (who, when, model version)")
    parser.add_argument("--by", default=None, help="who accepts it (default: this system user)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Compute the plan (and store it with ``--accept``); the engines, weeks and baselines as records."""
    from core.planning import accepted, planner, service
    from core.serving import scoring

    try:
        scheduled = tuple((d, e, int(w)) for d, e, w in args.scheduled)
    except ValueError as err:
        raise UserError("The week of a scheduled engine must be a whole number.") from err
    try:
        own = tuple((d, e, float(v)) for d, e, v in args.engine_utilisation)
    except ValueError as err:
        raise UserError("The utilisation of an engine must be a number of cycles per day.") from err
    request = planner.PlanRequest(
        weeks=args.weeks, slots=args.slots, start=args.start or date.today(),
        costs=planner.PlanCosts(failure=args.failure_cost, removal=args.removal_cost, life_per_cycle=args.life_cost),
        utilisation=tuple(args.utilisation), engine_utilisation=own, scheduled=scheduled, excluded=tuple(tuple(e) for e in args.exclude))
    version, ensemble = scoring.load_model(args.model)
    plan = service.fleet_plan(version, ensemble.conformal, request, args.datasets)
    plan_id = accepted.accept(plan, version, args.by or getpass.getuser()) if args.accept else None
    return service.as_record(plan, plan_id)


def render(result: dict[str, Any]) -> str:
    """The weeks, the policies' expected costs and the planned engines, one per line."""
    lines = [(f"Plan of {result['engines_in_service']:,} engine(s) in service (model v{result['model_version']}), "
             f"{result['weeks']} week(s) from {result['start']}: {result['planned']:,} planned ({result['method']}).")]
    if result["stale"]:
        lines.append(f"{result['stale']:,} engine(s) have readings newer than their stored score (or none): run the "
                     "scoring (Fleet page) for a plan on current scores.")
    lines.append(f"{'week':>4}  {'from':<10}  {'slots':>5}  {'planned':>7}  {'expected removals (90 % band)':<30}")
    for w in result["calendar"]:
        band = f"{w['expected_removals']:.1f} ({w['removals_low']:.1f}-{w['removals_high']:.1f})"
        lines.append(f"{w['week']:>4}  {w['week_start']:<10}  {w['slots']:>5}  {w['planned']:>7}  {band:<30}")
    for p in result["policies"]:
        lines.append(f"{p['policy']}: expected cost ${p['expected_cost']:,.0f}, {p['planned']:,} planned, "
                     f"{p['expected_failures']:.1f} expected failures")
    lines.append(f"{'week':>4}  {'engine':<16} {'dataset':<16} {'P(fail first)':>13}  reason")
    for e in result["engines"]:
        if e["week"] is not None:
            lines.append(f"{e['week']:>4}  {e['engine']:<16} {e['dataset']:<16} {e['p_fail_before']:>13.1%}  "
                         f"{e['reason']}")
    if result["accepted_plan"] is not None:
        lines.append(f"Stored as accepted plan {result['accepted_plan']}.")
    return "\n".join(lines)
