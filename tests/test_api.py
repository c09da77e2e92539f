"""The REST API through Starlette's TestClient: every endpoint, auth, and every class of refused request.

The app under test is the server's own routes and middleware (:func:`core.server.asgi.build`) on a bare
Starlette app; ``tests/test_server_uvicorn.py`` checks the same routes inside ``st.App`` over real HTTP.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from starlette.testclient import TestClient

from core.data import sensors
from core.data.cmapss import COLUMNS
from tests.api_support import api_client, build_trained_home, engine_body, request_readings
from tests.conftest import trains

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
@trains
def home(tmp_path_factory: pytest.TempPathFactory, cmapss_dir: Path) -> Path:
    return build_trained_home(tmp_path_factory.mktemp("api_home"), cmapss_dir)


@pytest.fixture
def server(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Any]]:
    """A client of the API on the trained home (token from PM_API_TOKEN); the alert watcher is not started."""
    with api_client(home, TOKEN, monkeypatch) as pair:
        yield pair


@pytest.fixture(scope="module")
def engine1(home: Path) -> dict[str, Any]:
    return engine_body(home, "test_FD001", 1, engine="ESN-7001")


def _refused(response: Any, status: int, field: str | None = None, *words: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "field"}
    if field is not None:
        assert body["field"] == field
    detail = body["detail"]
    assert detail.endswith(".") and "Traceback" not in detail
    for word in words:
        assert word in detail
    return detail


# -------------------------------------------------------------------------------------- health, auth


def test_health_names_the_champion_and_datasets_to_a_token(server) -> None:
    client, _ = server
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["version"] == "1"
    assert body["champion_version"] == 1 and body["running_job"] is None
    assert {d["name"] for d in body["datasets"]} == {"train_FD001", "test_FD001"}
    assert sorted(d["id"] for d in body["datasets"]) == [1, 2]  # the dataset_id label of /metrics


@pytest.mark.parametrize("header", ["", "Bearer wrong-token-0123456789"])
def test_health_without_a_valid_token_says_only_status_and_version_where_sign_in_is_required(
        server, monkeypatch: pytest.MonkeyPatch, header: str) -> None:
    """Issue 24: with PM_AUTH=required, a caller without a credential learns no dataset names or counts."""
    client, _ = server
    monkeypatch.setenv("PM_AUTH", "required")
    local = TestClient(client.app, base_url="http://127.0.0.1", client=("127.0.0.1", 50000))
    for caller in (client, local):
        response = caller.get("/api/v1/health", headers={"Authorization": header})
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "version": "1"}
    assert {d["name"] for d in local.get("/api/v1/health", headers={"Authorization": f"Bearer {TOKEN}"}).json()[
        "datasets"]} == {"train_FD001", "test_FD001"}


def test_health_lists_datasets_without_a_token_only_to_this_machine(server, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the dashboard: on loopback, from this machine, with PM_AUTH unset, no sign-in is required; a client on
    another machine (or behind a forwarding proxy) is not told the fleet's names."""
    client, _ = server
    monkeypatch.delenv("PM_AUTH", raising=False)
    local = TestClient(client.app, base_url="http://127.0.0.1", client=("127.0.0.1", 50000))
    remote = TestClient(client.app, base_url="http://127.0.0.1", client=("192.0.2.7", 50000))
    assert "datasets" in local.get("/api/v1/health").json()
    assert local.get("/api/v1/health", headers={"X-Forwarded-For": "192.0.2.7"}).json() == {"status": "ok",
                                                                                           "version": "1"}
    assert remote.get("/api/v1/health").json() == {"status": "ok", "version": "1"}


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789", "Basic " + TOKEN, TOKEN])
def test_every_endpoint_but_health_and_metrics_refuses_a_missing_or_wrong_token(server, header: str | None) -> None:
    client, _ = server
    headers = {"Authorization": header} if header is not None else {"Authorization": ""}
    calls = [("post", "/api/v1/predict"), ("post", "/api/v1/batch-predict"), ("post", "/api/v1/readings"),
             ("post", "/api/v1/outcomes"), ("get", "/api/v1/engines/test_FD001/1"), ("get", "/api/v1/alerts")]
    for method, path in calls:
        response = getattr(client, method)(path, headers=headers, **({"json": {}} if method == "post" else {}))
        _refused(response, 401, None, "Authorization: Bearer")
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/metrics", headers=headers).status_code == 200


