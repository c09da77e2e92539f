"""Plan page (AppTest): the plan of the stored scores with its calendar, expected removals, costs against the
baselines and engine rows; controls that re-plan (and are kept across pages); accepting a plan; never scoring."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.data import store
from core.operations import scoring_job
from core.planning import accepted
from models.ensemble import Ensemble

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture(scope="module")
def scored_home(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the trained home whose engines the champion has scored (what the scoring job leaves)."""
    home = Path(shutil.copytree(trained_home, tmp_path_factory.mktemp("plan_scored") / "home"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PM_HOME", str(home))
        scoring_job.score_stale()
    return home


@pytest.fixture
def app_env(scored_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the scored home for one test; the page must not score (the models refuse to predict)."""
    home = Path(shutil.copytree(scored_home, tmp_path / "home"))
    monkeypatch.setenv("PM_HOME", str(home))
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the Plan page scored engines inside its run")

    monkeypatch.setattr(Ensemble, "predict_features", refuse)
    monkeypatch.setattr(scoring_job, "score_stale", refuse)
    return home


def _plan(app: AppTest) -> AppTest:
    app.run()
    app.switch_page("pages/plan.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    return app


def _metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def _engines(app: AppTest) -> pd.DataFrame:
    return next(d.value for d in app.dataframe if "reason" in d.value.columns)


def _calendar(app: AppTest) -> list[int]:
    chart = next(c for c in app.get("plotly_chart") if "Calendar" in c.proto.spec)
    return [int(v) for v in json.loads(chart.proto.spec)["data"][0]["y"]]


def test_plan_page_plans_the_stored_scores_within_the_slots(app_env: Path) -> None:
    app = _plan(AppTest.from_file(APP, default_timeout=180))
    metrics = _metrics(app)
    assert metrics["Engines in service"] == "100"
    planned = _engines(app)
    assert 0 < len(planned) <= 8 * 5 and int(metrics["Planned within the horizon"]) == len(planned)
    assert planned["week"].value_counts().max() <= 5
    assert planned["reason"].str.len().min() > 20 and planned["link"].str.startswith("/engine?dataset=").all()
    assert planned["p_fail_before"].between(0, 1).all()
    assert sum(_calendar(app)) == len(planned)
    policies = next(d.value for d in app.dataframe if "policy" in d.value.columns)
    assert policies["policy"].iloc[0] == "Plan"
    assert policies["expected_cost"].iloc[0] <= policies["expected_cost"].min() + 1e-6
    assert any(b.proto.label.startswith("Download the plan") for b in app.get("download_button"))


def test_changing_slots_replans_and_the_controls_are_kept_across_pages(app_env: Path) -> None:
    app = _plan(AppTest.from_file(APP, default_timeout=180))
    before = _metrics(app)["Expected cost of the plan"]
    app.number_input(key="_plan_slots").set_value(1).run()
    assert not app.exception
    assert max(_calendar(app)) <= 1 and len(_engines(app)) <= 8
    assert _metrics(app)["Expected cost of the plan"] != before
    app.number_input(key="_plan_weeks").set_value(3).run()
    assert len(_calendar(app)) == 3
    app.switch_page("pages/home.py")
    app.run()
    app.switch_page("pages/plan.py")
    app.run()
    assert app.number_input(key="_plan_slots").value == 1 and app.number_input(key="_plan_weeks").value == 3


def test_accepting_the_plan_stores_it_with_the_model_version(app_env: Path) -> None:
    app = _plan(AppTest.from_file(APP, default_timeout=180))
    planned = len(_engines(app))
    app.button(key="plan_accept").click().run()
    assert not app.exception and not app.error
    assert any("Stored as accepted plan 1" in s.value for s in app.success)
    with store.connect(read_only=True) as con:
        listed = accepted.list_plans(con)
        rows = accepted.plan_rows(con, 1)
    assert listed["accepted_by"].tolist() == ["local"] and listed["planned"].tolist() == [planned]
    assert len(rows) == 100 and rows["week"].notna().sum() == planned
