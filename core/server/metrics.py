"""Prometheus metrics of the server, in their own registry, and the ``/metrics`` endpoint.

- ``pm_http_requests_total{endpoint, method, status}`` and ``pm_http_request_seconds{endpoint, method, status}``
  for every request under ``/api/v1`` and ``/metrics`` (``endpoint`` is the route template, so engine ids do
  not multiply the series);
- ``pm_predictions_total{risk}``: engines predicted, by risk level;
- ``pm_champion``: an info metric with the champion's version; ``pm_training_job_state{state}``: 1 for the
  state of the newest training job;
- ``pm_drift_share{dataset_id, dataset}`` and ``pm_live_rmse{model_version}``: the last values the alert rules
  computed (the drift share of the Drift page's default comparison, :func:`core.monitoring.verdicts.against_training`);
- ``pm_worker_up{worker}`` (1 running, 0 down after an unexpected error) and ``pm_worker_restarts_total{worker}``
  for each supervised background worker (:mod:`core.server.supervision`; ``worker`` is one of a fixed few).

Names users chose are no labels by default: a per-dataset series is keyed by the dataset's numeric id
(``dataset_id``), and its ``dataset`` label (the name) stays empty, which Prometheus treats as absent, unless the
operator opts in with ``PM_METRICS_DATASET_LABELS=1`` or protects ``/metrics`` with ``PM_METRICS_TOKEN`` (then a
scrape needs ``Authorization: Bearer <PM_METRICS_TOKEN>``). Engine ids never become labels.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from core.errors import UserError
from core.server import auth
from core.server.errors import problem

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MEASURED_PREFIXES = ("/api/v1", "/metrics")
ENV_DATASET_LABELS = "PM_METRICS_DATASET_LABELS"
ENV_METRICS_TOKEN = "PM_METRICS_TOKEN"

disable_created_metrics()
REGISTRY = CollectorRegistry()
REQUESTS = Counter("pm_http_requests", "HTTP requests answered", ["endpoint", "method", "status"], registry=REGISTRY)
LATENCY = Histogram("pm_http_request_seconds", "Time to answer an HTTP request", ["endpoint", "method", "status"],
                    buckets=LATENCY_BUCKETS, registry=REGISTRY)
PREDICTIONS = Counter("pm_predictions", "Engines predicted through the API", ["risk"], registry=REGISTRY)
CHAMPION = Info("pm_champion", "The registered model version the server serves as champion", registry=REGISTRY)
JOB_STATE = Gauge("pm_training_job_state", "1 for the state of the newest training job", ["state"],
                  registry=REGISTRY)
DRIFT_SHARE = Gauge("pm_drift_share", "Last drift share of a fleet dataset against the champion's training data",
                    ["dataset_id", "dataset"], registry=REGISTRY)
WORKER_UP = Gauge("pm_worker_up", "1 while a supervised background worker runs, 0 while it is down or restarting",
                  ["worker"], registry=REGISTRY)
WORKER_RESTARTS = Counter("pm_worker_restarts", "Restarts of a supervised background worker after an unexpected "
                          "error", ["worker"], registry=REGISTRY)
LIVE_RMSE = Gauge("pm_live_rmse", "Live RMSE (cycles) of a model version's stored predictions on closed engines",
                  ["model_version"], registry=REGISTRY)


def metrics_token() -> str | None:
    """``PM_METRICS_TOKEN``: the bearer token a scrape of ``/metrics`` must present (None: no token needed)."""
    token = os.environ.get(ENV_METRICS_TOKEN, "").strip()
    if token and len(token) < auth.MIN_TOKEN_LENGTH:
        raise UserError(f"{ENV_METRICS_TOKEN} is shorter than {auth.MIN_TOKEN_LENGTH} characters; use a longer secret.")
    return token or None


def names_allowed() -> bool:
    """Whether dataset names may be labels: ``PM_METRICS_DATASET_LABELS=1``, or ``/metrics`` needs a token."""
    return os.environ.get(ENV_DATASET_LABELS, "").strip() == "1" or metrics_token() is not None


_DRIFT_LABELS: dict[str, tuple[str, str]] = {}
"""Dataset name -> the labels of its ``pm_drift_share`` series, so the series can be removed by name."""


def set_drift_share(dataset_id: int, name: str, share: float) -> None:
    """Record a dataset's drift share, labelled by its id (and by its name when :func:`names_allowed`)."""
    labels = (str(dataset_id), name if names_allowed() else "")
    _DRIFT_LABELS[name] = labels
    DRIFT_SHARE.labels(*labels).set(share)


def clear_drift_share(name: str) -> None:
    """Remove a dataset's ``pm_drift_share`` series (it is no longer a fleet dataset); nothing if it has none."""
    labels = _DRIFT_LABELS.pop(name, None)
    if labels is not None:
        with contextlib.suppress(KeyError):  # another watcher of this process removed the series already
            DRIFT_SHARE.remove(*labels)


def count_predictions(risks: list[str]) -> None:
    """Add predicted engines to ``pm_predictions_total`` by risk level."""
    for risk in risks:
        PREDICTIONS.labels(risk=risk).inc()


def set_champion(version: int | None) -> None:
    """Record the champion's version (``none`` while no model is trained)."""
    CHAMPION.info({"version": str(version) if version is not None else "none"})


def set_job_state(state: str | None) -> None:
    """Mark `state` as the newest training job's state (all zero when there has been no job)."""
    for name in JOB_STATES:
        JOB_STATE.labels(state=name).set(1.0 if name == state else 0.0)


def exposition() -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(REGISTRY)


def metrics_endpoint(refresh: Callable[[], None], token: str | None = None) -> Callable[[Request], Any]:
    """A Starlette endpoint serving the metrics, calling `refresh` first (champion, job state, workers); with
    `token`, a request without ``Authorization: Bearer <token>`` is refused (401)."""

    async def metrics(request: Request) -> Response:
        if token is not None and not auth.bearer_ok(request.headers.get("authorization"), token):
            return problem(401, f"/metrics needs the header 'Authorization: Bearer <token>' with the server's "
                                f"{ENV_METRICS_TOKEN}.", headers={"WWW-Authenticate": "Bearer"})
        refresh()
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

    return metrics


def _template(scope: Scope) -> str:
    """The route template that answered a request (``/api/v1/engines/{dataset}/{engine}``), or ``other``.

    Starlette's routers record the matched route in the (shared) scope and extend ``root_path`` at each mount.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return "other"
    return scope.get("root_path", "").removeprefix(scope.get("app_root_path", "")) + path


class MetricsMiddleware:
    """ASGI middleware timing and counting the API and metrics requests by route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(MEASURED_PREFIXES):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_status(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            labels = {"endpoint": _template(scope), "method": scope.get("method", ""),
                      "status": str(status["code"])}
            REQUESTS.labels(**labels).inc()
            LATENCY.labels(**labels).observe(time.perf_counter() - started)
