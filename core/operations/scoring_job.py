"""Scores computed once: the champion's predictions for every engine with new readings, as a background job.

``python -m core.operations.scoring_job`` scores the engines in service the champion has not scored at their last
cycle (:func:`core.data.score_queries.stale_engines`: new engines, engines with appended readings, or every
engine after the champion changed) in batches of :data:`BATCH_ENGINES`, reading per batch only the readings
the features look at, and stores each batch's predictions in the ``predictions`` table (the audit trail the
Fleet page reads). DuckDB is opened per batch and closed at once, so the dashboard keeps reading and writing
in between. When it has finished, it looks again (readings may have arrived meanwhile) up to
:data:`MAX_PASSES` times. The job scores with the version it was started for (the champion then, resolved
by the starter, which also hands it the bundle folder, so the job never opens the registry); a later
champion gets a job of its own.

:func:`start` launches it (one scoring job at a time; a second call returns the running one) after a load or
append and when the Fleet page finds stale scores; :func:`score_stale` is the same work in the calling process
(the server does it with the champion it holds when few engines are stale: :mod:`core.server.scoring`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from core.data import score_queries, store, writes
from core.operations import job_records, job_runtime, jobs, registry

if TYPE_CHECKING:
    from models.ensemble import Ensemble

KIND = "score"
MODULE = "core.operations.scoring_job"
BATCH_ENGINES = 2_000
"""Engines scored per batch: bounds the readings held in memory (about 2,000 x 200 readings)."""
MAX_PASSES = 3
SCORING_THREADS = 1
"""CPU threads the job's models use: it runs next to the dashboard on a small machine."""

Progress = Callable[[int, int, str], None]


def latest() -> job_records.JobRecord | None:
    """The newest scoring job (in any state), or None before the first."""
    found = jobs.list_jobs(limit=1, kind=KIND)
    return found[0] if found else None


def active() -> job_records.JobRecord | None:
    """The scoring job now queued or running, or None."""
    return next((job for job in jobs.list_jobs(limit=5, kind=KIND) if job.state in job_records.ACTIVE_STATES), None)


def lock() -> AbstractContextManager[None]:
    """The lock held while deciding to start a scoring job, and while the server scores in its own process, so
    the same engines are never scored twice at once."""
    return job_records.flock(job_records.jobs_dir() / "scoring.lock")


def start(created_by: str = "") -> job_records.JobRecord | None:
    """Start the scoring job if the champion has stale engines, unless one runs already.

    Returns the running or started job, or None when there is nothing to score (or no champion yet).
    """
    version = registry.champion_version()
    if version is None:
        return None
    with lock():
        running = active()
        if running is not None:
            return running
        with store.connect(read_only=True) as con:
            if score_queries.stale_count(con, version) == 0:
                return None
        bundle = registry.bundle_dir(version)
        return jobs.start(KIND, MODULE, ["--version", str(version), "--bundle", str(bundle)],
                          config={"model_version": version}, data={"bundle": str(bundle)}, created_by=created_by,
                          exclusive=False)


def _batches(stale: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    """Stale engines cut into batches of at most `size`, never mixing datasets."""
    out = []
    for _, part in stale.groupby("dataset_id", sort=True):
        out += [part.iloc[i:i + size] for i in range(0, len(part), size)]
    return out


def score_stale(version: int | None = None, progress: Progress | None = None, batch: int = BATCH_ENGINES,
                bundle: Path | None = None, ensemble: Ensemble | None = None) -> dict[str, Any]:
    """Score and store, in batches, every engine model `version` (default: the champion) has not scored at its
    last cycle, until none is left or :data:`MAX_PASSES` passes ran. `ensemble` is that version already loaded
    (the server's); without it the version's `bundle` folder (default: fetched from the registry) is loaded,
    its boosters on :data:`SCORING_THREADS` threads. Returns the version, engines scored, batches, passes and
    the seconds it took (model loading included)."""
    from models.bundle import load_bundle
    from models.ensemble import OUTPUT_COLUMNS

    started = time.perf_counter()
    version = registry.champion_version() if version is None else version
    if version is None:
        return {"model_version": None, "engines": 0, "batches": 0, "passes": 0, "seconds": 0.0}
    scored, batches, passes = 0, 0, 0
    for passes in range(1, MAX_PASSES + 1):
        with store.connect(read_only=True) as con:
            stale = score_queries.stale_engines(con, version)
        if stale.empty:
            break
        if ensemble is None:
            ensemble = load_bundle(bundle or registry.bundle_dir(version))
            for booster in (ensemble.xgb.reg, ensemble.xgb.clf):
                booster.set_param({"nthread": SCORING_THREADS})
        history = ensemble.pipeline.history
        todo = _batches(stale, batch)
        for n, part in enumerate(todo):
            name, dataset_id = str(part["dataset"].iloc[0]), int(part["dataset_id"].iloc[0])
            with store.connect(read_only=True) as con:
                rows = score_queries.scoring_readings(con, dataset_id, name, part["unit"].tolist(), history)
            predictions = ensemble.predict_last(rows)[OUTPUT_COLUMNS]
            with store.connect() as con:
                writes.insert_predictions(con, name, predictions, str(version))
            scored += len(predictions)
            batches += 1
            if progress is not None:
                progress(n + 1, len(todo), f"pass {passes}: scored {scored:,} engines with model v{version}")
    return {"model_version": version, "engines": scored, "batches": batches, "passes": passes,
            "seconds": round(time.perf_counter() - started, 3)}


def main(argv: list[str] | None = None) -> None:
    """Run :func:`score_stale` as a job, its progress in the job record."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--version", type=int, required=True, help="the model version to score with (the champion "
                                                                    "when the job was started)")
    parser.add_argument("--bundle", type=Path, required=True, help="that version's bundle folder")
    args = parser.parse_args(argv)

    def job(reporter: job_runtime.Reporter) -> dict[str, Any]:
        import torch

        torch.set_num_threads(SCORING_THREADS)
        reporter.phase("score", "scoring engines with new readings")
        progress = reporter.step_reporter()
        return score_stale(args.version, progress, bundle=args.bundle)

    job_runtime.run_job(job)


if __name__ == "__main__":
    main()
