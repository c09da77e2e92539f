"""Fleet page (AppTest): triage list of stored scores, search, filters, KPIs, risk rule, costs, CSV, paging,
opening an engine by a shareable address, stale scores handed to the background job (never scored in the
page), and the no-model notice."""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.data import fleet_ops, ingest, queries, score_queries, store, synth
from core.operations import scoring_job
from core.serving import scoring
from models.ensemble import Ensemble

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PREDICT = Ensemble.predict_features


@pytest.fixture(scope="module")
def scored_home(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the trained home whose engines the champion has scored (what the scoring job leaves)."""
    home = Path(shutil.copytree(trained_home, tmp_path_factory.mktemp("scored") / "home"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PM_HOME", str(home))
        scoring_job.score_stale()
    return home


@pytest.fixture(scope="module")
def expected(scored_home: Path) -> pd.DataFrame:
    """test_FD001 scored by the champion directly (before any test forbids scoring), by unit."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PM_HOME", str(scored_home))
        _, ensemble = scoring.load_model()
        return scoring.score(ensemble, *scoring.fleet_frame(["test_FD001"])).set_index("unit")


@pytest.fixture
def app_env(scored_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's ``PM_HOME`` is the scored home; the page must not score (the models refuse to predict)."""
    monkeypatch.setenv("PM_HOME", str(scored_home))
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the Fleet page scored engines inside its run")

    monkeypatch.setattr(Ensemble, "predict_features", refuse)
    monkeypatch.setattr(scoring_job, "score_stale", refuse)
    return scored_home


def _fleet(app: AppTest) -> AppTest:
    app.run()  # through app.py (navigation, session defaults), then to the page
    app.switch_page("pages/fleet.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    return app


def _metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def test_fleet_page_lists_every_stored_score_with_kpis(expected: pd.DataFrame, app_env: Path) -> None:
    app = _fleet(AppTest.from_file(APP, default_timeout=120))
    metrics = _metrics(app)
    assert metrics["Engines"] == "100"
    assert sum(int(metrics[f"{level} risk"]) for level in ("HIGH", "MEDIUM", "LOW")) == 100
    table = app.dataframe[0].value
    assert len(table) == 100 and list(table.columns) == [*score_queries.TABLE_COLUMNS, "link"]
    assert table["true_rul"].notna().all()
    assert (table["rul_low"] <= table["rul"]).all() and (table["rul"] <= table["rul_high"]).all()
    shown = table.set_index("unit")
    for column in ("rul", "p_fail_30", "risk", "cycle", "true_rul"):
        pd.testing.assert_series_equal(shown[column], expected.loc[shown.index, column], check_dtype=False,
                                       check_index_type=False)
    assert not any("being scored" in i.value for i in app.info)
    assert app.session_state["fleet_datasets"] == ["test_FD001"]
    assert table.iloc[0]["link"] == f"/engine?dataset=test_FD001&engine={table.iloc[0]['engine']}"


def test_triage_order_risk_rule_and_cap_note(app_env: Path) -> None:
    app = _fleet(AppTest.from_file(APP, default_timeout=120))
    table = app.dataframe[0].value
    rank = table["risk"].map({"HIGH": 0, "MEDIUM": 1, "LOW": 2})
    assert rank.is_monotonic_increasing
    for _, level in table.groupby(rank, sort=False):
        assert level["p_fail_30"].is_monotonic_decreasing
    _, ensemble = scoring.load_model()
    high = f"HIGH: P(fail within 30 cycles) ≥ {ensemble.thresholds['high']:.0%}"
    assert any(high in c.value and "capped at 125 cycles" in c.value for c in app.caption)


def test_search_by_engine_id(app_env: Path) -> None:
    app = _fleet(AppTest.from_file(APP, default_timeout=120))
    app.text_input(key="fleet_search").set_value("7").run()
    found = app.dataframe[0].value
    assert sorted(found["engine"], key=int) == [str(u) for u in range(1, 101) if "7" in str(u)]
    assert _metrics(app)["Engines"] == str(len(found))
    app.text_input(key="fleet_search").set_value("ESN-404").run()
    assert not app.dataframe[1:] and any("No engine id contains the text in the search box" in i.value
                                         for i in app.info)


def test_filters_narrow_the_table_and_kpis(app_env: Path) -> None:
    app = _fleet(AppTest.from_file(APP, default_timeout=120))
    total = app.dataframe[0].value
    app.multiselect(key="fleet_risks").set_value(["LOW"]).run()
    low = app.dataframe[0].value
    assert set(low["risk"]) == {"LOW"} and len(low) == (total["risk"] == "LOW").sum()
    assert _metrics(app)["Engines"] == str(len(low)) and _metrics(app)["HIGH risk"] == "0"
    app.slider(key="fleet_rul").set_value((50.0, 100.0)).run()
    ranged = app.dataframe[0].value
    assert ranged["rul"].between(50.0, 100.0).all() and len(ranged) <= len(low)


def test_costs_are_editable_and_csv_downloads(app_env: Path) -> None:
    app = _fleet(AppTest.from_file(APP, default_timeout=120))
    policies = app.dataframe[1].value.set_index("policy")
    table = app.dataframe[0].value
    failing = int((table["true_rul"] <= 30).sum())
    assert policies.at["Do nothing", "cost"] == failing * 50_000
    app.number_input(key="_cost_miss").set_value(10_000).run()
    changed = app.dataframe[1].value.set_index("policy")
    assert changed.at["Do nothing", "cost"] == failing * 10_000
    assert app.session_state["cost_miss"] == 10_000
    assert any(b.proto.label == "Download CSV" for b in app.get("download_button"))


def test_opening_an_engine_carries_it_to_the_engine_page(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Ensemble, "predict_features", PREDICT)  # the Engine page predicts its one engine
    app = _fleet(AppTest.from_file(APP, default_timeout=120))
    box = app.selectbox(key="fleet_open")
    box.set_value("7 (test_FD001)").run()
    app.button(key="fleet_open_button").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.session_state["engine"] == ("test_FD001", "7")
    assert app.title[0].value == "Engine"
    assert app.query_params["dataset"] == "test_FD001" and app.query_params["engine"] == "7"
    assert app.selectbox(key="_engine_dataset").value == "test_FD001"
    assert app.selectbox(key="_engine_id").value == "7"


def test_both_pages_say_when_no_model_is_trained(pm_home: Path) -> None:
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    for page in ("pages/fleet.py", "pages/engine.py"):
        app.switch_page(page)
        app.run()
        assert not app.exception and not app.error
        assert any("No model is trained yet" in i.value for i in app.info)
        assert not app.dataframe


def test_stale_scores_start_the_scoring_job_and_the_stored_ones_stay_listed(app_env: Path,
                                                                            monkeypatch: pytest.MonkeyPatch,
                                                                            tmp_path: Path) -> None:
    home = Path(shutil.copytree(app_env, tmp_path / "stale"))
    monkeypatch.setenv("PM_HOME", str(home))
    with store.connect(read_only=True) as con:
        rows = queries.engine_readings(con, "test_FD001", 7)
    engine = fleet_ops.engine_history("test_FD001", "7")["engine"]
    next_cycle = rows.tail(1).assign(cycle=rows["cycle"].max() + 1, engine=engine).drop(columns="unit")
    fleet_ops.append_readings("test_FD001", next_cycle)
    started: list[str] = []
    monkeypatch.setattr(scoring_job, "start", lambda created_by="": started.append(created_by))
    app = _fleet(AppTest.from_file(APP, default_timeout=120))
    assert started == ["fleet page"]
    assert any("1 engine(s) have readings newer" in i.value for i in app.info)
    table = app.dataframe[0].value
    assert len(table) == 100, "the stored scores stay listed while the job runs"


def test_the_table_is_paged_in_triage_order(app_env: Path) -> None:
    app = _fleet(AppTest.from_file(APP, default_timeout=120))
    whole = app.dataframe[0].value
    app.selectbox(key="fleet_page_rows").set_value(50).run()
    first = app.dataframe[0].value
    app.number_input(key="fleet_page").set_value(2).run()
    second = app.dataframe[0].value
    assert len(first) == len(second) == 50 and _metrics(app)["Engines"] == "100"
    pd.testing.assert_frame_equal(pd.concat([first, second], ignore_index=True), whole.reset_index(drop=True))


def test_an_engine_of_a_large_fleet_is_opened_by_typing_its_id(app_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path, cmapss_dir: Path) -> None:
    monkeypatch.setattr(Ensemble, "predict_features", PREDICT)  # the Engine page predicts its one engine
    home = Path(shutil.copytree(app_env, tmp_path / "large"))
    monkeypatch.setenv("PM_HOME", str(home))
    out = tmp_path / "large_fleet.parquet"
    synth.write(synth.generate(1_001, 2, synth.load_source(cmapss_dir)), out, "parquet")
    ingest.load([out])
    app = AppTest.from_file(APP, default_timeout=120)
    app.query_params["dataset"], app.query_params["engine"] = "large_fleet", "ESN-000500"
    app.run()
    app.switch_page("pages/engine.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.selectbox(key="_engine_dataset").value == "large_fleet"
    assert app.text_input(key="_engine_typed").value == "ESN-000500"
    assert any("Engine ESN-000500 of large_fleet" in html.unescape(c.value) for c in app.caption)
    app.text_input(key="_engine_typed").set_value("ESN-001001").run()
    assert any("Engine ESN-001001 of large_fleet" in html.unescape(c.value) for c in app.caption)
    assert app.query_params["engine"] == "ESN-001001"


def _order_caption(app: AppTest) -> str:
    return next(c.value for c in app.caption if c.value.startswith("Page "))


def test_a_chosen_sort_orders_every_engine_before_paging_and_is_kept(app_env: Path) -> None:
    app = _fleet(AppTest.from_file(APP, default_timeout=120))
    whole = app.dataframe[0].value  # all 100 engines, riskiest first
    app.selectbox(key="fleet_page_rows").set_value(50).run()
    last = whole.iloc[-1]["engine"]
    assert last not in set(app.dataframe[0].value["engine"]), "under the triage order it is on page 2"

    app.segmented_control(key="_fleet_sort_descending").set_value(False).run()
    assert app.dataframe[0].value.iloc[0]["engine"] == last, "least risky first: it opens page 1"
    assert "sorted by risk (triage order), least risky first" in _order_caption(app)

    app.number_input(key="fleet_page").set_value(2).run()
    app.selectbox(key="_fleet_sort_column").set_value("rul").run()
    assert app.number_input(key="fleet_page").value == 1, "a new order starts at its first page"
    assert app.segmented_control(key="_fleet_sort_descending").value is False, "predicted RUL starts lowest first"
    assert app.dataframe[0].value["rul"].tolist() == sorted(whole["rul"])[:50]
    app.segmented_control(key="_fleet_sort_descending").set_value(True).run()
    top = app.dataframe[0].value
    assert top["rul"].tolist() == sorted(whole["rul"], reverse=True)[:50]
    assert top.iloc[0]["rul"] == whole["rul"].max()
    assert "Page 1 of 2. Every engine the filters keep is sorted by predicted RUL, highest first" in _order_caption(app)
    assert not any("Riskiest first;" in c.value for c in app.caption)

    app.switch_page("pages/home.py")
    app.run()
    app.switch_page("pages/fleet.py")
    app.run()
    assert app.selectbox(key="_fleet_sort_column").value == "rul"
    assert app.segmented_control(key="_fleet_sort_descending").value is True
    assert app.dataframe[0].value.iloc[0]["rul"] == whole["rul"].max(), "the order survives a page switch"


def test_search_text_and_names_are_never_rendered_as_markdown(app_env: Path) -> None:
    hostile = "**Session expired** [Sign in](http://127.0.0.1:9/phish) $x^2$"
    app = _fleet(AppTest.from_file(APP, default_timeout=120))
    app.text_input(key="fleet_search").set_value(hostile).run()
    shown = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success") for e in app.get(kind)]
    assert not any("Session expired" in text or "phish" in text for text in shown), shown
    assert any("No engine id contains the text in the search box" in text for text in shown)
