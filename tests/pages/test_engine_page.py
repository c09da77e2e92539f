"""Engine page (AppTest): prediction, trends, explanation, what-if sliders with reset, engine switching."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.serving import scoring, whatif

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _engine(engine: tuple[str, int] | None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()  # through app.py (navigation, session defaults), then to the page
    app.session_state["engine"] = engine
    app.switch_page("pages/engine.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    return app


def _metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def test_engine_page_shows_the_prediction_trends_and_explanation(app_env: Path) -> None:
    app = _engine(("test_FD001", 3))
    _, ensemble = scoring.load_model()
    rows, _ = scoring.fleet_frame(["test_FD001"])
    expected = ensemble.predict_last(whatif.engine_rows(rows, "test_FD001", 3)).iloc[0]
    metrics = _metrics(app)
    assert metrics["Last cycle"] == str(int(expected["cycle"]))
    assert metrics["Predicted RUL"] == f"{expected['rul']:.0f} cycles"
    assert metrics["Risk"] == expected["risk"]
    assert any("True RUL after the last cycle" in c.value for c in app.caption)
    assert [t.label for t in app.tabs] == ["Trends", "Why this prediction", "What if"]
    charts = app.get("plotly_chart")
    assert len(charts) >= 6  # trends, trajectory, attribution, waterfall, heatmap, what-if (2)
    assert any("fleet-average prediction" in m.value for m in app.markdown)


def test_slider_moves_the_prediction_and_reset_restores_it(app_env: Path) -> None:
    app = _engine(("test_FD001", 3))
    baseline = _metrics(app)["Predicted RUL"]
    sliders = [s for s in app.slider if s.key.startswith("whatif_test_FD001_3_sensor_")]
    assert len(sliders) == 4
    assert all(s.min < 0 < s.max and s.value == 0.0 for s in sliders)
    for slider in sliders:
        slider.set_value(slider.max)
    app.slider(key="whatif_test_FD001_3_n").set_value(30)
    app.run()
    assert not app.exception
    metrics = _metrics(app)
    assert metrics["Predicted RUL (what-if)"] != baseline
    assert metrics["Predicted RUL"] == baseline  # the unmodified baseline stays next to it
    app.button(key="whatif_test_FD001_3_reset").click().run()
    assert all(app.slider(key=s.key).value == 0.0 for s in sliders)
    assert _metrics(app)["Predicted RUL (what-if)"] == baseline


def test_engine_selectors_change_the_engine_in_session(app_env: Path) -> None:
    app = _engine(None)
    assert app.session_state["engine"] == ("test_FD001", 1)
    app.selectbox(key="_engine_unit").set_value(42).run()
    assert not app.exception
    assert app.session_state["engine"] == ("test_FD001", 42)
    app.selectbox(key="_engine_dataset").set_value("train_FD001").run()
    assert app.session_state["engine"] == ("train_FD001", 1)
    assert any("runs to failure" in c.value for c in app.caption)
