"""Alert episodes: stored in the store's ``alert_episodes`` table, listed, handled by operators, POSTed to a webhook.

A rule (:mod:`core.server.alert_rules`) reports :class:`Finding` s, the conditions that hold now, each about one
subject (its ``key``: ``risk:<dataset>:<engine>``, ``drift:<dataset>``, ``live_rmse:v<version>``, ``job:<id>``).
:func:`sync` turns them into episodes, in one transaction of the store's writer path:

- a finding whose subject has no unresolved episode opens one (state ``open``), and only a new episode is sent to
  the webhook: each episode notifies once, and re-scoring the same data, which finds the same conditions, adds
  nothing;
- an unresolved episode whose subject the rule judged and no longer found is resolved (``closed_at``): the engine
  left HIGH, the dataset no longer drifts. The subject entering the condition again opens a new episode;
- a failed training job (kind ``job``) is an event: one episode per job, ever, never resolved by a rule.

An operator acknowledges (:func:`acknowledge`) or snoozes (:func:`snooze`: until a time, or until the condition
ends) unresolved episodes; who and when are recorded. A snooze whose time has passed reads as ``open`` again
(without notifying again). When ``PM_ALERT_WEBHOOK`` is set, each new episode is POSTed there as JSON
(``{"alert": {...}}``) by a supervised background thread (timeout ``WEBHOOK_TIMEOUT_S``, at most
``WEBHOOK_ATTEMPTS`` attempts with growing pauses), so no request waits on it; a delivery that still fails is
logged and counted (``pm_webhook_deliveries_total{outcome="failed"}``). ``PM_ALERT_WEBHOOK_FORMAT`` chooses the
body: ``json`` (that shape), ``slack``, ``teams`` or ``alertmanager`` (:mod:`core.server.webhook_formats`).
"""

from __future__ import annotations

import functools
import getpass
import json
import logging
import os
import queue
import threading
import time
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd

from core import config
from core.access.roles import Role
from core.data import store
from core.errors import UserError
from core.server import metrics, webhook_formats
from core.server.supervision import Supervisor

LOG = logging.getLogger("core.server.alerts")
WEBHOOK_ENV = "PM_ALERT_WEBHOOK"
WEBHOOK_TIMEOUT_S = 5.0
WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF_S = 1.0
KINDS = ("risk", "drift", "live_rmse", "job")
KIND_LABELS = {"risk": "Engine at HIGH risk", "drift": "Fleet drift", "live_rmse": "Live accuracy",
               "job": "Failed training job"}
EVENT_KINDS = ("job",)
"""Kinds whose findings are events: one episode per subject, ever, left to operators (never resolved by a rule)."""
STATES = ("open", "acknowledged", "snoozed", "resolved")
UNRESOLVED = ("open", "acknowledged", "snoozed")
NOTE_MAX = 2000
NAME_MAX = 200
HANDLER_ROLE = Role.OPERATOR
"""The lowest role that may acknowledge or snooze alerts (viewers only read them)."""

_COLUMNS = ("id", "key", "kind", "message", "opened_at", "state", "dataset", "engine", "value", "closed_at",
            "acknowledged_by", "acknowledged_at", "snoozed_by", "snoozed_at", "snoozed_until", "note")
_SELECT = ("SELECT id, key, kind, message, opened_at, CASE WHEN state = 'snoozed' AND snoozed_until IS NOT NULL "
           "AND snoozed_until <= $now THEN 'open' ELSE state END AS state, dataset, engine, value, closed_at, "
           "acknowledged_by, acknowledged_at, snoozed_by, snoozed_at, snoozed_until, note FROM alert_episodes")
"""Every column, the state as it reads now: a snooze whose time has passed is open again."""


class UnknownAlert(UserError):
    """No alert episode has the id given (HTTP 404)."""


@dataclass(frozen=True)
class Finding:
    """A condition a rule finds now: what it is about (``key``), its kind, a sentence and the figures behind it."""

    key: str
    kind: str
    message: str
    dataset: str | None = None
    engine: str | None = None
    value: float | None = None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds") + "Z"


