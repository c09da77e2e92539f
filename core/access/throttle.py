"""Slow down password guessing: after :data:`MAX_FAILURES` failed sign-ins of one name within
:data:`WINDOW_S` seconds, that name may not sign in for the rest of the window (in this server process)."""

from __future__ import annotations

import threading
import time
from collections import deque

from core.errors import UserError

MAX_FAILURES = 5
WINDOW_S = 600.0
_FAILURES: dict[str, deque[float]] = {}
_LOCK = threading.Lock()


def _recent(name: str, now: float) -> deque[float]:
    times = _FAILURES.setdefault(name, deque())
    while times and now - times[0] > WINDOW_S:
        times.popleft()
    return times


def check(name: str, now: float | None = None) -> None:
    """Refuse (UserError) a sign-in of `name` while it is locked out."""
    now = time.monotonic() if now is None else now
    with _LOCK:
        times = _recent(name, now)
        if len(times) >= MAX_FAILURES:
            wait = int(WINDOW_S - (now - times[0])) + 1
            raise UserError(f"Too many failed sign-ins for '{name}'; try again in {wait} s.")


def failed(name: str, now: float | None = None) -> None:
    """Count a failed sign-in of `name`."""
    now = time.monotonic() if now is None else now
    with _LOCK:
        _recent(name, now).append(now)


def succeeded(name: str) -> None:
    """Forget the failures of `name` after a successful sign-in."""
    with _LOCK:
        _FAILURES.pop(name, None)
