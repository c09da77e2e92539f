"""Supervision of the server's background workers (the alert watcher, the in-server scoring it runs, the alert
webhook sender).

Each unit of a worker's work runs under :meth:`Supervisor.attempt`. An unexpected error (anything the work does
not handle itself) does not end the worker's thread: it is logged once with its traceback (again only when a
different error follows), the worker is marked down (``/api/v1/health`` answers ``degraded`` with
:meth:`Supervisor.problems`' sentence, ``pm_worker_up{worker}`` is 0, ``pm_worker_restarts_total{worker}``
counts it) and the worker's loop runs the work again after :meth:`Supervisor.backoff` seconds (1 s, doubling up
to 60 s). The first success marks it up again. A worker whose thread ended without being stopped is reported
down too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from core.data.store import utc_now
from core.server import metrics

LOG = logging.getLogger("core.server")
WORKERS: dict[str, str] = {
    "watcher": "The alert watcher (alert rules)",
    "scoring": "The in-server scoring of new readings (run by the alert watcher)",
    "webhook": "The alert webhook sender",
}
"""Every supervised worker and how a sentence names it (the metric's ``worker`` label takes only these names)."""
BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0


@dataclass
class WorkerState:
    """What the supervisor knows of one worker."""

    up: bool = True
    restarts: int = 0
    failures: int = 0
    """Unexpected errors since the worker last succeeded."""
    error: str | None = None
    failed_at: datetime | None = None
    thread: threading.Thread | None = None
    stopped: bool = False


def _describe(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class Supervisor:
    """Runs the workers' units of work, restarts them after an unexpected error and says which are down."""

    def __init__(self, backoff_s: float = BACKOFF_S, max_backoff_s: float = MAX_BACKOFF_S) -> None:
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._lock = threading.Lock()
        self._states = {name: WorkerState() for name in WORKERS}
        for name in WORKERS:
            metrics.WORKER_UP.labels(worker=name).set(1.0)
            metrics.WORKER_RESTARTS.labels(worker=name)

    def attempt(self, worker: str, work: Callable[[], object]) -> bool:
        """Run `work` for `worker`; True when it returned, False after an unexpected error (logged, reported)."""
        state = self._states[worker]
        try:
            work()
        except Exception as err:  # noqa: BLE001 - supervised: logged with its traceback, reported, run again
            self._failed(worker, state, err)
            return False
        if not state.up:
            with self._lock:
                state.up, state.failures, state.error, state.failed_at = True, 0, None, None
            metrics.WORKER_UP.labels(worker=worker).set(1.0)
            LOG.warning("%s runs again (%d restart(s) so far).", WORKERS[worker], state.restarts)
        return True

    def _failed(self, worker: str, state: WorkerState, err: Exception) -> None:
        described = _describe(err)
        with self._lock:
            repeated = not state.up and state.error == described
            state.up, state.error, state.failed_at = False, described, utc_now()
            state.failures += 1
            state.restarts += 1
        metrics.WORKER_UP.labels(worker=worker).set(0.0)
        metrics.WORKER_RESTARTS.labels(worker=worker).inc()
        if not repeated:
            LOG.error("%s stopped on an unexpected error; it restarts in %.0f s.", WORKERS[worker],
                      self.backoff(worker), exc_info=err)

    def backoff(self, worker: str) -> float:
        """Seconds before `worker` runs again: 0 while it is up, else doubling with each failure in a row."""
        failures = self._states[worker].failures
        return 0.0 if failures == 0 else min(self.max_backoff_s, self.backoff_s * 2 ** (failures - 1))

    def watch(self, worker: str, thread: threading.Thread) -> None:
        """Report `worker` down should `thread` end without :meth:`stopped` being called."""
        with self._lock:
            self._states[worker].thread, self._states[worker].stopped = thread, False

    def stopped(self, worker: str) -> None:
        """`worker`'s thread ends on purpose (server shutdown)."""
        with self._lock:
            self._states[worker].stopped = True

    def _problem(self, worker: str) -> str | None:
        state = self._states[worker]
        if not state.up:
            when = state.failed_at.strftime("%H:%M:%S") if state.failed_at else "?"
            return (f"{WORKERS[worker]} stopped on an unexpected error at {when} UTC ({state.error}); it restarts "
                    f"within {self.backoff(worker):.0f} s (restart {state.restarts}, see the server log).")
        thread = state.thread
        if thread is not None and not thread.is_alive() and not state.stopped:
            return f"{WORKERS[worker]} is not running: its thread ended (see the server log)."
        return None

    def problems(self) -> list[str]:
        """One sentence per worker that is down, in :data:`WORKERS` order (empty: all run); ``pm_worker_up`` is
        set to match (a thread that ended counts as down)."""
        with self._lock:
            found = {name: self._problem(name) for name in WORKERS}
        for name, sentence in found.items():
            metrics.WORKER_UP.labels(worker=name).set(0.0 if sentence else 1.0)
        return [sentence for sentence in found.values() if sentence]
