"""Engine page (AppTest): prediction, trends, explanation with sensor names, what-if sliders with reset,
engine switching, opening by address, the outcome form and stored predictions of a closed engine."""

from __future__ import annotations

import html
import importlib.util
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data import fleet_ops
from core.operations import scoring_job
from core.serving import scoring, whatif
from tests.conftest import trains

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGE_FIXTURES = Path(__file__).resolve().parent / "conftest.py"


def _engine(engine: tuple[str, str] | None, params: dict[str, str] | None = None, tab: str | None = None) -> AppTest:
    """The Engine page for `engine` (or opened by the address `params`), with the tab `tab` open (default Trends)."""
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()  # through app.py (navigation, session defaults), then to the page
    app.session_state["engine"] = engine
    if tab is not None:
        app.session_state["engine_tab"] = tab
    app.switch_page("pages/engine.py")
    for key, value in (params or {}).items():
        app.query_params[key] = value
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    return app


def _metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def test_engine_page_shows_the_prediction_trends_and_explanation(app_env: Path) -> None:
    app = _engine(("test_FD001", "3"))
    _, ensemble = scoring.load_model()
    rows, _ = scoring.fleet_frame(["test_FD001"])
    expected = ensemble.predict_last(whatif.engine_rows(rows, "test_FD001", 3)).iloc[0]
    metrics = _metrics(app)
    assert metrics["Last cycle"] == str(int(expected["cycle"]))
    assert metrics["Predicted RUL"] == f"{expected['rul']:.0f} cycles"
    assert metrics["Risk"] == expected["risk"]
    assert any("True RUL after the last cycle" in c.value and "evaluation" in c.value for c in app.caption)
    assert [t.label for t in app.tabs] == ["Trends", "Outcomes", "Why this prediction", "What if"]
    assert len(app.get("plotly_chart")) == 2, "only the open tab (Trends: sensors and RUL trajectory) is drawn"
    assert not any(s.key.startswith("whatif_") for s in app.slider)
    picker = app.multiselect(key="engine_sensors_regime-normalised")
    assert picker.value and all(not label.startswith("sensor_") for label in map(picker.format_func, picker.value))

    app.session_state["engine_tab"] = "Why this prediction"  # what a click on the tab does
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert len(app.get("plotly_chart")) == 3  # attribution by sensor, XGBoost waterfall, LSTM heatmap
    sentences = next(m.value for m in app.markdown if "fleet-average prediction" in m.value)
    assert "sensor_" not in sentences and "(" in sentences.splitlines()[1]  # e.g. "Ps30 HPC static pressure (psia)"


def _sentences(app: AppTest, start: str) -> list[str]:
    """The bulleted sentences whose first one starts with `start`."""
    text = next(m.value for m in app.markdown if m.value.startswith(f"- {start}"))
    return [line.removeprefix("- ") for line in text.splitlines()]


@pytest.mark.parametrize("engine", ["41", "3"])
def test_the_why_tab_adds_up_to_the_served_rul_and_draws_the_lstm_readably(app_env: Path, engine: str) -> None:
    app = _engine(("test_FD001", engine), tab="Why this prediction")
    _, ensemble = scoring.load_model()
    rows, _ = scoring.fleet_frame(["test_FD001"])
    served = ensemble.predict_last(whatif.engine_rows(rows, "test_FD001", int(engine))).iloc[0]["rul"]
    headline = _metrics(app)["Predicted RUL"]
    assert headline == f"{served:.0f} cycles"
    lines = _sentences(app, "Starting from the fleet-average prediction")
    assert f"bring this engine's predicted RUL to {headline.split()[0]} cycle" in lines[0]
    # The whole cycles the sentences state add up to the headline: the base, each input, the rest.
    base = int(re.search(r"prediction of (\d+) cycle", lines[0]).group(1))
    moves = [re.search(r"(down|up) by (\d+) cycle|under a cycle", line) for line in lines[1:]]
    assert all(moves) and lines[-1].startswith(("The other", "The approximation"))
    stated = base + sum(int(m.group(2)) * (-1 if m.group(1) == "down" else 1) for m in moves if m.group(1))
    assert f"{stated} cycles" == headline
    charts = app.get("plotly_chart")
    assert len(charts) == 3  # how the RUL adds up, the XGBoost waterfall, the LSTM per input
    app.toggle(key="why_lstm_time").set_value(True).run()
    assert not app.exception, [e.value for e in app.exception]
    assert len(app.get("plotly_chart")) == 4  # and, asked for, the LSTM per input and cycle


