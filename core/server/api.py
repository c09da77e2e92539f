"""The REST API mounted at ``/api/v1`` (OpenAPI docs at ``/api/v1/docs``, served offline: :mod:`core.server.api_docs`).

Every endpoint but ``/health`` needs ``Authorization: Bearer <token>`` (:mod:`core.server.auth`), whose user's
role must allow the endpoint's action (:mod:`core.access.roles`): reads need a viewer, ``/readings``,
``/outcomes`` and acknowledging or snoozing an alert an operator; a missing or unknown token is answered 401, a
role too low 403. ``/health`` answers ``degraded`` with a sentence per background worker that is down
(:mod:`core.server.supervision`); it names the datasets only to a caller with a token or where no sign-in is
required (:mod:`core.server.disclosure`), to others it says its status and version.
Predictions come from the model cache of this process; writes go through :mod:`core.data.fleet_ops`,
the one writer path of the store, serialised by :data:`WRITE_LOCK`; after a write the alert watcher is
poked. Errors: :mod:`core.server.errors`.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from core import config
from core.access import roles
from core.data import fleet_ops, queries, store
from core.operations import jobs
from core.server import alerts, api_docs, auth, disclosure, errors, metrics, predicting
from core.server.alert_rules import Watcher
from core.server.batcher import Batcher, Readings
from core.server.json_body import FastJSONRoute
from core.server.model_cache import ModelCache
from core.server.readings_input import InputError, check_engine, model_columns, readings_columns
from core.server.schemas import (
    AcknowledgeRequest,
    AlertEpisode,
    AlertList,
    BatchAnswer,
    BatchRequest,
    EngineReadings,
    OutcomeRequest,
    Prediction,
    Problem,
    ReadingsRequest,
    SnoozeRequest,
)
from core.server.supervision import Supervisor

WRITE_LOCK = threading.Lock()
"""Serialises the API's writes to the store within this process."""
API_VERSION = "1"
TITLE = "Turbofan fleet RUL API"
BEARER = HTTPBearer(scheme_name="bearer", auto_error=False,
                    description="the server's admin token or a user's token ('python -m core users token NAME')")
"""Documents the bearer token (Swagger's 'Authorize'); :func:`require_token` decides who the token names."""
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": text}
    for code, text in ((401, "no or wrong bearer token"), (403, "the token's role may not do this"),
                       (413, "request body too large"),
                       (422, "invalid request (not UTF-8 JSON, a bad field or path); the sentence names it"),
                       (500, "the server failed; the details are in its log"))
}
"""The answers every secured endpoint may give besides its own (each the :class:`Problem` shape)."""
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "unknown dataset or engine"}}
NO_MODEL: dict[int | str, dict[str, Any]] = {503: {"model": Problem, "description": "no model is trained yet; the "
                                                                                     "sentence says how to train one"}}
MODEL_QUERY = Query(description="version number, champion or challenger", pattern="^(champion|challenger|[0-9]{1,9})$")


ALERT_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no alert has this id"},
    409: {"model": Problem, "description": "the alert is resolved or acknowledged already; the sentence says by whom "
                                           "and when"},
    422: {"model": Problem, "description": "invalid request, e.g. a snooze that ends in the past"},
}
AlertId = Annotated[int, Path(ge=1, le=2**53, description="the alert's id, as `/alerts` lists it")]


class Services:
    """What the endpoints share in one server process: the model cache, the alert watcher, the token, the
    supervisor of the background workers, and the batcher that coalesces concurrent predictions."""

    def __init__(self, cache: ModelCache, watcher: Watcher | None, token: str,
                 supervisor: Supervisor | None = None) -> None:
        self.cache = cache
        self.watcher = watcher
        self.token = token
        self.supervisor = supervisor or (watcher.supervisor if watcher is not None else Supervisor())
        self.batcher = Batcher()
        self._listing_lock = threading.Lock()
        self._listing: tuple[tuple, list[dict[str, Any]]] | None = None

    def dataset_listing(self) -> list[dict[str, Any]]:
        """Id (the ``dataset_id`` label of ``/metrics``), name, role, engines and rows of each loaded dataset,
        read again only when the store's file stamp (:func:`core.data.store.stamp`) changes: ``/health`` is polled
        by monitors, and opening the store costs tens of milliseconds."""
        if not config.paths().duckdb.exists():
            return []
        with self._listing_lock:
            stamp = store.stamp()
            if self._listing is None or self._listing[0] != stamp:
                with store.connect(read_only=True) as con:
                    frame = queries.list_datasets(con)
                listing = [{"id": int(r["id"]), "name": str(r["name"]), "role": str(r["role"]),
                            "engines": int(r["engines"]), "rows": int(r["rows"])} for _, r in frame.iterrows()]
                self._listing = (stamp, listing)
            return [dict(item) for item in self._listing[1]]

    def changed(self) -> None:
        """Tell the alert watcher that data changed."""
        if self.watcher is not None:
            self.watcher.poke()


