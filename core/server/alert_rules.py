"""The alert rules, and the watcher thread that evaluates them when data, outcomes, models or jobs change
(and, in the server, starts the scoring job for engines whose stored scores are stale).

Rules (each alert stored once, see :mod:`core.server.alerts`):

- ``risk``: an in-service engine (fleet or evaluation dataset, not closed) whose latest stored prediction
  is HIGH; once per engine;
- ``drift``: a fleet dataset whose readings drift against the champion's training data (regime-normalised
  PSI over the model's sensors, training engines cut at the fleet engines' ages as the Drift page does:
  :func:`core.monitoring.drift.match_life_stage`; each side read as the page reads it, whole or a seeded
  sample of whole engines: :func:`core.monitoring.drift.read_side`) with a drift share above
  ``DRIFT_SHARE_LIMIT``; once per dataset and champion;
- ``live_rmse``: the champion's live RMSE on closed engines more than ``LIVE_RMSE_RATIO`` times its
  validation RMSE; once per champion version;
- ``job``: a training job that failed; once per job.

The watcher looks for a change every ``POLL_S`` seconds (the store's files, champion version, training
jobs: :func:`fingerprint`) and at once when poked after an API write; a rule that
cannot be evaluated (e.g. the store is busy) is logged and tried again at the next change. The server's
watcher is given :class:`core.server.scoring.ServerScorer` as ``on_change``, called before the rules: engines
with new readings (appended through the API or loaded by the CLI) or a new champion are scored, so the Fleet
page and the risk rule find scores ready.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import duckdb

from core.data import fleet_ops, queries, store
from core.errors import UserError
from core.monitoring import drift
from core.operations import jobs, registry
from core.server import metrics
from core.server.alerts import Alert, Notifier, save_new
from core.server.model_cache import ModelCache

LOG = logging.getLogger("core.server.alerts")
DRIFT_SHARE_LIMIT = 0.3
LIVE_RMSE_RATIO = 1.3
POLL_S = 1.0
"""Seconds between looks for a change (a few file stats when nothing changed: :func:`fingerprint`)."""
RECENT_JOBS = 20
TRAIN_KIND = "train"
"""The kind of training jobs (``core.operations.retrain.TRAIN_KIND``; not imported, as it brings in the
whole training stack)."""


def risk_alerts(con: Any) -> list[Alert]:
    """HIGH in-service engines, by their latest stored prediction."""
    rows = con.execute(
        "SELECT d.name, e.engine, p.cycle, p.rul, p.p_fail_30, p.model_version FROM ("
        " SELECT *, row_number() OVER (PARTITION BY dataset_id, unit ORDER BY created_at DESC, cycle DESC) AS rn"
        " FROM predictions) p JOIN datasets d ON d.id = p.dataset_id"
        " JOIN engines e ON e.dataset_id = p.dataset_id AND e.unit = p.unit"
        " WHERE p.rn = 1 AND p.risk = 'HIGH' AND d.role IN ('fleet', 'evaluation') AND e.closed_event IS NULL"
        " ORDER BY d.name, p.unit").fetchall()
    return [Alert(key=f"risk:{name}:{engine}", kind="risk", dataset=name, engine=str(engine), value=float(p),
                  message=f"Engine {engine} of {name} is at HIGH risk: {p:.0%} probability of failing within 30 "
                          f"cycles, RUL {rul:.0f} cycles at cycle {cycle} (model v{version}).")
            for name, engine, cycle, rul, p, version in rows]


def drift_alerts(cache: ModelCache, datasets: list[str], seen: dict[str, tuple]) -> list[Alert]:
    """Fleet datasets drifting against the champion's training data (only those changed since last time)."""
    version = cache.champion_version()
    if version is None or not datasets:
        return []
    ensemble = cache.get(str(version)).ensemble
    trained_on = list(ensemble.meta.get("trained_on", {}).get("datasets", []))
    out = []
    with store.connect(read_only=True) as con:
        listing = queries.list_datasets(con).set_index("name")
        reference_names = [n for n in trained_on if n in listing.index]
        if not reference_names:
            return []
        reference = None
        for name in datasets:
            stamp = (version, int(listing.loc[name, "rows"]))
            if seen.get(name) == stamp:
                continue
            reference = reference if reference is not None else drift.read_side(con, reference_names)[0]
            current = drift.read_side(con, [name])[0]
            matched = drift.match_life_stage(reference, current)
            table = drift.compare_frames(matched, current, list(ensemble.pipeline.sensors), normalise=True)
            share = drift.drift_share(table)
            seen[name] = stamp
            metrics.set_drift_share(int(listing.loc[name, "id"]), name, share)
            if share > DRIFT_SHARE_LIMIT:
                drifted = ", ".join(table.loc[table["drifted"] & table["informative"], "feature"])
                out.append(Alert(key=f"drift:{name}:v{version}", kind="drift", dataset=name, value=share,
                                 message=f"Fleet dataset {name} has drifted from the training data of model "
                                         f"v{version}: drift share {share:.0%} (above {DRIFT_SHARE_LIMIT:.0%}); "
                                         f"drifted: {drifted}."))
    return out


