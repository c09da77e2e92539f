"""The API docs are served by the server itself (no CDN, no outside favicon), the OpenAPI document offers the bearer
scheme and states the token's minimum length, and a prediction with no model is answered 503 with a sentence."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from core.server import auth
from tests.api_support import api_client, request_readings

TOKEN = "docs-token-0123456789abcdef"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    with api_client(tmp_path / "home", TOKEN, monkeypatch) as pair:
        yield pair


def test_the_docs_page_loads_every_file_from_the_server(server) -> None:
    client, _ = server
    page = client.get("/api/v1/docs", headers={"Authorization": ""})
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    links = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
    assert links and not [link for link in links if "://" in link or link.startswith("//")], links
    assert "/api/v1/openapi.json" in links
    for link in links:
        served = client.get(link, headers={"Authorization": ""})
        assert served.status_code == 200, link
    script = client.get("/api/v1/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in script.headers["content-type"] and "SwaggerUIBundle" in script.text


def test_the_openapi_document_offers_bearer_and_states_the_token_minimum(server) -> None:
    client, _ = server
    spec = client.get("/api/v1/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["bearer"]["description"]}
    assert f"at least {auth.MIN_TOKEN_LENGTH} characters" in spec["info"]["description"]
    assert "503" in spec["paths"]["/predict"]["post"]["responses"]
    assert "/docs" not in spec["paths"] and not any(p.startswith("/docs/") for p in spec["paths"])


def test_predict_with_no_model_is_503_with_a_sentence(server, cmapss_slice: Callable[..., list[str]]) -> None:
    from core.data.store import VALUE_COLUMNS

    client, _ = server
    rows = pd.DataFrame([[float(v) for v in line.split()] for line in cmapss_slice("test_FD001", units=1)],
                        columns=["unit", "cycle", *VALUE_COLUMNS]).astype({"cycle": int})
    answer = client.post("/api/v1/predict", json={"engine": "E1", "readings": request_readings(rows)})
    assert answer.status_code == 503, answer.text
    assert answer.json()["detail"] == "No model is trained yet: train one (Models page or 'python -m core train') first."
