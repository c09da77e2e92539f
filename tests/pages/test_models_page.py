"""AppTest: the Models page with the job runner faked (run_every never ticks in AppTest)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.operations import job_progress, job_records, jobs, promotion, registry, retrain, run_logging
from pages import model_charts

REPO = Path(__file__).resolve().parents[2]


def _version(tmp_path: Path, tag: str, rmse: float, f2: float) -> int:
    bundle = tmp_path / f"bundle-{tag}"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"tag": tag}))
    _, version = run_logging.log_training(
        bundle_dir=bundle, params={"epochs": 1}, metrics={"val_rmse": rmse, "val_f2": f2},
        history=[], lineage={"datasets": "train_FD001"}, tags={"device": "cpu"},
    )
    promotion.register_outcome(version, {"val_rmse": rmse, "val_f2": f2})
    return version


def _job(state: str, **fields: object) -> job_records.JobRecord:
    return job_records.JobRecord(id="20261122-120000-abcdef", kind="train", module="core.operations.train_job", state=state,
                          device="cpu", **fields)


def _models_page() -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/models.py").run()
    return at


def test_live_progress_of_a_running_job(fd001_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    running = _job("running", phase="lstm", step=3, total=10, progress=0.3, eta_s=42.0,
                   losses=[{"phase": "lstm", "step": s, "train_loss": 1.0 / s, "val_loss": 1.2 / s} for s in (1, 2, 3)],
                   log_tail=["[lstm] Training the LSTM", "LSTM epoch 3 of 10"])
    monkeypatch.setattr(jobs, "list_jobs", lambda **_: [running])
    monkeypatch.setattr(jobs, "running", lambda: running)
    at = _models_page()
    assert not at.exception and not at.error
    markdown = " ".join(m.value for m in at.markdown)
    assert "running" in markdown and "cpu" in markdown
    assert any(b.key == "cancel_job" for b in at.button)
    assert at.button(key="retrain").disabled, "no second training while one runs"
    bars = [str(p.proto) for p in at.get("progress")]
    assert len(bars) == 1 and "LSTM epoch 3/10" in bars[0] and "58%" in bars[0], "one overall bar, not per phase"
    chart = at.get("plotly_chart")
    assert len(chart) == 1 and "validation" in chart[0].proto.spec


def test_loss_curves_keep_the_regressor_and_classifier_apart() -> None:
    losses = ([{"phase": "xgboost", "step": s, "train_loss": 30.0 / s, "val_loss": 32.0 / s} for s in (25, 50)]
              + [{"phase": "xgboost", "step": s, "train_loss": 0.3 / s, "val_loss": 0.4 / s} for s in (25, 50)]
              + [{"phase": "lstm", "step": 1, "train_loss": 0.9, "val_loss": 1.0}])
    panels = model_charts.loss_panels(losses)
    assert [p[0] for p in panels] == ["XGBoost RUL regressor", "XGBoost failure classifier",
                                      "LSTM (RUL and failure heads)"]
    assert panels[1][3]["val_loss"].tolist() == [0.4 / 25, 0.4 / 50]
    running = _job("running", phase="xgboost", step=25, total=100, progress=0.25, losses=losses[:3],
                   started_at="2026-11-22T12:00:00+00:00")
    regressor_done = job_progress.overall(running, now=1795435260.0)
    assert regressor_done.label == "XGBoost failure classifier tree 25/100"
    assert regressor_done.fraction == pytest.approx(0.05 + 0.2 + 0.2 * 0.25)


def _fragment_timers(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record the ``run_every`` of every fragment the pages declare."""
    timers: list[object] = []
    real = st.fragment

    def spy(func: object = None, *, run_every: object = None, **kwargs: object) -> object:
        timers.append(run_every)
        return real(func, run_every=run_every, **kwargs)

    monkeypatch.setattr(st, "fragment", spy)
    return timers


