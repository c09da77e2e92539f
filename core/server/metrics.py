"""Prometheus metrics of the server, in their own registry (with the process and platform collectors:
``process_resident_memory_bytes``, ``process_cpu_seconds_total``...), and the ``/metrics`` endpoint. docs/monitoring.md
lists every metric; in short:

- ``pm_http_requests_total`` and ``pm_http_request_seconds`` by ``endpoint`` (:func:`_template`: the API route
  template, so engine ids do not multiply the series; ``dashboard`` for every non-API path), ``method``, ``status``;
  ``pm_http_requests_in_flight``; ``pm_batcher_queued_requests``; ``pm_predictions_total{risk}``;
- the champion: ``pm_champion`` (info), its validation RMSE and F2 and registration time
  (:mod:`core.server.fleet_gauges`); training: ``pm_training_job_state{state}``, ``pm_training_failures_in_a_row``;
- what the alert rules computed last: ``pm_drift_share`` and ``pm_prediction_psi`` per fleet dataset (the Drift
  page's default comparison, :func:`core.monitoring.verdicts.against_training`), live accuracy per model version
  (``pm_live_rmse``, ``pm_live_mae``, ``pm_live_interval_coverage``, ``pm_live_high_recall``,
  ``pm_live_high_precision``, ``pm_live_high_f2``, ``pm_live_closed_engines``);
- from the store (:mod:`core.server.fleet_gauges`): ``pm_engines{risk}``, ``pm_ood_engines``,
  ``pm_scoring_backlog_engines``, ``pm_expected_failure_cost_dollars`` per in-service dataset, ``pm_alerts{kind,
  state}``;
- ``pm_worker_up{worker}`` and ``pm_worker_restarts_total{worker}`` for each supervised background worker
  (:mod:`core.server.supervision`), ``pm_webhook_deliveries_total{outcome}``.

Names users chose are no labels by default: a per-dataset series is keyed by the dataset's numeric id
(``dataset_id``), and its ``dataset`` label (the name) stays empty, which Prometheus treats as absent, unless the
operator opts in with ``PM_METRICS_DATASET_LABELS=1`` or protects ``/metrics`` with ``PM_METRICS_TOKEN`` (then a
scrape needs ``Authorization: Bearer <PM_METRICS_TOKEN>``). Engine ids never become labels.
"""

from __future__ import annotations

import contextlib
import math
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
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from core.errors import UserError
from core.server import auth
from core.server.errors import problem

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
API_PREFIX = "/api/v1"
METRICS_PATH = "/metrics"
DASHBOARD_ENDPOINT = "dashboard"
"""The one ``endpoint`` label of every request outside the API and ``/metrics`` (the dashboard and its assets)."""
API_FIXED_PATHS = ("/docs", "/openapi.json", "/docs/oauth2-redirect")
"""API paths served by plain routes (the docs), labelled by their own path."""
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
FAILED_IN_A_ROW = Gauge("pm_training_failures_in_a_row", "Training jobs that failed in a row, newest first (0 when "
                        "the newest did not fail)", registry=REGISTRY)
DRIFT_SHARE = Gauge("pm_drift_share", "Last drift share of a fleet dataset against the champion's training data",
                    ["dataset_id", "dataset"], registry=REGISTRY)
WORKER_UP = Gauge("pm_worker_up", "1 while a supervised background worker runs, 0 while it is down or restarting",
                  ["worker"], registry=REGISTRY)
WORKER_RESTARTS = Counter("pm_worker_restarts", "Restarts of a supervised background worker after an unexpected "
                          "error", ["worker"], registry=REGISTRY)
LIVE_RMSE = Gauge("pm_live_rmse", "Live RMSE (cycles) of a model version's stored predictions on closed engines",
                  ["model_version"], registry=REGISTRY)
LIVE_MAE = Gauge("pm_live_mae", "Live MAE (cycles) of a model version's stored predictions on closed engines",
                 ["model_version"], registry=REGISTRY)
LIVE_COVERAGE = Gauge("pm_live_interval_coverage", "Share of a model version's stored predictions on closed engines "
                      "whose interval held the realised RUL", ["model_version"], registry=REGISTRY)
LIVE_RECALL = Gauge("pm_live_high_recall", "Recall of HIGH for failing within 30 cycles, on closed engines",
                    ["model_version"], registry=REGISTRY)
LIVE_PRECISION = Gauge("pm_live_high_precision", "Precision of HIGH for failing within 30 cycles, on closed engines",
                       ["model_version"], registry=REGISTRY)
LIVE_F2 = Gauge("pm_live_high_f2", "F2 of HIGH for failing within 30 cycles, on closed engines",
                ["model_version"], registry=REGISTRY)
