"""Gauges the server derives itself: training failures in a row, and live F2 from recall and precision."""

from __future__ import annotations

import pytest

from core import metrics as scores
from core.server import metrics


def _sample(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


@pytest.mark.parametrize(("states", "in_a_row", "newest"), [
    ([], 0, None),
    (["succeeded", "failed", "failed"], 0, "succeeded"),
    (["failed", "succeeded", "failed"], 1, "failed"),
    (["failed", "failed", "succeeded"], 2, "failed"),
    (["running", "failed", "cancelled", "failed"], 1, "running"),
    (["queued", "failed", "failed", "failed"], 3, "queued"),
])
def test_training_failures_in_a_row_skip_jobs_still_running(states: list[str], in_a_row: int,
                                                            newest: str | None) -> None:
    metrics.set_job_states(states)
    assert _sample("pm_training_failures_in_a_row") == in_a_row
    assert [s for s in metrics.JOB_STATES if _sample("pm_training_job_state", state=s) == 1.0] == \
        ([newest] if newest else [])


def test_live_accuracy_gauges_derive_f2_and_drop_undefined_figures() -> None:
    row = {"model_version": "9", "engines": 12, "rmse": 31.5, "mae": 22.0, "coverage": 0.8, "high_recall": 0.75,
           "high_precision": 0.5}
    metrics.set_live_accuracy([row])
    expected_f2 = scores.f2([1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 1, 1, 1])  # recall 3/4, precision 3/6
    assert _sample("pm_live_high_f2", model_version="9") == pytest.approx(expected_f2)
    assert _sample("pm_live_rmse", model_version="9") == 31.5 and _sample("pm_live_closed_engines",
                                                                           model_version="9") == 12
    metrics.set_live_accuracy([{**row, "high_recall": None}])
    assert _sample("pm_live_high_recall", model_version="9") is None
    assert _sample("pm_live_high_f2", model_version="9") is None
    assert _sample("pm_live_high_precision", model_version="9") == 0.5
    assert metrics.f2(0.0, 0.0) == 0.0


def test_a_scrape_does_not_wait_for_the_registry_to_open(pm_home, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.operations import registry
    from core.server.fleet_gauges import FleetGauges

    class Cache:
        asked = 0

        def champion_version(self) -> int | None:
            self.asked += 1
            return None

    cache = Cache()
    gauges = FleetGauges(cache)  # type: ignore[arg-type]
    monkeypatch.setattr(registry, "opening", lambda: True)
    gauges.refresh()
    assert cache.asked == 0, "importing MLflow is left to the background thread"
    monkeypatch.setattr(registry, "opening", lambda: False)
    gauges.refresh()
    assert cache.asked == 1 and _sample("pm_champion_info", version="none") == 1.0
