"""The body an alert episode is POSTed as, in the format its receiver reads (``PM_ALERT_WEBHOOK_FORMAT``).

- ``json`` (default): the project's own shape, ``{"alert": {...every field of the episode...}}``;
- ``slack``: a Slack incoming webhook's message, ``{"text": ...}``, the alert's words escaped as Slack asks
  (``&``, ``<``, ``>``), so an engine id or note cannot become a link or a mention;
- ``teams``: a Microsoft Teams (Workflows) webhook's message holding one Adaptive Card: title, sentence, and the
  episode's facts;
- ``alertmanager``: the body Alertmanager's webhook receiver sends (version 4, one firing alert with labels
  ``alertname``, ``severity``, ``kind``, ``dataset``, ``engine`` and the sentence as ``summary``), for receivers
  built for Alertmanager.

Severity: an engine at HIGH risk is ``critical``; drift, live accuracy and failed jobs are ``warning``.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any

from core.errors import UserError

if TYPE_CHECKING:
    from core.server.alerts import Episode

FORMAT_ENV = "PM_ALERT_WEBHOOK_FORMAT"
FORMATS = ("json", "slack", "teams", "alertmanager")
SEVERITY = {"risk": "critical", "drift": "warning", "live_rmse": "warning", "job": "warning"}
ALERT_NAMES = {"risk": "EngineHighRisk", "drift": "FleetDrift", "live_rmse": "LiveAccuracyDegraded",
               "job": "TrainingJobFailed"}
RECEIVER = "pm-dashboard"
NEVER = "0001-01-01T00:00:00Z"
"""Alertmanager's end time of an alert that has not ended."""


def webhook_format() -> str:
    """``PM_ALERT_WEBHOOK_FORMAT`` (default ``json``); UserError naming the choices for another value."""
    value = os.environ.get(FORMAT_ENV, "").strip().lower() or "json"
    if value not in FORMATS:
        raise UserError(f"{FORMAT_ENV} is '{value}'; use one of {', '.join(FORMATS)}.")
    return value


def _title(episode: Episode, label: str) -> str:
    return f"{label} (alert {episode.id}, {SEVERITY.get(episode.kind, 'warning')})"


def _facts(episode: Episode) -> list[tuple[str, str]]:
    data = episode.to_dict()
    facts = [("dataset", data["dataset"]), ("engine", data["engine"]), ("value", data["value"]),
             ("opened (UTC)", data["opened_at"])]
    return [(name, f"{value:.4g}" if isinstance(value, float) else str(value)) for name, value in facts
            if value is not None]


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(episode: Episode, label: str) -> dict[str, Any]:
    """A Slack incoming webhook's message."""
    lines = [_title(episode, label), episode.message, *(f"{name}: {value}" for name, value in _facts(episode))]
    return {"text": "\n".join(_slack_escape(line) for line in lines)}


def teams(episode: Episode, label: str) -> dict[str, Any]:
    """A Teams message with one Adaptive Card."""
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4",
            "body": [{"type": "TextBlock", "text": _title(episode, label), "weight": "Bolder", "size": "Medium",
                      "wrap": True},
                     {"type": "TextBlock", "text": episode.message, "wrap": True},
                     {"type": "FactSet", "facts": [{"title": name, "value": value}
                                                   for name, value in _facts(episode)]}]}
    return {"type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
                             "content": card}]}


def alertmanager(episode: Episode, label: str) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) with the episode as its one firing alert."""
    labels = {"alertname": ALERT_NAMES.get(episode.kind, episode.kind), "severity": SEVERITY.get(episode.kind,
                                                                                                "warning"),
              "kind": episode.kind, "alert_id": str(episode.id)}
    labels.update({name: value for name, value in (("dataset", episode.dataset), ("engine", episode.engine))
                   if value is not None})
    annotations = {"summary": episode.message, "title": _title(episode, label)}
    if episode.value is not None:
        annotations["value"] = f"{episode.value:.6g}"
    started = episode.to_dict()["opened_at"]
    fingerprint = hashlib.sha256(episode.key.encode()).hexdigest()[:16]
    group = {"alertname": labels["alertname"]}
    return {"version": "4", "groupKey": f"{{}}:{{alertname=\"{labels['alertname']}\"}}", "truncatedAlerts": 0,
            "status": "firing", "receiver": RECEIVER, "groupLabels": group, "commonLabels": labels,
            "commonAnnotations": annotations, "externalURL": "",
            "alerts": [{"status": "firing", "labels": labels, "annotations": annotations, "startsAt": started,
                        "endsAt": NEVER, "generatorURL": "", "fingerprint": fingerprint}]}


def payload(episode: Episode, fmt: str, label: str) -> dict[str, Any]:
    """The JSON body of `episode` in format `fmt` (one of :data:`FORMATS`); `label` names its kind for people
    (:data:`core.server.alerts.KIND_LABELS`)."""
    if fmt == "slack":
        return slack(episode, label)
    if fmt == "teams":
        return teams(episode, label)
    if fmt == "alertmanager":
        return alertmanager(episode, label)
    return {"alert": episode.to_dict()}
