"""The alert rules, and the watcher thread that evaluates them when data, outcomes, models or jobs change
(and, in the server, starts the scoring job for engines whose stored scores are stale).

Each rule reports the conditions that hold now (:class:`core.server.alerts.Finding`) and which subjects it
judged; :func:`core.server.alerts.sync` keeps one episode per condition (a new one when a subject enters it
again):

- ``risk``: an in-service engine (fleet or evaluation dataset, not closed) whose latest stored prediction is HIGH;
  every engine is judged each time;
- ``drift``: a fleet dataset whose verdict against the champion's training data recommends retraining, by the
  Drift page's default comparison (:func:`core.monitoring.verdicts.against_training`: PSI on raw values of every
  sensor, training engines cut at the fleet engines' ages, the nearest part of a mixed training set, and the
  champion's prediction PSI), which also sets ``pm_drift_share``. A dataset is judged again when its readings or
  the champion change, at most once per ``DRIFT_INTERVAL_S`` seconds for the same champion (a judgement reads
  and scores a few thousand readings); the training data's readings and the champion's predictions on them are
  computed once per champion version (:class:`DriftRule`);
- ``live_rmse``: the champion's live RMSE on closed engines more than ``LIVE_RMSE_RATIO`` times its validation
  RMSE;
- ``job``: a training job that failed (an event: one episode per job).

The watcher looks for a change every ``POLL_S`` seconds (the store's files, champion version, training jobs:
:func:`fingerprint`) and at once when poked after an API write; a rule that cannot be evaluated (e.g. the store
is busy) is logged and tried again at the next change. The server's watcher is given
:class:`core.server.scoring.ServerScorer` as ``on_change``, called before the rules: engines with new readings
(appended through the API or loaded by the CLI) or a new champion are scored, so the Fleet page and the risk rule
find scores ready. Both run under :class:`core.server.supervision.Supervisor` (workers ``watcher`` and
``scoring``): an unexpected error is logged with its traceback, reported by ``/api/v1/health``, and the work is
run again after a backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from core.data import fleet_ops, queries, store
from core.errors import UserError
from core.monitoring import drift, prediction_drift, verdicts
from core.operations import jobs, registry
from core.server import alerts, metrics
from core.server.alerts import Episode, Finding, Notifier
from core.server.model_cache import ModelCache
from core.server.supervision import Supervisor

LOG = logging.getLogger("core.server.alerts")
LIVE_RMSE_RATIO = 1.3
POLL_S = 1.0
"""Seconds between looks for a change (a few file stats when nothing changed: :func:`fingerprint`)."""
DRIFT_INTERVAL_S = 120.0
"""Least seconds between two drift judgements of one dataset for the same champion (new readings arriving in
between are judged when it has passed)."""
RECENT_JOBS = 20
TRAIN_KIND = "train"
"""The kind of training jobs (``core.operations.retrain.TRAIN_KIND``; not imported, as it brings in the
whole training stack)."""
Judged = dict[str, Callable[[str], bool] | None]


def risk_alerts(con: Any) -> list[Finding]:
    """HIGH in-service engines, by their latest stored prediction."""
    rows = con.execute(
        "SELECT d.name, e.engine, p.cycle, p.rul, p.p_fail_30, p.model_version FROM ("
        " SELECT *, row_number() OVER (PARTITION BY dataset_id, unit ORDER BY created_at DESC, cycle DESC) AS rn"
        " FROM predictions) p JOIN datasets d ON d.id = p.dataset_id"
        " JOIN engines e ON e.dataset_id = p.dataset_id AND e.unit = p.unit"
        " WHERE p.rn = 1 AND p.risk = 'HIGH' AND d.role IN ('fleet', 'evaluation') AND e.closed_event IS NULL"
        " ORDER BY d.name, p.unit").fetchall()
    return [Finding(key=f"risk:{name}:{engine}", kind="risk", dataset=name, engine=str(engine), value=float(p),
                    message=f"Engine {engine} of {name} is at HIGH risk: {p:.0%} probability of failing within 30 "
                            f"cycles, RUL {rul:.0f} cycles at cycle {cycle} (model v{version}).")
            for name, engine, cycle, rul, p, version in rows]


class DriftRule:
    """Fleet datasets judged against the champion's training data (:func:`core.monitoring.verdicts.against_training`),
    with the training data's readings and the champion's predictions on them kept for the champion's version."""

    def __init__(self, cache: ModelCache, interval_s: float = DRIFT_INTERVAL_S) -> None:
        self.cache = cache
        self.interval_s = interval_s
        self._judged: dict[str, tuple[tuple[int, int], float]] = {}
        """Dataset -> ((champion version, rows) judged, when (monotonic))."""
        self._waiting: set[str] = set()
        """Datasets changed since their last judgement, waiting for the interval to pass."""
        self._version: int | None = None
        self._training: list[str] = []
        self._reference: dict[tuple, pd.DataFrame] = {}
        self._reference_rul: dict[tuple, pd.Series] = {}

    def due(self) -> bool:
        """Whether a changed dataset waits for a judgement whose time has come."""
        now = time.monotonic()
        return any(now >= self._judged[name][1] + self.interval_s for name in self._waiting)

    def _use(self, version: int) -> None:
        """Forget what belongs to another champion version."""
        if version != self._version:
            self._version = version
            self._training = registry.training_datasets(version, registry.MODEL_NAME)
            self._reference.clear()
            self._reference_rul.clear()

    def _read(self, names: tuple[str, ...], rows: dict[str, int]) -> pd.DataFrame:
        """The readings of training datasets `names` as the Drift page reads them, kept until they change."""
        key = (names, sum(rows[n] for n in names))
        if key not in self._reference:
            for cache in (self._reference, self._reference_rul):
                for old in [k for k in cache if k[0] == names]:
                    del cache[old]
            with store.connect(read_only=True) as con:
                self._reference[key] = drift.read_side(con, names)[0]
        return self._reference[key]

    def _predict(self, ensemble: Any, rows: dict[str, int]) -> verdicts.Predict:
        def predict(side: str, names: tuple[str, ...], frame: pd.DataFrame) -> np.ndarray:
            if side != "reference":
                return prediction_drift.predicted_rul(ensemble, frame)
            key = (names, sum(rows[n] for n in names))
            if key not in self._reference_rul:
                whole = self._read(names, rows)
                self._reference_rul[key] = pd.Series(prediction_drift.predicted_rul(ensemble, whole, "reference"),
                                                     index=whole.index)
            return self._reference_rul[key].loc[frame.index].to_numpy()
        return predict

    def evaluate(self, listing: pd.DataFrame, force: bool = False) -> tuple[list[Finding], Callable[[str], bool]]:
        """(drifting fleet datasets, which drift subjects were judged). A fleet dataset is judged when its readings,
        the training data's or the champion changed since its last judgement, for the same champion only once
        `interval_s` has passed (`force`: at once); a subject that is no longer a fleet dataset counts as judged."""
        fleet = listing.loc[listing["role"] == "fleet", "name"].tolist()
        judged: set[str] = set()

        def was_judged(key: str) -> bool:
            name = key.removeprefix("drift:")
            return name in judged or name not in fleet

        for name in [n for n in self._judged if n not in fleet]:
            del self._judged[name]
            self._waiting.discard(name)
            metrics.clear_drift_share(name)
        version = self.cache.champion_version()
        if version is None or not fleet:
            return [], was_judged
        self._use(version)
        loaded = listing["name"].tolist()
        training = verdicts.default_reference(self._training, loaded)
        if training is None:
            return [], lambda key: key.removeprefix("drift:") not in fleet
        rows = {str(n): int(r) for n, r in zip(listing["name"], listing["rows"], strict=True)}
        ids = {str(n): int(i) for n, i in zip(listing["name"], listing["id"], strict=True)}
        found: list[Finding] = []
        now = time.monotonic()
        for name in fleet:
            stamp = (version, rows[name] + sum(rows[n] for n in training))
            last = self._judged.get(name)
            if last is not None and last[0] == stamp:
                continue
            if not force and last is not None and last[0][0] == version and now < last[1] + self.interval_s:
                self._waiting.add(name)
                continue
            comparison = self._compare(version, training, name, rows)
            self._judged[name] = (stamp, now)
            self._waiting.discard(name)
            judged.add(name)
            report = comparison.report
            metrics.set_drift_share(ids[name], name, report.drift_share, report.prediction_psi)
            if report.verdict.retrain_recommended:
                found.append(self._finding(name, version, comparison))
        return found, was_judged

    def _compare(self, version: int, training: tuple[str, ...], name: str,
                 rows: dict[str, int]) -> verdicts.TrainingComparison:
        ensemble = self.cache.get(str(version)).ensemble
        with store.connect(read_only=True) as con:
            current = drift.read_side(con, [name])[0]
        return verdicts.against_training(training, current, lambda names: self._read(names, rows),
                                         self._predict(ensemble, rows), matched=True)

    @staticmethod
    def _finding(name: str, version: int, comparison: verdicts.TrainingComparison) -> Finding:
        report = comparison.report
        reasons = " ".join(s for s in report.verdict.explanation if "retraining is recommended" in s)
        return Finding(key=f"drift:{name}", kind="drift", dataset=name, value=report.drift_share,
                       message=f"Fleet dataset {name} has drifted from the training data of model v{version} "
                               f"({', '.join(comparison.reference)}): {reasons}")


