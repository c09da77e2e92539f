"""The models the server holds: each registry version loaded once, with its SHAP explainer, champion hot-swapped.

The champion alias, and which bundle (run id and content hash, :func:`core.operations.registry.bundle_key`)
a version number stands for, are read at most every ``ALIAS_TTL_S`` seconds (by one thread at a time, the
others serving the value being replaced), so a promotion is served within that time without a registry read on
every request. Loaded models are kept by that bundle key, never by
version number alone (a new registry reuses the numbers), the last ``KEEP`` used; loading is serialised by one
lock so concurrent first requests load a model once. Every request first checks that the tracking database is
still the one the server started with (a deleted or replaced ``mlflow.db`` is a UserError, not a silent switch).
The model stack (torch, XGBoost) is imported on the first load, so the server answers before it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.operations import registry

if TYPE_CHECKING:
    from models.ensemble import Ensemble
    from models.explain import Explainer

ALIAS_TTL_S = 5.0
KEEP = 3


@dataclass
class Served:
    """One loaded registry version: its ensemble and, once built, its explainer."""

    version: int
    key: str
    ensemble: Ensemble
    explainer: Explainer | None = None


class ModelCache:
    """Registry versions loaded for serving (thread-safe)."""

    def __init__(self, alias_ttl_s: float = ALIAS_TTL_S) -> None:
        self._lock = threading.RLock()
        self._reading = threading.Lock()
        self._loaded: OrderedDict[str, Served] = OrderedDict()
        self._aliases: dict[str, tuple[float, int]] = {}
        self._keys: dict[int, tuple[float, str]] = {}
        self._alias_ttl_s = alias_ttl_s

    def _fresh(self, table: dict[Any, tuple[float, Any]], key: Any, read: Callable[[], Any]) -> Any:
        """`table[key]`'s value if read within ``alias_ttl_s``, else `read()` (stored unless None).

        One thread reads the registry at a time; while it does, the others keep serving the value being
        replaced (when there is one) instead of all reading it at once.
        """
        cached = table.get(key)
        if cached is None:
            self._reading.acquire()
        elif time.monotonic() - cached[0] < self._alias_ttl_s or not self._reading.acquire(blocking=False):
            return cached[1]
        try:
            value = read()
            if value is not None:
                table[key] = (time.monotonic(), value)
            return value
        finally:
            self._reading.release()

    def resolve(self, model: str | None) -> int:
        """The version `model` names (a number, ``champion`` or ``challenger``; None means champion)."""
        name = (model or registry.CHAMPION).strip()
        if name.isdigit():
            return registry.resolve(int(name))
        return self._fresh(self._aliases, name, lambda: registry.resolve(name))

    def champion_version(self) -> int | None:
        """The champion's version, or None while no model is registered (read through the alias cache)."""
        return self._fresh(self._aliases, registry.CHAMPION, registry.champion_version)

    def _key(self, version: int) -> str:
        """The bundle key of `version` (run id and content hash), read through a cache of ``ALIAS_TTL_S`` seconds."""
        return self._fresh(self._keys, version, lambda: registry.bundle_key(version))

    def get(self, model: str | None = None) -> Served:
        """The loaded model `model` names, loading its bundle on first use (set up for one thread per request)."""
        registry.check_store()
        version = self.resolve(model)
        key = self._key(version)
        with self._lock:
            served = self._loaded.get(key)
            if served is None:
                from core.serving import whatif
                from models.bundle import load_bundle

                ensemble = whatif.serving_setup(load_bundle(registry.bundle_dir(version)))
                served = Served(version=version, key=key, ensemble=ensemble)
                self._loaded[key] = served
                while len(self._loaded) > KEEP:
                    self._loaded.popitem(last=False)
            self._loaded.move_to_end(key)
            return served

    def explainer(self, served: Served) -> Explainer:
        """The SHAP explainer of a loaded model, built on first use from its training data."""
        with self._lock:
            if served.explainer is None:
                from core.serving import whatif

                served.explainer = whatif.build_explainer(served.ensemble)
            return served.explainer
