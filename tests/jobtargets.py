"""Test-only job targets for tests/test_jobs.py, run as ``python -m tests.jobtargets MODE [options]``.

Modes:
- ``finish``: a phase, ``--steps`` progress steps with losses and log lines, then a result;
- ``crash``: one step, then a ValueError;
- ``sleep``: reports progress until cancelled (with ``--ignore-term`` it ignores SIGTERM,
  so only SIGKILL stops it).
"""

from __future__ import annotations

import argparse
import signal
import time
from typing import Any

from core.operations.job_runtime import Reporter, run_job


def _finish(reporter: Reporter, steps: int, pause: float) -> dict[str, Any]:
    reporter.set_device("cpu")
    reporter.phase("training", "fitting the test model")
    for step in range(1, steps + 1):
        time.sleep(pause)
        reporter.log(f"step {step} done")
        reporter.progress(step, steps, train_loss=1.0 / step, val_loss=float("nan") if step == 1 else 2.0 / step)
    return {"version": 7, "metrics": {"rmse": 12.5}, "steps": steps}


def _crash(reporter: Reporter) -> dict[str, Any]:
    reporter.phase("loading", "reading the snapshot")
    reporter.progress(1, 3)
    raise ValueError("the snapshot has no rows\nsecond line of detail")


def _sleep(reporter: Reporter, pause: float, ignore_term: bool) -> dict[str, Any]:
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    reporter.phase("waiting", "sleeping until cancelled")
    step = 0
    while True:
        step += 1
        reporter.progress(step, 10**6)
        time.sleep(pause)


def main() -> None:
    """Parse the mode and run it as a job."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["finish", "crash", "sleep"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=0.05)
    parser.add_argument("--ignore-term", action="store_true")
    args = parser.parse_args()
    if args.mode == "finish":
        run_job(lambda rep: _finish(rep, args.steps, args.sleep))
    elif args.mode == "crash":
        run_job(_crash)
    else:
        run_job(lambda rep: _sleep(rep, args.sleep, args.ignore_term))


if __name__ == "__main__":
    main()