def live_rmse_alerts(cache: ModelCache) -> list[Finding]:
    """The champion's live RMSE on closed engines against its validation RMSE."""
    version = cache.champion_version()
    accuracy = fleet_ops.live_accuracy()
    metrics.set_live_accuracy(accuracy["by_version"])
    mine = next((r for r in accuracy["by_version"] if str(r["model_version"]) == str(version)), None)
    if version is None or mine is None or mine.get("rmse") is None:
        return []
    validation = registry.version_metrics(version).get("val_rmse")
    live = float(mine["rmse"])
    if validation is None or live <= LIVE_RMSE_RATIO * float(validation):
        return []
    return [Finding(key=f"live_rmse:v{version}", kind="live_rmse", value=live,
                    message=f"Model v{version} is less accurate in service than in validation: live RMSE "
                            f"{live:.1f} cycles on {mine['engines']} closed engine(s) against {float(validation):.1f} "
                            f"in validation (more than {LIVE_RMSE_RATIO - 1:.0%} above).")]


def job_alerts() -> list[Finding]:
    """Training jobs that failed (the newest few)."""
    return [Finding(key=f"job:{job.id}", kind="job",
                    message=f"Training job {job.id} failed: {job.error or job.message}")
            for job in jobs.list_jobs(limit=RECENT_JOBS, kind=TRAIN_KIND) if job.state == "failed"]


