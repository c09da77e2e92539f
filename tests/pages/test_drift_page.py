"""AppTest of the Drift page: compare two datasets, read the verdict, switch to the normalised view,
and see a simulation timeline."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from streamlit.testing.v1 import AppTest

from core.monitoring import simulate, stream_plan, timelines

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "drift.py")


@pytest.fixture
def drift_home(trained_home_factory: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """train_FD001 and train_FD002 loaded, a tiny champion trained on train_FD001."""
    home = trained_home_factory(files=("train_FD001", "train_FD002"), train=("train_FD001",))
    monkeypatch.setenv("PM_HOME", str(home))
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    return home


def _text(at: AppTest) -> str:
    boxes = [*at.error, *at.warning, *at.success, *at.info, *at.markdown]
    return "\n".join(str(box.value) for box in boxes)


def test_drift_page_compares_datasets_explains_and_toggles_normalisation(drift_home: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=180).run()
    assert not at.exception
    assert at.selectbox(key="drift_reference").value == "Training data of the serving model v1 (train_FD001)"
    assert at.selectbox(key="drift_current").value == "train_FD002"
    assert any("Retraining recommended" in e.value for e in at.error), "red only against the model's data"
    raw_text = _text(at)
    assert "6 operating conditions" in raw_text and "On raw values 14 of 14 informative features drift" in raw_text
    assert "14 of 14 informative sensors drift" in raw_text
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Drift share"]) > 0.3
    assert float(metrics["Prediction PSI"]) > 0.25, "the champion's predictions drift on FD002"
    table = at.dataframe[0].value
    top = table[table["informative"]].sort_values("psi", ascending=False)["feature"].iloc[0]
    assert at.selectbox(key="drift_feature").value == top, "the histogram opens on the top drifting sensor"

    at.toggle(key="drift_normalised").set_value(True).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Drift share"]) == float(metrics["Normalised share"]) < float(metrics["Raw share"])
    assert "regime-normalised values" in _text(at)

    at.selectbox(key="drift_current").set_value("train_FD001").run()
    assert not at.exception
    assert "No drift" in _text(at)


@pytest.mark.slow
def test_a_pair_of_other_datasets_is_exploratory(drift_home: Path) -> None:
    at = AppTest.from_file(PAGE, default_timeout=180).run()
    at.selectbox(key="drift_reference").set_value("train_FD002").run()
    at.selectbox(key="drift_current").set_value("train_FD001").run()
    assert not at.exception and not at.error, "no red verdict for an arbitrary pair"
    text = _text(at)
    assert "Exploratory comparison" in text and "These datasets differ strongly" in text
    assert "retraining is recommended" not in text


@pytest.mark.slow
def test_no_red_verdict_for_data_the_champion_was_trained_on(trained_home_factory: Callable[..., Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    subsets = ("train_FD001", "train_FD002", "train_FD003", "train_FD004")
    monkeypatch.setenv("PM_HOME", str(trained_home_factory(files=subsets, train=subsets)))
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    at = AppTest.from_file(PAGE, default_timeout=300).run()
    assert not at.exception
    assert at.selectbox(key="drift_reference").value.startswith("Training data of the serving model v1")
    at.selectbox(key="drift_current").set_value("train_FD002").run()
    assert not at.exception and not at.error
    assert "Retraining recommended" not in _text(at)


def test_drift_page_shows_the_latest_simulation_timeline(drift_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    step = {"step": 1, "quarter": "T0", "sources": {"train_FD001": 2}, "units": [1, 2], "rows": 400,
            "stream_rows": 400, "model_version": 1, "reference": "train_FD001", "drift_share": 0.5,
            "prediction_psi": 0.4, "rmse": 30.0, "f2": 0.5, "verdict": "retrain", "retrain_recommended": True,
            "drifted_features": ["sensor_2"], "crossed": ["drift_share", "prediction_psi"],
            "retrain": {"job": None, "state": "succeeded", "version": 2, "promoted": True, "reason": "Promoted."},
            "elapsed_s": 3.0}
    timeline = {"status": "succeeded", "steps_total": 4, "thresholds": {"share": 0.3, "prediction_psi": 0.25},
                "steps": [step, {**step, "step": 2, "model_version": 2, "crossed": [], "retrain": None}],
                "events": [{"step": 1, "text": "step 1: retrained v2 promoted"}], "elapsed_s": 9.0}
    timelines.write_timeline(timelines.new_timeline_path("cli"), timeline)
    at = AppTest.from_file(PAGE, default_timeout=180).run()
    assert not at.exception
    text = _text(at)
    assert "2/4 steps" in text and "1 retrains (1 promoted)" in text and "versions served: v1, v2" in text
    assert "step 1: retrained v2 promoted" in html.unescape(text)  # event texts are shown as text, escaped
    assert any("A sandbox" in box.value and "rul-ensemble-sim" in box.value for box in at.info)

    started: list[tuple[stream_plan.Settings, str]] = []

    def start_job(settings: stream_plan.Settings, created_by: str = "") -> SimpleNamespace:
        started.append((settings, created_by))
        return SimpleNamespace(id="sim-1")

    monkeypatch.setattr(simulate, "start_job", start_job)
    assert at.toggle(key="sim_auto_retrain").value is True, "auto-retrain is on by default"
    at.number_input(key="sim_steps").set_value(5)
    at.toggle(key="sim_auto_retrain").set_value(False)
    at.button(key="sim_start").click().run()
    assert not at.exception
    assert [(s.steps, s.auto_retrain, who) for s, who in started] == [(5, False, "dashboard")], \
        "Start simulation starts one job with the settings shown"
    assert [t.value for t in at.toast] == ["Simulation job sim-1 started."]


@pytest.mark.slow
def test_an_in_service_fleet_is_compared_at_comparable_ages(trained_home_factory: Callable[..., Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PM_HOME", str(trained_home_factory()))
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    at = AppTest.from_file(PAGE, default_timeout=180).run()
    at.selectbox(key="drift_current").set_value("test_FD001").run()
    assert not at.exception and not at.error, "a younger fleet of the same engines is no reason to retrain"
    assert any("comparable ages" in c.value for c in at.caption)