LIVE_ENGINES = Gauge("pm_live_closed_engines", "Closed engines behind a model version's live accuracy",
                     ["model_version"], registry=REGISTRY)
PREDICTION_PSI = Gauge("pm_prediction_psi", "Last PSI of the champion's predicted RUL on a fleet dataset against its "
                       "predictions on its training data", ["dataset_id", "dataset"], registry=REGISTRY)
CHAMPION_VAL_RMSE = Gauge("pm_champion_validation_rmse", "The champion's validation RMSE (cycles)", ["model_version"],
                          registry=REGISTRY)
CHAMPION_VAL_F2 = Gauge("pm_champion_validation_f2", "The champion's validation F2 of HIGH", ["model_version"],
                        registry=REGISTRY)
CHAMPION_REGISTERED = Gauge("pm_champion_registered_timestamp_seconds", "When the champion's version was registered "
                            "(Unix time; its age is time() minus this)", ["model_version"], registry=REGISTRY)
ENGINES = Gauge("pm_engines", "In-service engines not closed, by the risk of their latest stored prediction "
                "(unscored: none yet)", ["dataset_id", "dataset", "risk"], registry=REGISTRY)
OOD_ENGINES = Gauge("pm_ood_engines", "In-service engines whose latest stored prediction is out of the model's "
                    "experience", ["dataset_id", "dataset"], registry=REGISTRY)
SCORING_BACKLOG = Gauge("pm_scoring_backlog_engines", "In-service engines with readings newer than their latest "
                        "stored prediction (or none)", ["dataset_id", "dataset"], registry=REGISTRY)
FAILURE_COST = Gauge("pm_expected_failure_cost_dollars", "Expected cost of unscheduled failures within 30 cycles of "
                     "the in-service engines (probability times the cost of a failure)", ["dataset_id", "dataset"],
                     registry=REGISTRY)
ALERTS = Gauge("pm_alerts", "Alert episodes by kind and state as they read now", ["kind", "state"],
               registry=REGISTRY)
WEBHOOK = Counter("pm_webhook_deliveries", "Alert episodes sent to the webhook, by outcome (delivered or failed "
                  "after every attempt)", ["outcome"], registry=REGISTRY)
IN_FLIGHT = Gauge("pm_http_requests_in_flight", "HTTP requests being answered now", registry=REGISTRY)
BATCHER_QUEUE = Gauge("pm_batcher_queued_requests", "Prediction requests waiting for the batcher's model call",
                      registry=REGISTRY)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
for _outcome in ("delivered", "failed"):
    WEBHOOK.labels(outcome=_outcome)


def metrics_token() -> str | None:
    """``PM_METRICS_TOKEN``: the bearer token a scrape of ``/metrics`` must present (None: no token needed)."""
    token = os.environ.get(ENV_METRICS_TOKEN, "").strip()
    if token and len(token) < auth.MIN_TOKEN_LENGTH:
        raise UserError(f"{ENV_METRICS_TOKEN} is shorter than {auth.MIN_TOKEN_LENGTH} characters; use a longer secret.")
    return token or None


def names_allowed() -> bool:
    """Whether dataset names may be labels: ``PM_METRICS_DATASET_LABELS=1``, or ``/metrics`` needs a token."""
    return os.environ.get(ENV_DATASET_LABELS, "").strip() == "1" or metrics_token() is not None


def dataset_labels(dataset_id: int, name: str) -> tuple[str, str]:
    """The ``(dataset_id, dataset)`` labels of a per-dataset series: the name only when :func:`names_allowed`."""
    return str(dataset_id), name if names_allowed() else ""


_DRIFT_LABELS: dict[str, tuple[str, str]] = {}
"""Dataset name -> the labels of its ``pm_drift_share`` and ``pm_prediction_psi`` series, so they can be removed by
name."""


def set_drift_share(dataset_id: int, name: str, share: float, prediction_psi: float | None = None) -> None:
    """Record a dataset's drift share and the champion's prediction PSI on it (none: its series is removed),
    labelled by its id (and by its name when :func:`names_allowed`)."""
    labels = dataset_labels(dataset_id, name)
    _DRIFT_LABELS[name] = labels
    DRIFT_SHARE.labels(*labels).set(share)
    if prediction_psi is None or not math.isfinite(prediction_psi):
        with contextlib.suppress(KeyError):  # it had none
            PREDICTION_PSI.remove(*labels)
    else:
        PREDICTION_PSI.labels(*labels).set(prediction_psi)


