"""The API's writes and what they set off: readings appended to a fleet dataset, outcomes, engine history,
the alert rules and their webhook, and the API token (TestClient; the webhook receiver is on loopback)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from starlette.testclient import TestClient

from tests.api_support import api_client, build_trained_home, stored_readings

TOKEN = "fleet-token-0123456789abcdef"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, cmapss_dir: Path) -> Path:
    return build_trained_home(tmp_path_factory.mktemp("fleet_template"), cmapss_dir)


@pytest.fixture
def home(trained: Path, tmp_path: Path) -> Path:
    """A fresh copy of the trained home per test, as these tests write to the store (the registry's
    artifacts stay in the module's template)."""
    return Path(shutil.copytree(trained, tmp_path / "home"))


@pytest.fixture
def server(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Any]]:
    with api_client(home, TOKEN, monkeypatch) as pair:
        yield pair


def _fleet_rows(home: Path, units: tuple[int, ...], last: int | None = None) -> list[dict[str, Any]]:
    """test_FD001 engines as fleet readings of engines ESN-<unit> (first `last` cycles of each, if given)."""
    rows = []
    for unit in units:
        readings = stored_readings(home, "test_FD001", unit)
        rows += [{"engine": f"ESN-{unit}", **r} for r in readings[:last]]
    return rows


def test_readings_append_to_a_fleet_dataset_identical_rows_are_a_no_op_conflicts_are_refused(server, home) -> None:
    client, _ = server
    rows = _fleet_rows(home, (1, 2), last=20)
    first = client.post("/api/v1/readings", json={"dataset": "line-A", "readings": rows})
    assert first.status_code == 200, first.text
    health = client.get("/api/v1/health").json()
    line = next(d for d in health["datasets"] if d["name"] == "line-A")
    assert line == {"id": line["id"], "name": "line-A", "role": "fleet", "engines": 2, "rows": 40}

    again = client.post("/api/v1/readings", json={"dataset": "line-A", "readings": rows})
    assert again.status_code == 200, again.text
    assert next(d for d in client.get("/api/v1/health").json()["datasets"] if d["name"] == "line-A")["rows"] == 40

    conflict = [dict(rows[5], T50=rows[5]["T50"] + 1.0)]
    refused = client.post("/api/v1/readings", json={"dataset": "line-A", "readings": conflict})
    assert refused.status_code == 422 and "Traceback" not in refused.text
    assert refused.json()["detail"].endswith(".")

    more = _fleet_rows(home, (1,))[20:25]
    assert client.post("/api/v1/readings", json={"dataset": "line-A", "readings": more}).status_code == 200
    assert next(d for d in client.get("/api/v1/health").json()["datasets"] if d["name"] == "line-A")["rows"] == 45


def test_a_write_waits_for_a_read_only_connection_held_by_another_thread(server, home) -> None:
    import time

    from core.data import store

    client, _ = server
    opened = threading.Event()

    def read_slowly() -> None:
        with store.connect(read_only=True) as con:
            opened.set()
            con.execute("SELECT count(*) FROM readings").fetchall()
            time.sleep(0.5)

    reader = threading.Thread(target=read_slowly)
    reader.start()
    assert opened.wait(timeout=30)
    response = client.post("/api/v1/readings", json={"dataset": "line-A", "readings": _fleet_rows(home, (1,), last=5)})
    reader.join()
    assert response.status_code == 200, response.text


def test_readings_refusals_name_the_field(server, home) -> None:
    client, _ = server
    rows = _fleet_rows(home, (1,), last=3)
    no_engine = [dict(r) for r in rows]
    del no_engine[1]["engine"]
    response = client.post("/api/v1/readings", json={"dataset": "line-A", "readings": no_engine})
    assert response.status_code == 422 and response.json()["field"] == "readings[1].engine"
    bad_id = [dict(rows[0], engine=None)]
    response = client.post("/api/v1/readings", json={"dataset": "line-A", "readings": bad_id})
    assert response.status_code == 422 and response.json()["field"] == "readings[0].engine"
    no_dataset = client.post("/api/v1/readings", json={"readings": rows})
    assert no_dataset.status_code == 422 and no_dataset.json()["field"] == "dataset"


