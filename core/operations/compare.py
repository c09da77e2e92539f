"""Two registered versions side by side, as MLflow's run comparison shows them: the parameters that differ, each
metric with its delta (validation, test sets, live accuracy), the loss curves and the training data's lineage.

Shared by ``python -m core models compare A B`` and the Models page (which only draws what :func:`compare` returns).
Deltas are B minus A.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from core.data import fleet_ops
from core.errors import UserError
from core.operations import registry, version_table

LINEAGE_PARAMS = {"data_datasets": "Training datasets", "data_test_datasets": "Test datasets",
                  "data_engines": "Engines", "data_rows": "Rows", "data_sources": "Closed engines from",
                  "data_sha256": "Snapshot SHA-256", "data_path": "Snapshot folder"}
"""The run params (written from the snapshot's lineage) shown as lineage, with their labels, in this order."""
LIVE_METRICS = {"rmse": "RMSE (cycles)", "mae": "MAE (cycles)", "coverage": "interval coverage",
                "high_recall": "HIGH recall", "high_precision": "HIGH precision"}
COUNTS = ("_n", "_excluded")
"""Validation and test-set figures that are counts, not metrics (rows or engines scored, engines left out)."""


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _utc(milliseconds: int) -> str:
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _side(version: int) -> dict[str, Any]:
    """What one version's run holds: its summary, params, metrics, loss histories and dataset inputs."""
    c = registry.client()
    mv = registry.model_version(registry.model_name(), version)
    run = c.get_run(mv.run_id)
    losses = {}
    for key in sorted(k for k in run.data.metrics if k.endswith("_loss")):
        history = sorted(c.get_metric_history(mv.run_id, key), key=lambda m: (m.step, m.timestamp))
        losses[key] = [[int(m.step), float(m.value)] for m in history if _number(m.value) is not None]
    inputs = [{"context": next((t.value for t in i.tags if t.key == "mlflow.data.context"), ""),
               "name": i.dataset.name, "digest": i.dataset.digest} for i in run.inputs.dataset_inputs]
    return {
        "summary": {"version": version, "run_id": mv.run_id, "created": _utc(mv.creation_timestamp),
                    "created_by": mv.tags.get("created_by", ""), "device": run.data.tags.get("device", ""),
                    "recipe": run.data.tags.get("recipe", ""), "gate": mv.tags.get("gate", ""),
                    "train_seconds": run.data.metrics.get("train_seconds")},
        "params": dict(run.data.params), "metrics": dict(run.data.metrics), "losses": losses, "inputs": inputs,
    }


def _differing_params(a: dict[str, str], b: dict[str, str]) -> list[dict[str, Any]]:
    keys = sorted(k for k in set(a) | set(b) if k not in LINEAGE_PARAMS and not k.startswith("data_"))
    return [{"name": k, "a": a.get(k), "b": b.get(k)} for k in keys if a.get(k) != b.get(k)]


def _metric_rows(a: dict[str, float], b: dict[str, float]) -> list[dict[str, Any]]:
    keys = {k for k in set(a) | set(b) if not k.endswith(COUNTS)}
    tests = sorted(k for k in keys if k.startswith("test_"))
    rows = []
    for group, names in (("validation", version_table.validation_keys(sorted(keys))), ("test", tests)):
        for key in names:
            left, right = _number(a.get(key)), _number(b.get(key))
            rows.append({"group": group, "key": key, "label": version_table.metric_label(key), "a": left, "b": right,
                         "delta": None if left is None or right is None else right - left})
    return rows


def _live_rows(a: int, b: int) -> tuple[list[dict[str, Any]], str]:
    """Live-accuracy rows of both versions and a sentence on what they rest on."""
    try:
        live = fleet_ops.live_accuracy()
    except UserError as err:
        return [], f"Live accuracy could not be read: {err}"
    by_version = {str(row["model_version"]): row for row in live["by_version"]}
    left, right = by_version.get(str(a), {}), by_version.get(str(b), {})
    if not left and not right:
        return [], "Neither version has live accuracy yet (no engine it scored has been closed by an outcome)."
    rows = []
    for key, label in LIVE_METRICS.items():
        x, y = _number(left.get(key)), _number(right.get(key))
        rows.append({"group": "live", "key": f"live_{key}", "label": f"Live {label}", "a": x, "b": y,
                     "delta": None if x is None or y is None else y - x})
    return rows, (f"Live accuracy on closed engines: v{a} {int(left.get('engines') or 0)}, "
                  f"v{b} {int(right.get('engines') or 0)} engine(s).")


def _lineage(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{"field": label, "a": a["params"].get(key, ""), "b": b["params"].get(key, "")}
            for key, label in LINEAGE_PARAMS.items()]
    inputs = ["; ".join(f"{i['context']}: {i['name']} ({i['digest']})" for i in side["inputs"]) for side in (a, b)]
    rows.append({"field": "MLflow dataset inputs", "a": inputs[0], "b": inputs[1]})
    return [{**row, "same": row["a"] == row["b"]} for row in rows]


def compare(first: str | int, second: str | int) -> dict[str, Any]:
    """Versions `first` (A) and `second` (B) of :func:`registry.model_name` (numbers, ``champion``, ``challenger``).

    Returns ``a`` and ``b`` (version, run, creator, device, gate), ``parameters`` (only those that differ),
    ``same_parameters`` (how many are equal), ``metrics`` (validation, test-set and live rows, each with ``a``,
    ``b`` and ``delta`` = B - A, None where one side lacks it), ``live_note``, ``losses`` (per side: loss key ->
    [[step, value], ...] from MLflow's metric history) and ``lineage`` (the training data of each side).
    """
    a, b = registry.resolve(first), registry.resolve(second)
    if a == b:
        raise UserError(f"Pick two different versions to compare (both are v{a}).")
    left, right = _side(a), _side(b)
    parameters = _differing_params(left["params"], right["params"])
    shared = {k for k in set(left["params"]) & set(right["params"]) if not k.startswith("data_")}
    live, live_note = _live_rows(a, b)
    return {
        "model": registry.model_name(), "a": left["summary"], "b": right["summary"],
        "parameters": parameters, "same_parameters": len(shared) - sum(p["name"] in shared for p in parameters),
        "metrics": _metric_rows(left["metrics"], right["metrics"]) + live, "live_note": live_note,
        "losses": {"a": left["losses"], "b": right["losses"]}, "lineage": _lineage(left, right),
    }