def live_rmse_alerts(cache: ModelCache) -> list[Alert]:
    """The champion's live RMSE on closed engines against its validation RMSE."""
    version = cache.champion_version()
    accuracy = fleet_ops.live_accuracy()
    for row in accuracy["by_version"]:
        if row.get("rmse") is not None:
            metrics.LIVE_RMSE.labels(model_version=str(row["model_version"])).set(float(row["rmse"]))
    mine = next((r for r in accuracy["by_version"] if str(r["model_version"]) == str(version)), None)
    if version is None or mine is None or mine.get("rmse") is None:
        return []
    validation = registry.version_metrics(version).get("val_rmse")
    live = float(mine["rmse"])
    if validation is None or live <= LIVE_RMSE_RATIO * float(validation):
        return []
    return [Alert(key=f"live_rmse:v{version}", kind="live_rmse", value=live,
                  message=f"Model v{version} is less accurate in service than in validation: live RMSE "
                          f"{live:.1f} cycles on {mine['engines']} closed engine(s) against {float(validation):.1f} "
                          f"in validation (more than {LIVE_RMSE_RATIO - 1:.0%} above).")]


def job_alerts() -> list[Alert]:
    """Training jobs that failed (the newest few)."""
    return [Alert(key=f"job:{job.id}", kind="job", message=f"Training job {job.id} failed: {job.error or job.message}")
            for job in jobs.list_jobs(limit=RECENT_JOBS, kind=TRAIN_KIND) if job.state == "failed"]


def fingerprint(cache: ModelCache) -> tuple:
    """What the rules depend on, cheaply: the store's file stamps (:func:`core.data.store.stamp`: any write to
    datasets, readings, predictions or outcomes changes them, reads do not; None before the store exists), the
    champion, training jobs."""
    job_states = tuple((j.id, j.state) for j in jobs.list_jobs(limit=RECENT_JOBS, kind=TRAIN_KIND))
    files = store.stamp()
    return (files if files[0] is not None else None, cache.champion_version(), job_states)


class Watcher:
    """A daemon thread evaluating the rules on change; new alerts are stored, then sent to the webhook."""

    def __init__(self, cache: ModelCache, notifier: Notifier, poll_s: float = POLL_S,
                 on_alerts: Callable[[list[Alert]], None] | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.cache = cache
        self.on_change = on_change
        self.notifier = notifier
        self.poll_s = poll_s
        self.on_alerts = on_alerts
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: tuple | None = None
        self._drift_seen: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start watching (evaluates once at once)."""
        self._thread = threading.Thread(target=self._run, name="alert-watcher", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Evaluate soon: something changed (readings, outcomes, predictions)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread (waits for an evaluation in progress)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def check(self, force: bool = False) -> list[Alert]:
        """Evaluate the rules if anything changed (or `force`); store and send new alerts; return them."""
        with self._lock:
            current = fingerprint(self.cache)
            if not force and current == self._last:
                return []
            if self.on_change is not None:
                self.on_change()
            found: list[Alert] = job_alerts()
            if current[0] is not None:
                with store.connect(read_only=True) as con:
                    found += risk_alerts(con)
                    fleet = queries.dataset_names(con, role="fleet")
                found += drift_alerts(self.cache, fleet, self._drift_seen)
                found += live_rmse_alerts(self.cache)
            fresh = save_new(found) if found else []
            self._last = current
        self.notifier.send(fresh)
        if fresh and self.on_alerts is not None:
            self.on_alerts(fresh)
        return fresh

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except (UserError, duckdb.Error) as err:
                LOG.warning("Alert rules not evaluated: %s", err)
            self._wake.wait(self.poll_s)
            self._wake.clear()