def test_outcomes_and_engine_history(server, home) -> None:
    client, _ = server
    rows = _fleet_rows(home, (1, 2), last=20)
    assert client.post("/api/v1/readings", json={"dataset": "line-A", "readings": rows}).status_code == 200
    scored = client.post("/api/v1/batch-predict", json={"dataset": "line-A"}).json()
    assert [e["engine"] for e in scored["engines"]] == ["ESN-1", "ESN-2"]

    history = client.get("/api/v1/engines/line-A/ESN-1")
    assert history.status_code == 200, history.text
    body = history.json()
    assert body["engine"] == "ESN-1" and body["last_cycle"] == 20 and not body["closed"]
    assert body["latest_prediction"]["rul"] == pytest.approx(scored["engines"][0]["rul"], abs=1e-6)

    outcome = client.post("/api/v1/outcomes", json={"dataset": "line-A", "engine": "ESN-1", "cycle": 25,
                                                     "event": "failure", "note": "borescope"})
    assert outcome.status_code == 200, outcome.text
    assert outcome.json()["closed"] is True
    closed = client.get("/api/v1/engines/line-A/ESN-1").json()
    assert closed["closed_event"] == "failure" and closed["outcomes"][0]["note"] == "borescope"

    again = client.post("/api/v1/outcomes", json={"dataset": "line-A", "engine": "ESN-1", "cycle": 26,
                                                   "event": "failure"})
    assert again.status_code == 422 and "already closed" in again.json()["detail"]
    unknown = client.post("/api/v1/outcomes", json={"dataset": "line-A", "engine": "ESN-9", "cycle": 5,
                                                     "event": "failure"})
    assert unknown.status_code == 404 and "ESN-9" in unknown.json()["detail"]
    assert client.get("/api/v1/engines/line-A/ESN-9").status_code == 404
    assert client.get("/api/v1/engines/no-such/ESN-1").status_code == 404
    bad_cycle = client.post("/api/v1/outcomes", json={"dataset": "line-A", "engine": "ESN-2", "cycle": 0,
                                                       "event": "failure"})
    assert bad_cycle.status_code == 422 and bad_cycle.json()["field"] == "cycle"


HOSTILE_NAMES = [
    ("\x1b", "an escape character (U+001B)"),
    ("\x07", "a bell character (U+0007)"),
    ("\r", "a carriage return (U+000D)"),
    ("\n", "a line feed (U+000A)"),
    ("\x00", "a null character (U+0000)"),
    ("\u200b", "a zero-width space (U+200B)"),
    ("\u202e", "the invisible format character right-to-left override (U+202E)"),
]


def test_names_with_control_or_format_characters_are_refused_naming_the_field(server, home) -> None:
    client, _ = server
    rows = _fleet_rows(home, (1,), last=3)
    for char, described in HOSTILE_NAMES:
        bad_id = [dict(rows[0]), dict(rows[1], engine=f"ESN{char}-1")]
        response = client.post("/api/v1/readings", json={"dataset": "line-A", "readings": bad_id})
        assert response.status_code == 422 and response.json() == {
            "detail": f"readings[1].engine: the engine id 'ESN…' contains {described} at position 4.",
            "field": "readings[1].engine"}
        response = client.post("/api/v1/readings", json={"dataset": f"line{char}[2J", "readings": rows})
        assert response.status_code == 422 and response.json() == {
            "detail": f"The field 'dataset' is not valid: the dataset name 'line…' contains {described} at "
                      "position 5.",
            "field": "dataset"}
        for field, value in (("engine", f"ESN{char}-1"), ("dataset", f"line{char}-A")):
            body = {"dataset": "line-A", "engine": "ESN-1", "cycle": 5, "event": "inspection", field: value}
            response = client.post("/api/v1/outcomes", json=body)
            assert response.status_code == 422 and response.json()["field"] == field
            assert described in response.json()["detail"]
        response = client.post("/api/v1/predict", json={"engine": f"ESN{char}", "readings": rows})
        assert response.status_code == 422 and response.json()["field"] == "engine"
    assert not [d for d in client.get("/api/v1/health").json()["datasets"] if d["name"].startswith("line")]