@dataclass(frozen=True)
class Episode:
    """One alert episode as stored (times in UTC; ``snoozed_until`` None while snoozed: until the condition ends)."""

    id: int
    key: str
    kind: str
    message: str
    opened_at: datetime
    state: str
    dataset: str | None = None
    engine: str | None = None
    value: float | None = None
    closed_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    snoozed_by: str | None = None
    snoozed_at: datetime | None = None
    snoozed_until: datetime | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601 (UTC)."""
        out = asdict(self)
        for name, value in out.items():
            if isinstance(value, datetime):
                out[name] = _iso(value)
        return out


def _episodes(rows: Iterable[tuple]) -> list[Episode]:
    return [Episode(**dict(zip(_COLUMNS, row, strict=True))) for row in rows]


def clean_text(text: str | None, limit: int, what: str) -> str:
    """`text` as stored: NFKC-normalised, without control or format characters, stripped; UserError when longer
    than `limit` characters."""
    normal = unicodedata.normalize("NFKC", text or "")
    kept = "".join(c if unicodedata.category(c) not in ("Cc", "Cf") else " " for c in normal).strip()
    if len(kept) > limit:
        raise UserError(f"The {what} is {len(kept):,} characters long; at most {limit:,} are kept.")
    return kept


def as_utc(moment: datetime) -> datetime:
    """`moment` as a naive UTC time (the store's convention); a naive `moment` is taken as UTC already."""
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def actor(name: str | None) -> str:
    """Who to record for a dashboard session: the signed-in user's name, ``anonymous`` without one, and for the
    local session (sign-in off, named ``local``) the account running the server, e.g. ``local (alice)``."""
    if not name:
        return "anonymous"
    if name != "local":
        return name
    try:
        return f"local ({getpass.getuser()})"
    except (KeyError, OSError):
        return "local"


def may_handle(role: Role | None) -> bool:
    """Whether `role` (None: nobody signed in) may acknowledge or snooze alerts."""
    return role is not None and role >= HANDLER_ROLE


def handle_refusal(role: Role | None, who: str | None = None) -> str:
    """The sentence refusing to acknowledge or snooze alerts to `role`."""
    if role is None:
        return "Sign in to acknowledge or snooze alerts."
    subject = f"'{who}' is" if who else "you are"
    return (f"Only the {HANDLER_ROLE.label} role or higher may acknowledge or snooze alerts; {subject} a "
            f"{role.label}.")


# Writing -------------------------------------------------------------------------------------------------------


def _judged(kind: str, key: str, judged: Mapping[str, Callable[[str], bool] | None]) -> bool:
    if kind in EVENT_KINDS or kind not in judged:
        return False
    rule = judged[kind]
    return rule is None or rule(key)


def sync(found: Sequence[Finding], judged: Mapping[str, Callable[[str], bool] | None]) -> list[Episode]:
    """Open an episode for each finding whose subject has none unresolved; resolve the unresolved episodes that
    were judged and not found (`judged`: kind -> whether its rule evaluated a subject ``key``, None for every
    subject of that kind; kinds absent were not evaluated). One transaction; returns the episodes opened, oldest
    first."""
    unique = list({f.key: f for f in found}.values())

    def work(con: duckdb.DuckDBPyConnection) -> list[Episode]:
        now = store.utc_now()
        with store.transaction(con):
            con.execute("UPDATE alert_episodes SET state = 'open' WHERE state = 'snoozed' AND snoozed_until <= ?",
                        [now])
            current = con.execute("SELECT id, key, kind FROM alert_episodes WHERE state <> 'resolved'").fetchall()
            unresolved = {key for _, key, _ in current}
            events = [f.key for f in unique if f.kind in EVENT_KINDS]
            known_events = {k for (k,) in con.execute(
                "SELECT DISTINCT key FROM alert_episodes WHERE list_contains(?, key)", [events]).fetchall()}
            fresh = [f for f in unique if f.key not in unresolved and f.key not in known_events]
            opened = _insert(con, fresh, now) if fresh else []
            keys = {f.key for f in unique}
            closing = [i for i, key, kind in current if key not in keys and _judged(kind, key, judged)]
            if closing:
                con.execute("UPDATE alert_episodes SET state = 'resolved', closed_at = ? WHERE list_contains(?, id)",
                            [now, closing])
        return opened

    return store.write(work)


def _insert(con: duckdb.DuckDBPyConnection, fresh: list[Finding], now: datetime) -> list[Episode]:
    frame = pd.DataFrame({"pos": range(len(fresh)), "key": [f.key for f in fresh], "kind": [f.kind for f in fresh],
                          "dataset": pd.Series([f.dataset for f in fresh], dtype=object),
                          "engine": pd.Series([f.engine for f in fresh], dtype=object),
                          "message": [f.message for f in fresh],
                          "value": pd.Series([f.value for f in fresh], dtype="float64")})
    con.register("incoming_episodes", frame)
    try:
        rows = con.execute(
            "INSERT INTO alert_episodes (key, kind, dataset, engine, message, value, opened_at, state) "
            "SELECT key, kind, dataset, engine, message, value, ?, 'open' FROM incoming_episodes ORDER BY pos "
            "RETURNING id, key", [now]).fetchall()
    finally:
        con.unregister("incoming_episodes")
    ids = {key: int(i) for i, key in rows}
    return [Episode(id=ids[f.key], key=f.key, kind=f.kind, message=f.message, opened_at=now, state="open",
                    dataset=f.dataset, engine=f.engine, value=f.value) for f in fresh]


def _handle(ids: Sequence[int], update: str, params: list[object], allowed: tuple[str, ...],
            refusal: str) -> tuple[list[Episode], list[str]]:
    """Apply `update` (SET clause; `params` fill it) to the episodes `ids` whose state now is in `allowed`, in one
    transaction; (the episodes updated, a sentence for each one refused). UnknownAlert when an id does not exist."""
    wanted = sorted({int(i) for i in ids})

    def work(con: duckdb.DuckDBPyConnection) -> tuple[list[Episode], list[str]]:
        now = store.utc_now()
        with store.transaction(con):
            rows = _episodes(con.execute(f"SELECT * FROM ({_SELECT}) WHERE list_contains($ids, id) ORDER BY id",
                                         {"now": now, "ids": wanted}).fetchall())
            missing = sorted(set(wanted) - {e.id for e in rows})
            if missing:
                raise UnknownAlert(f"No alert has the id {', '.join(map(str, missing))}.")
            chosen = [e.id for e in rows if e.state in allowed]
            if chosen:
                con.execute(f"UPDATE alert_episodes SET {update} WHERE list_contains(?, id)", [*params, chosen])
            done = _episodes(con.execute(f"SELECT * FROM ({_SELECT}) WHERE list_contains($ids, id) ORDER BY id",
                                         {"now": now, "ids": chosen}).fetchall()) if chosen else []
        return done, [_refused(e, refusal) for e in rows if e.state not in allowed]

    if not config.paths().duckdb.exists():
        raise UnknownAlert(f"No alert has the id {', '.join(map(str, wanted))} (the store is empty).")
    return store.write(work)


def _refused(episode: Episode, action: str) -> str:
    head = f"Alert {episode.id} ({KIND_LABELS.get(episode.kind, episode.kind)})"
    if episode.state == "resolved":
        return f"{head} was resolved at {_iso(episode.closed_at)}, so there is nothing to {action}."
    if episode.state == "acknowledged":
        return (f"{head} was acknowledged by {episode.acknowledged_by} at {_iso(episode.acknowledged_at)}, so there "
                f"is nothing to {action}.")
    return f"{head} is {episode.state}, so there is nothing to {action}."


def acknowledge(ids: Sequence[int], who: str, note: str = "") -> tuple[list[Episode], list[str]]:
    """Acknowledge the open or snoozed episodes `ids` as `who`, now, with an optional note; (the episodes
    acknowledged, a sentence for each one that could not be: resolved or acknowledged already)."""
    name = clean_text(who, NAME_MAX, "name") or "anonymous"
    text = clean_text(note, NOTE_MAX, "note") or None
    return _handle(ids, "state = 'acknowledged', acknowledged_by = ?, acknowledged_at = ?, note = coalesce(?, note)",
                   [name, store.utc_now(), text], ("open", "snoozed"), "acknowledge")


def snooze(ids: Sequence[int], who: str, until: datetime | None, note: str = "") -> tuple[list[Episode], list[str]]:
    """Snooze the open or snoozed episodes `ids` as `who`, now, until `until` (UTC; None: until the condition
    ends, e.g. the engine leaves HIGH); (the episodes snoozed, a sentence for each one refused)."""
    name = clean_text(who, NAME_MAX, "name") or "anonymous"
    text = clean_text(note, NOTE_MAX, "note") or None
    now = store.utc_now()
    if until is not None and as_utc(until) <= now:
        raise UserError(f"A snooze must end in the future; {_iso(as_utc(until))} has passed (it is {_iso(now)} UTC).")
    return _handle(ids, "state = 'snoozed', snoozed_by = ?, snoozed_at = ?, snoozed_until = ?, note = coalesce(?, note)",
                   [name, now, None if until is None else as_utc(until), text], ("open", "snoozed"), "snooze")


# Reading -------------------------------------------------------------------------------------------------------


def _readable() -> bool:
    if not config.paths().duckdb.exists():
        return False
    with store.connect(read_only=True) as con:
        return store.first_row(con, "SELECT 1 FROM information_schema.tables "
                                    "WHERE table_name = 'alert_episodes'") is not None


def check_state(state: str) -> None:
    """UserError unless `state` is one of :data:`STATES` or ``all``."""
    if state != "all" and state not in STATES:
        raise UserError(f"The alert state '{state}' is not one of {', '.join(STATES)} or all.")


def list_episodes(state: str = "all", kinds: Sequence[str] | None = None, limit: int = 100,
                  text: str = "") -> list[Episode]:
    """The newest `limit` episodes (newest first) in `state` (one of :data:`STATES`, or ``all``), of `kinds` (all
    when None or empty), whose dataset, engine or sentence contains `text` (any case); none while the store does
    not exist yet."""
    check_state(state)
    if not _readable():
        return []
    wanted = list(kinds) if kinds else list(KINDS)
    with store.connect(read_only=True) as con:
        rows = con.execute(
            f"SELECT * FROM ({_SELECT}) WHERE ($state = 'all' OR state = $state) AND list_contains($kinds, kind) "
            "AND contains(lower(concat_ws(' ', dataset, engine, message)), $text) "
            "ORDER BY opened_at DESC, id DESC LIMIT $limit",
            {"now": store.utc_now(), "state": state, "kinds": wanted, "text": clean_text(text, NAME_MAX, "filter")
             .lower(), "limit": int(limit)}).fetchall()
    return _episodes(rows)


TABLE_COLUMNS = ("id", "opened (UTC)", "kind", "dataset", "engine", "alert", "state", "value", "closed (UTC)",
                 "acknowledged by", "acknowledged (UTC)", "snoozed by", "snoozed until (UTC)", "note")


def table(episodes: Sequence[Episode]) -> pd.DataFrame:
    """The episodes as the Home page's table, one row each, in the order given (:data:`TABLE_COLUMNS`)."""
    rows = [{"id": e.id, "opened (UTC)": e.opened_at, "kind": KIND_LABELS.get(e.kind, e.kind), "dataset": e.dataset,
             "engine": e.engine, "alert": e.message, "state": e.state, "value": e.value, "closed (UTC)": e.closed_at,
             "acknowledged by": e.acknowledged_by, "acknowledged (UTC)": e.acknowledged_at,
             "snoozed by": e.snoozed_by if e.state == "snoozed" else None,
             "snoozed until (UTC)": (("until the risk changes" if e.snoozed_until is None
                                      else _iso(e.snoozed_until)) if e.state == "snoozed" else None),
             "note": e.note} for e in episodes]
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def counts() -> dict[str, dict[str, int]]:
    """Episodes by state as it reads now, then by kind: ``{"open": {"risk": 12, ...}, ...}`` (zeros included)."""
    out = {state: dict.fromkeys(KINDS, 0) for state in STATES}
    if not _readable():
        return out
    with store.connect(read_only=True) as con:
        rows = con.execute(f"SELECT state, kind, count(*) FROM ({_SELECT}) GROUP BY ALL",
                           {"now": store.utc_now()}).fetchall()
    for state, kind, n in rows:
        out.setdefault(state, dict.fromkeys(KINDS, 0))[kind] = int(n)
    return out


# Webhook -------------------------------------------------------------------------------------------------------


def webhook_url() -> str | None:
    """Where new episodes are POSTed (``PM_ALERT_WEBHOOK``), or None."""
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
    """A daemon thread POSTing queued episodes to the webhook, one at a time, in order, supervised as worker
    ``webhook`` (an unexpected error while sending one counts it as failed, and the thread goes on after a
    backoff)."""

    def __init__(self, supervisor: Supervisor | None = None) -> None:
        self.supervisor = supervisor or Supervisor()
        self.format = webhook_formats.webhook_format()
        self._queue: queue.Queue[Episode | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.delivered = 0
        self.failed = 0

    def send(self, episodes: list[Episode]) -> None:
        """Queue new episodes for the webhook (a no-op when ``PM_ALERT_WEBHOOK`` is not set)."""
        if webhook_url() is None or not episodes:
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="alert-webhook", daemon=True)
                self.supervisor.watch("webhook", self._thread)
                self._thread.start()
        for episode in episodes:
            self._queue.put(episode)

    def join(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the queue to drain; True when it did."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self._queue.unfinished_tasks

    def stop(self) -> None:
        """Let the thread finish what it holds and end."""
        if self._thread is not None and self._thread.is_alive():
            self.supervisor.stopped("webhook")
            self._queue.put(None)

    def _deliver(self, episode: Episode) -> None:
        url = webhook_url()
        body = webhook_formats.payload(episode, self.format, KIND_LABELS.get(episode.kind, episode.kind))
        if url is not None and post_json(url, body):
            self.delivered += 1
            metrics.WEBHOOK.labels(outcome="delivered").inc()
        else:
            self._failed()

    def _failed(self) -> None:
        self.failed += 1
        metrics.WEBHOOK.labels(outcome="failed").inc()

    def _run(self) -> None:
        while True:
            episode = self._queue.get()
            try:
                if episode is None:
                    return
                if not self.supervisor.attempt("webhook", functools.partial(self._deliver, episode)):
                    self._failed()
                    time.sleep(self.supervisor.backoff("webhook"))
            finally:
                self._queue.task_done()
