"""The server's own routes, middleware and lifespan, for ``st.App`` in ``app.py`` (which serves the dashboard).

- ``/api/v1``: the REST API (:mod:`core.server.api`); ``/metrics``: Prometheus text (:mod:`core.server.metrics`);
- middleware: request count and latency of those two; a JSON refusal of an API path holding a control
  character or a ``..`` segment (:class:`~core.server.errors.PathGuardMiddleware`);
- lifespan: create the store's schema before the first request; open the registry database (importing MLflow
  takes seconds) in the background a few seconds later, so the dashboard answers and draws its first page at
  once, then start the alert watcher (which scores engines with new readings) and load the champion; stop the
  watcher at shutdown. The watcher, its scoring and the webhook sender run under one
  :class:`core.server.supervision.Supervisor`, which ``/api/v1/health`` and ``/metrics`` report.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route

from core.data import store
from core.errors import UserError
from core.monitoring import default_drift
from core.operations import jobs, registry
from core.server import auth, errors, metrics
from core.server.alert_rules import RECENT_JOBS, TRAIN_KIND, Watcher
from core.server.alerts import Notifier
from core.server.api import Services, build_api
from core.server.fleet_gauges import FleetGauges
from core.server.model_cache import ModelCache
from core.server.scoring import ServerScorer
from core.server.supervision import Supervisor

LOG = logging.getLogger("core.server")
REGISTRY_DELAY_S = 3.0
"""Seconds after start before the server opens the registry and loads the champion in the background: the first
page is drawn first (a page or request that needs the registry sooner opens it itself)."""


@dataclass
class ServerParts:
    """What ``st.App`` is given, and the services behind them (tests reach in through ``services``)."""

    routes: list[BaseRoute]
    middleware: list[Middleware]
    lifespan: Callable[[Any], AbstractAsyncContextManager[None]]
    services: Services


def _refresh(services: Services) -> Callable[[], None]:
    gauges = FleetGauges(services.cache)

    def refresh() -> None:
        services.supervisor.problems()
        metrics.BATCHER_QUEUE.set(services.batcher.waiting())
        gauges.refresh()
        metrics.set_job_states([job.state for job in jobs.list_jobs(limit=RECENT_JOBS, kind=TRAIN_KIND)])
    return refresh


def _warm_up(cache: ModelCache, watcher: Watcher | None) -> Callable[[], None]:
    """What runs once the registry is open: start the watcher, then load the champion and its explainer, so the
    first prediction does not wait for them."""
    def warm_up() -> None:
        if watcher is not None:
            watcher.start()
        try:
            if cache.champion_version() is not None:
                cache.explainer(cache.get(None))
        except UserError as err:
            LOG.warning("The champion could not be loaded ahead of the first prediction: %s", err)
    return warm_up


def build(watch: bool = True) -> ServerParts:
    """Routes, middleware and lifespan of the server; the API token is read (or generated) now."""
    cache = ModelCache()
    supervisor = Supervisor()
    notifier = Notifier(supervisor)
    scorer = ServerScorer(cache)
    default_drift_refresher = default_drift.Refresher(
        cache.champion_version, lambda version: cache.get(str(version)).ensemble,
        lambda version: registry.training_datasets(version, registry.MODEL_NAME))

    def on_change() -> None:
        """Score new readings, then keep the Drift page's default comparison current (it opens at once)."""
        scorer()
        default_drift_refresher()

    watcher = Watcher(cache, notifier, on_change=on_change, supervisor=supervisor) if watch else None
    services = Services(cache, watcher, auth.api_token(), supervisor)
    api = build_api(services)
    routes: list[BaseRoute] = [
        Mount("/api/v1", app=api),
        Route("/metrics", metrics.metrics_endpoint(_refresh(services), metrics.metrics_token()), methods=["GET"]),
    ]
    middleware = [Middleware(metrics.MetricsMiddleware),
                  Middleware(errors.PathGuardMiddleware, prefix="/api/v1", templates=list(api.openapi()["paths"]))]

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        try:
            await run_in_threadpool(store.prepare)
        except UserError as err:
            LOG.warning("The store is not ready yet: %s", err)
        stopping = threading.Event()
        registry.init_in_background(after=_warm_up(cache, watcher), delay_s=REGISTRY_DELAY_S, stop=stopping)
        try:
            yield
        finally:
            stopping.set()
            if watcher is not None:
                watcher.stop()
            notifier.stop()

    return ServerParts(routes=routes, middleware=middleware, lifespan=lifespan, services=services)
