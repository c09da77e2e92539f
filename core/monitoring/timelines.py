"""Simulation timelines: one JSON file per run under ``<PM_HOME>/simulations``, one record per step, replaced
atomically after every step so a page can draw it while the run goes on.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import config
from core.errors import UserError

# The timeline --------------------------------------------------------------------------------


def simulations_dir() -> Path:
    """Where timelines are written: ``<PM_HOME>/simulations``."""
    folder = config.ensure_home().home / "simulations"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def new_timeline_path(prefix: str = "run") -> Path:
    """A fresh timeline file name, ordered by time."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    return simulations_dir() / f"{prefix}-{stamp}.json"


def write_timeline(path: Path, timeline: dict[str, Any]) -> None:
    """Replace ``path`` with the timeline atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(timeline, handle, indent=1, allow_nan=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_timeline(path: str | Path) -> dict[str, Any]:
    """Read a timeline file; UserError naming it if it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"The simulation timeline {path} does not exist.") from None
    except ValueError as err:
        raise UserError(f"The simulation timeline {path} is unreadable: {err}.") from err
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise UserError(f"The simulation timeline {path} is not a timeline.")
    return data


def latest_timeline() -> tuple[Path, dict[str, Any]] | None:
    """The newest readable timeline under :func:`simulations_dir`, or None if there is none."""
    for path in sorted(simulations_dir().glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            return path, read_timeline(path)
        except UserError:
            continue
    return None


def summary(timeline: dict[str, Any]) -> dict[str, Any]:
    """The headline of a run: steps, crossings, retrains and the versions that served."""
    steps = timeline["steps"]
    served = sorted({s["model_version"] for s in steps})
    attempts = [s["retrain"] for s in steps if s.get("retrain")]
    return {
        "status": timeline.get("status"),
        "steps_done": len(steps),
        "steps_total": timeline.get("steps_total"),
        "crossings": sum(len(s["crossed"]) for s in steps),
        "retrains": len(attempts),
        "promoted": sum(1 for a in attempts if a.get("promoted"))
        + sum(1 for s in steps if (s.get("shadow") or {}).get("promoted")),
        "versions_served": served,
        "elapsed_s": timeline.get("elapsed_s"),
    }


# Training through the job runner -------------------------------------------------------------