def test_the_openapi_document_lists_every_endpoint(server) -> None:
    client, _ = server
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert {"/health", "/predict", "/batch-predict", "/readings", "/outcomes", "/engines/{dataset}/{engine}",
            "/alerts"} <= set(paths)
    assert client.get("/api/v1/docs").status_code == 200


def test_the_openapi_states_the_limits_the_server_enforces(server) -> None:
    """Issue 24: typed reading items with the ingest bounds, minItems where an empty list is refused, the cycle's
    upper bound, the store's engine id length, the bearer scheme, and the error shape on every refusal."""
    from core.data.cmapss import SENSORS, SETTINGS

    client, _ = server
    spec = client.get("/api/v1/openapi.json").json()
    schemas = spec["components"]["schemas"]
    reading = schemas["Reading"]
    assert set(reading["required"]) == {"cycle", *SETTINGS, *SENSORS} and reading["additionalProperties"] is False
    cycle = reading["properties"]["cycle"]
    assert (cycle["type"], cycle["minimum"], cycle["maximum"]) == ("integer", 1, 1_000_000)
    assert (reading["properties"]["setting_1"]["minimum"], reading["properties"]["setting_1"]["maximum"]) == (-1000, 1000)
    assert (reading["properties"]["sensor_21"]["minimum"], reading["properties"]["sensor_21"]["maximum"]) == (0, 100_000)
    assert set(schemas["FleetReading"]["required"]) == {"engine", *reading["required"]}
    for request, item in (("EngineReadings", "Reading"), ("ReadingsRequest", "FleetReading")):
        readings = schemas[request]["properties"]["readings"]
        assert readings["minItems"] == 1 and readings["items"] == schemas[item]
    engines = next(s for s in schemas["BatchRequest"]["properties"]["engines"]["anyOf"] if s.get("type") == "array")
    assert engines["minItems"] == 1
    outcome = schemas["OutcomeRequest"]["properties"]
    assert outcome["cycle"]["maximum"] == 1_000_000 and outcome["engine"]["maxLength"] == 64
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["bearer"]["description"]}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            expected = [{}, {"bearer": []}] if path == "/health" else [{"bearer": []}]
            assert operation["security"] == expected, (method, path)
            for status, answer in operation["responses"].items():
                if not status.startswith("2"):
                    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Problem"}


# -------------------------------------------------------------------------------------- predict


def test_predict_matches_core_score_for_test_fd001_engine_1(server, engine1) -> None:
    from core.commands import score

    client, _ = server
    response = client.post("/api/v1/predict", json=engine1)
    assert response.status_code == 200, response.text
    answer = response.json()
    scored = score.run(argparse.Namespace(dataset="test_FD001", model="champion", no_record=True))
    unit1 = next(e for e in scored["engines"] if e["engine"] == "1")
    assert answer["engine"] == "ESN-7001" and answer["model_version"] == scored["model_version"] == 1
    assert answer["cycle"] == unit1["cycle"] == 31
    for key in ("rul", "rul_low", "rul_high", "p_fail_30"):
        assert answer[key] == pytest.approx(unit1[key], abs=1e-6)
    assert answer["risk"] == unit1["risk"]


def test_predictions_carry_the_out_of_experience_flag(server, engine1, cmapss_dir: Path) -> None:
    """The champion knows FD001's one operating regime: an FD002 engine (six regimes) is flagged with a reason,
    test_FD001 engine 1 is not, in single and batch answers alike."""
    client, _ = server
    known = client.post("/api/v1/predict?factors=false", json=engine1).json()
    assert known["ood"] is False and known["ood_reason"] == ""
    frame = pd.read_csv(cmapss_dir / "test_FD002.txt.gz", sep=r"\s+", header=None, names=COLUMNS)
    stranger = {"engine": "FD002-1", "readings": request_readings(frame[frame["unit"] == 1])}
    answer = client.post("/api/v1/predict?factors=false", json=stranger).json()
    assert answer["ood"] is True and "regime" in answer["ood_reason"]
    response = client.post("/api/v1/batch-predict", json={"engines": [engine1, stranger]})
    assert response.status_code == 200, response.text
    batch = response.json()["engines"]
    assert [e["ood"] for e in batch] == [False, True]
    assert batch[1]["ood_reason"] == answer["ood_reason"]


