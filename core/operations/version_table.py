"""Registered versions in words: human metric labels and the listing shared by ``core models`` and the Models page.

Metric keys are read generically from each version's MLflow run: ``val_*`` are validation metrics
(``val_rmse``, and per-member keys such as ``val_rmse_xgb`` or ``val_rmse_lstm`` where a run logs
them), ``test_FD00x_*`` the test-set report.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from core.operations import registry

BASE_LABELS = {
    "rmse": "RMSE",
    "mae": "MAE",
    "phm08": "PHM08 score",
    "f2": "F2",
    "recall": "recall",
    "precision": "precision",
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "coverage": "interval coverage",
    "width": "interval width",
    "brier": "Brier score",
}
MEMBER_LABELS = {"xgb": "XGBoost", "lstm": "LSTM", "ensemble": "ensemble", "blend": "blend"}
HEADLINE = ("val_rmse", "val_mae", "val_phm08", "val_f2", "val_recall", "val_precision", "val_roc_auc", "val_coverage")
"""Validation metrics shown first, in this order; other ``val_*`` keys follow alphabetically."""
CREATOR_LABELS = {"setup": "setup", "dashboard": "dashboard", "cli": "CLI", "simulation": "simulation"}


def _base(rest: str) -> str:
    """Label of a metric name without its prefix: ``rmse`` -> RMSE, ``rmse_xgb`` -> RMSE (XGBoost)."""
    if rest in BASE_LABELS:
        return BASE_LABELS[rest]
    head, _, member = rest.rpartition("_")
    if head in BASE_LABELS and member in MEMBER_LABELS:
        return f"{BASE_LABELS[head]} ({MEMBER_LABELS[member]})"
    return rest.replace("_", " ")


def metric_label(key: str) -> str:
    """A reader's name for a logged metric key (``val_f2`` -> Validation F2, ``test_FD001_rmse`` -> Test FD001 RMSE)."""
    if key.startswith("val_"):
        return f"Validation {_base(key.removeprefix('val_'))}"
    if key.startswith("test_"):
        subset, _, rest = key.removeprefix("test_").partition("_")
        return f"Test {subset} {_base(rest)}"
    return _base(key)


def validation_keys(columns: list[str] | pd.Index) -> list[str]:
    """The validation metric keys among ``columns``: the headline ones first, each followed by its
    per-member variants (``val_rmse`` then ``val_rmse_lstm``, ``val_rmse_xgb``), then the rest alphabetically."""
    present = sorted(str(c) for c in columns if str(c).startswith("val_"))
    ordered: list[str] = []
    for key in HEADLINE:
        if key in present:
            ordered.append(key)
        ordered.extend(k for k in present if k.startswith(f"{key}_") and k.rpartition("_")[2] in MEMBER_LABELS)
    return ordered + [k for k in present if k not in ordered]


def test_keys(columns: list[str] | pd.Index) -> list[str]:
    """The test-set RMSE keys among ``columns`` (one per subset), sorted."""
    return sorted(str(c) for c in columns if str(c).startswith("test_") and str(c).endswith("_rmse"))


def creator_label(created_by: str) -> str:
    """How a version's ``created_by`` tag reads in a table ("unknown" for versions made before tagging)."""
    return CREATOR_LABELS.get(registry.creator_kind(created_by), created_by or "unknown")


def _value(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def listing(name: str | None = None) -> dict[str, Any]:
    """The versions of registered model ``name`` (default the served one) as plain JSON values."""
    name = name or registry.model_name()
    frame = registry.list_versions(name)
    rows = []
    keys = validation_keys(frame.columns) if not frame.empty else []
    for _, row in frame.iterrows():
        rows.append({
            "version": int(row["version"]),
            "aliases": [a for a in str(row["aliases"]).split(", ") if a],
            "created": pd.Timestamp(row["created"]).isoformat(timespec="seconds"),
            "created_by": creator_label(str(row.get("created_by", ""))),
            "data": str(row["data"]),
            "device": str(row["device"]),
            "copied_from": str(row.get("copied_from", "")) or None,
            "gate": str(row["gate"]),
            "validation": {k: _value(row.get(k)) for k in keys if _value(row.get(k)) is not None},
        })
    return {
        "model": name,
        "champion": registry.champion_version(name),
        "challenger": registry.alias_version(registry.CHALLENGER, name),
        "versions": rows,
    }