def fingerprint(cache: ModelCache) -> tuple:
    """What the rules depend on, cheaply: the store's file stamps (:func:`core.data.store.stamp`: any write to
    datasets, readings, predictions or outcomes changes them, reads do not; None before the store exists), the
    champion, training jobs."""
    job_states = tuple((j.id, j.state) for j in jobs.list_jobs(limit=RECENT_JOBS, kind=TRAIN_KIND))
    files = store.stamp()
    return (files if files[0] is not None else None, cache.champion_version(), job_states)


class Watcher:
    """A daemon thread evaluating the rules on change; new episodes are stored, then sent to the webhook."""

    def __init__(self, cache: ModelCache, notifier: Notifier, poll_s: float = POLL_S,
                 on_alerts: Callable[[list[Episode]], None] | None = None,
                 on_change: Callable[[], None] | None = None, supervisor: Supervisor | None = None,
                 drift_interval_s: float = DRIFT_INTERVAL_S) -> None:
        self.cache = cache
        self.on_change = on_change
        self.notifier = notifier
        self.supervisor = supervisor or notifier.supervisor
        self.poll_s = poll_s
        self.on_alerts = on_alerts
        self.drift = DriftRule(cache, drift_interval_s)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: tuple | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start watching (evaluates once at once)."""
        self._thread = threading.Thread(target=self._run, name="alert-watcher", daemon=True)
        self.supervisor.watch("watcher", self._thread)
        self._thread.start()

    def poke(self) -> None:
        """Evaluate soon: something changed (readings, outcomes, predictions)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread (waits for an evaluation in progress)."""
        self.supervisor.stopped("watcher")
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def check(self, force: bool = False) -> list[Episode]:
        """Evaluate the rules if anything changed, a drift judgement is due, or `force`; store the episodes opened
        and resolved; send the new ones; return them."""
        with self._lock:
            current = fingerprint(self.cache)
            if not force and current == self._last and not self.drift.due():
                return []
            scored = self.on_change is None or self.supervisor.attempt("scoring", self.on_change)
            found: list[Finding] = job_alerts()
            judged: Judged = {}
            if current[0] is not None:
                with store.connect(read_only=True) as con:
                    found += risk_alerts(con)
                    listing = queries.list_datasets(con)
                drifting, judged["drift"] = self.drift.evaluate(listing, force)
                found += drifting
                found += live_rmse_alerts(self.cache)
                judged.update(risk=None, live_rmse=None)
            fresh = alerts.sync(found, judged) if found or current[0] is not None else []
            self._last = current if scored else None
        self.notifier.send(fresh)
        if fresh and self.on_alerts is not None:
            self.on_alerts(fresh)
        return fresh

    def _evaluate(self) -> None:
        """:meth:`check`, a refusal of the store logged (tried again at the next change)."""
        try:
            self.check()
        except (UserError, duckdb.Error) as err:
            LOG.warning("Alert rules not evaluated: %s", err)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.supervisor.attempt("watcher", self._evaluate)
            pause = max(self.supervisor.backoff("watcher"), self.supervisor.backoff("scoring"))
            if pause:
                self._stop.wait(pause)
                continue
            self._wake.wait(self.poll_s)
            self._wake.clear()