def test_predict_names_the_top_five_factors_from_the_sensor_table(server, engine1) -> None:
    client, _ = server
    factors = client.post("/api/v1/predict", json=engine1).json()["factors"]
    assert len(factors) == 5
    sizes = [abs(f["contribution"]) for f in factors]
    assert sizes == sorted(sizes, reverse=True)
    for factor in factors:
        if factor["name"] != "age":
            assert sensors.canonical_column(factor["name"]) == factor["column"]
            assert factor["label"] == sensors.label(factor["column"])
    without = client.post("/api/v1/predict?factors=false", json=engine1).json()
    assert "factors" not in without


def test_predict_takes_storage_names_in_any_case_and_any_order(server, engine1) -> None:
    client, _ = server
    renamed = []
    for reading in engine1["readings"]:
        items = [(k if k == "cycle" else sensors.canonical_column(k).upper(), v) for k, v in reading.items()]
        renamed.append(dict(reversed(items)))
    first = client.post("/api/v1/predict", json=engine1).json()
    second = client.post("/api/v1/predict", json={"engine": "ESN-7001", "readings": renamed}).json()
    assert second["rul"] == first["rul"]


def test_predict_a_named_model_version_and_refuse_an_unknown_one(server, engine1) -> None:
    client, _ = server
    assert client.post("/api/v1/predict?model=1", json=engine1).json()["model_version"] == 1
    _refused(client.post("/api/v1/predict?model=99", json=engine1), 422, None, "99")


def _without(body: dict[str, Any], index: int, key: str) -> dict[str, Any]:
    readings = [dict(r) for r in body["readings"]]
    del readings[index][key]
    return {**body, "readings": readings}


def _with(body: dict[str, Any], index: int, key: str, value: Any) -> dict[str, Any]:
    readings = [dict(r) for r in body["readings"]]
    readings[index][key] = value
    return {**body, "readings": readings}


def test_a_reading_without_t30_is_refused_naming_it(server, engine1) -> None:
    client, _ = server
    _refused(client.post("/api/v1/predict", json=_without(engine1, 4, "T30")), 422, "readings[4].T30",
             "readings[4] lacks", "T30 HPC outlet temperature")


@pytest.mark.parametrize(("key", "value", "words"), [
    ("T50", "1400.2", ["readings[2].T50", '"1400.2"', "not a number"]),
    ("T50", None, ["readings[2].T50", "null"]),
    ("T50", True, ["readings[2].T50", "true", "not a number"]),
    ("Ps30", [47.2], ["readings[2].Ps30", "list", "not a number"]),
    ("cycle", 2.5, ["readings[2].cycle", "2.5", "whole number"]),
    ("Nc", -5.0, ["sensor_9", "-5", "plausible range"]),
])
def test_bad_values_are_refused_with_a_sentence_naming_the_field(server, engine1, key, value, words) -> None:
    client, _ = server
    _refused(client.post("/api/v1/predict", json=_with(engine1, 2, key, value)), 422, None, *words)


def test_nan_and_infinity_are_refused(server, engine1) -> None:
    client, _ = server
    for literal in ("NaN", "Infinity"):
        text = json.dumps(_with(engine1, 3, "T24", 0.0)).replace('"T24": 0.0', f'"T24": {literal}')
        response = client.post("/api/v1/predict", content=text, headers={"Content-Type": "application/json"})
        _refused(response, 422, "readings[3].T24", "finite")


def test_a_whole_number_beyond_64_bits_is_refused_with_the_field(server, engine1) -> None:
    client, _ = server
    _refused(client.post("/api/v1/predict", json=_with(engine1, 4, "cycle", 2**70)), 422, "readings[4].cycle",
             "whole number from 1 to 1,000,000")


def test_cycles_that_do_not_increase_are_refused(server, engine1) -> None:
    client, _ = server
    _refused(client.post("/api/v1/predict", json=_with(engine1, 5, "cycle", 3)), 422, "readings[5].cycle",
             "cycle is 3 after cycle 5", "increase")