def _services(request: Request) -> Services:
    return request.app.state.services


def require_token(request: Request,
                  _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]) -> auth.Caller:
    """Who calls (kept in ``request.state.caller``); refuse (401) a request without a known bearer token."""
    found = auth.caller(request.headers.get("authorization"), _services(request).token)
    if found is None:
        raise HTTPException(401, "This endpoint needs the header 'Authorization: Bearer <token>' with the "
                                 "server's admin token (Home page, for admins) or a user's token "
                                 "('python -m core users token NAME').",
                            headers={"WWW-Authenticate": "Bearer"})
    request.state.caller = found
    return found


def needs(action: str) -> Any:
    """A dependency refusing (403, with a sentence) a caller whose role may not do `action`."""
    def check(request: Request) -> None:
        found: auth.Caller = request.state.caller
        if not roles.allowed(found.role, action):
            raise HTTPException(403, roles.refusal(found.role, action, found.name))
    return Depends(check)


def _dataset_or_404(name: str) -> dict:
    if not config.paths().duckdb.exists():
        raise errors.NotFound(f"No dataset named '{name}' is loaded (the store is empty).")
    with store.connect(read_only=True) as con:
        found = queries.find_dataset(con, name)
    if found is None:
        raise errors.NotFound(f"No dataset named '{name}' is loaded.")
    return found


def _served(services: Services, model: str | None) -> Any:
    if model is None and services.cache.champion_version() is None:
        raise HTTPException(503, "No model is trained yet: train one (Models page or 'python -m core train') first.")
    return services.cache.get(model)


def _engine_columns(engines: list[EngineReadings], field: str) -> tuple[dict[str, np.ndarray], dict[int, str]]:
    """The model columns of several engines (units 1..n, :func:`model_columns`), checked reading by reading."""
    seen: dict[str, int] = {}
    for j, item in enumerate(engines):
        if item.engine in seen:
            raise InputError(f"{field}[{j}].engine", f"{field}[{j}] repeats engine {item.engine}, already given as "
                                                     f"{field}[{seen[item.engine]}].")
        seen[item.engine] = j
    readings = [r for item in engines for r in item.readings]
    prefix = [f"{field}[{j}].readings" if field else "readings" for j in range(len(engines))]
    paths = [f"{prefix[j]}[{i}]" for j, item in enumerate(engines) for i in range(len(item.readings))]
    for j, item in enumerate(engines):
        if not item.readings:
            raise InputError(prefix[j], f"Engine {item.engine} has no readings.")
    columns = readings_columns(readings, paths)
    sizes = [len(item.readings) for item in engines]
    units = np.repeat(np.arange(1, len(engines) + 1), sizes)
    start = 0
    for item, size in zip(engines, sizes, strict=True):
        check_engine(columns["cycle"][start:start + size], paths[start:start + size], item.engine)
        start += size
    label = f"Engine {engines[0].engine}" if len(engines) == 1 else "The batch"
    return model_columns(columns, units, paths, label), {j + 1: item.engine for j, item in enumerate(engines)}


