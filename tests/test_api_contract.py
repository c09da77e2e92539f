"""The API keeps its own contract: Schemathesis 4 generates requests from ``/api/v1/openapi.json`` and checks
every answer against it, in-process (ASGI) on a trained FD001 home with a real bearer token.

A second test sends what the generator cannot (a NUL or a line break in a path, a body that is not UTF-8) to
the real server (``python app.py``, uvicorn under ``st.App``), whose Streamlit layer answered some of them in
plain text.

Phases: the schema's examples, coverage (boundary and just-outside values of every documented limit) and
fuzzing (:data:`MAX_EXAMPLES` per operation), with a fixed seed and no example database, so a run repeats.
Every check is on (``--checks all``): no 5xx, every status and content type documented, every answer
matching its schema, schema-violating requests refused, secured operations refusing a missing or wrong
token, an undocumented method answered 405. One check is tuned: a request the schema allows may still be
refused with 422 for a rule JSON Schema cannot state (cycles increasing within an engine, a column given
under two names, an append or outcome the store refuses, a model version that is not registered); such a
refusal is still the documented JSON error shape.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import schemathesis
from schemathesis.engine import Status
from schemathesis.engine import events as engine_events

from tests.api_support import api_client, build_trained_home, engine_body
from tests.conftest import trains

TOKEN = "contract-token-0123456789abcdef"
MAX_EXAMPLES = 30
SEED = 24


@pytest.fixture(scope="module")
@trains
def home(tmp_path_factory: pytest.TempPathFactory, cmapss_dir: Path) -> Path:
    return build_trained_home(tmp_path_factory.mktemp("contract_home"), cmapss_dir)


def _config() -> schemathesis.config.SchemathesisConfig:
    return schemathesis.config.SchemathesisConfig.from_dict({
        "seed": SEED,
        "request-timeout": 120,
        "headers": {"Authorization": f"Bearer {TOKEN}"},
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True},
                   "stateful": {"enabled": False}},
        "checks": {"enabled": True,
                   "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "422"]}},
    })


@pytest.mark.slow
def test_every_operation_keeps_the_documented_contract(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    problems: list[str] = []
    tested: set[str] = set()
    with api_client(home, TOKEN, monkeypatch) as (client, _parts):
        warm = client.post("/api/v1/predict", json=engine_body(home, "test_FD001", 1, engine="ESN-1"))
        assert warm.status_code == 200, warm.text  # the model and its explainer load before the timed requests
        paths = client.get("/api/v1/openapi.json").json()["paths"]
        schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", client.app, config=_config())
        for event in schemathesis.engine.from_schema(schema).execute():
            if isinstance(event, engine_events.ScenarioFinished):
                if event.recorder.interactions:
                    tested.add(event.recorder.label)
                for checks in event.recorder.checks.values():
                    for check in checks:
                        if check.status == Status.FAILURE and check.failure_info is not None:
                            failure = check.failure_info.failure
                            problems.append(f"{event.recorder.label}: {check.name}: {failure.title}: "
                                            f"{failure.message}\n{check.failure_info.code_sample}")
            elif isinstance(event, engine_events.NonFatalError):
                problems.append(f"{event.label}: {event.value!r}")
            elif isinstance(event, engine_events.FatalError):
                problems.append(f"the run stopped: {event.exception!r}")
    assert not problems, "\n\n".join(dict.fromkeys(problems))
    assert tested == {f"{method.upper()} {path}" for path, operations in paths.items() for method in operations}


def _raw(url: str, body: bytes | None = None) -> tuple[int, str, str]:
    """(status, content type, text) of a GET, or of a POST of `body`, with the bearer token."""
    request = urllib.request.Request(url, data=body, method="GET" if body is None else "POST",
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers.get("content-type", ""), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("content-type", ""), err.read().decode()


def test_the_served_api_refuses_bad_paths_and_bodies_in_its_json_shape(home: Path, tmp_path: Path) -> None:
    from core.server import process

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PM_"))}
    env.update(PM_HOME=str(home), PM_API_TOKEN=TOKEN)
    running = process.start(env, tmp_path / "server.log")
    try:
        base = f"{running.url}/api/v1"
        answers = {
            "NUL": _raw(f"{base}/engines/test_FD001/%00"),
            "line break": _raw(f"{base}/engines/test_FD001/ESN%0A1"),
            "dot-dot": _raw(f"{base}/engines/test_FD001/.."),
            "dot-dot between backslashes": _raw(f"{base}/engines/test_FD001/ESN%5C..%5C1"),
            "not UTF-8": _raw(f"{base}/outcomes", b'{"dataset": "test_FD001", "engine": "\xff"}'),
        }
    finally:
        running.stop()
    for what, (status, content_type, text) in answers.items():
        assert status == 422 and content_type == "application/json", (what, status, content_type, text)
        assert set(json.loads(text)) == {"detail", "field"}, what
    assert json.loads(answers["NUL"][2])["field"] == "engine"
    assert json.loads(answers["not UTF-8"][2])["field"] == "body"
