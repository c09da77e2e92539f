"""One overall progress figure and ETA for a training job, from its record's per-phase progress.

A training runs its phases in a fixed order (features, the XGBoost RUL regressor, the XGBoost failure
classifier, the LSTM, calibration, the test-set report, registration). The record reports progress
within the current phase; this module places it on one 0..1 scale by the phases' usual share of the
time, and estimates the time left from the time spent so far. The Models page and the sidebar show
the same figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from core.operations.job_records import ACTIVE_STATES, JobRecord, parse_time

PHASES: tuple[tuple[str, float], ...] = (
    ("features", 0.05),
    ("xgb_regressor", 0.2),
    ("xgb_classifier", 0.2),
    ("lstm", 0.45),
    ("calibrate", 0.04),
    ("report", 0.03),
    ("register", 0.03),
)
"""Each phase with its usual share of a training's time (sums to 1)."""
PHASE_LABELS = {
    "features": "preparing features", "xgb_regressor": "XGBoost RUL regressor",
    "xgb_classifier": "XGBoost failure classifier", "lstm": "LSTM", "calibrate": "calibration",
    "report": "test-set report", "register": "registering", "done": "finishing",
}


@dataclass(frozen=True)
class Overall:
    """Where a job stands on one scale: fraction done (0..1), seconds left (None while unknown), a label."""

    fraction: float
    eta_s: float | None
    label: str

    def text(self) -> str:
        """E.g. "42% · LSTM epoch 3/10 · about 2 min left"."""
        eta = ""
        if self.eta_s is not None:
            eta = f" · about {self.eta_s / 60:.0f} min left" if self.eta_s >= 90 else f" · about {self.eta_s:.0f} s left"
        return f"{self.fraction:.0%} · {self.label}{eta}"


def xgb_segments(losses: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The XGBoost loss entries split into consecutive runs (the regressor, then the classifier).

    Both report under phase ``xgboost`` with steps counting trees from the start; a step that does not
    increase starts the next model.
    """
    segments: list[list[dict[str, Any]]] = []
    last = None
    for entry in losses:
        if entry.get("phase") != "xgboost":
            continue
        step = int(entry.get("step") or 0)
        if last is None or step <= last:
            segments.append([])
        segments[-1].append(entry)
        last = step
    return segments


def _phase_key(record: JobRecord) -> str:
    if record.phase != "xgboost":
        return record.phase
    return "xgb_classifier" if len(xgb_segments(record.losses)) > 1 else "xgb_regressor"


def overall(record: JobRecord, now: float | None = None) -> Overall:
    """The job's overall progress and ETA (for a simulation or any job without phases: its own progress)."""
    key = _phase_key(record)
    names = [name for name, _ in PHASES]
    if record.kind not in ("train", "sim-train") or key not in names + ["done"]:
        fraction = float(record.progress or 0.0)
        label = record.phase or record.state
    else:
        if key == "done":
            done_before, share = sum(w for _, w in PHASES[:names.index("report")]), 0.0
        else:
            index = names.index(key)
            done_before, share = sum(w for _, w in PHASES[:index]), PHASES[index][1]
        fraction = min(1.0, done_before + share * float(record.progress or 0.0))
        steps = f" {record.step}/{record.total}" if record.total else ""
        unit = " epoch" if key == "lstm" else " tree" if key.startswith("xgb") else ""
        label = f"{PHASE_LABELS.get(key, key)}{unit if steps else ''}{steps}"
    if record.state not in ACTIVE_STATES:
        return Overall(1.0 if record.state == "succeeded" else fraction, None, record.state)
    started = parse_time(record.started_at)
    elapsed = (now if now is not None else time.time()) - started if started else None
    eta = elapsed / fraction * (1.0 - fraction) if elapsed and fraction >= 0.05 else None
    return Overall(fraction, eta, label)
