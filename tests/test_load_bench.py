"""The load benchmark for real, very small: ``python -m core bench load`` starts ``python app.py`` on a tiny trained
home, runs Locust headless against it on loopback and reports per-endpoint figures that the results table keys by
the user count. No timing is asserted."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from tests.api_support import build_trained_home
from tests.conftest import trains


@pytest.fixture(scope="module")
@trains
def home(tmp_path_factory: pytest.TempPathFactory, cmapss_dir: Path) -> Path:
    return build_trained_home(tmp_path_factory.mktemp("load_home"), cmapss_dir)


@pytest.fixture
def server_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [k for k in os.environ if k.startswith(("MLFLOW_", "PM_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("PM_HOME", str(home))


def _args(**given: object) -> argparse.Namespace:
    from bench import load

    parser = argparse.ArgumentParser()
    load.add_arguments(parser)
    args = parser.parse_args([])
    for key, value in given.items():
        setattr(args, key, value)
    return args


def test_a_small_crowd_gets_every_answer_and_per_endpoint_figures(server_env: None) -> None:
    from bench import load

    result = load.run(_args(users=3, seconds=8, spawn_rate=3.0))

    assert result["failures"] == 0, result["failure_samples"]
    for name in ("predict", "health"):
        endpoint = result["endpoints"][name]
        assert endpoint["requests"] > 0 and endpoint["failures"] == 0
        assert endpoint["p50_ms"] <= endpoint["p95_ms"] <= endpoint["p99_ms"]
    assert result["readings_per_predict"] == 31 and result["engines"] == 100
    server = result["server"]
    assert server["after"]["cpu_s"] > server["before"]["cpu_s"] and server["before"]["rss_mb"] > 0
    assert set(result["machine"]) >= {"load_average_at_start", "load_average_1m"}
    keys = {f.key: f for f in load.figures(result)}
    assert set(keys) == {"load.users_3.predict_p95_ms", "load.users_3.health_p95_ms", "load.users_3.failures",
                         "load.users_3.rss_growth_mb"}
    assert keys["load.users_3.failures"].met() is True
    assert keys["load.users_3.predict_p95_ms"].target == 50.0
    assert "predict" in load.render(result) and "health" in load.render(result)


def test_users_that_do_not_wait_report_predictions_per_second(server_env: None) -> None:
    from bench import load

    result = load.run(_args(users=2, seconds=4, spawn_rate=2.0, no_wait=True))

    assert result["failures"] == 0, result["failure_samples"]
    assert "health" not in result["endpoints"] and result["endpoints"]["predict"]["requests"] > 0
    assert result["predictions_per_s"] > 0
    assert {f.key for f in load.figures(result)} == {"load.nowait_2.predictions_per_s", "load.nowait_2.failures"}


def test_a_dataset_the_store_lacks_is_refused_with_a_sentence(server_env: None) -> None:
    from bench import load
    from core.errors import UserError

    with pytest.raises(UserError, match="no dataset 'test_FD009'"):
        load.run(_args(users=1, seconds=1, dataset="test_FD009"))
