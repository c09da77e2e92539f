"""Alert episodes POSTed in the format the receiver reads (PM_ALERT_WEBHOOK_FORMAT), to a local HTTP server, and
the deliveries counted on /metrics."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from core.errors import UserError
from core.server import metrics
from core.server.alerts import Episode, Notifier

EPISODE = Episode(id=7, key="risk:line-A:<!channel>", kind="risk", dataset="line-A", engine="<!channel>",
                  value=0.82, opened_at=datetime(2026, 3, 1, 12, 30, 5), state="open",
                  message="Engine <!channel> of line-A is at HIGH risk: 82% probability of failing within 30 cycles.")


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict]]] = []
    status = 200

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.headers["Content-Type"], body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Receiver]]:
    handler = type("Receiver", (_Receiver,), {"received": [], "status": 200})
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("PM_ALERT_WEBHOOK", f"http://127.0.0.1:{httpd.server_address[1]}/hook")
    monkeypatch.setattr("core.server.alerts.WEBHOOK_BACKOFF_S", 0.01)
    yield handler
    httpd.shutdown()
    httpd.server_close()


def _deliver(fmt: str | None, handler: type[_Receiver], monkeypatch: pytest.MonkeyPatch) -> dict:
    if fmt is None:
        monkeypatch.delenv("PM_ALERT_WEBHOOK_FORMAT", raising=False)
    else:
        monkeypatch.setenv("PM_ALERT_WEBHOOK_FORMAT", fmt)
    notifier = Notifier()
    notifier.send([EPISODE])
    assert notifier.join(timeout_s=20)
    notifier.stop()
    ((content_type, body),) = handler.received
    assert content_type == "application/json"
    return body


def test_json_is_the_default_and_carries_every_field(receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _deliver(None, receiver, monkeypatch)
    assert body == {"alert": EPISODE.to_dict()}
    assert body["alert"]["opened_at"] == "2026-03-01T12:30:05Z"


def test_slack_gets_text_with_the_engine_id_escaped(receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _deliver("slack", receiver, monkeypatch)
    assert set(body) == {"text"}
    lines = body["text"].split("\n")
    assert lines[0] == "Engine at HIGH risk (alert 7, critical)"
    assert lines[1] == "Engine &lt;!channel&gt; of line-A is at HIGH risk: 82% probability of failing within 30 cycles."
    assert "engine: &lt;!channel&gt;" in lines and "value: 0.82" in lines and "<" not in body["text"]


def test_teams_gets_an_adaptive_card(receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _deliver("Teams", receiver, monkeypatch)
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    title, sentence, facts = card["body"]
    assert title["text"] == "Engine at HIGH risk (alert 7, critical)" and sentence["text"] == EPISODE.message
    assert {"title": "engine", "value": "<!channel>"} in facts["facts"]


def test_alertmanager_gets_its_webhook_receiver_shape(receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _deliver("alertmanager", receiver, monkeypatch)
    assert (body["version"], body["status"], body["truncatedAlerts"]) == ("4", "firing", 0)
    assert {"groupKey", "receiver", "groupLabels", "commonLabels", "commonAnnotations", "externalURL"} <= set(body)
    (alert,) = body["alerts"]
    assert alert["status"] == "firing" and alert["startsAt"] == "2026-03-01T12:30:05Z"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z" and len(alert["fingerprint"]) == 16
    assert alert["labels"] == {"alertname": "EngineHighRisk", "severity": "critical", "kind": "risk",
                               "alert_id": "7", "dataset": "line-A", "engine": "<!channel>"}
    assert alert["annotations"]["summary"] == EPISODE.message


def test_an_unknown_format_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PM_ALERT_WEBHOOK_FORMAT", "pagerduty")
    with pytest.raises(UserError, match="PM_ALERT_WEBHOOK_FORMAT is 'pagerduty'; use one of json, slack, teams, "
                                        "alertmanager"):
        Notifier()


def test_deliveries_and_failures_are_counted(receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    def count(outcome: str) -> float:
        return metrics.REGISTRY.get_sample_value("pm_webhook_deliveries_total", {"outcome": outcome}) or 0.0

    delivered, failed = count("delivered"), count("failed")
    _deliver("json", receiver, monkeypatch)
    receiver.status = 500
    receiver.received.clear()
    notifier = Notifier()
    notifier.send([EPISODE])
    assert notifier.join(timeout_s=20)
    notifier.stop()
    assert (count("delivered"), count("failed")) == (delivered + 1, failed + 1)
