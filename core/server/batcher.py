"""Coalescing concurrent predictions into one model call (leader/follower, no extra thread).

Each request thread queues its engines and waits; a waiting thread that finds fewer than ``workers``
model calls running takes up to ``max_engines`` queued engines (its own first), runs features, the
ensemble and, for the requests that ask for them, the SHAP factors (one batched explanation) once for all
of them, and wakes the others. Features are per engine, the models predict row by row and the explainer
uses the same sample points for every engine, so an engine's answer does not depend on its batch
companions. On one or two cores this turns many small model calls (each with fixed pandas, XGBoost and
torch overhead) into a few larger ones. ``workers`` model calls may run at once; one is the default, since on
a 2-core machine the other core is busy parsing requests (the measured throughput is in BENCHMARKS.md, "REST
API over HTTP": ``python -m core bench api``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.data.features import FeatureSet
from core.server.model_cache import Served

if TYPE_CHECKING:
    from models.explain import Explainer
    from models.explanation import TopFactors

MAX_ENGINES = 64
WORKERS = 1
"""Model calls that may run at once (see the module docstring)."""


@dataclass
class Result:
    """One request's share of a batch: the batch's features, this request's predictions (columns as in
    :meth:`models.ensemble.Ensemble.predict_features`, units 1..n again) and their rows in the batch."""

    fs: FeatureSet
    predictions: dict[str, np.ndarray]
    rows: np.ndarray
    factors: list[TopFactors] | None = None
    """Per engine, its top inputs and their combined SHAP contribution (cycles), when asked for."""


Readings = Mapping[str, np.ndarray] | pd.DataFrame
"""A request's readings: a model frame, or its columns (``dataset``, ``unit``, ``cycle``, values) as arrays."""


@dataclass(eq=False)
class _Job:
    served: Served
    frame: Readings
    engines: int
    explainer: Explainer | None = None
    factors: int = 0
    result: Result | None = None
    error: BaseException | None = None
    taken: bool = False
    """Taken into a batch by some thread (which will set ``done``)."""
    done: bool = False
    offset: int = 0


def _combined(jobs: list[_Job]) -> pd.DataFrame:
    """One frame of the jobs' readings, each job's units shifted past the previous jobs' (one DataFrame per call,
    not per request)."""
    offset = 0
    for job in jobs:
        job.offset = offset
        offset += job.engines
    if len(jobs) == 1:
        return pd.DataFrame(jobs[0].frame)
    names = [str(name) for name in jobs[0].frame]
    return pd.DataFrame({name: np.concatenate([np.asarray(job.frame[name]) + job.offset if name == "unit"
                                               else np.asarray(job.frame[name]) for job in jobs]) for name in names})


def _run(jobs: list[_Job]) -> None:
    """Predict (and explain) the jobs of one model in one call; on a failure, each job alone (its own error)."""
    ensemble = jobs[0].served.ensemble
    try:
        fs = ensemble.features(_combined(jobs), "last")
        predictions = ensemble.predict_features(fs)
        columns = {name: predictions[name].to_numpy() for name in predictions.columns}
        units = columns["unit"]
        rows = [np.flatnonzero((units > job.offset) & (units <= job.offset + job.engines)) for job in jobs]
        factors = _factors(jobs, fs, rows)
    except Exception as err:  # noqa: BLE001 - retried per job below, so each request gets its own error
        if len(jobs) == 1:
            jobs[0].error = err
            return
        for job in jobs:
            _run([job])
        return
    for job, mine in zip(jobs, rows, strict=True):
        part = {name: values[mine] for name, values in columns.items()}
        part["unit"] = part["unit"] - job.offset
        job.result = Result(fs=fs, predictions=part, rows=mine, factors=factors.get(id(job)))


def _factors(jobs: list[_Job], fs: FeatureSet, rows: list[np.ndarray]) -> dict[int, list[TopFactors]]:
    """The top factors of every job that asks for them (by ``id(job)``), from one batched explanation."""
    wanted = [(job, mine) for job, mine in zip(jobs, rows, strict=True) if job.explainer is not None and job.factors]
    if not wanted:
        return {}
    explainer, k = wanted[0][0].explainer, max(job.factors for job, _ in wanted)
    assert explainer is not None
    together = explainer.top_factors(fs, np.concatenate([mine for _, mine in wanted]), k)
    out, start = {}, 0
    for job, mine in wanted:
        out[id(job)] = [top[:job.factors] for top in together[start:start + len(mine)]]
        start += len(mine)
    return out


class Batcher:
    """Coalesces concurrent prediction requests (thread-safe)."""

    def __init__(self, max_engines: int = MAX_ENGINES, workers: int = WORKERS) -> None:
        self.max_engines = max_engines
        self.workers = workers
        self._cond = threading.Condition()
        self._pending: list[_Job] = []
        self._running = 0
        self.calls = 0

    def predict(self, served: Served, frame: Readings, engines: int, explainer: Explainer | None = None,
                factors: int = 0) -> Result:
        """Features and predictions of `frame` (units 1..`engines`), with each engine's top `factors` inputs
        when an `explainer` is given, computed together with concurrent requests."""
        job = _Job(served=served, frame=frame, engines=engines, explainer=explainer, factors=factors)
        batch: list[_Job] | None = None
        with self._cond:
            self._pending.append(job)
            while not job.done and (job.taken or self._running >= self.workers):
                self._cond.wait()
            if not job.done:
                batch = self._take(job)
                self._running += 1
        if batch is not None:
            try:
                by_model: dict[int, list[_Job]] = {}
                for item in batch:
                    by_model.setdefault(id(item.served), []).append(item)
                for group in by_model.values():
                    _run(group)
                    with self._cond:
                        self.calls += 1
            finally:
                with self._cond:
                    for item in batch:
                        item.done = True
                    self._running -= 1
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def waiting(self) -> int:
        """Requests queued for a model call now (``pm_batcher_queued_requests``)."""
        with self._cond:
            return len(self._pending)

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
        for item in batch:
            item.taken = True
        return batch
