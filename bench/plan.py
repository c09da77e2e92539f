"""Benchmark: maintenance plans against threshold rules on held-out run-to-failure engines, and plan time.

Per subset FD00x, a share of ``train_FD00x``'s engines (``--held-out``, seeded) is kept out of training; a model
is trained on the others with a small recipe (``--trees``, ``--epochs``; the rest the default recipe), which holds
out its own validation engines as every training does. The model predicts every cycle of the held-out and the
validation engines. Each engine is cut ``--cuts`` times at random ages (leaving 5 to life - 31 cycles, as NASA's
test sets are cut) and every cut is one engine of a simulated fleet: held-out engines for the evaluation, validation
engines for choosing the threshold. :mod:`core.planning.simulation` runs the fleet week by week
(``--cycles-per-day`` x 7 cycles a week) with the true failure times, at three capacities: scarce and tight (half
and all of the fleet's mean weekly failures: cuts / weeks until the last failure) and ample (never binds).

Policies: (a) the plan, re-planned every week over ``--weeks`` weeks from the RUL distributions, (b) every fixed
RUL threshold of :data:`core.planning.policies.THRESHOLDS`, the one reported chosen on the validation engines
(the best one in hindsight on the evaluated engines is shown too), (c) "Inspect HIGH", (d) run to failure, (e)
perfect information, the lower bound. Costs are the planner's defaults. Also reported per subset: how the RUL
distribution agrees with the served interval and with ``p_fail_30`` on the held-out engines at their cut ages.

Plan time: ``--timing-engines`` engines x ``--timing-weeks`` weeks with the last model's distributions and
synthetic predicted RULs, (i) a fleet (true RUL uniform over 0-350 cycles, predictions with an error of sd 12
cycles, capped at 125) at a binding capacity and (ii) the worst case (every RUL distinct and below the cap, a
scarce capacity): the whole :func:`core.planning.planner.make_plan` (costs, solve, reasons, baselines) and the
solver alone.

Run ``python -m core bench plan [--json]``.
"""

from __future__ import annotations

import argparse
import math
import time
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from bench.accuracy import data_folder, machine, read_readings
from bench.results import Figure
from core.data.cmapss import FAIL_HORIZON, SUBSETS
from core.planning import planner, policies, simulation, weeks
from models.rul_distribution import RulDistribution
from models.training import TrainConfig, split_engines, train

