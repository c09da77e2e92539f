"""Slow down password guessing without locking the real user out.

Every sign-in attempt is admitted or refused, and counted, in one step under one process-wide lock
(:func:`admit`), so attempts made in parallel all count: an admitted attempt is a failure until its password
proves right (:func:`succeeded` withdraws it). Failures are remembered for :data:`WINDOW_S` seconds under three
keys, each with its :class:`Rule`:

- :data:`PAIR`, one name from one client address: the attacker's own door, slowed hardest;
- :data:`NAME`, one name from any address: guessing one name from many addresses, with a short longest
  delay, so that the real user signing in from elsewhere waits seconds, not minutes;
- :data:`ADDRESS`, one address whatever the name: trying many names (password spraying).

Each key lets :attr:`Rule.free` failures through at once; after that, an attempt must wait a delay that doubles
with each further failure (from :attr:`Rule.base_s` up to :attr:`Rule.cap_s`), counted from the key's latest
failure. A right password is withdrawn, and it forgets no other attempt's failure: an attacker's failures keep
counting even when the real user signs in from the same address, and in-flight attempts stay counted. The
state lives in this server process (the one server owns sign-in); names are compared after NFKC normalisation
and case folding.
"""

from __future__ import annotations

import math
import threading
import time
import unicodedata
from dataclasses import dataclass

from core.errors import UserError

WINDOW_S = 3600.0
"""How long a failure counts."""
MAX_KEYS = 10_000
"""Above this many names or addresses held, failures older than the window are swept from all of them."""
LOCAL = "this machine"
"""The address of a client on this machine (Streamlit gives no address for loopback)."""


@dataclass(frozen=True)
class Rule:
    """How one key slows attempts: `free` failures pass at once, then each attempt waits `base_s` seconds
    doubled for every failure beyond `free`, at most `cap_s`, after the key's latest failure."""

    free: int
    base_s: float
    cap_s: float

    def delay(self, failures: int) -> float:
        """Seconds an attempt waits after the latest of `failures` failures."""
        if failures < self.free:
            return 0.0
        return min(self.cap_s, self.base_s * 2.0 ** min(failures - self.free, 32))


PAIR = Rule(free=5, base_s=2.0, cap_s=900.0)
NAME = Rule(free=5, base_s=1.0, cap_s=30.0)
ADDRESS = Rule(free=20, base_s=1.0, cap_s=300.0)
MAX_FAILURES = PAIR.free
"""Attempts of one name that pass at once, parallel ones included; later ones wait."""


class Throttled(UserError):
    """A sign-in refused before its password was checked; `wait_s` is how long until one may pass."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        super().__init__(f"Too many failed sign-ins for this name or from this address; try again in "
                         f"{math.ceil(wait_s)} s.")


@dataclass(eq=False)
class Attempt:
    """One admitted sign-in: counted as a failure of its name and address until :func:`succeeded`."""

    name: str
    address: str
    at: float


_BY_NAME: dict[str, list[Attempt]] = {}
_BY_ADDRESS: dict[str, list[Attempt]] = {}
_LOCK = threading.Lock()


def name_key(name: str) -> str:
    """The key a name is counted under: NFKC-normalised and case-folded, so look-alikes count together."""
    return unicodedata.normalize("NFKC", name.strip()).casefold()


def _recent(table: dict[str, list[Attempt]], key: str, now: float) -> list[Attempt]:
    kept = [a for a in table.get(key, ()) if now - a.at < WINDOW_S]
    if kept:
        table[key] = kept
    else:
        table.pop(key, None)
    return kept


def _wait(rule: Rule, failures: list[Attempt], now: float) -> float:
    if not failures:
        return 0.0
    return max(0.0, max(a.at for a in failures) + rule.delay(len(failures)) - now)


def _sweep(now: float) -> None:
    for table in (_BY_NAME, _BY_ADDRESS):
        if len(table) > MAX_KEYS:
            for key in list(table):
                _recent(table, key, now)


def admit(name: str, address: str | None, now: float | None = None) -> Attempt:
    """Admit a sign-in of `name` from `address` (None: this machine) and count it as a failure, or refuse it
    (:class:`Throttled`) while one of its keys must still wait; both under the lock."""
    now = time.monotonic() if now is None else now
    key, where = name_key(name), address or LOCAL
    with _LOCK:
        _sweep(now)
        by_name = _recent(_BY_NAME, key, now)
        by_address = _recent(_BY_ADDRESS, where, now)
        pair = [a for a in by_name if a.address == where]
        wait = max(_wait(PAIR, pair, now), _wait(NAME, by_name, now), _wait(ADDRESS, by_address, now))
        if wait > 0:
            raise Throttled(wait)
        attempt = Attempt(name=key, address=where, at=now)
        _BY_NAME.setdefault(key, []).append(attempt)
        _BY_ADDRESS.setdefault(where, []).append(attempt)
        return attempt


def succeeded(attempt: Attempt) -> None:
    """The password of `attempt` was right: withdraw it (it is no failure); every other attempt still counts."""
    with _LOCK:
        for table, key in ((_BY_NAME, attempt.name), (_BY_ADDRESS, attempt.address)):
            kept = [a for a in table.get(key, ()) if a is not attempt]
            if kept:
                table[key] = kept
            else:
                table.pop(key, None)