def test_slider_moves_the_prediction_and_reset_restores_it(app_env: Path) -> None:
    app = _engine(("test_FD001", "3"), tab="What if")
    baseline = _metrics(app)["Predicted RUL"]
    sliders = [s for s in app.slider if s.key.startswith("whatif_test_FD001_3_sensor_")]
    assert len(sliders) == 4
    assert all(s.min < 0 < s.max and s.value == 0.0 for s in sliders)
    assert all(not s.label.startswith("sensor_") and s.label.split()[1] == "shift" for s in sliders)
    for slider in sliders:
        slider.set_value(slider.max)
    app.slider(key="whatif_test_FD001_3_n").set_value(30)
    app.run()
    assert not app.exception
    metrics = _metrics(app)
    assert metrics["Predicted RUL (what-if)"] != baseline
    assert metrics["Predicted RUL"] == baseline  # the unmodified baseline stays next to it
    what_if = _sentences(app, "Starting from the fleet-average prediction")[0]
    assert f"predicted RUL to {metrics['Predicted RUL (what-if)'].split()[0]} cycle" in what_if
    assert not re.search(r"-\s*\d", what_if), what_if
    app.button(key="whatif_test_FD001_3_reset").click().run()
    assert all(app.slider(key=s.key).value == 0.0 for s in sliders)
    assert _metrics(app)["Predicted RUL (what-if)"] == baseline


def test_engine_selectors_change_the_engine_in_session(app_env: Path) -> None:
    app = _engine(None)
    assert app.session_state["engine"] == ("test_FD001", "1")
    app.selectbox(key="_engine_id").set_value("42").run()
    assert not app.exception
    assert app.session_state["engine"] == ("test_FD001", "42")
    assert app.query_params["engine"] == "42"
    app.selectbox(key="_engine_dataset").set_value("train_FD001").run()
    assert app.session_state["engine"] == ("train_FD001", "1")
    assert any("runs to failure" in c.value for c in app.caption)


def test_the_address_opens_an_engine_and_an_unknown_one_is_named(app_env: Path) -> None:
    app = _engine(None, {"dataset": "test_FD001", "engine": "17"})
    assert app.selectbox(key="_engine_id").value == "17"
    assert _metrics(app)["Last cycle"] == str(len(whatif.engine_rows(scoring.fleet_frame(["test_FD001"])[0],
                                                                       "test_FD001", 17)))
    lost = _engine(None, {"dataset": "test_FD001", "engine": "ESN-404"})
    assert any("has no engine 'ESN-404'" in html.unescape(w.value) for w in lost.warning)
    assert lost.selectbox(key="_engine_id").value == "1"


@pytest.fixture(scope="module")
@trains
def outcome_home(tmp_path_factory: pytest.TempPathFactory, cmapss_dir: Path) -> Path:
    """A home of its own (outcomes change it): FD001 loaded and a tiny champion, by the page fixtures' recipe."""
    spec = importlib.util.spec_from_file_location("page_fixtures", PAGE_FIXTURES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_home(tmp_path_factory.mktemp("outcome_home"), cmapss_dir, module.DEFAULT_FILES,
                             ("train_FD001",))


@pytest.fixture
def outcome_env(outcome_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PM_HOME", str(outcome_home))
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    return outcome_home


def _submit(app: AppTest, key: str, event: str, cycle: int, note: str = "") -> AppTest:
    app.selectbox(key=f"outcome_event_{key}").set_value(event)
    app.number_input(key=f"outcome_cycle_{key}").set_value(cycle)
    app.text_input(key=f"outcome_note_{key}").set_value(note)
    app.button(key=f"FormSubmitter:outcome_{key}-Record outcome").click().run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_outcomes_are_recorded_refused_and_a_closed_engine_compares_predictions(outcome_env: Path) -> None:
    scoring_job.score_stale()  # what the background scoring job does: store the champion's predictions
    fleet_page = AppTest.from_file(APP, default_timeout=120)
    fleet_page.run()
    fleet_page.switch_page("pages/fleet.py")
    fleet_page.run()
    assert "5" in set(fleet_page.dataframe[0].value["engine"])

    app = _engine(None, {"dataset": "test_FD001", "engine": "5"}, tab="Outcomes")
    last = int(_metrics(app)["Last cycle"])
    assert app.number_input(key="outcome_cycle_test_FD001_5").value == last
    _submit(app, "test_FD001_5", "failure", last - 1)
    assert any("would come before its last reading" in e.value for e in app.error)
    _submit(app, "test_FD001_5", "inspection", last, "borescope: blade tip wear")
    assert any("Recorded inspection of engine 5" in s.value for s in app.success)
    assert app.dataframe[0].value["note"].tolist() == ["borescope: blade tip wear"]
    _submit(app, "test_FD001_5", "failure", last + 3, "in-flight shutdown")
    assert any("closed" in s.value and "test_FD001-closed" in html.unescape(s.value) for s in app.success)
    assert any("Closed by a failure" in c.value and "3 cycles" in c.value for c in app.caption)
    assert [o["event"] for o in fleet_ops.engine_history("test_FD001", "5")["outcomes"]] == ["inspection", "failure"]
    history = app.get("plotly_chart")
    assert any(c.proto.spec and "realised RUL" in c.proto.spec for c in history)
    assert not any(b.label == "Record outcome" for b in app.button)

    fleet_page.run()
    listed = fleet_page.dataframe[0].value
    assert "5" not in set(listed["engine"]) and len(listed) == 99