def build_api(services: Services) -> FastAPI:
    """The FastAPI app of ``/api/v1``."""
    app = FastAPI(title=TITLE, version=API_VERSION, docs_url=None, openapi_url="/openapi.json",
                  redoc_url=None, description="Predictions, readings, outcomes and alerts of the fleet dashboard's "
                                              "server. Send `Authorization: Bearer <token>` (\"Authorize\" "
                                              "above): the admin token (Home page, for admins; an operator who "
                                              f"sets it through `PM_API_TOKEN` must give at least "
                                              f"{auth.MIN_TOKEN_LENGTH} characters) or a user's token with that "
                                              "user's role (`python -m core users token NAME`; viewers read, "
                                              "operators also send readings and outcomes). A prediction with no "
                                              "model trained yet is answered 503 with a sentence.")
    api_docs.install(app, TITLE)
    app.state.services = services
    errors.install(app)
    app.add_middleware(errors.BodyLimitMiddleware)
    open_routes = APIRouter(route_class=FastJSONRoute)
    secured = APIRouter(dependencies=[Depends(require_token), needs("read")], responses=ERRORS,
                        route_class=FastJSONRoute)

    @open_routes.get("/health", summary="Server status (no token needed; datasets need one where sign-in is "
                                        "required)", responses={code: ERRORS[code] for code in (413, 500)},
                     openapi_extra={"security": [{}, {"bearer": []}]},
                     description="`status` is `ok`, or `degraded` while a background worker (the alert watcher, the "
                                 "in-server scoring, the webhook sender) is down or restarting after an unexpected "
                                 "error; `problems` then holds one sentence per worker.")
    def health(request: Request) -> dict[str, Any]:
        s = _services(request)
        problems = s.supervisor.problems()
        status = "degraded" if problems else "ok"
        if not disclosure.may_see_fleet(request.scope, request.headers.get("authorization"), s.token):
            return {"status": status, "version": API_VERSION}
        job = jobs.running()
        return {"status": status, "problems": problems, "version": API_VERSION,
                "champion_version": s.cache.champion_version(), "datasets": s.dataset_listing(),
                "running_job": None if job is None else {"id": job.id, "kind": job.kind, "phase": job.phase,
                                                         "progress": job.progress}}

    @secured.post("/predict", summary="Predict one engine from its readings", response_model=Prediction,
                  response_model_exclude_none=True, responses=NO_MODEL)
    def predict(body: EngineReadings, request: Request,
                model: Annotated[str | None, MODEL_QUERY] = None,
                factors: Annotated[bool, Query(description="include the top 5 SHAP factors")] = True,
                ) -> dict[str, Any]:
        s = _services(request)
        frame, ids = _engine_columns([body], "")
        served = _served(s, model)
        answer = predicting.predict_frame(s.cache, served, frame, ids, factors, s.batcher)[0]
        metrics.count_predictions([answer["risk"]])
        return answer

    @secured.post("/batch-predict", summary="Predict many engines, given or stored", response_model=BatchAnswer,
                  response_model_exclude_none=True, responses={**NOT_FOUND, **NO_MODEL})
    def batch_predict(body: BatchRequest, request: Request,
                      model: Annotated[str | None, MODEL_QUERY] = None,
                      ) -> dict[str, Any]:
        s = _services(request)
        if (body.engines is None) == (body.dataset is None):
            raise InputError("body", "Give either 'engines' (engines with their readings) or 'dataset' (a stored "
                                     "dataset's name), not both or neither.")
        frame: Readings
        if body.engines is not None:
            frame, ids = _engine_columns(body.engines, "engines")
        else:
            assert body.dataset is not None  # exactly one of the two, checked above
            _dataset_or_404(body.dataset)
            frame, ids = predicting.stored_frame(body.dataset)
        served = _served(s, model)
        answers = predicting.predict_frame(s.cache, served, frame, ids, body.factors,
                                           s.batcher if body.engines is not None else None)
        if body.dataset is not None:
            with WRITE_LOCK:
                predicting.record(answers, body.dataset, ids, served.version)
            s.changed()
        metrics.count_predictions([a["risk"] for a in answers])
        return {"model_version": served.version, "dataset": body.dataset, "engines": answers}

    @secured.post("/readings", summary="Append readings to a fleet dataset (operator)",
                  dependencies=[needs("append_readings")])
    def readings(body: ReadingsRequest, request: Request) -> dict[str, Any]:
        paths = [f"readings[{i}]" for i in range(len(body.readings))]
        rows = pd.DataFrame(readings_columns(body.readings, paths, id_key=True))
        with WRITE_LOCK:
            result = fleet_ops.append_readings(body.dataset, rows)
        _services(request).changed()
        return result

    @secured.post("/outcomes", summary="Record what happened to an engine (operator)",
                  dependencies=[needs("record_outcome")], responses=NOT_FOUND)
    def outcomes(body: OutcomeRequest, request: Request) -> dict[str, Any]:
        _engine_or_404(body.dataset, body.engine)
        served_version = _services(request).cache.champion_version()
        with WRITE_LOCK:
            result = fleet_ops.record_outcome(body.dataset, body.engine, body.cycle, body.event, body.note,
                                              model_version=served_version)
        _services(request).changed()
        return result

    @secured.get("/engines/{dataset}/{engine}", summary="An engine's latest prediction and history",
                 responses=NOT_FOUND)
    def engine(dataset: str, engine: str) -> dict[str, Any]:
        _engine_or_404(dataset, engine)
        return fleet_ops.engine_history(dataset, engine)

    @secured.get("/alerts", summary="Alert episodes, newest first", response_model=AlertList)
    def alert_list(
        state: Annotated[str, Query(pattern="^(open|acknowledged|snoozed|resolved|all)$",
                                    description="open, acknowledged, snoozed, resolved or all")] = "all",
        kind: Annotated[str | None, Query(pattern="^(risk|drift|live_rmse|job)$",
                                          description="only this kind: risk, drift, live_rmse or job")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        listed = alerts.list_episodes(state, None if kind is None else [kind], limit)
        by_state = alerts.counts()
        counted = ({k: sum(by_state[st][k] for st in by_state) for k in alerts.KINDS} if state == "all"
                   else by_state[state])
        return {"state": state, "counts": counted, "alerts": [e.to_dict() for e in listed]}

    def _handled(action: Any, *args: Any) -> dict[str, Any]:
        """The episode `action` (:func:`core.server.alerts.acknowledge` or ``snooze``) changed; 404 for an unknown
        id, 409 with the sentence when its state does not allow it."""
        try:
            done, refused = action(*args)
        except alerts.UnknownAlert as err:
            raise errors.NotFound(str(err)) from err
        if refused:
            raise HTTPException(409, refused[0])
        return done[0].to_dict()

    def _handler(request: Request) -> str:
        found: auth.Caller = request.state.caller
        if not alerts.may_handle(found.role):
            raise HTTPException(403, alerts.handle_refusal(found.role, found.name))
        return found.name

    @secured.post("/alerts/{alert_id}/acknowledge", summary="Acknowledge an alert (operator)",
                  response_model=AlertEpisode, responses=ALERT_ERRORS,
                  description="Records the caller's name and the time; an open or snoozed alert becomes "
                              "acknowledged (it still resolves when its condition ends).")
    def acknowledge(alert_id: AlertId, request: Request, body: AcknowledgeRequest | None = None) -> dict[str, Any]:
        who = _handler(request)
        return _handled(alerts.acknowledge, [alert_id], who, body.note if body else "")

    @secured.post("/alerts/{alert_id}/snooze", summary="Snooze an alert (operator)", response_model=AlertEpisode,
                  responses=ALERT_ERRORS,
                  description="Records the caller's name and the time; the alert reads as snoozed until `until`, "
                              "then as open again (no new notification), or, with `until` null, until its "
                              "condition ends.")
    def snooze(alert_id: AlertId, body: SnoozeRequest, request: Request) -> dict[str, Any]:
        who = _handler(request)
        return _handled(alerts.snooze, [alert_id], who, body.until, body.note)

    from core.server import api_plan  # it imports this module's shared parts

    api_plan.register(secured)
    app.include_router(open_routes)
    app.include_router(secured)
    return app


def _engine_or_404(dataset: str, engine: str) -> None:
    _dataset_or_404(dataset)
    with store.connect(read_only=True) as con:
        found = queries.find_engine(con, dataset, engine)
    if found is None:
        raise errors.NotFound(f"Dataset '{dataset}' has no engine '{engine}'.")