def test_look_alike_engine_ids_are_one_engine_through_the_api(server, home) -> None:
    client, _ = server
    rows = _fleet_rows(home, (1,), last=10)
    first = [dict(r, engine="ESN-7001") for r in rows[:6]]
    wide = [dict(r, engine="ＥＳＮ-7001") for r in rows[6:]]
    assert client.post("/api/v1/readings", json={"dataset": "line-A", "readings": first}).status_code == 200
    added = client.post("/api/v1/readings", json={"dataset": " ｌｉｎｅ-A", "readings": wide})
    assert added.status_code == 200, added.text
    assert added.json()["new_engines"] == [] and added.json()["dataset"] == "line-A"
    line = next(d for d in client.get("/api/v1/health").json()["datasets"] if d["name"] == "line-A")
    assert (line["engines"], line["rows"]) == (1, 10)
    hidden = [dict(rows[0], engine="ESN\u200b-7001")]
    assert client.post("/api/v1/readings", json={"dataset": "line-A", "readings": hidden}).status_code == 422
    history = client.get("/api/v1/engines/line-A/ＥＳＮ-7001")
    assert history.status_code == 200 and history.json()["engine"] == "ESN-7001"
    outcome = client.post("/api/v1/outcomes", json={"dataset": "line-A", "engine": "ＥＳＮ-7001", "cycle": 12,
                                                     "event": "inspection"})
    assert outcome.status_code == 200 and outcome.json()["engine"] == "ESN-7001"


def test_the_openapi_states_the_name_limits_and_rule() -> None:
    from core.data import names
    from core.server.schemas import BatchRequest, EngineReadings, OutcomeRequest, ReadingsRequest

    for model, field, limit in ((OutcomeRequest, "engine", 64), (EngineReadings, "engine", 64),
                                (OutcomeRequest, "dataset", 100), (ReadingsRequest, "dataset", 100)):
        spec = model.model_json_schema()["properties"][field]
        assert (spec["maxLength"], spec["minLength"], spec["pattern"]) == (limit, 1, names.json_pattern())
    dataset = BatchRequest.model_json_schema()["properties"]["dataset"]["anyOf"][0]
    assert dataset["maxLength"] == names.DATASET_MAX_CHARS == 100
    assert names.ENGINE_MAX_CHARS == 64


# -------------------------------------------------------------------------------------- alerts


class _Receiver(BaseHTTPRequestHandler):
    """Collects POSTed JSON; answers 500 to the first `fail_first` requests."""

    received: ClassVar[list[dict]] = []
    fail_first = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append(body)
        failing = len(type(self).received) <= type(self).fail_first
        self.send_response(500 if failing else 204)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"received": [], "fail_first": 0})
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", handler
    httpd.shutdown()
    httpd.server_close()


