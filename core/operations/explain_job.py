"""Fleet explanations computed in the background: ``python -m core.operations.explain_job``.

After scoring, every dataset in service whose fleet explanation for the champion is missing or stale
(:func:`core.serving.fleet_explain.stale_datasets`) is explained on a seeded sample of its engines and stored by
model version (:func:`core.serving.fleet_explain.compute`). The job loads the version's bundle from the folder
the starter hands it and builds the serving explainer (its LSTM background from the training data), on
:data:`THREADS` CPU threads, next to the dashboard.

:func:`start` launches it (one at a time; a second call returns the running one). The server's scorer calls it
once nothing is left to score, and the fleet explanation views call it when they find nothing stored. A job
that failed is not started again for the same datasets and readings: the views show its reason instead.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from core.data import store
from core.operations import job_records, job_runtime, jobs, registry
from core.serving import fleet_explain

KIND = "explain"
MODULE = "core.operations.explain_job"
THREADS = 1
"""CPU threads the job's models use: it runs next to the dashboard on a small machine."""
STORE_WAIT_S = "120"
"""Seconds the job waits for the fleet store while the server uses it (``PM_DB_LOCK_WAIT_S`` when not set): a
background job can wait where a person at a page or a command should hear at once."""


def latest() -> job_records.JobRecord | None:
    """The newest fleet explanation job (in any state), or None before the first."""
    found = jobs.list_jobs(limit=1, kind=KIND)
    return found[0] if found else None


def active() -> job_records.JobRecord | None:
    """The fleet explanation job now queued or running, or None."""
    return next((job for job in jobs.list_jobs(limit=5, kind=KIND) if job.state in job_records.ACTIVE_STATES), None)


def lock() -> AbstractContextManager[None]:
    """Held while deciding to start the job, so two callers never start two."""
    return job_records.flock(job_records.jobs_dir() / "explain.lock")


def _todo(version: int) -> list[list[Any]]:
    """[dataset, rows] of each dataset whose fleet explanation for `version` is stale."""
    with store.connect(read_only=True) as con:
        names = fleet_explain.stale_datasets(con, version)
        rows = dict(con.execute("SELECT name, rows FROM datasets").fetchall())
    return [[name, int(rows[name])] for name in names]


def start(version: int | None = None, created_by: str = "") -> job_records.JobRecord | None:
    """Start the job for model `version` (default: the champion) when a dataset's fleet explanation is stale,
    unless one runs already. Returns the running or started job, the failed job when the same work failed
    before, or None when there is nothing to do (or no champion)."""
    version = registry.champion_version() if version is None else version
    if version is None:
        return None
    with lock():
        running = active()
        if running is not None:
            return running
        todo = _todo(version)
        if not todo:
            return None
        config = {"model_version": version, "datasets": todo}
        previous = latest()
        if previous is not None and previous.state == "failed" and previous.config == config:
            return previous
        bundle = registry.bundle_dir(version)
        return jobs.start(KIND, MODULE, ["--version", str(version), "--bundle", str(bundle)], config=config,
                          data={"bundle": str(bundle)}, created_by=created_by, exclusive=False)


def explain_stale(version: int, bundle: Path, progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Compute and store the stale fleet explanations of model `version` (its bundle in `bundle`); returns the
    datasets explained with their sample sizes."""
    import torch

    from core.serving import whatif
    from models.bundle import load_bundle

    torch.set_num_threads(THREADS)
    ensemble = whatif.serving_setup(load_bundle(bundle), threads=THREADS)
    explainer = whatif.build_explainer(ensemble)
    done = {}
    todo = _todo(version)
    for n, (name, _) in enumerate(todo):
        result = fleet_explain.compute(name, version, ensemble, explainer)
        done[name] = {"sampled": result.sampled, "engines": result.engines}
        if progress is not None:
            progress(n + 1, len(todo), f"explained {name}: {result.sampled:,} of {result.engines:,} engines")
    return {"model_version": version, "datasets": done}


def main(argv: list[str] | None = None) -> None:
    """Run :func:`explain_stale` as a job, its progress in the job record."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--version", type=int, required=True, help="the model version to explain")
    parser.add_argument("--bundle", type=Path, required=True, help="that version's bundle folder")
    args = parser.parse_args(argv)
    os.environ.setdefault("PM_DB_LOCK_WAIT_S", STORE_WAIT_S)

    def job(reporter: job_runtime.Reporter) -> dict[str, Any]:
        reporter.phase("explain", "explaining the fleet's predictions")
        return explain_stale(args.version, args.bundle, reporter.step_reporter())

    job_runtime.run_job(job)


if __name__ == "__main__":
    main()
