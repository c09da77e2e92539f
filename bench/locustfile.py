"""Locust users for the REST API under a crowd (issue 26); ``python -m core bench load`` runs them headless.

- ``CrowdUser``: waits 1 to 3 s between requests; in turn, one ``POST /api/v1/predict`` (with its SHAP factors,
  the endpoint's default) then three ``GET /api/v1/health`` (a fixed order, so even a short run of a few users
  sends both);
- ``NoWaitUser``: predicts back to back, for the predictions per second a few busy clients get.

Each predict carries one engine of 31 readings: the last 31 cycles of a real C-MAPSS test engine, read from
the JSON file that ``PM_LOAD_BODIES`` names (a list of ``{"engine", "readings"}``, which ``bench/load.py`` writes
from the store); the bearer token is ``PM_API_TOKEN``. Name the user class on Locust's command line:
``PM_API_TOKEN=... PM_LOAD_BODIES=... locust -f bench/locustfile.py --headless -u 200 -r 20 -t 60s
-H http://127.0.0.1:8501 CrowdUser``. Only ever point it at a server on 127.0.0.1. The users are Locust's ``FastHttpUser`` (geventhttpclient), which
spends several times less CPU per request than the ``requests``-based ``HttpUser``: the load generator shares the
machine with the server.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from locust import FastHttpUser, between, constant, task


def _environment(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise RuntimeError(f"Set {name} before starting Locust on bench/locustfile.py (see its docstring).")
    return value


def _bodies() -> list[bytes]:
    """The predict bodies, encoded once: one JSON document per engine."""
    engines = json.loads(Path(_environment("PM_LOAD_BODIES")).read_text(encoding="utf-8"))
    if not engines:
        raise RuntimeError("PM_LOAD_BODIES names a file that holds no engines.")
    return [json.dumps(engine).encode() for engine in engines]


BODIES = _bodies()
HEADERS = {"Authorization": f"Bearer {_environment('PM_API_TOKEN')}", "Content-Type": "application/json"}


class CrowdUser(FastHttpUser):
    """An operator's client: health checks and now and then one engine's prediction, 1 to 3 s apart."""

    wait_time = between(1, 3)
    turn = 0

    @task
    def next_request(self) -> None:
        """A predict, then three health checks, and again."""
        if self.turn % 4 == 0:
            self.client.post("/api/v1/predict", data=random.choice(BODIES), headers=HEADERS, name="predict")
        else:
            self.client.get("/api/v1/health", name="health")
        self.turn += 1


class NoWaitUser(FastHttpUser):
    """A client that sends one engine's prediction after another without pause."""

    wait_time = constant(0)

    @task
    def predict(self) -> None:
        self.client.post("/api/v1/predict", data=random.choice(BODIES), headers=HEADERS, name="predict")