CAPACITIES = {"scarce": 0.5, "tight": 1.0, "ample": None}
"""Slots per week as a share of the fleet's mean weekly failures (None: as many as engines)."""
MIN_CUT_AGE = 31
MIN_LEFT = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the planning benchmark."""
    parser.add_argument("--subsets", nargs="+", default=SUBSETS, choices=SUBSETS, help="subsets (default: all four)")
    parser.add_argument("--data-dir", default=None, help="folder with the NASA .txt.gz files")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out share, the cuts and the training")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="training device")
    parser.add_argument("--epochs", type=int, default=8, help="LSTM epochs of the small recipe")
    parser.add_argument("--trees", type=int, default=300, help="XGBoost trees of the small recipe")
    parser.add_argument("--held-out", type=float, default=0.3, help="share of engines kept out of training")
    parser.add_argument("--cuts", type=int, default=10, help="random cuts per engine")
    parser.add_argument("--weeks", type=int, default=8, help="the plan's horizon in the simulation")
    parser.add_argument("--cycles-per-day", type=float, default=weeks.DEFAULT_CYCLES_PER_DAY, help="utilisation")
    parser.add_argument("--timing-engines", type=int, default=20_000, help="engines of the plan-time measurement")
    parser.add_argument("--timing-weeks", type=int, default=26, help="weeks of the plan-time measurement")


def _prediction_arrays(frame: pd.DataFrame, preds: pd.DataFrame, units: list[int]) -> tuple[np.ndarray, ...]:
    """(life per unit, predicted RUL, P(fail within 30), HIGH) as (units, max cycle + 1) arrays by cycle."""
    row = {u: i for i, u in enumerate(units)}
    life = frame.groupby("unit")["cycle"].max().reindex(units).to_numpy(dtype=int)
    shape = (len(units), int(life.max()) + 1)
    rul, p_fail, high = np.full(shape, np.nan), np.full(shape, np.nan), np.zeros(shape, dtype=bool)
    r = preds["unit"].map(row).to_numpy()
    c = preds["cycle"].to_numpy(dtype=int)
    rul[r, c] = preds["rul"].to_numpy()
    p_fail[r, c] = preds["p_fail_30"].to_numpy()
    high[r, c] = (preds["risk"] == "HIGH").to_numpy()
    return life, rul, p_fail, high


def _instances(life: np.ndarray, arrays: tuple[np.ndarray, ...], cuts: int,
               rng: np.random.Generator) -> simulation.Instances:
    """Each engine cut `cuts` times at an age leaving MIN_LEFT to life - MIN_CUT_AGE cycles."""
    source = np.repeat(np.arange(len(life)), cuts)
    top = life[source] - MIN_LEFT
    bottom = np.minimum(MIN_CUT_AGE, top)
    start = rng.integers(bottom, top + 1)
    return simulation.Instances(source=source, start=start, life=life[source], rul=arrays[0], p_fail=arrays[1],
                                high=arrays[2])


def _agreement(fleet: simulation.Instances, preds: pd.DataFrame, units: list[int], distribution: RulDistribution,
               nominal: float) -> dict[str, float]:
    """The distribution against the served interval and p_fail_30, at the held-out engines' cut ages."""
    keyed = preds.set_index(["unit", "cycle"])
    at = keyed.loc[list(zip(np.asarray(units)[fleet.source], fleet.start, strict=True))]
    rul = at["rul"].to_numpy()
    left = (fleet.life - fleet.start).astype(float)
    bounds = distribution.quantile(rul, np.array([(1 - nominal) / 2, (1 + nominal) / 2]))
    f30 = distribution.cdf(rul, np.array([float(FAIL_HORIZON)]))[:, 0]
    p30 = at["p_fail_30"].to_numpy()
    label = (left <= FAIL_HORIZON).astype(float)
    capped = np.minimum(left, distribution.cap)
    return {
        "interval_low_max_diff": float(np.max(np.abs(bounds[:, 0] - at["rul_low"].to_numpy()))),
        "interval_high_max_diff": float(np.max(np.abs(bounds[:, 1] - at["rul_high"].to_numpy()))),
        "p30_mean_abs_diff": float(np.mean(np.abs(f30 - p30))),
        "p30_correlation": float(np.corrcoef(f30, p30)[0, 1]) if f30.std() and p30.std() else float("nan"),
        "brier_distribution": float(np.mean((f30 - label) ** 2)),
        "brier_p_fail_30": float(np.mean((p30 - label) ** 2)),
        "coverage_distribution": float(np.mean((capped >= bounds[:, 0]) & (capped <= bounds[:, 1]))),
        "failing_within_30_share": float(label.mean()),
    }


def _capacity(fleet: simulation.Instances, per_week: int, share: float | None) -> int:
    if share is None:
        return len(fleet)
    left = fleet.life - fleet.start
    rate = len(fleet) / math.ceil(left.max() / per_week)
    return max(1, round(share * rate))


def _run(fleet: tuple[simulation.Instances, int], policy: simulation.Policy, per_week: int,
         costs: planner.PlanCosts) -> simulation.Outcome:
    return simulation.simulate(fleet[0], policy, fleet[1], per_week, costs)


