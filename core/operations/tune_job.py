"""The background tuning job: ``python -m core.operations.tune_job --snapshot DIR --config JSON --trials N``.

Started by :func:`start_job` through :mod:`core.operations.jobs` (exclusive, like a training: one
heavy job at a time); it reads only the Parquet snapshot and records each trial in the job record.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from core.data import snapshot
from core.operations import job_records, job_runtime, jobs
from core.operations.train_job import ProgressToRecord
from core.operations.tune import tune
from models.training import TrainConfig

TUNE_KIND = "tune"


def start_job(snap: snapshot.Snapshot, base: TrainConfig, trials: int, created_by: str = "") -> job_records.JobRecord:
    """Launch a tuning run on a snapshot as a background job; UserError if a training or tuning is running."""
    return jobs.start(TUNE_KIND, "core.operations.tune_job",
                      ["--snapshot", str(snap.path), "--config", json.dumps(base.to_dict()), "--trials", str(trials)],
                      config={**base.to_dict(), "trials": trials}, data=snap.lineage(), created_by=created_by)


def main(argv: list[str] | None = None) -> None:
    """Parse the job's arguments and run one tuning, recording its progress in the job record."""
    parser = argparse.ArgumentParser(prog="python -m core.operations.tune_job")
    parser.add_argument("--snapshot", required=True, type=Path)
    parser.add_argument("--config", required=True, help="the base TrainConfig as JSON")
    parser.add_argument("--trials", required=True, type=int)
    args = parser.parse_args(argv)
    base = TrainConfig.from_dict(json.loads(args.config))

    def job(reporter: job_runtime.Reporter) -> dict[str, Any]:
        return tune(args.snapshot, base, args.trials, ProgressToRecord(reporter))

    job_runtime.run_job(job)


if __name__ == "__main__":
    main()
