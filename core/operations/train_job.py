"""The background training job: ``python -m core.operations.train_job --snapshot DIR --config JSON``.

Started by :mod:`core.operations.jobs` as its own OS process; it reads only the Parquet snapshot
(never the DuckDB file) and writes its progress into the job record.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from core.operations import job_runtime
from core.operations.training_run import run_training
from models.training import TrainConfig


class ProgressToRecord:
    """Turns the trainer's progress dicts into job-record updates (phase, step, losses, log)."""

    def __init__(self, reporter: job_runtime.Reporter) -> None:
        self.reporter = reporter
        self.phase: str | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        """Record one progress event from :func:`models.training.train` or :func:`run_training`."""
        phase = str(event.get("phase", self.phase or "train"))
        message = str(event.get("message", ""))
        if "device" in event:
            self.reporter.set_device(str(event["device"]))
        if phase != self.phase:
            self.phase = phase
            self.reporter.phase(phase, message)
        elif message:
            self.reporter.log(message)
        if "epoch" in event:
            losses = {k: float(v) for k, v in event.items() if k.endswith("_loss") and v is not None}
            self.reporter.progress(int(event["epoch"]), event.get("epochs"), **losses)


def main(argv: list[str] | None = None) -> None:
    """Parse the job's arguments and run one training, recording everything in the job record."""
    parser = argparse.ArgumentParser(prog="python -m core.operations.train_job")
    parser.add_argument("--snapshot", required=True, type=Path)
    parser.add_argument("--config", required=True, help="TrainConfig as JSON")
    args = parser.parse_args(argv)
    config = TrainConfig.from_dict(json.loads(args.config))

    def job(reporter: job_runtime.Reporter) -> dict[str, Any]:
        return run_training(args.snapshot, config, ProgressToRecord(reporter))

    job_runtime.run_job(job)


if __name__ == "__main__":
    main()