def test_a_high_risk_engine_raises_one_alert_listed_and_sent_to_the_webhook(server, home, receiver,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from core.server.alert_rules import Watcher
    from core.server.alerts import Notifier

    client, parts = server
    url, handler = receiver
    handler.fail_first = 1
    monkeypatch.setenv("PM_ALERT_WEBHOOK", url)
    monkeypatch.setattr("core.server.alerts.WEBHOOK_BACKOFF_S", 0.01)
    scored = client.post("/api/v1/batch-predict", json={"dataset": "test_FD001"}).json()["engines"]
    high = sorted(e["engine"] for e in scored if e["risk"] == "HIGH")
    assert high, "the tiny model should call some test_FD001 engines HIGH"

    notifier = Notifier()
    watcher = Watcher(parts.services.cache, notifier)
    fresh = watcher.check(force=True)
    assert sorted(a.engine for a in fresh if a.kind == "risk") == high
    assert watcher.check(force=True) == []
    assert notifier.join(timeout_s=30)

    listed = client.get("/api/v1/alerts").json()["alerts"]
    assert sorted(a["engine"] for a in listed if a["kind"] == "risk") == high
    assert all(a["message"].endswith(").") and "HIGH" in a["message"] for a in listed)
    delivered = {body["alert"]["key"] for body in handler.received}
    assert delivered == {a["key"] for a in listed}
    assert len(handler.received) == len(listed) + 1  # the first delivery failed once and was retried
    assert notifier.delivered == len(listed) and notifier.failed == 0


def test_fleet_drift_and_poor_live_accuracy_raise_alerts(server, home) -> None:
    from core.data import queries, store
    from core.server import metrics
    from core.server.alert_rules import Watcher
    from core.server.alerts import Notifier

    client, parts = server
    shifted = [dict(r, T50=r["T50"] + 15.0, Ps30=r["Ps30"] + 1.5, phi=r["phi"] - 6.0, T30=r["T30"] + 12.0,
                    NRc=r["NRc"] + 40.0, BPR=r["BPR"] + 0.1)
               for r in _fleet_rows(home, tuple(range(1, 21)), last=25)]
    assert client.post("/api/v1/readings", json={"dataset": "line-B", "readings": shifted}).status_code == 200
    young = _fleet_rows(home, tuple(range(21, 41)), last=25)  # unshifted engines early in life: no drift
    assert client.post("/api/v1/readings", json={"dataset": "line-C", "readings": young}).status_code == 200
    client.post("/api/v1/batch-predict", json={"dataset": "line-B"})
    for unit in range(1, 6):  # predicted with a long life left, failed two cycles later
        outcome = {"dataset": "line-B", "engine": f"ESN-{unit}", "cycle": 27, "event": "failure"}
        assert client.post("/api/v1/outcomes", json=outcome).status_code == 200
    fresh = Watcher(parts.services.cache, Notifier()).check(force=True)
    kinds = {a.kind: a for a in fresh}
    assert [a.key for a in fresh if a.kind == "drift"] == ["drift:line-B:v1"] and kinds["drift"].value > 0.3
    assert kinds["live_rmse"].key == "live_rmse:v1" and "live RMSE" in kinds["live_rmse"].message
    text = client.get("/metrics").text
    assert "line-B" not in text and 'pm_live_rmse{model_version="1"}' in text  # names are no labels by default
    with store.connect(read_only=True) as con:
        line_b = str(queries.find_dataset(con, "line-B")["id"])
    drift = metrics.REGISTRY.get_sample_value("pm_drift_share", {"dataset_id": line_b, "dataset": ""})
    assert drift == pytest.approx(kinds["drift"].value)


def test_a_failed_training_job_raises_an_alert(server, home) -> None:
    from core.operations import jobs
    from core.server.alert_rules import Watcher
    from core.server.alerts import Notifier, list_alerts

    _client, parts = server
    record = jobs.start("train", "tests.jobtargets", ["crash"], config={}, data={})
    finished = jobs.wait(record.id, timeout_s=60)
    assert finished.state == "failed"
    fresh = Watcher(parts.services.cache, Notifier()).check(force=True)
    assert [a.key for a in fresh if a.kind == "job"] == [f"job:{record.id}"]
    assert any(a.key == f"job:{record.id}" for a in list_alerts())


def test_webhook_delivery_gives_up_after_bounded_retries(receiver) -> None:
    from core.server.alerts import post_json

    url, handler = receiver
    handler.fail_first = 10
    assert post_json(url, {"alert": {"key": "x"}}, timeout_s=2, attempts=3, backoff_s=0.01) is False
    assert len(handler.received) == 3
    assert post_json("http://127.0.0.1:9/none", {"a": 1}, timeout_s=1, attempts=2, backoff_s=0.01) is False


# -------------------------------------------------------------------------------------- token


def test_the_token_is_generated_once_owner_only_and_pm_api_token_overrides_it(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from core.server import auth

    monkeypatch.setenv("PM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PM_API_TOKEN", raising=False)
    token = auth.api_token()
    path = auth.token_path()
    assert len(token) >= 32 and path.read_text().strip() == token
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert auth.api_token() == token and auth.token_source() == str(path)
    assert auth.bearer_ok(f"Bearer {token}", token) and auth.bearer_ok(f"bearer {token}", token)
    assert not auth.bearer_ok(f"Bearer {token[:-1]}", token) and not auth.bearer_ok(None, token)
    monkeypatch.setenv("PM_API_TOKEN", "chosen-secret-0123456789")
    assert auth.api_token() == "chosen-secret-0123456789" and auth.token_source() == "PM_API_TOKEN"
    monkeypatch.setenv("PM_API_TOKEN", "short")
    with pytest.raises(Exception, match="shorter than 16"):
        auth.api_token()


def test_the_server_watcher_scores_readings_appended_through_the_api(server, home) -> None:
    from core.data import score_queries, store
    from core.operations import jobs, scoring_job
    from core.server.alert_rules import Watcher
    from core.server.alerts import Notifier
    from core.server.scoring import ServerScorer

    client, parts = server
    cache = parts.services.cache
    assert client.post("/api/v1/readings", json={"dataset": "line-D", "readings": _fleet_rows(home, (1, 2, 3))}
                       ).status_code == 200
    with store.connect(read_only=True) as con:
        assert score_queries.stale_count(con, 1, ["line-D"]) == 3, "appended engines have no score yet"
    Watcher(cache, Notifier(), on_change=ServerScorer(cache)).check(force=True)
    assert scoring_job.latest() is None, "three engines are scored in the server, without a job"
    with store.connect(read_only=True) as con:
        assert score_queries.stale_count(con, 1, ["line-D"]) == 0, "the server stored their scores"
        stored = con.execute("SELECT count(*) FROM predictions p JOIN datasets d ON d.id = p.dataset_id "
                             "WHERE d.name = 'line-D'").fetchone()[0]
    assert stored == 3

    assert client.post("/api/v1/readings", json={"dataset": "line-D", "readings": _fleet_rows(home, (4, 5, 6))}
                       ).status_code == 200
    assert ServerScorer(cache, limit=2).run()["kind"] == "score", "a backlog over the limit goes to the job"
    job = scoring_job.latest()
    assert job is not None and job.created_by == "server"
    assert jobs.wait(job.id, timeout_s=300).state == "succeeded"
    with store.connect(read_only=True) as con:
        assert score_queries.stale_count(con, 1, ["line-D"]) == 0, "the job stored their scores"


def test_the_watcher_wakes_for_a_write_to_the_store_and_not_for_reads(server, home) -> None:
    from core.data import store
    from core.server.alert_rules import Watcher
    from core.server.alerts import Notifier

    client, parts = server
    changes: list[int] = []
    watcher = Watcher(parts.services.cache, Notifier(), on_change=lambda: changes.append(1))
    watcher.check()
    assert changes == [1], "the first look evaluates"
    with store.connect(read_only=True) as con:
        con.execute("SELECT count(*) FROM readings").fetchall()
    watcher.check()
    assert changes == [1], "a read is not a change"
    assert client.post("/api/v1/readings", json={"dataset": "line-E", "readings": _fleet_rows(home, (1,), last=5)}
                       ).status_code == 200
    watcher.check()
    assert changes == [1, 1], "appended readings are a change"
