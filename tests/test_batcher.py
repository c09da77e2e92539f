"""The API's batcher: concurrent requests share model calls, each gets its own engines and factors back."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from core.server.batcher import Batcher


class FakeEnsemble:
    """Features = each unit's last row; prediction = its last reading; counts its model calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def features(self, frame: pd.DataFrame, rows: str) -> Any:
        return SimpleNamespace(keys=frame.groupby("unit", as_index=False).last())

    def predict_features(self, fs: Any) -> pd.DataFrame:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(0.02)  # a model call long enough for requests to queue behind it
        with self._lock:
            self.running -= 1
        return pd.DataFrame({"unit": fs.keys["unit"].to_numpy(), "rul": fs.keys["reading"].to_numpy()})


class FakeExplainer:
    """Top factors naming the reading of each explained row."""

    def top_factors(self, fs: Any, rows: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        readings = fs.keys["reading"].to_numpy()
        return [[(f"reading {readings[r]:g}", float(readings[r]))] * k for r in rows]


def test_concurrent_requests_on_two_workers_each_get_their_own_engines_and_factors() -> None:
    ensemble, explainer = FakeEnsemble(), FakeExplainer()
    served = SimpleNamespace(version=1, ensemble=ensemble)
    batcher = Batcher(workers=2)
    answers: dict[int, Any] = {}
    errors: list[BaseException] = []

    def ask(i: int) -> None:
        engines = 1 + i % 3
        frame = pd.DataFrame({"unit": np.repeat(np.arange(1, engines + 1), 2),
                              "reading": np.arange(2 * engines) + 100.0 * i})
        try:
            answers[i] = batcher.predict(served, frame, engines, explainer if i % 2 == 0 else None, 2)
        except BaseException as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(answers) == 24
    for i, result in answers.items():
        engines = 1 + i % 3
        expected = [100.0 * i + 2 * u + 1 for u in range(engines)]
        assert result.predictions["unit"].tolist() == list(range(1, engines + 1))
        assert result.predictions["rul"].tolist() == expected
        if i % 2 == 0:
            assert result.factors == [[(f"reading {r:g}", r)] * 2 for r in expected]
        else:
            assert result.factors is None
    assert ensemble.calls < 24 and ensemble.most_at_once <= 2
