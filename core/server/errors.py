"""How the API answers a refused request: one JSON sentence (``detail``) naming the field, never a traceback.

- 401: no or wrong bearer token; 404: an unknown dataset or engine (:class:`NotFound`, raised by the
  API after looking it up); 413: a body over ``PM_API_MAX_BODY_MB`` (default 64 MB);
- 422: a request that does not parse or fails a check (:class:`~core.server.readings_input.InputError`,
  pydantic's validation, or any :class:`~core.errors.UserError` from the core, e.g. a refused append), a
  body that is not UTF-8 JSON (:mod:`core.server.json_body`), and a path holding a control character or a
  ``..`` segment (:class:`PathGuardMiddleware`, ahead of routing: such a path would otherwise miss the API's
  mount or meet Streamlit's plain-text refusal);
- 500: anything else, answered with a sentence while the traceback goes to the server log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.config import env_number
from core.errors import UserError
from core.server.readings_input import InputError

LOG = logging.getLogger("core.server")
DEFAULT_MAX_BODY_MB = 64.0


class NotFound(UserError):
    """A dataset or engine the request names does not exist (HTTP 404)."""


def max_body_bytes() -> int:
    """Largest request body accepted (``PM_API_MAX_BODY_MB``, default 64)."""
    value = env_number("PM_API_MAX_BODY_MB", DEFAULT_MAX_BODY_MB, 0,
                       meaning="the largest request body accepted, in megabytes")
    return max(1, int(value * 1024 * 1024))


def problem(status: int, detail: str, field: str | None = None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A JSON error answer."""
    return JSONResponse({"detail": detail, "field": field}, status_code=status, headers=headers)


def _path(loc: tuple[Any, ...]) -> str:
    """``("body", "engines", 2, "engine")`` -> ``engines[2].engine``."""
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path") else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def validation_sentence(err: dict[str, Any]) -> tuple[str, str]:
    """(sentence, field) for pydantic's first complaint about a request."""
    kind, field = err.get("type", ""), _path(tuple(err.get("loc", ())))
    if kind == "json_invalid":
        return f"The request body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')}).", "body"
    if kind == "missing":
        return ("The request has no JSON body." if field == "body" else f"The request lacks the field '{field}'."), field
    if kind == "extra_forbidden":
        return f"The request has the field '{field}', which this endpoint does not take.", field
    if kind == "too_short":
        least = err.get("ctx", {}).get("min_length", 1)
        return f"The field '{field}' holds too few items: it needs at least {least}.", field
    message = str(err.get("msg", "is not valid")).rstrip(".")
    return f"The field '{field}' is not valid: {message[0].lower() + message[1:]}.", field


def install(app: FastAPI) -> None:
    """Register the error answers on the API app."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, field = validation_sentence(exc.errors()[0]) if exc.errors() else ("The request is not valid.", None)
        return problem(422, detail, field)

    @app.exception_handler(NotFound)
    async def _not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return problem(404, str(exc))

    @app.exception_handler(InputError)
    async def _input(_request: Request, exc: InputError) -> JSONResponse:
        return problem(422, str(exc), exc.field)

    @app.exception_handler(UserError)
    async def _user(_request: Request, exc: UserError) -> JSONResponse:
        return problem(422, str(exc))

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        LOG.exception("Unhandled error answering %s %s", request.method, request.url.path)
        return problem(500, f"The server failed to answer ({type(exc).__name__}); the details are in its log.")


def too_large_sentence(limit: int) -> str:
    return (f"The request body is larger than the {limit / 1048576:g} MB this server accepts (PM_API_MAX_BODY_MB); "
            "send the readings in parts.")


class BodyLimitMiddleware:
    """Answer 413 to a request body larger than ``limit`` bytes: at once when declared, else as it streams in
    (raised as an HTTP exception while the endpoint reads its body)."""

    def __init__(self, app: ASGIApp, limit: int | None = None) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit or max_body_bytes()
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await problem(413, too_large_sentence(limit), "body")(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, too_large_sentence(limit))
            return message

        await self.app(scope, counting_receive, send)


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""Unicode's control characters (category Cc): no dataset or engine name holds one."""


def _parameter(segments: list[str], index: int, templates: Sequence[str]) -> str:
    """The name of the path parameter that segment `index` of a request path fills, or ``path``."""
    for template in templates:
        parts = template.split("/")
        if len(parts) == len(segments) and all(
                p == s or (p.startswith("{") and p.endswith("}")) for i, (p, s) in enumerate(zip(parts, segments))
                if i != index):
            part = parts[index]
            return part[1:-1].split(":")[0] if part.startswith("{") else "path"
    return "path"


def path_refusal(path: str, prefix: str, templates: Sequence[str]) -> tuple[str, str] | None:
    """(sentence, field) refusing an API path that holds a control character or a ``..`` segment (between
    slashes or backslashes, as Streamlit's guard reads it), else None.

    `templates` are the API's route paths under `prefix` (``/engines/{dataset}/{engine}``); the field is the
    path parameter the offending segment fills (``engine``), or ``path`` when it fills none.
    """
    segments = path.removeprefix(prefix).split("/")
    for index, segment in enumerate(segments):
        control = CONTROL.search(segment)
        if control is None and ".." not in segment.split("\\"):
            continue
        field = _parameter(segments, index, templates)
        if control is not None:
            shown = f"the control character U+{ord(control.group()):04X}"
            if field == "path":
                return f"The request path holds {shown}; no API path does.", field
            return f"The path parameter '{field}' holds {shown}; no dataset or engine name does.", field
        if field == "path":
            return "The request path has the segment '..', which the server refuses in any path.", field
        return f"The path parameter '{field}' holds '..' as a path segment, which the server refuses in any path.", field
    return None


class PathGuardMiddleware:
    """Answer 422 (the JSON error shape) to a request under `prefix` whose path :func:`path_refusal` refuses.

    It runs ahead of routing: a line break in a path would miss the API's mount (and meet the dashboard's
    plain-text 404), and Streamlit's own path guard answers NUL and ``..`` in plain text.
    """

    def __init__(self, app: ASGIApp, prefix: str, templates: Sequence[str]) -> None:
        self.app = app
        self.prefix = prefix
        self.templates = list(templates)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == self.prefix or path.startswith(self.prefix + "/")):
            refusal = path_refusal(path, self.prefix, self.templates)
            if refusal is not None:
                await problem(422, *refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)