def _subset(subset: str, args: argparse.Namespace, costs: planner.PlanCosts) -> tuple[list[dict], dict, Any]:
    frame = read_readings(data_folder(args.data_dir), f"train_{subset}")
    rng = np.random.default_rng(args.seed)
    units = sorted(int(u) for u in frame["unit"].unique())
    held = sorted(int(u) for u in rng.choice(units, round(args.held_out * len(units)), replace=False))
    training = frame[~frame["unit"].isin(held)]
    config = TrainConfig(seed=args.seed, device=args.device, epochs=args.epochs, n_trees=args.trees)
    started = time.perf_counter()
    ensemble = train(training, config).ensemble
    train_s = time.perf_counter() - started
    _, val_mask = split_engines(training, config.val_fraction, config.seed)
    val_units = sorted(int(u) for u in training.loc[val_mask, "unit"].unique())
    per_week = round(7 * args.cycles_per_day)
    distribution = RulDistribution.from_conformal(ensemble.conformal)
    fleets, preds = {}, {}
    for name, chosen in (("test", held), ("validation", val_units)):
        part = frame[frame["unit"].isin(chosen)]
        preds[name] = ensemble.predict_cycles(part)
        life, *arrays = _prediction_arrays(part, preds[name], chosen)
        fleets[name] = _instances(life, tuple(arrays), args.cuts, rng)
    agreement = _agreement(fleets["test"], preds["test"], held, distribution, ensemble.conformal.nominal)
    rows, thresholds = [], {}
    for level, share in CAPACITIES.items():
        slots = {name: _capacity(f, per_week, share) for name, f in fleets.items()}
        test, validation = (fleets["test"], slots["test"]), (fleets["validation"], slots["validation"])
        on_validation = {t: _run(validation, simulation.threshold_policy(t), per_week, costs).cost
                         for t in policies.THRESHOLDS}
        chosen_t = min(on_validation, key=lambda t: (on_validation[t], t))
        on_test = {t: _run(test, simulation.threshold_policy(t), per_week, costs) for t in policies.THRESHOLDS}
        hindsight = min(on_test, key=lambda t: (on_test[t].cost, t))
        bound = simulation.perfect_information(*test, per_week, costs)
        outcomes = {
            "plan": _run(test, simulation.plan_policy(distribution, args.weeks, per_week, costs), per_week, costs),
            f"RUL threshold {chosen_t} (chosen on validation)": on_test[chosen_t],
            f"RUL threshold {hindsight} (best in hindsight)": on_test[hindsight],
            "Inspect HIGH": _run(test, simulation.high_risk_policy, per_week, costs),
            "run to failure": _run(test, simulation.run_to_failure, per_week, costs),
            "perfect information": bound,
        }
        for policy, outcome in outcomes.items():
            rows.append({"subset": subset, "capacity": level, "slots": slots["test"], "policy": policy,
                         **outcome.to_dict(), "ratio_to_bound": outcome.cost / bound.cost,
                         "engines": len(fleets["test"])})
        thresholds[level] = {str(t): o.cost for t, o in on_test.items()}
    info = {"subset": subset, "held_out_engines": len(held), "validation_engines": len(val_units),
            "train_seconds": train_s, "distribution": distribution.source, "threshold_costs": thresholds,
            **agreement}
    return rows, info, distribution


