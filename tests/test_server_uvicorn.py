"""The one server for real: ``python app.py`` (uvicorn under st.App) on a free loopback port serves the
dashboard, the API and the metrics, generates its token owner-only, and lets the CLI work beside it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.config import REPO_ROOT
from tests.api_support import build_trained_home, engine_body
from tests.conftest import trains

pytestmark = pytest.mark.slow  # starts the real server process (python app.py) on a trained home

@pytest.fixture(scope="module")
@trains
def home(tmp_path_factory: pytest.TempPathFactory, cmapss_dir: Path) -> Path:
    return build_trained_home(tmp_path_factory.mktemp("server_home"), cmapss_dir)


@pytest.fixture(scope="module")
def env(home: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PM_"))}
    out["PM_HOME"] = str(home)
    return out


@pytest.fixture(scope="module")
def server(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from core.server import process

    running = process.start(env, tmp_path_factory.mktemp("server_log") / "server.log")
    yield running
    running.stop()


def _call(url: str, body: dict | None = None, token: str | None = None) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), dict(err.headers)


def test_one_process_serves_dashboard_api_and_metrics(server, home: Path) -> None:
    status, text, _ = _call(f"{server.url}/api/v1/health")
    assert status == 200 and json.loads(text)["champion_version"] == 1
    assert _call(f"{server.url}/_stcore/health")[0] == 200
    status, page, headers = _call(f"{server.url}/")
    assert status == 200 and headers["content-type"].startswith("text/html") and 'id="root"' in page
    assert _call(f"{server.url}/api/v1/docs")[0] == 200

    token_file = home / "api_token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    body = engine_body(home, "test_FD001", 1, engine="ESN-1")
    assert _call(f"{server.url}/api/v1/predict", body)[0] == 401
    status, text, _ = _call(f"{server.url}/api/v1/predict", body, token)
    assert status == 200, text
    answer = json.loads(text)
    assert answer["engine"] == "ESN-1" and answer["cycle"] == 31 and len(answer["factors"]) == 5
    del body["readings"][0]["T30"]
    status, text, _ = _call(f"{server.url}/api/v1/predict", body, token)
    assert status == 422 and json.loads(text)["field"] == "readings[0].T30"

    status, metrics, _ = _call(f"{server.url}/metrics")
    assert status == 200
    assert f'pm_predictions_total{{risk="{answer["risk"]}"}} 1.0' in metrics
    assert 'pm_http_requests_total{endpoint="/api/v1/predict",method="POST",status="422"} 1.0' in metrics


def test_the_cli_works_on_the_same_home_while_the_server_runs(server, env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "core", "score", "--dataset", "test_FD001", "--json"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["engines"]) == 100
    assert _call(f"{server.url}/api/v1/health")[0] == 200
