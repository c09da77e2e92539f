"""Fleet explanations on the pages (AppTest), with a tiny champion trained on train_FD002: the Explain page draws
the importance and a dependence plot of test_FD002 from the stored explanation and says its sample size; a job
that failed is said in a sentence; the Engine page shows its engine next to the fleet and offers a what-if slider
for a sensor outside its top four."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data import store
from core.operations import explain_job, job_records
from core.serving import fleet_explain, scoring, whatif

APP = str(Path(__file__).resolve().parents[2] / "app.py")
FILES = ("train_FD002", "test_FD002", "RUL_FD002")
SAMPLE = 40


@pytest.fixture(scope="module")
def fd002_home(trained_home_factory: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """test_FD002 with a champion trained on train_FD002 and no fleet explanation stored yet (a copy)."""
    return Path(shutil.copytree(trained_home_factory(files=FILES, train=("train_FD002",)),
                                tmp_path_factory.mktemp("explain") / "home"))


@pytest.fixture(scope="module")
def explained_home(fd002_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`fd002_home` copied, with test_FD002's fleet explanation stored (the job's work, done here)."""
    home = Path(shutil.copytree(fd002_home, tmp_path_factory.mktemp("explained") / "home"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PM_HOME", str(home))
        version, ensemble = scoring.load_model()
        explainer = whatif.build_explainer(whatif.serving_setup(ensemble))
        fleet_explain.compute("test_FD002", version, ensemble, explainer, size=SAMPLE)
    return home


def _env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("PM_HOME", str(home))
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)


def _page(path: str, state: dict[str, object] | None = None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()  # through app.py (navigation, session defaults), then to the page
    for key, value in (state or {}).items():
        app.session_state[key] = value
    app.switch_page(path)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_explain_page_draws_importance_and_dependence_with_its_sample(explained_home: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, explained_home)
    started: list[int] = []
    monkeypatch.setattr(explain_job, "start", lambda version, created_by="": started.append(version))
    app = _page("pages/explain.py")
    assert not app.error, [e.value for e in app.error]
    assert started == [], "a current explanation starts no job"
    charts = {chart.proto.id: chart for chart in app.get("plotly_chart")}
    assert len(charts) == 2
    assert any(f"sample of {SAMPLE} of the 259 open engines" in c.value for c in app.caption)
    assert any("mean predicted RUL" in m.value for m in app.markdown)
    with store.connect(read_only=True) as con:
        stored = fleet_explain.load(con, "test_FD002", 1)
    assert stored is not None
    ranked = stored.importance()["input"].tolist()
    assert app.selectbox(key="explain_input").value == ranked[0], "the most important input is shown first"
    app.selectbox(key="explain_input").set_value(ranked[5]).run()
    assert not app.exception
    assert app.selectbox(key="explain_input").value == ranked[5]
    app.radio(key="explain_scale").set_value("regime-normalised").run()
    assert not app.exception and len(app.get("plotly_chart")) == 2


def test_explain_page_says_why_a_failed_job_left_nothing(fd002_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, fd002_home)
    failed = job_records.JobRecord(id="job-1", kind=explain_job.KIND, module=explain_job.MODULE, state="failed",
                                   error="Load the training data (train_FD00x) to explain predictions.")
    monkeypatch.setattr(explain_job, "start", lambda version, created_by="": failed)
    app = _page("pages/explain.py")
    assert any("stopped with an error" in e.value for e in app.error)
    assert any(t.value == failed.error for t in app.text)
    assert not app.get("plotly_chart")


def test_engine_page_shows_the_fleet_and_offers_any_sensor_to_shift(explained_home: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, explained_home)
    app = _page("pages/engine.py", {"engine": ("test_FD002", "7"), "engine_tab": "Why this prediction"})
    assert any("The fleet mean is mean |SHAP| over" in c.value and f"sample of {SAMPLE}" in c.value
               for c in app.caption)

    app.session_state["engine_tab"] = "What if"
    app.run()
    prefix = "whatif_test_FD002_7"
    chooser = app.multiselect(key=f"{prefix}_sensors")
    assert len(chooser.value) == 4 and len(chooser.options) > 4
    sliders = [s.key for s in app.slider if s.key.startswith(f"{prefix}_sensor_")]
    assert len(sliders) == 4
    baseline = {m.label: m.value for m in app.metric}["Predicted RUL"]
    top = set(chooser.value)
    _, ensemble = scoring.load_model()
    extra = next(s for s in whatif.slider_ranges(ensemble) if s not in top)
    chooser.set_value([*chooser.value, extra]).run()
    assert not app.exception, [e.value for e in app.exception]
    slider = app.slider(key=f"{prefix}_{extra}")
    slider.set_value(slider.max).run()
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Predicted RUL"] == baseline and "Predicted RUL (what-if)" in metrics
    assert not any("Move a slider" in c.value for c in app.caption), "the shift of a sensor outside the top 4 applies"
