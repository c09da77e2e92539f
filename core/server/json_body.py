"""Request bodies parsed by orjson, several times faster than the standard library on large reading lists.

The API's routes use :class:`FastJSONRoute`, whose requests parse JSON with ``orjson.loads``. What orjson
refuses (``NaN`` or ``Infinity`` literals, integers beyond 64 bits, invalid text) is parsed again by the
standard library, so such a body gets exactly the answer it got before: the value reaches the readings
checks (422 naming the field), or the body is refused as invalid JSON (422).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


class FastJSONRequest(Request):
    """A request whose :meth:`json` tries orjson first."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = orjson.loads(body)
            except orjson.JSONDecodeError:
                self._json = json.loads(body)
        return self._json


class FastJSONRoute(APIRoute):
    """An API route that hands its endpoint a :class:`FastJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(FastJSONRequest(request.scope, request.receive))

        return route