def test_page_polls_only_while_a_training_runs(fd001_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    timers = _fragment_timers(monkeypatch)
    monkeypatch.setattr(jobs, "list_jobs", lambda **_: [_job("succeeded", result={})])
    at = _models_page()
    assert not at.exception and timers and not any(timers), "an idle page runs no timer"
    timers.clear()
    monkeypatch.setattr(jobs, "list_jobs", lambda **_: [_job("running", phase="lstm", step=1, total=4)])
    at.run()
    assert "1s" in timers


def test_finished_job_shows_the_gate_decision(fd001_store: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = _version(tmp_path, "a", 14.0, 0.8)
    v2 = _version(tmp_path, "b", 15.0, 0.8)
    done = _job("succeeded", result={"version": v2, "promoted": False, "previous_champion": v1,
                                     "reason": "Kept out: validation RMSE 15.00 is worse than the champion's 14.00.",
                                     "metrics": {"val_rmse": 15.0, "val_f2": 0.8}})
    monkeypatch.setattr(jobs, "list_jobs", lambda **_: [done])
    at = _models_page()
    assert not at.exception
    assert any("Kept out" in w.value for w in at.warning)
    comparison = at.dataframe[1].value
    assert list(comparison.columns) == ["metric", f"new v{v2}", f"previous champion v{v1}"]
    assert comparison.set_index("metric").loc["Validation RMSE"].tolist() == [15.0, 14.0]


def test_failed_job_says_why_and_that_serving_is_unchanged(fd001_store: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    failed = _job("failed", error="The training snapshot /x is missing or unreadable: boom.")
    monkeypatch.setattr(jobs, "list_jobs", lambda **_: [failed])
    at = _models_page()
    assert any("unreadable" in e.value and "serving model was not changed" in e.value for e in at.error)


def test_retrain_button_starts_one_job_with_the_options(fd001_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple] = []

    def fake_start(snap: object, config: object, created_by: str = "") -> job_records.JobRecord:
        started.append((snap, config, created_by))
        return _job("queued")

    monkeypatch.setattr(retrain, "start_job", fake_start)
    monkeypatch.setattr(jobs, "list_jobs", lambda **_: [])
    at = _models_page()
    at.number_input(key="retrain_epochs").set_value(2)
    at.button(key="retrain").click().run()
    assert not at.exception and not at.error
    assert len(started) == 1
    snap, config, who = started[0]
    assert snap.datasets == ["train_FD001"] and config.epochs == 2 and who == "dashboard"


def test_rollback_moves_the_champion(fd001_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = _version(tmp_path, "a", 14.0, 0.8)
    v2 = _version(tmp_path, "b", 13.0, 0.9)
    assert registry.champion_version() == v2
    monkeypatch.setattr(jobs, "list_jobs", lambda **_: [])
    at = _models_page()
    table = at.dataframe[0].value
    assert list(table["Version"]) == [v2, v1] and "Validation RMSE" in table.columns
    assert list(table["Created by"]) == ["CLI", "CLI"]
    at.selectbox(key="promote_version").set_value(v1).run()
    at.button(key="promote").click().run()
    assert not at.exception and registry.champion_version() == v2, "nothing moves before the confirmation"
    details = at.dataframe[1].value
    assert list(details.columns) == [f"v{v1}", f"v{v2} (champion now)"]
    assert details.loc["Training data", f"v{v1}"] == "train_FD001" and "Validation RMSE" in details.index
    at.button(key="promote_confirm").click().run()
    assert not at.exception
    assert registry.champion_version() == v1


def _sidebar_script() -> None:
    from pages import ui

    ui.sidebar_status()


def test_sidebar_shows_the_same_overall_progress(fd001_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    running = _job("running", phase="lstm", step=3, total=10, progress=0.3)
    monkeypatch.setattr(jobs, "running", lambda: running)
    at = AppTest.from_function(_sidebar_script, default_timeout=60).run()
    assert not at.exception
    bars = [p.proto.text for p in at.sidebar.get("progress")]
    assert bars == [f"job {running.id}: {job_progress.overall(running).text()}"]
    monkeypatch.setattr(jobs, "running", lambda: None)
    at.run()
    assert not at.exception and not at.sidebar.get("progress"), "gone once the training ends"


def test_retrain_refuses_an_empty_selection_and_live_accuracy_shows_closed_engines(
        fd001_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    from core.data import fleet_ops, queries, store, writes

    monkeypatch.setattr(jobs, "list_jobs", lambda **_: [])
    at = _models_page()
    assert any("No live accuracy yet" in c.value for c in at.caption)
    at.multiselect(key="retrain_datasets").set_value([]).run()
    assert at.button(key="retrain").disabled
    assert any("Choose at least one training dataset" in c.value for c in at.caption)

    with store.connect() as con:
        rows = queries.engine_readings(con, "test_FD001", 1)
    fleet_rows = rows.drop(columns="unit").assign(engine="ESN-1")
    fleet_ops.append_readings("line-ops", fleet_rows)
    last = int(rows["cycle"].max())
    with store.connect() as con:
        writes.insert_predictions(con, "line-ops", pd.DataFrame({
            "unit": [1], "cycle": [last], "rul": [20.0], "rul_low": [10.0], "rul_high": [30.0], "p_fail_30": [0.8],
            "risk": ["HIGH"]}), "1")
    fleet_ops.record_outcome("line-ops", "ESN-1", last + 12, "failure")
    at = _models_page()
    assert not at.exception and not at.error
    table = at.dataframe[0].value if "Version" in at.dataframe[0].value.columns else at.dataframe[1].value
    assert table["Engines"].tolist() == [1] and table["RMSE (cycles)"].tolist() == [pytest.approx(8.0)]
    assert any("1 engine(s) closed by a failure or removal" in c.value for c in at.caption)


def test_retrain_defaults_take_a_closed_evaluation_engine_and_the_choice_survives_a_reload(
        small_fd001: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.data import fleet_ops, queries, store

    with store.connect(read_only=True) as con:
        last = int(queries.find_engine(con, "test_FD001", "4")["last_cycle"])
    fleet_ops.record_outcome("test_FD001", "4", last + 3, "failure")
    started: list[object] = []

    def fake_start(snap: object, config: object, created_by: str = "") -> job_records.JobRecord:
        started.append(snap)
        return _job("queued")

    monkeypatch.setattr(retrain, "start_job", fake_start)
    monkeypatch.setattr(jobs, "list_jobs", lambda **_: [])
    at = _models_page()
    assert at.multiselect(key="retrain_datasets").value == ["test_FD001-closed", "train_FD001"]
    at.button(key="retrain").click().run()
    assert not at.exception and not at.error
    assert [snap.datasets for snap in started] == [["test_FD001-closed", "train_FD001"]]

    at.multiselect(key="retrain_datasets").set_value(["train_FD001"]).run()
    assert not at.exception and not at.error
    at = _models_page()
    assert at.multiselect(key="retrain_datasets").value == ["train_FD001"], "a reload keeps the operator's choice"
    assert retrain.training_datasets() == ["train_FD001"], "and the command line trains on the same"


def test_a_cancelled_job_is_shown_as_cancelled_not_as_an_error(small_fd001: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cancelled = _job("cancelled", error="The job was cancelled.", finished_at="2026-11-22T12:05:09.000+00:00")
    monkeypatch.setattr(jobs, "list_jobs", lambda **_: [cancelled])
    at = _models_page()
    assert not at.exception and not at.error
    assert [html.unescape(i.value) for i in at.info if "cancelled" in i.value] == [
        f"Job {cancelled.id} was cancelled at 12:05 UTC. The serving model was not changed."]