def clear_drift_share(name: str) -> None:
    """Remove a dataset's ``pm_drift_share`` and ``pm_prediction_psi`` series (it is no longer a fleet dataset);
    nothing if it has none."""
    labels = _DRIFT_LABELS.pop(name, None)
    if labels is not None:
        for gauge in (DRIFT_SHARE, PREDICTION_PSI):
            with contextlib.suppress(KeyError):  # another watcher of this process removed the series already
                gauge.remove(*labels)


LIVE_GAUGES = {"rmse": LIVE_RMSE, "mae": LIVE_MAE, "coverage": LIVE_COVERAGE, "high_recall": LIVE_RECALL,
               "high_precision": LIVE_PRECISION, "engines": LIVE_ENGINES}
"""Column of :func:`core.data.fleet_ops.accuracy` -> its gauge (``pm_live_high_f2`` is derived)."""


def f2(recall: float | None, precision: float | None) -> float | None:
    """F2 from recall and precision (None where either is undefined; 0 when both are 0)."""
    if recall is None or precision is None:
        return None
    return 0.0 if recall == 0 and precision == 0 else 5 * precision * recall / (4 * precision + recall)


def set_live_accuracy(by_version: list[dict[str, Any]]) -> None:
    """Record live accuracy per model version (rows of :func:`core.data.fleet_ops.live_accuracy`'s ``by_version``);
    a figure that is undefined (e.g. recall with no engine that failed within 30 cycles) has no series."""
    for row in by_version:
        version = str(row["model_version"])
        figures = {**{k: row.get(k) for k in LIVE_GAUGES}, "f2": f2(row.get("high_recall"), row.get("high_precision"))}
        for key, value in figures.items():
            gauge = LIVE_F2 if key == "f2" else LIVE_GAUGES[key]
            if value is None:
                with contextlib.suppress(KeyError):  # it had none
                    gauge.remove(version)
            else:
                gauge.labels(model_version=version).set(float(value))


def count_predictions(risks: list[str]) -> None:
    """Add predicted engines to ``pm_predictions_total`` by risk level."""
    for risk in risks:
        PREDICTIONS.labels(risk=risk).inc()


def set_champion(version: int | None) -> None:
    """Record the champion's version (``none`` while no model is trained)."""
    CHAMPION.info({"version": str(version) if version is not None else "none"})


def set_job_states(states: list[str]) -> None:
    """Record the training jobs' states, newest first: the newest one's state (all zero when there has been no job),
    and how many failed in a row before a job that did not (queued and running jobs are skipped)."""
    newest = states[0] if states else None
    for name in JOB_STATES:
        JOB_STATE.labels(state=name).set(1.0 if name == newest else 0.0)
    finished = [s for s in states if s not in ("queued", "running")]
    in_a_row = next((i for i, s in enumerate(finished) if s != "failed"), len(finished))
    FAILED_IN_A_ROW.set(float(in_a_row))


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
    """The ``endpoint`` label of a request: the API route template that answered it
    (``/api/v1/engines/{dataset}/{engine}``), the docs' own path, ``/api/v1/docs/{asset}`` for the docs' files,
    ``/api/v1/{unmatched}`` for any other API path, ``/metrics``, or :data:`DASHBOARD_ENDPOINT` for everything else.

    Starlette's routers record the matched API route in the (shared) scope and extend ``root_path`` at each mount;
    a plain route inside the API (the docs) leaves the outer mount there, so those paths are told by name.
    """
    path = scope.get("path", "")
    if path == METRICS_PATH:
        return METRICS_PATH
    if path != API_PREFIX and not path.startswith(API_PREFIX + "/"):
        return DASHBOARD_ENDPOINT
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str) and not isinstance(route, Mount):
        return scope.get("root_path", "").removeprefix(scope.get("app_root_path", "")) + template
    rest = path.removeprefix(API_PREFIX)
    if rest in API_FIXED_PATHS:
        return path
    if rest.startswith("/docs/"):
        return API_PREFIX + "/docs/{asset}"
    return API_PREFIX + "/{unmatched}"


class MetricsMiddleware:
    """ASGI middleware timing and counting HTTP requests by ``endpoint`` (:func:`_template`), method and status, and
    keeping the number in flight."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_status(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            IN_FLIGHT.dec()
            labels = {"endpoint": _template(scope), "method": _method(scope), "status": str(status["code"])}
            REQUESTS.labels(**labels).inc()
            LATENCY.labels(**labels).observe(time.perf_counter() - started)


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _method(scope: Scope) -> str:
    """The request's method, ``other`` for one outside :data:`HTTP_METHODS` (a client may send any token)."""
    method = scope.get("method", "")
    return method if method in HTTP_METHODS else "other"
