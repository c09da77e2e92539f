"""Alerts: stored once each in the ``alerts`` table (deduplicated by key), listed, and POSTed to a webhook.

An alert's ``key`` says what it is about (``risk:<dataset>:<engine>``, ``drift:<dataset>:v<version>``,
``live_rmse:v<version>``, ``job:<id>``); a key already stored is never stored or sent again. When
``PM_ALERT_WEBHOOK`` is set, each new alert is POSTed there as JSON by a background thread (timeout
``WEBHOOK_TIMEOUT_S``, at most ``WEBHOOK_ATTEMPTS`` attempts with growing pauses), so no request waits on it;
a delivery that still fails is logged.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from core.data import store

LOG = logging.getLogger("core.server.alerts")
WEBHOOK_ENV = "PM_ALERT_WEBHOOK"
WEBHOOK_TIMEOUT_S = 5.0
WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF_S = 1.0
KINDS = ("risk", "drift", "live_rmse", "job")


@dataclass
class Alert:
    """One alert: what it is about (``key``), its kind, a sentence, and the figures behind it."""

    key: str
    kind: str
    message: str
    dataset: str | None = None
    engine: str | None = None
    value: float | None = None
    created_at: datetime = field(default_factory=store.utc_now)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the time as ISO 8601 (UTC)."""
        return {**asdict(self), "created_at": self.created_at.isoformat(timespec="seconds") + "Z"}


def _table_exists(con: Any) -> bool:
    return store.first_row(con, "SELECT 1 FROM information_schema.tables WHERE table_name = 'alerts'") is not None


def save_new(alerts: list[Alert]) -> list[Alert]:
    """Store the alerts whose key is not stored yet (one transaction); return those, oldest first."""
    if not alerts:
        return []
    unique = list({a.key: a for a in alerts}.values())
    with store.connect() as con:
        keys = [a.key for a in unique]
        known = {k for (k,) in con.execute("SELECT key FROM alerts WHERE list_contains(?, key)", [keys]).fetchall()}
        fresh = [a for a in unique if a.key not in known]
        with store.transaction(con):
            for a in fresh:
                con.execute("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?)",
                            [a.key, a.created_at, a.kind, a.message, a.dataset, a.engine, a.value])
    return fresh


def list_alerts(limit: int = 100) -> list[Alert]:
    """The newest `limit` alerts, newest first (none while the store or its alerts table does not exist yet)."""
    if not store_exists():
        return []
    with store.connect(read_only=True) as con:
        if not _table_exists(con):
            return []
        rows = con.execute("SELECT key, kind, message, dataset, engine, value, created_at FROM alerts "
                           "ORDER BY created_at DESC, key LIMIT ?", [int(limit)]).fetchall()
    return [Alert(key=k, kind=kind, message=m, dataset=d, engine=e, value=v, created_at=t)
            for k, kind, m, d, e, v, t in rows]


def store_exists() -> bool:
    """Whether the fleet database file exists (alerts are read only then)."""
    from core import config

    return config.paths().duckdb.exists()


def webhook_url() -> str | None:
    """Where new alerts are POSTed (``PM_ALERT_WEBHOOK``), or None."""
    value = os.environ.get(WEBHOOK_ENV, "").strip()
    return value or None


def post_json(url: str, payload: dict[str, Any], timeout_s: float = WEBHOOK_TIMEOUT_S,
              attempts: int = WEBHOOK_ATTEMPTS, backoff_s: float = WEBHOOK_BACKOFF_S) -> bool:
    """POST `payload` as JSON; retry a failure up to `attempts` times in all; True once delivered (2xx)."""
    body = json.dumps(payload).encode()
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                if 200 <= response.status < 300:
                    return True
                reason = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = str(getattr(err, "reason", err))
        LOG.warning("Alert webhook %s: attempt %d of %d failed (%s).", url, attempt, attempts, reason)
        if attempt < attempts:
            time.sleep(backoff_s * 2 ** (attempt - 1))
    return False


class Notifier:
    """A daemon thread POSTing queued alerts to the webhook, one at a time, in order."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Alert | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failed = 0

    def send(self, alerts: list[Alert]) -> None:
        """Queue new alerts for the webhook (a no-op when ``PM_ALERT_WEBHOOK`` is not set)."""
        if webhook_url() is None or not alerts:
            return
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="alert-webhook", daemon=True)
            self._thread.start()
        for alert in alerts:
            self._queue.put(alert)

    def join(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the queue to drain; True when it did."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self._queue.unfinished_tasks

    def stop(self) -> None:
        """Let the thread finish what it holds and end."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            try:
                if alert is None:
                    return
                url = webhook_url()
                if url is not None and post_json(url, {"alert": alert.to_dict()}):
                    self.delivered += 1
                else:
                    self.failed += 1
            finally:
                self._queue.task_done()