def test_unknown_or_doubled_columns_and_an_engine_inside_the_readings_are_refused(server, engine1) -> None:
    client, _ = server
    _refused(client.post("/api/v1/predict", json=_with(engine1, 0, "T99", 1.0)), 422, "readings[0].T99", "T99")
    _refused(client.post("/api/v1/predict", json=_with(engine1, 0, "sensor_3", 1.0)), 422, "readings[0].sensor_3",
             "T30")
    _refused(client.post("/api/v1/predict", json=_with(engine1, 0, "engine", "x")), 422, "readings[0].engine",
             "named once")


def test_too_many_readings_are_refused(server, engine1, monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = server
    monkeypatch.setenv("PM_API_MAX_ENGINE_READINGS", "30")
    _refused(client.post("/api/v1/predict", json=engine1), 422, "readings", "31 readings", "30 allowed")
    monkeypatch.setenv("PM_API_MAX_READINGS", "10")
    _refused(client.post("/api/v1/predict", json=engine1), 422, "readings", "31 readings", "10")


def test_malformed_requests_are_refused_with_the_field(server, engine1) -> None:
    client, _ = server
    headers = {"Content-Type": "application/json"}
    _refused(client.post("/api/v1/predict", content="{not json", headers=headers), 422, "body", "not valid JSON")
    _refused(client.post("/api/v1/predict", json={"readings": engine1["readings"]}), 422, "engine",
             "lacks the field 'engine'")
    _refused(client.post("/api/v1/predict", json={**engine1, "extra": 1}), 422, "extra", "does not take")
    _refused(client.post("/api/v1/predict", json={"engine": "E", "readings": []}), 422, "readings", "at least 1")
    _refused(client.post("/api/v1/predict", json={"engine": "E", "readings": [1, 2]}), 422, "readings[0]",
             "not an object")


@pytest.mark.parametrize("path", ["/api/v1/predict", "/api/v1/batch-predict", "/api/v1/readings", "/api/v1/outcomes"])
def test_a_body_that_is_not_utf8_or_nests_too_deeply_is_refused_as_invalid_json(server, path: str) -> None:
    """Issue 24: such bodies got an undocumented 400 {"detail": "There was an error parsing the body"}."""
    client, _ = server
    headers = {"Content-Type": "application/json"}
    _refused(client.post(path, content=b'{"engine": "ESN-\xff"}', headers=headers), 422, "body", "not UTF-8", "0xff")
    _refused(client.post(path, content=b"[" * 100_000, headers=headers), 422, "body", "too deeply")


@pytest.mark.parametrize(("path", "field", "words"), [
    ("/api/v1/engines/test_FD001/%00", "engine", ("control character U+0000",)),
    ("/api/v1/engines/test_FD001/ESN%0A1", "engine", ("control character U+000A",)),
    ("/api/v1/engines/test%1B_FD001/1", "dataset", ("control character U+001B",)),
    ("/api/v1/engines/test_FD001/%C2%85", "engine", ("control character U+0085",)),
    ("/api/v1/engines/test_FD001/ESN%5C..%5C1", "engine", ("'..'", "path segment")),
])
def test_a_path_holding_a_control_character_or_dot_dot_is_refused_in_json(server, path: str, field: str,
                                                                          words: tuple[str, ...]) -> None:
    """Issue 24: NUL and '..' got Streamlit's plain-text 'Bad Request', a line break the dashboard's plain 404."""
    client, _ = server
    _refused(client.get(path), 422, field, *words)


def test_limits_the_schema_states_are_refused_by_validation(server, engine1) -> None:
    client, _ = server
    outcome = {"dataset": "test_FD001", "engine": "1", "cycle": 2_000_000, "event": "failure"}
    _refused(client.post("/api/v1/outcomes", json=outcome), 422, "cycle", "less than or equal to 1000000")
    _refused(client.post("/api/v1/outcomes", json={**outcome, "cycle": 1.8e32}), 422, "cycle")
    _refused(client.post("/api/v1/outcomes", json={**outcome, "cycle": 5, "engine": "E" * 65}), 422, "engine", "64")
    _refused(client.post("/api/v1/predict?model=%C2%B2", json=engine1), 422, "model")


def test_a_body_over_the_limit_is_refused_with_413(server, engine1, monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = server
    monkeypatch.setenv("PM_API_MAX_BODY_MB", "0.001")
    _refused(client.post("/api/v1/predict", json=engine1), 413, "body", "PM_API_MAX_BODY_MB")

    def chunks() -> Iterator[bytes]:
        text = json.dumps(engine1).encode()
        for i in range(0, len(text), 512):
            yield text[i:i + 512]

    streamed = client.post("/api/v1/predict", content=chunks(), headers={"Content-Type": "application/json"})
    _refused(streamed, 413, None, "PM_API_MAX_BODY_MB")


# -------------------------------------------------------------------------------------- batch


def test_batch_of_engines_answers_each_engine_like_a_single_predict(server, home: Path) -> None:
    client, _ = server
    bodies = [engine_body(home, "test_FD001", unit, engine=f"ESN-{unit}") for unit in (3, 1, 2)]
    response = client.post("/api/v1/batch-predict", json={"engines": bodies})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model_version"] == 1 and [e["engine"] for e in answer["engines"]] == ["ESN-3", "ESN-1", "ESN-2"]
    assert all("factors" not in e for e in answer["engines"])
    for body, batch in zip(bodies, answer["engines"], strict=True):
        single = client.post("/api/v1/predict?factors=false", json=body).json()
        assert batch["rul"] == pytest.approx(single["rul"], abs=1e-6) and batch["cycle"] == single["cycle"]
    with_factors = client.post("/api/v1/batch-predict", json={"engines": bodies[:1], "factors": True}).json()
    assert len(with_factors["engines"][0]["factors"]) == 5


def test_batch_refusals_name_the_engine_and_reading(server, home: Path) -> None:
    client, _ = server
    good = engine_body(home, "test_FD001", 2, engine="B")
    bad = _without(engine_body(home, "test_FD001", 1, engine="A"), 7, "P30")
    _refused(client.post("/api/v1/batch-predict", json={"engines": [good, bad]}), 422,
             "engines[1].readings[7].P30", "lacks")
    _refused(client.post("/api/v1/batch-predict", json={"engines": [good, good]}), 422, "engines[1].engine", "repeats")
    _refused(client.post("/api/v1/batch-predict", json={"engines": [good], "dataset": "test_FD001"}), 422, "body",
             "either")
    _refused(client.post("/api/v1/batch-predict", json={}), 422, "body", "either")
    _refused(client.post("/api/v1/batch-predict", json={"engines": []}), 422, "engines", "at least 1")


def test_batch_of_a_stored_dataset_scores_every_engine_and_records_it(server) -> None:
    from core.data import store

    client, _ = server
    with store.connect(read_only=True) as con:
        before = con.execute("SELECT count(*) FROM predictions").fetchall()[0][0]
    response = client.post("/api/v1/batch-predict", json={"dataset": "test_FD001"})
    assert response.status_code == 200, response.text
    engines = response.json()["engines"]
    assert len(engines) == 100 and engines[0]["engine"] == "1"
    with store.connect(read_only=True) as con:
        after = con.execute("SELECT count(*) FROM predictions").fetchall()[0][0]
    assert after == before + 100
    _refused(client.post("/api/v1/batch-predict", json={"dataset": "no_such"}), 404, None, "no_such")


# -------------------------------------------------------------------------------------- metrics


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_by_endpoint_and_status_and_predictions_by_risk(server, engine1) -> None:
    client, _ = server
    before = client.get("/metrics").text
    answer = client.post("/api/v1/predict?factors=false", json=engine1).json()
    client.post("/api/v1/predict", json=_without(engine1, 0, "T30"))
    after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    risk = answer["risk"]
    assert _sample(text, "pm_predictions_total", risk=risk) == _sample(before, "pm_predictions_total", risk=risk) + 1
    for status in ("200", "422"):
        key = {"endpoint": "/api/v1/predict", "method": "POST", "status": status}
        assert _sample(text, "pm_http_requests_total", **key) == _sample(before, "pm_http_requests_total", **key) + 1
        assert _sample(text, "pm_http_request_seconds_count", **key) >= 1
    assert _sample(text, "pm_champion_info", version="1") == 1.0
    assert "pm_training_job_state" in text
    client.get("/api/v1/engines/test_FD001/77")
    assert 'endpoint="/api/v1/engines/{dataset}/{engine}"' in client.get("/metrics").text


def test_metrics_key_a_dataset_by_its_id_unless_the_operator_allows_names(server, monkeypatch) -> None:
    """Issue 24: /metrics answers without a token, so by default no dataset name is a label."""
    from core.server import metrics

    client, _ = server
    for var in ("PM_METRICS_DATASET_LABELS", "PM_METRICS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    try:
        metrics.set_drift_share(7, "line-Secret", 0.42)
        text = client.get("/metrics").text
        assert "line-Secret" not in text
        assert _sample(text, "pm_drift_share", dataset_id="7", dataset="") == 0.42
        monkeypatch.setenv("PM_METRICS_DATASET_LABELS", "1")
        metrics.set_drift_share(7, "line-Secret", 0.5)
        assert _sample(client.get("/metrics").text, "pm_drift_share", dataset_id="7", dataset="line-Secret") == 0.5
    finally:
        metrics.DRIFT_SHARE.clear()


def test_metrics_behind_a_token_need_it_and_may_name_datasets(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.errors import UserError
    from core.server import asgi, metrics

    monkeypatch.delenv("PM_METRICS_DATASET_LABELS", raising=False)
    monkeypatch.setenv("PM_METRICS_TOKEN", "short")
    with pytest.raises(UserError, match="PM_METRICS_TOKEN is shorter than 16"):
        asgi.build(watch=False)
    secret = "metrics-secret-0123456789"
    monkeypatch.setenv("PM_METRICS_TOKEN", secret)
    with api_client(home, TOKEN, monkeypatch) as (client, _parts):
        for header in ("", f"Bearer {TOKEN}"):
            refused = client.get("/metrics", headers={"Authorization": header})
            _refused(refused, 401, None, "PM_METRICS_TOKEN")
            assert refused.headers["www-authenticate"] == "Bearer"
        try:
            metrics.set_drift_share(7, "line-Secret", 0.3)
            answer = client.get("/metrics", headers={"Authorization": f"Bearer {secret}"})
            assert answer.status_code == 200
            assert _sample(answer.text, "pm_drift_share", dataset_id="7", dataset="line-Secret") == 0.3
        finally:
            metrics.DRIFT_SHARE.clear()


def test_concurrent_predictions_share_one_model_call_and_each_gets_its_own_engines(server, home: Path) -> None:
    import threading
    import time

    from core.server import predicting
    from core.server.api import _engine_columns
    from core.server.batcher import Batcher
    from core.server.schemas import EngineReadings

    _client, parts = server
    cache = parts.services.cache
    served = cache.get(None)
    requests = [_engine_columns([EngineReadings(**engine_body(home, "test_FD001", unit, engine=f"E{unit}"))], "")
                for unit in range(1, 7)]
    alone = [predicting.predict_frame(cache, served, frame, ids, False)[0] for frame, ids in requests]
    batcher = Batcher(workers=1)
    with batcher._cond:  # hold the model busy until all six requests wait, so one call serves them all
        batcher._running = 1
    answers: list[Any] = [None] * len(requests)

    def ask(i: int) -> None:
        frame, ids = requests[i]
        answers[i] = predicting.predict_frame(cache, served, frame, ids, i == 0, batcher)[0]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    while len(batcher._pending) < len(requests):
        time.sleep(0.01)
    with batcher._cond:
        batcher._running = 0
        batcher._cond.notify_all()
    for thread in threads:
        thread.join(timeout=60)
    assert batcher.calls == 1
    assert [a["engine"] for a in answers] == [f"E{unit}" for unit in range(1, 7)]
    for shared, single in zip(answers, alone, strict=True):
        assert shared["cycle"] == single["cycle"] and shared["risk"] == single["risk"]
        assert shared["rul"] == pytest.approx(single["rul"], abs=1e-3)
    assert len(answers[0]["factors"]) == 5 and "factors" not in answers[1]
    explained_alone = predicting.predict_frame(cache, served, *requests[0], True)[0]["factors"]
    assert [f["name"] for f in answers[0]["factors"]] == [f["name"] for f in explained_alone]
    assert [f["contribution"] for f in answers[0]["factors"]] == pytest.approx(
        [f["contribution"] for f in explained_alone], abs=1e-4)
