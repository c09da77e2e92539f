"""Fleet explanations: mean |SHAP| per input over a seeded sample of a dataset's engines, stored by model version.

Checked on test_FD002 with a tiny champion trained on train_FD002 (the page fixtures' recipe): the stored
importance is the mean of the per-engine explanations the Engine page shows, the sample adds up to its mean
served RUL, the operating regimes are FD002's six, and a stored explanation goes stale for another version.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from core.data import store
from core.operations import explain_job
from core.serving import fleet_explain, scoring, whatif

PAGE_FIXTURES = Path(__file__).resolve().parent / "pages" / "conftest.py"
FILES = ("train_FD002", "test_FD002", "RUL_FD002")
SAMPLE = 12


@pytest.fixture(scope="module")
def fd002_home(tmp_path_factory: pytest.TempPathFactory, cmapss_dir: Path) -> Path:
    """test_FD002 loaded and a tiny champion trained on train_FD002."""
    spec = importlib.util.spec_from_file_location("page_fixtures", PAGE_FIXTURES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_home(tmp_path_factory.mktemp("fd002"), cmapss_dir, FILES, ("train_FD002",))


@pytest.fixture
def home(fd002_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PM_HOME", str(fd002_home))
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    return fd002_home


def test_sample_is_seeded_bounded_and_whole_when_small() -> None:
    units = list(range(1, 20_001))
    first = fleet_explain.sample_units(units, 500, seed=0)
    assert first == fleet_explain.sample_units(units, 500, seed=0)
    assert len(first) == 500 and first == sorted(set(first)) and set(first) <= set(units)
    assert first != fleet_explain.sample_units(units, 500, seed=1)
    assert fleet_explain.sample_units([3, 1, 2], 500) == [1, 2, 3]


def test_fleet_importance_is_the_mean_of_the_engines_explanations(home: Path) -> None:
    version, ensemble = scoring.load_model()
    explainer = whatif.build_explainer(whatif.serving_setup(ensemble))
    computed = fleet_explain.compute("test_FD002", version, ensemble, explainer, size=SAMPLE)
    with store.connect(read_only=True) as con:
        stored = fleet_explain.load(con, "test_FD002", version)
        engines = con.execute("SELECT count(*) FROM engines e JOIN datasets d ON d.id = e.dataset_id "
                              "WHERE d.name = 'test_FD002'").fetchall()[0][0]
    assert stored is not None
    assert stored.sampled == SAMPLE and stored.engines == engines == 259
    assert len(stored.points) == SAMPLE * len(explainer.inputs)
    assert set(stored.points["regime"]) <= set(range(1, 7)) and stored.points["regime"].nunique() > 1
    assert abs(stored.check_sum()) < 1e-6

    # The same engines explained one by one, as the Engine page does.
    units = sorted(stored.points["unit"].unique())
    rows, _ = scoring.fleet_frame(["test_FD002"])
    per_engine = []
    for unit in units:
        outcome = whatif.predict_one(ensemble, explainer, whatif.engine_rows(rows, "test_FD002", int(unit)))
        per_engine.append(outcome.explanation.by_sensor.set_index("input"))
    table = stored.importance().set_index("input")
    for part in ("xgb", "lstm", "combined"):
        expected = np.mean([frame[part].abs().reindex(table.index) for frame in per_engine], axis=0)
        np.testing.assert_allclose(table[part].to_numpy(), expected, atol=1e-6)
    served = [float(whatif.predict_one(ensemble, None, whatif.engine_rows(rows, "test_FD002", int(u))).rul)
              for u in units]
    assert stored.rul == pytest.approx(np.mean(served), abs=1e-6)
    assert list(table.index) == list(computed.importance()["input"])
    assert table["combined"].is_monotonic_decreasing
    level = stored.points.pivot(index="unit", columns="input", values="level")
    for unit, frame in zip(units, per_engine, strict=True):
        np.testing.assert_allclose(level.loc[unit, frame.index].to_numpy(float), frame["level"].to_numpy(float))


def test_stored_explanation_is_stale_for_another_version_and_fresh_for_its_own(home: Path) -> None:
    version, ensemble = scoring.load_model()
    explainer = whatif.build_explainer(whatif.serving_setup(ensemble))
    with store.connect(read_only=True) as con:
        assert "test_FD002" in fleet_explain.stale_datasets(con, version + 1)
    fleet_explain.compute("test_FD002", version, ensemble, explainer, size=4)
    with store.connect(read_only=True) as con:
        assert fleet_explain.stale_datasets(con, version) == []
        assert fleet_explain.stale_datasets(con, version + 1) == ["test_FD002"]
        assert fleet_explain.load(con, "test_FD002", version + 1) is None
    assert explain_job.start(version) is None, "nothing stale: no job"


class _Cache:
    """The server's model cache as the scorer uses it when nothing is stale: only the champion's version."""

    def __init__(self, version: int) -> None:
        self.version = version

    def champion_version(self) -> int:
        return self.version


def test_the_server_scorer_starts_the_job_once_scores_are_current(home: Path) -> None:
    from core.operations import jobs, scoring_job
    from core.server.scoring import ServerScorer

    version, _ = scoring.load_model()
    scoring_job.score_stale(version)
    store.write(lambda con: con.execute("DELETE FROM fleet_explanations"))
    assert ServerScorer(_Cache(version)).run() is None, "nothing to score"  # type: ignore[arg-type]
    job = explain_job.latest()
    assert job is not None and job.created_by == "server" and job.config["datasets"][0][0] == "test_FD002"
    finished = jobs.wait(job.id, timeout_s=600)
    assert finished.state == "succeeded", finished.error
    with store.connect(read_only=True) as con:
        stored = fleet_explain.load(con, "test_FD002", version)
        assert fleet_explain.stale_datasets(con, version) == []
    assert stored is not None and stored.sampled == stored.engines == 259, "259 engines: fewer than the sample size"
    assert explain_job.start(version) is None