def _timing(distribution: RulDistribution, engines: int, horizon: int, seed: int) -> list[dict[str, Any]]:
    """Plan time for a synthetic fleet and for the worst case (see the module doc)."""
    rng = np.random.default_rng(seed)
    fleet_rul = np.clip(rng.uniform(0, 350, engines) + rng.normal(0, 12, engines), 0, distribution.cap)
    worst_rul = rng.uniform(0, distribution.cap - 1, engines)
    out = []
    for case, rul, slots in (("fleet", fleet_rul, round(engines / 25)), ("worst case", worst_rul, round(engines / 50))):
        frame = pd.DataFrame({"dataset": "synthetic", "engine": [f"E{i}" for i in range(engines)],
                              "unit": np.arange(engines), "cycle": 100, "rul": rul, "p_fail_30": 0.0, "risk": "LOW"})
        request = planner.PlanRequest(weeks=horizon, slots=(slots,), start=date(2024, 1, 1))
        started = time.perf_counter()
        plan = planner.make_plan(frame, distribution, request)
        seconds = time.perf_counter() - started
        out.append({"case": case, "engines": engines, "weeks": horizon, "slots": slots, "plan_seconds": seconds,
                    "solve_seconds": plan.meta["solve_seconds"], "lp_columns": plan.meta["lp_columns"],
                    "method": plan.meta["method"], "planned": plan.meta["planned"]})
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train per subset, simulate every policy at three capacities, and time a 20,000-engine plan."""
    costs = planner.PlanCosts()
    rows: list[dict] = []
    infos: list[dict] = []
    distribution = None
    for subset in args.subsets:
        subset_rows, info, distribution = _subset(subset, args, costs)
        rows += subset_rows
        infos.append(info)
    timing = _timing(distribution, args.timing_engines, args.timing_weeks, args.seed) if distribution else []
    return {"results": rows, "subsets": infos, "timing": timing, "machine": machine(),
            "settings": {"costs": vars(costs), "cycles_per_week": round(7 * args.cycles_per_day),
                         "weeks": args.weeks, "cuts": args.cuts, "held_out": args.held_out, "trees": args.trees,
                         "epochs": args.epochs, "seed": args.seed}}


def render(result: dict[str, Any]) -> str:
    """The policies' table per subset and capacity, the distribution's agreement and the plan times."""
    s = result["settings"]
    lines = [(f"{s['cuts']} cuts per held-out engine, {s['cycles_per_week']} cycles a week, plan horizon "
              f"{s['weeks']} weeks; costs: failure ${s['costs']['failure']:,.0f}, removal "
              f"${s['costs']['removal']:,.0f}, life ${s['costs']['life_per_cycle']:g}/cycle")]
    header = f"{'subset':<6} {'capacity':<13} {'policy':<40} {'cost $k':>9} {'fail':>5} {'remov':>5} " \
             f"{'life/rem':>8} {'x bound':>7}"
    lines.append(header)
    for r in result["results"]:
        lines.append(f"{r['subset']:<6} {r['capacity'] + ' (' + str(r['slots']) + ')':<13} {r['policy']:<40} "
                     f"{r['cost'] / 1000:>9,.0f} {r['failures']:>5} {r['removals']:>5} {r['life_per_removal']:>8.1f} "
                     f"{r['ratio_to_bound']:>7.3f}")
    for info in result["subsets"]:
        lines.append(f"{info['subset']}: {info['held_out_engines']} held-out, {info['validation_engines']} validation "
                     f"engines, trained in {info['train_seconds']:.0f} s; distribution ({info['distribution']}) vs "
                     f"served interval: max |diff| {info['interval_low_max_diff']:.2g} / "
                     f"{info['interval_high_max_diff']:.2g} cycles; P(RUL<=30) vs p_fail_30: mean |diff| "
                     f"{info['p30_mean_abs_diff']:.3f}, r {info['p30_correlation']:.3f}, Brier "
                     f"{info['brier_distribution']:.4f} vs {info['brier_p_fail_30']:.4f}; coverage "
                     f"{info['coverage_distribution']:.3f}")
    for t in result["timing"]:
        lines.append(f"plan time, {t['case']}: {t['engines']:,} engines x {t['weeks']} weeks, {t['slots']} slots/week: "
                     f"{t['plan_seconds']:.2f} s in all, solver {t['solve_seconds']:.2f} s ({t['method']}, "
                     f"{t['lp_columns']:,} LP columns), {t['planned']:,} planned")
    return "\n".join(lines)


def figures(result: dict[str, Any]) -> list[Figure]:
    """Per capacity, the worst subset's plan cost over the bound and over the best other policy; the plan times."""
    out: list[Figure] = []
    for level in CAPACITIES:
        plans = [r for r in result["results"] if r["policy"] == "plan" and r["capacity"] == level]
        if not plans:
            continue
        vs_other = []
        for r in plans:
            others = [o["cost"] for o in result["results"] if o["subset"] == r["subset"] and o["capacity"] == level
                      and o["policy"] not in ("plan", "perfect information")]
            vs_other.append(r["cost"] / min(others))
        subsets = ", ".join(r["subset"] for r in plans)
        out.append(Figure(f"plan.{level}.worst_ratio_to_bound", f"Plan's realised cost / perfect information, {level} "
                                                                f"capacity, worst of {subsets}",
                          round(max(r["ratio_to_bound"] for r in plans), 4), ""))
        out.append(Figure(f"plan.{level}.worst_vs_best_other", f"Plan's realised cost / best other policy's, {level} "
                                                               f"capacity, worst of {subsets}",
                          round(max(vs_other), 4), "", target=1.0))
    for t in result["timing"]:
        label = "a fleet" if t["case"] == "fleet" else "the worst case"
        out.append(Figure(f"plan.time_{t['engines']}x{t['weeks']}.{t['case'].replace(' ', '_')}_s",
                          f"Plan of {t['engines']:,} engines x {t['weeks']} weeks, {label}", round(t["plan_seconds"], 2),
                          "s", target=10.0))
    return out
