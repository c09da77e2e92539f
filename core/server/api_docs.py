"""The API's interactive docs (``/api/v1/docs``), served entirely by the server: Swagger UI's script, style and
icon come from the ``swagger-ui-bundle-v2`` package (mounted at ``/api/v1/docs/assets``), never from a CDN, so the
page works on a plant network without internet. "Authorize" takes the bearer token (the ``bearer`` security scheme
of the OpenAPI document).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"


def install(app: FastAPI, title: str) -> None:
    """Serve Swagger UI for `app`'s OpenAPI document at :data:`DOCS_PATH` with its files at :data:`ASSETS_PATH`
    (`app` is built with ``docs_url=None``)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        assets = f"{root}{ASSETS_PATH}"
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{title}: docs",
                                   swagger_js_url=f"{assets}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{assets}/swagger-ui.css",
                                   swagger_favicon_url=f"{assets}/favicon-32x32.png")
