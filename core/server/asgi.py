"""The server's own routes, middleware and lifespan, for ``st.App`` in ``app.py`` (which serves the dashboard).

- ``/api/v1``: the REST API (:mod:`core.server.api`); ``/metrics``: Prometheus text (:mod:`core.server.metrics`);
- middleware: request count and latency of those two;
- lifespan: create the store and the registry database once, load the champion in the background, start the
  alert watcher, stop it at shutdown.
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
from core.operations import jobs, registry
from core.server import auth, metrics
from core.server.alert_rules import TRAIN_KIND, Watcher, start_scoring
from core.server.alerts import Notifier
from core.server.api import Services, build_api
from core.server.model_cache import ModelCache

LOG = logging.getLogger("core.server")


@dataclass
class ServerParts:
    """What ``st.App`` is given, and the services behind them (tests reach in through ``services``)."""

    routes: list[BaseRoute]
    middleware: list[Middleware]
    lifespan: Callable[[Any], AbstractAsyncContextManager[None]]
    services: Services


def _refresh(services: Services) -> Callable[[], None]:
    def refresh() -> None:
        metrics.set_champion(services.cache.champion_version())
        newest = jobs.list_jobs(limit=1, kind=TRAIN_KIND)
        metrics.set_job_state(newest[0].state if newest else None)
    return refresh


def _prepare_state() -> None:
    """Create the store's schema (where it may be written) and the registry database before requests use them
    concurrently."""
    store.prepare()
    registry.init()


def _warm_up(cache: ModelCache) -> None:
    """Load the champion and its explainer in the background, so the first prediction does not wait for them."""
    try:
        if cache.champion_version() is not None:
            cache.explainer(cache.get(None))
    except UserError as err:
        LOG.warning("The champion could not be loaded ahead of the first prediction: %s", err)


def build(watch: bool = True) -> ServerParts:
    """Routes, middleware and lifespan of the server; the API token is read (or generated) now."""
    cache = ModelCache()
    notifier = Notifier()
    watcher = Watcher(cache, notifier, on_change=start_scoring) if watch else None
    services = Services(cache, watcher, auth.api_token())
    routes: list[BaseRoute] = [
        Mount("/api/v1", app=build_api(services)),
        Route("/metrics", metrics.metrics_endpoint(_refresh(services)), methods=["GET"]),
    ]
    middleware = [Middleware(metrics.MetricsMiddleware)]

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        try:
            await run_in_threadpool(_prepare_state)
        except UserError as err:
            LOG.warning("The store or registry is not ready yet: %s", err)
        threading.Thread(target=_warm_up, args=(cache,), name="model-warm-up", daemon=True).start()
        if watcher is not None:
            watcher.start()
        try:
            yield
        finally:
            if watcher is not None:
                watcher.stop()
            notifier.stop()

    return ServerParts(routes=routes, middleware=middleware, lifespan=lifespan, services=services)
