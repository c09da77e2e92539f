"""Coalescing concurrent predictions into one model call (leader/follower, no extra thread).

Each request thread queues its engines and waits; the first waiting thread that finds the model idle
takes up to ``max_engines`` queued engines (its own first), runs features and the ensemble once for all
of them, and wakes the others. Features are per engine and the models predict row by row, so an engine's
answer does not depend on its batch companions. On one or two cores this turns many small model calls
(each with fixed pandas, XGBoost and torch overhead) into a few larger ones.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data.features import FeatureSet
from core.server.model_cache import Served

MAX_ENGINES = 64


@dataclass
class Result:
    """One request's share of a batch: the batch's features and the rows of this request's engines."""

    fs: FeatureSet
    predictions: pd.DataFrame
    rows: np.ndarray


@dataclass(eq=False)
class _Job:
    served: Served
    frame: pd.DataFrame
    engines: int
    result: Result | None = None
    error: BaseException | None = None
    done: bool = False
    offset: int = 0


def _run(jobs: list[_Job]) -> None:
    """Predict the jobs of one model version in one call; on a failure, each job alone (its own error)."""
    frames, offset = [], 0
    for job in jobs:
        job.offset = offset
        frames.append(job.frame.assign(unit=job.frame["unit"].to_numpy() + offset))
        offset += job.engines
    ensemble = jobs[0].served.ensemble
    try:
        combined = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        fs = ensemble.features(combined, "last")
        predictions = ensemble.predict_features(fs)
    except Exception as err:  # noqa: BLE001 - retried per job below, so each request gets its own error
        if len(jobs) == 1:
            jobs[0].error = err
            return
        for job in jobs:
            _run([job])
        return
    units = predictions["unit"].to_numpy()
    for job in jobs:
        rows = np.flatnonzero((units > job.offset) & (units <= job.offset + job.engines))
        part = predictions.iloc[rows].assign(unit=units[rows] - job.offset)
        job.result = Result(fs=fs, predictions=part.reset_index(drop=True), rows=rows)


class Batcher:
    """Coalesces concurrent prediction requests (thread-safe)."""

    def __init__(self, max_engines: int = MAX_ENGINES) -> None:
        self.max_engines = max_engines
        self._cond = threading.Condition()
        self._pending: list[_Job] = []
        self._busy = False
        self.calls = 0

    def predict(self, served: Served, frame: pd.DataFrame, engines: int) -> Result:
        """Features and predictions of `frame` (units 1..`engines`), computed together with concurrent requests."""
        job = _Job(served=served, frame=frame, engines=engines)
        with self._cond:
            self._pending.append(job)
            while self._busy and not job.done:
                self._cond.wait()
            if not job.done:
                batch = self._take(job)
                self._busy = True
        if not job.done:
            try:
                by_version: dict[int, list[_Job]] = {}
                for item in batch:
                    by_version.setdefault(item.served.version, []).append(item)
                for group in by_version.values():
                    _run(group)
                    self.calls += 1
            finally:
                with self._cond:
                    for item in batch:
                        item.done = True
                    self._busy = False
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _take(self, job: _Job) -> list[_Job]:
        """Remove and return `job` and as many queued jobs as fit in ``max_engines`` (caller holds the lock)."""
        self._pending.remove(job)
        batch, size = [job], job.engines
        for other in list(self._pending):
            if size + other.engines > self.max_engines:
                break
            batch.append(other)
            size += other.engines
            self._pending.remove(other)
        return batch
