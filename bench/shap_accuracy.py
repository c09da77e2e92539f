"""Sampling error of the LSTM's expected-gradient SHAP values: sample plans and sizes against a reference.

For engines picked (seeded) from the given datasets, each setting's attributions per input (summed over
time and over the input's channels) are compared with a reference of ``--reference-runs`` stratified runs of
512 points each, and so is the combined attribution the user sees (``w * XGBoost + (1 - w) * LSTM``, the
XGBoost part exact). Reported per setting, over ``--seeds`` seeds: the median and 95th percentile of each
engine's largest error over its inputs (LSTM part and combined), how far the LSTM attributions' sum misses
the network's output minus the background mean, and how many of the combined top 5 inputs agree with the
reference's.

Run ``python -m bench.shap_accuracy [--model champion] [--datasets test_FD001 ...]`` with a ``PM_HOME`` that
holds the data and a trained model; it prints one JSON object (BENCHMARKS.md, issue 14, lists the figures).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from core.serving import scoring, whatif
from models.explain import Explainer, gradient_explainer_plan, stratified_plan

SETTINGS = (("independent", 32), ("independent", 16), ("stratified", 8), ("stratified", 16), ("stratified", 24),
            ("stratified", 32))
"""(plan, points per engine): GradientExplainer's independent draws (32: the default before issue 11's
follow-up) and stratified draws (16: the served default)."""
PLANS = {"independent": gradient_explainer_plan, "stratified": stratified_plan}


def main() -> None:
    """Parse the arguments, measure, print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="champion", help="model version, 'champion' (default) or 'challenger'")
    parser.add_argument("--datasets", nargs="+", default=["test_FD001", "test_FD002", "test_FD003", "test_FD004"])
    parser.add_argument("--engines", type=int, default=40, help="engines explained (default 40)")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per setting (default 4)")
    parser.add_argument("--reference-runs", type=int, default=8, help="512-point runs in the reference (default 8)")
    args = parser.parse_args()
    version, ensemble = scoring.load_model(args.model)
    whatif.serving_setup(ensemble)
    rows, _truth = scoring.fleet_frame(list(args.datasets))
    fs = ensemble.features(rows, "last")
    picks = np.sort(np.random.default_rng(1).choice(len(fs.keys), min(args.engines, len(fs.keys)), replace=False))
    background = whatif.training_background(ensemble)

    def lstm_by_input(plan: str, points: int, seed: int) -> np.ndarray:
        explainer = Explainer(ensemble, background, nsamples=points, seed=seed, plan=PLANS[plan])
        return explainer.attributions(fs, picks).lstm_by_input

    served = Explainer(ensemble, background)
    exact = served.attributions(fs, picks)
    w = float(ensemble.weights["rul_xgb"])
    reference = np.mean([lstm_by_input("stratified", 512, 100 + s) for s in range(args.reference_runs)], axis=0)
    reference_combined = w * exact.xgb + (1 - w) * reference
    with torch.no_grad():
        output = ensemble.lstm.net(torch.from_numpy(fs.windows[picks]))[0].numpy() * ensemble.cap
    out = {"model_version": version, "engines": len(picks), "weight_xgb": w, "seeds": args.seeds,
           "reference_points": 512 * args.reference_runs,
           "reference_sum_gap_max": float(np.abs(reference.sum(axis=1) + served.lstm_base - output).max()),
           "settings": []}
    for plan, points in SETTINGS:
        lstm_err, combined_err, gaps, top5 = [], [], [], []
        for seed in range(args.seeds):
            values = lstm_by_input(plan, points, seed)
            combined = w * exact.xgb + (1 - w) * values
            lstm_err.append(np.abs(values - reference).max(axis=1))
            combined_err.append(np.abs(combined - reference_combined).max(axis=1))
            gaps.append(np.abs(values.sum(axis=1) + served.lstm_base - output))
            mine = np.argsort(-np.abs(combined), axis=1)[:, :5]
            theirs = np.argsort(-np.abs(reference_combined), axis=1)[:, :5]
            top5 += [len(set(a) & set(b)) / 5 for a, b in zip(mine, theirs, strict=True)]
        lstm_e, comb_e, gap = (np.concatenate(x) for x in (lstm_err, combined_err, gaps))
        out["settings"].append({
            "plan": plan, "points": points,
            "lstm_error_p50": float(np.median(lstm_e)), "lstm_error_p95": float(np.percentile(lstm_e, 95)),
            "combined_error_p50": float(np.median(comb_e)), "combined_error_p95": float(np.percentile(comb_e, 95)),
            "combined_error_max": float(comb_e.max()),
            "sum_gap_p50": float(np.median(gap)), "sum_gap_p95": float(np.percentile(gap, 95)),
            "top5_agreement": float(np.mean(top5)),
        })
    print(json.dumps(out))


if __name__ == "__main__":
    main()
