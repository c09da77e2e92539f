"""The gauges of ``/metrics`` read from the store and the registry, recomputed only when what they read changes.

:class:`FleetGauges` is called before each scrape. It recomputes

- per in-service dataset (fleet or evaluation): engines not closed by the risk of their latest stored prediction
  (``pm_engines``), those out of the model's experience (``pm_ood_engines``), those whose newest reading is newer
  than their latest prediction (``pm_scoring_backlog_engines``), and the expected cost of their failing within 30
  cycles (``pm_expected_failure_cost_dollars``: each engine's probability times the planner's cost of an
  unscheduled failure); and the alert episodes by kind and state (``pm_alerts``),

only when the store's files change (:func:`core.data.store.stamp`, a few file stats), and the champion's
validation RMSE and F2 and its registration time only when the champion changes, so a scrape of an unchanged
server reads nothing. While the server opens the registry in the background after its start (importing MLflow
takes seconds), a scrape does not wait for it: the champion's gauges follow at the first scrape after. A read that
fails (the store or registry busy) is logged, the gauges keep their last values,
and the next scrape tries again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import duckdb

from core import config
from core.data import store
from core.errors import UserError
from core.operations import registry
from core.planning.planner import PlanCosts
from core.server import alerts, metrics
from core.server.model_cache import ModelCache

LOG = logging.getLogger("core.server")
RISKS = ("LOW", "MEDIUM", "HIGH", "unscored")

_FLEET_SQL = (
    "WITH latest AS (SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY dataset_id, unit "
    "ORDER BY created_at DESC, cycle DESC) AS rn FROM predictions) WHERE rn = 1), "
    "newest AS (SELECT dataset_id, unit, max(cycle) AS cycle FROM readings GROUP BY ALL) "
    "SELECT d.id, d.name, coalesce(p.risk, 'unscored') AS risk, count(*) AS engines, "
    "count(*) FILTER (WHERE p.ood) AS ood, count(*) FILTER (WHERE p.cycle IS NULL OR n.cycle > p.cycle) AS backlog, "
    "coalesce(sum(p.p_fail_30), 0) AS p_fail "
    "FROM engines e JOIN datasets d ON d.id = e.dataset_id "
    "LEFT JOIN latest p ON p.dataset_id = e.dataset_id AND p.unit = e.unit "
    "LEFT JOIN newest n ON n.dataset_id = e.dataset_id AND n.unit = e.unit "
    "WHERE d.role IN ('fleet', 'evaluation') AND e.closed_event IS NULL GROUP BY ALL ORDER BY ALL")


class FleetGauges:
    """Keeps the store's and the champion's gauges current, reading only after a change (thread-safe)."""

    def __init__(self, cache: ModelCache) -> None:
        self.cache = cache
        self._lock = threading.Lock()
        self._stamp: Any = None
        self._champion: int | None = None

    def refresh(self) -> None:
        """Recompute what changed since the last call (the champion's figures only once the registry is open)."""
        with self._lock:
            if not registry.opening():
                self._refresh_champion()
            if not config.paths().duckdb.exists():
                return
            stamp = store.stamp()
            if stamp != self._stamp:
                try:
                    self._refresh_store()
                except (UserError, duckdb.Error) as err:
                    LOG.warning("The fleet's gauges on /metrics keep their last values; the store could not be "
                                "read: %s", err)
                    return
                self._stamp = stamp

    def _refresh_champion(self) -> None:
        version = self.cache.champion_version()
        metrics.set_champion(version)
        if version == self._champion:
            return
        label = str(version)
        try:
            figures = {} if version is None else registry.version_metrics(version)
            registered = None if version is None else float(
                registry.client().get_model_version(registry.model_name(), label).creation_timestamp) / 1000.0
        except UserError as err:
            LOG.warning("The champion's validation figures are not on /metrics yet: %s", err)
            return
        for gauge in (metrics.CHAMPION_VAL_RMSE, metrics.CHAMPION_VAL_F2, metrics.CHAMPION_REGISTERED):
            gauge.clear()
        for gauge, key in ((metrics.CHAMPION_VAL_RMSE, "val_rmse"), (metrics.CHAMPION_VAL_F2, "val_f2")):
            if figures.get(key) is not None:
                gauge.labels(model_version=label).set(float(figures[key]))
        if registered is not None:
            metrics.CHAMPION_REGISTERED.labels(model_version=label).set(registered)
        self._champion = version

    @staticmethod
    def _refresh_store() -> None:
        with store.connect(read_only=True) as con:
            rows = con.execute(_FLEET_SQL).fetchall()
        failure = PlanCosts().failure
        engines: dict[tuple[str, str, str], float] = {}
        per_dataset: dict[tuple[str, str], list[float]] = {}
        for dataset_id, name, risk, count, ood, backlog, p_fail in rows:
            labels = metrics.dataset_labels(int(dataset_id), str(name))
            engines[(*labels, str(risk))] = float(count)
            totals = per_dataset.setdefault(labels, [0.0, 0.0, 0.0])
            totals[0] += float(ood)
            totals[1] += float(backlog)
            totals[2] += float(p_fail) * failure
        by_state = alerts.counts()
        for gauge in (metrics.ENGINES, metrics.OOD_ENGINES, metrics.SCORING_BACKLOG, metrics.FAILURE_COST):
            gauge.clear()
        for labels in per_dataset:
            for risk in RISKS:
                metrics.ENGINES.labels(*labels, risk).set(engines.get((*labels, risk), 0.0))
        for labels, (ood, backlog, cost) in per_dataset.items():
            metrics.OOD_ENGINES.labels(*labels).set(ood)
            metrics.SCORING_BACKLOG.labels(*labels).set(backlog)
            metrics.FAILURE_COST.labels(*labels).set(cost)
        for state, kinds in by_state.items():
            for kind, count in kinds.items():
                metrics.ALERTS.labels(kind=kind, state=state).set(float(count))
