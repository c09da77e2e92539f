"""In real headless Chromium: open the Fleet page, pick an engine in the table, move a what-if slider."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from core import config
from tests.browser.conftest import settled_box

pytestmark = pytest.mark.browser


def _metric(page, label: str) -> str:
    card = page.locator("[data-testid=stMetric]").filter(has_text=label).first
    return card.locator("[data-testid=stMetricValue]").inner_text()


def _click_third_row(page) -> None:
    """Click the third engine's selection box in the Fleet table (a canvas grid: by position) until the Engine
    page opens. The chart above the table is drawn after it and can push it down, so the click waits for the
    chart and for the table to stop moving, and is tried again (re-measured) if the page did not switch."""
    page.locator("[data-testid=stPlotlyChart] .main-svg").first.wait_for()
    grid = page.locator("[data-testid=stDataFrame]").first
    row_height = 35  # header row, then one row per engine (triage order)
    for _ in range(3):
        grid.scroll_into_view_if_needed()
        box = settled_box(grid)
        page.mouse.click(box["x"] + 15, box["y"] + row_height * 3 + row_height / 2)
        try:
            page.get_by_role("tab", name="What if").wait_for(timeout=20_000)
            return
        except PlaywrightTimeout:
            if urllib.parse.urlparse(page.url).path == "/engine":  # the click took; the page is still drawing
                page.get_by_role("tab", name="What if").wait_for()
                return
    raise AssertionError("Clicking an engine's row in the Fleet table did not open the Engine page.")


def _expected_what_if(home: Path, dataset: str, engine_id: str) -> tuple[str, str, str]:
    """(key, what-if RUL shown, its delta shown) when the Engine page's most influential sensor slider is pushed
    to one end of its range with the shift over the whole history, computed here with the page's own functions
    (the first end that moves the prediction, End before Home)."""
    from core.data import queries, store
    from core.operations import registry
    from core.serving import whatif
    from models.bundle import load_bundle

    with config.environment({"PM_HOME": str(home), "PM_DUCKDB": None, "MLFLOW_TRACKING_URI": None}):
        ensemble = whatif.serving_setup(load_bundle(registry.bundle_dir(registry.champion_version())))
        explainer = whatif.build_explainer(ensemble)
        with store.connect(read_only=True) as con:
            unit = int(queries.find_engine(con, dataset, engine_id)["unit"])
            engine = whatif.engine_rows(queries.engine_readings(con, dataset, unit).assign(dataset=dataset),
                                        dataset, unit)
    baseline = whatif.predict_one(ensemble, explainer, engine)
    ranges = whatif.slider_ranges(ensemble)
    sensor = next(s for s in baseline.explanation.top_sensors(4) if s in ranges)
    for key, shift in (("End", ranges[sensor].high), ("Home", ranges[sensor].low)):
        result = whatif.what_if(ensemble, explainer, engine, {sensor: shift}, max(len(engine), 2), baseline=baseline)
        delta = f"{result.rul_change:+.1f} cycles"
        if delta not in ("+0.0 cycles", "-0.0 cycles"):
            return key, f"{result.modified.rul:.0f} cycles", delta
    raise AssertionError(f"Shifting {sensor}, the most influential sensor, to either end of its range does not "
                         "move the prediction.")


def test_pick_an_engine_on_the_fleet_page_and_move_a_slider(browser_page, dashboard, dashboard_env: dict[str, str],
                                                            model_home: Path, tmp_path: Path) -> None:
    key, rul, delta = _expected_what_if(model_home, "test_FD001", "3")  # before the server holds the store
    url = dashboard({**dashboard_env, "PM_HOME": str(model_home)})
    page = browser_page
    page.goto(f"{url}/fleet")
    page.get_by_text("Cost of acting on the risk levels").wait_for()
    assert page.locator("[data-testid=stMetric]").filter(has_text="Engines").first.inner_text().endswith("100")

    _click_third_row(page)
    opened = urllib.parse.urlparse(page.url)
    query = urllib.parse.parse_qs(opened.query)
    assert opened.path == "/engine" and query["dataset"] == ["test_FD001"], "a shareable address of the engine"
    page.get_by_text(f"Engine {query['engine'][0]} of test_FD001").wait_for()

    page.goto(f"{url}/engine?dataset=test_FD001&engine=3")  # a fixed engine: the page opened from its address
    page.get_by_text("Engine 3 of test_FD001").wait_for()

    page.get_by_role("tab", name="What if").click()
    page.get_by_text("Predicted RUL (what-if)").wait_for()
    before = _metric(page, "Predicted RUL (what-if)")
    thumbs = page.get_by_role("slider")  # 0 is "Shift the last N cycles", then the sensors by influence
    thumbs.nth(0).focus()
    thumbs.nth(0).press("End")  # shift the engine's whole history: the largest what-if a slider can make
    page.get_by_text("Move a slider to see a what-if.").wait_for()
    shows = """([label, rul, delta]) => {
        const card = [...document.querySelectorAll('[data-testid=stMetric]')].find(c => c.innerText.includes(label));
        const value = card && card.querySelector('[data-testid=stMetricValue]');
        const change = card && card.querySelector('[data-testid=stMetricDelta]');
        return Boolean(value && change && value.innerText.trim() === rul && change.innerText.trim() === delta);
    }"""
    thumbs.nth(1).focus()
    thumbs.nth(1).press(key)  # the most influential sensor to the end of its range that moves the prediction
    try:
        page.wait_for_function(shows, arg=["Predicted RUL (what-if)", rul, delta], timeout=60_000)
    except PlaywrightTimeout as err:
        card = page.locator("[data-testid=stMetric]").filter(has_text="Predicted RUL (what-if)").first
        raise AssertionError(f"The what-if shows {card.inner_text()!r}, not the computed {rul} ({delta}).") from err
    assert _metric(page, "Predicted RUL") == before  # the baseline stays next to the what-if
    assert page.locator("[data-testid=stException]").count() == 0
    assert page.locator("[data-testid=stAlertContentError]").count() == 0
    page.screenshot(path=str(tmp_path / "engine_whatif.png"), full_page=True)
