"""Fleet page (AppTest): triage list, search, filters, KPIs, risk rule, costs, CSV, opening an engine by a
shareable address, and the no-model notice."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from core.serving import fleet, scoring

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _fleet(app: AppTest) -> AppTest:
    app.run()  # through app.py (navigation, session defaults), then to the page
    app.switch_page("pages/fleet.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    return app


def _metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def test_fleet_page_scores_every_engine_with_kpis(app_env: Path) -> None:
    app = _fleet(AppTest.from_file(APP, default_timeout=120))
    metrics = _metrics(app)
    assert metrics["Engines"] == "100"
    assert sum(int(metrics[f"{level} risk"]) for level in ("HIGH", "MEDIUM", "LOW")) == 100
    table = app.dataframe[0].value
    assert len(table) == 100 and list(table.columns) == [*fleet.TABLE_COLUMNS, "link"]
    assert table["true_rul"].notna().all()
    assert (table["rul_low"] <= table["rul"]).all() and (table["rul"] <= table["rul_high"]).all()
    _, ensemble = scoring.load_model()
    expected = fleet.score_fleet(ensemble, ["test_FD001"])
    pd.testing.assert_frame_equal(table.drop(columns="link").reset_index(drop=True), expected, check_dtype=False)
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
    assert not app.dataframe[1:] and any("ESN-404" in i.value for i in app.info)


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


def test_opening_an_engine_carries_it_to_the_engine_page(app_env: Path) -> None:
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
