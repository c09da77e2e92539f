"""Alert episodes in the store (no model needed): one episode per condition, resolved when it ends and opened
again when it returns, acknowledged and snoozed with who and when; the supervisor of the server's workers; and a
schema-3 store's alerts carried over."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from core import config
from core.data import store
from core.errors import UserError
from core.server import alerts, metrics
from core.server.alerts import Finding
from core.server.supervision import Supervisor

RISK = None  # every risk subject judged


def _risk(engine: str, p: float = 0.9) -> Finding:
    return Finding(key=f"risk:line-A:{engine}", kind="risk", dataset="line-A", engine=engine, value=p,
                   message=f"Engine {engine} of line-A is at HIGH risk.")


def _state(key: str) -> list[tuple[str, bool]]:
    """(state, closed) of every episode of `key`, oldest first."""
    return [(e.state, e.closed_at is not None) for e in reversed(alerts.list_episodes(limit=1000))
            if e.key == key]


def test_a_condition_is_one_episode_until_it_ends_and_a_new_one_when_it_returns(pm_home: Path) -> None:
    opened = alerts.sync([_risk("E1"), _risk("E2")], {"risk": RISK})
    assert [e.engine for e in opened] == ["E1", "E2"] and {e.state for e in opened} == {"open"}
    assert alerts.sync([_risk("E1"), _risk("E2", 0.95)], {"risk": RISK}) == [], "the same condition: no new episode"

    assert alerts.sync([_risk("E2")], {"risk": RISK}) == []
    assert _state("risk:line-A:E1") == [("resolved", True)], "E1 left HIGH: its episode ends"
    again = alerts.sync([_risk("E1"), _risk("E2")], {"risk": RISK})
    assert [e.engine for e in again] == ["E1"], "re-entering HIGH opens a new episode"
    assert _state("risk:line-A:E1") == [("resolved", True), ("open", False)]
    assert alerts.counts()["open"]["risk"] == 2 and alerts.counts()["resolved"]["risk"] == 1


def test_only_judged_subjects_are_resolved_and_a_failed_job_is_one_event(pm_home: Path) -> None:
    drift = Finding(key="drift:line-A", kind="drift", dataset="line-A", value=1.0, message="line-A drifts.")
    job = Finding(key="job:abc", kind="job", message="Training job abc failed: boom.")
    assert len(alerts.sync([drift, job], {"drift": lambda key: True})) == 2
    assert alerts.sync([], {"drift": lambda key: key != "drift:line-A"}) == [], "not judged: left open"
    assert _state("drift:line-A") == [("open", False)]
    assert alerts.sync([], {"risk": RISK, "drift": None}) == []
    assert _state("drift:line-A") == [("resolved", True)]
    assert _state("job:abc") == [("open", False)], "an event is left to the operators"
    alerts.acknowledge([alerts.list_episodes(kinds=["job"])[0].id], "ann")
    assert alerts.sync([job], {"job": None}) == [], "a job already alerted is never alerted again"


def test_acknowledge_and_snooze_record_who_and_when_and_refuse_what_they_cannot_change(pm_home: Path) -> None:
    e1, e2, e3 = alerts.sync([_risk("E1"), _risk("E2"), _risk("E3")], {"risk": RISK})
    before = store.utc_now()
    done, refused = alerts.acknowledge([e1.id], "ann\u202e", "borescope\x07 booked")
    assert refused == [] and done[0].state == "acknowledged"
    assert done[0].acknowledged_by == "ann" and done[0].note == "borescope  booked", "control characters removed"
    first = done[0].acknowledged_at
    assert before <= first <= store.utc_now()
    done, refused = alerts.acknowledge([e1.id, e2.id], "bob")
    assert [e.id for e in done] == [e2.id] and done[0].acknowledged_by == "bob"
    assert refused == [(f"Alert {e1.id} (Engine at HIGH risk) was acknowledged by ann at "
                        f"{first.isoformat(timespec='seconds')}Z, so there is nothing to acknowledge.")]
    with pytest.raises(alerts.UnknownAlert, match="No alert has the id 999"):
        alerts.acknowledge([999], "ann")

    until = store.utc_now() + timedelta(days=2)
    (snoozed,), _ = alerts.snooze([e3.id], "cy", until)
    assert snoozed.state == "snoozed" and snoozed.snoozed_by == "cy" and snoozed.snoozed_until == until
    assert [e.id for e in alerts.list_episodes("snoozed")] == [e3.id]
    (forever,), _ = alerts.snooze([e3.id], "cy", None)
    assert forever.state == "snoozed" and forever.snoozed_until is None, "until the risk changes"
    with pytest.raises(UserError, match="must end in the future"):
        alerts.snooze([e3.id], "cy", store.utc_now() - timedelta(minutes=1))

    alerts.sync([_risk("E1"), _risk("E2")], {"risk": RISK})
    assert alerts.list_episodes("resolved")[0].id == e3.id, "a snoozed alert still resolves when its condition ends"
    _, refused = alerts.snooze([e3.id], "cy", None)
    assert "was resolved at" in refused[0]


def test_a_snooze_whose_time_has_passed_reads_as_open_again(pm_home: Path) -> None:
    (episode,) = alerts.sync([_risk("E1")], {"risk": RISK})
    alerts.snooze([episode.id], "ann", store.utc_now() + timedelta(seconds=1))
    assert alerts.counts()["snoozed"]["risk"] == 1
    time.sleep(1.2)
    assert [e.state for e in alerts.list_episodes()] == ["open"]
    assert alerts.sync([_risk("E1")], {"risk": RISK}) == [], "waking up is no new episode (no second notification)"
    with store.connect(read_only=True) as con:
        assert con.execute("SELECT state FROM alert_episodes").fetchall() == [("open",)]


def test_list_filters_by_state_kind_and_text_newest_first(pm_home: Path) -> None:
    alerts.sync([_risk("E1")], {"risk": RISK})
    alerts.sync([_risk("E1"), _risk("ESN-7"), Finding(key="job:j", kind="job", message="Training job j failed.")],
                {"risk": RISK})
    assert [e.key for e in alerts.list_episodes()] == ["job:j", "risk:line-A:ESN-7", "risk:line-A:E1"]
    assert [e.engine for e in alerts.list_episodes(kinds=["risk"], text="esn")] == ["ESN-7"]
    assert [e.kind for e in alerts.list_episodes("open", ["job"])] == ["job"]
    frame = alerts.table(alerts.list_episodes())
    assert list(frame.columns) == list(alerts.TABLE_COLUMNS) and frame["kind"].tolist()[0] == "Failed training job"
    with pytest.raises(UserError, match="not one of open, acknowledged, snoozed, resolved"):
        alerts.list_episodes("closed")


def test_a_schema_3_store_keeps_its_alerts_as_open_episodes(pm_home: Path) -> None:
    path = config.paths().duckdb
    con = duckdb.connect(str(path))
    for statement in store._SCHEMA:
        if "alert_episodes" not in statement:
            con.execute(statement)
    con.execute("CREATE TABLE alerts (key VARCHAR PRIMARY KEY, created_at TIMESTAMP NOT NULL, kind VARCHAR NOT NULL, "
                "message VARCHAR NOT NULL, dataset VARCHAR, engine VARCHAR, value DOUBLE)")
    con.execute("INSERT INTO store_meta VALUES ('schema_version', '3')")
    con.execute("INSERT INTO alerts VALUES ('risk:a:1', '2026-01-01', 'risk', 'E1 HIGH.', 'a', '1', 0.9), "
                "('drift:a:v1', '2026-01-02', 'drift', 'a drifts (v1).', 'a', NULL, 0.5), "
                "('drift:a:v2', '2026-01-03', 'drift', 'a drifts (v2).', 'a', NULL, 0.6)")
    con.close()
    listed = alerts.list_episodes()
    assert [(e.key, e.state, e.message) for e in listed] == [("drift:a", "open", "a drifts (v2)."),
                                                             ("risk:a:1", "open", "E1 HIGH.")]
    with store.connect(read_only=True) as con:
        assert store.first_row(con, "SELECT 1 FROM information_schema.tables WHERE table_name = 'alerts'") is None
    assert alerts.sync([Finding(key="risk:a:1", kind="risk", message="E1 HIGH.")], {"risk": RISK}) == []


def test_the_local_session_is_recorded_as_the_account_running_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "alice")
    assert alerts.actor("local") == "local (alice)"
    assert alerts.actor("ann@example.org") == "ann@example.org" and alerts.actor(None) == "anonymous"


# -------------------------------------------------------------------------------------- supervision


def test_a_worker_that_fails_is_logged_once_reported_and_back_up_after_a_success(
        caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor(backoff_s=0.5, max_backoff_s=1.0)
    restarts = metrics.REGISTRY.get_sample_value("pm_worker_restarts_total", {"worker": "watcher"}) or 0.0

    def boom() -> None:
        raise RuntimeError("injected")

    with caplog.at_level(logging.ERROR, logger="core.server"):
        assert supervisor.attempt("watcher", boom) is False
        assert supervisor.attempt("watcher", boom) is False
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "The alert watcher" in tracebacks[0].getMessage(), "logged once"
    assert supervisor.backoff("watcher") == 1.0 and supervisor.backoff("scoring") == 0.0
    (problem,) = supervisor.problems()
    assert problem.startswith("The alert watcher (alert rules) stopped on an unexpected error at ")
    assert "(RuntimeError: injected)" in problem and "restart 2" in problem
    assert metrics.REGISTRY.get_sample_value("pm_worker_up", {"worker": "watcher"}) == 0.0
    assert metrics.REGISTRY.get_sample_value("pm_worker_restarts_total", {"worker": "watcher"}) == restarts + 2

    assert supervisor.attempt("watcher", lambda: None) is True
    assert supervisor.problems() == [] and supervisor.backoff("watcher") == 0.0
    assert metrics.REGISTRY.get_sample_value("pm_worker_up", {"worker": "watcher"}) == 1.0


def test_a_worker_thread_that_ended_without_being_stopped_is_reported() -> None:
    supervisor = Supervisor()
    thread = threading.Thread(target=lambda: None)
    supervisor.watch("webhook", thread)
    thread.start()
    thread.join()
    assert supervisor.problems() == ["The alert webhook sender is not running: its thread ended (see the server log)."]
    supervisor.stopped("webhook")
    assert supervisor.problems() == []


def test_the_webhook_sender_survives_an_unexpected_error(pm_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[int] = []

    def post_json(_url: str, payload: dict) -> bool:
        if not sent and payload["alert"]["engine"] == "E1":
            sent.append(0)
            raise TypeError("not serialisable")
        sent.append(payload["alert"]["id"])
        return True

    monkeypatch.setenv("PM_ALERT_WEBHOOK", "http://127.0.0.1:9/hook")
    monkeypatch.setattr(alerts, "post_json", post_json)
    supervisor = Supervisor(backoff_s=0.05)
    notifier = alerts.Notifier(supervisor)
    first, second = alerts.sync([_risk("E1"), _risk("E2")], {"risk": RISK})
    notifier.send([first])
    assert notifier.join(timeout_s=10)
    assert "The alert webhook sender stopped on an unexpected error" in supervisor.problems()[0]
    notifier.send([second])
    assert notifier.join(timeout_s=10)
    assert sent == [0, second.id] and (notifier.failed, notifier.delivered) == (1, 1)
    assert supervisor.problems() == [], "up again once a delivery went through"
    notifier.stop()
