"""In real headless Chromium: open the Fleet page, pick an engine in the table, move a what-if slider."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

pytestmark = pytest.mark.browser


def _metric(page, label: str) -> str:
    card = page.locator("[data-testid=stMetric]").filter(has_text=label).first
    return card.locator("[data-testid=stMetricValue]").inner_text()


def _settled_box(locator, tries: int = 40) -> dict[str, float]:
    """The locator's bounding box once it stopped moving between two looks 250 ms apart."""
    last = None
    for _ in range(tries):
        box = locator.bounding_box()
        if box is not None and box == last:
            return box
        last = box
        locator.page.wait_for_timeout(250)
    raise AssertionError(f"The element kept moving: last box {last}.")


def _click_third_row(page) -> None:
    """Click the third engine's selection box in the Fleet table (a canvas grid: by position) until the Engine
    page opens. The chart above the table is drawn after it and can push it down, so the click waits for the
    chart and for the table to stop moving, and is tried again (re-measured) if the page did not switch."""
    page.locator("[data-testid=stPlotlyChart] .main-svg").first.wait_for()
    grid = page.locator("[data-testid=stDataFrame]").first
    row_height = 35  # header row, then one row per engine (triage order)
    for _ in range(3):
        grid.scroll_into_view_if_needed()
        box = _settled_box(grid)
        page.mouse.click(box["x"] + 15, box["y"] + row_height * 3 + row_height / 2)
        try:
            page.get_by_role("tab", name="What if").wait_for(timeout=20_000)
            return
        except PlaywrightTimeout:
            if urllib.parse.urlparse(page.url).path == "/engine":  # the click took; the page is still drawing
                page.get_by_role("tab", name="What if").wait_for()
                return
    raise AssertionError("Clicking an engine's row in the Fleet table did not open the Engine page.")


def test_pick_an_engine_on_the_fleet_page_and_move_a_slider(browser_page, dashboard, dashboard_env: dict[str, str],
                                                            model_home: Path, tmp_path: Path) -> None:
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
    moved = """([label, before]) => {
        const card = [...document.querySelectorAll('[data-testid=stMetric]')].find(c => c.innerText.includes(label));
        const value = card && card.querySelector('[data-testid=stMetricValue]');
        const delta = card && card.querySelector('[data-testid=stMetricDelta]');
        const deltaMoved = delta && !/^[+-]?0\\.0 cycles$/.test(delta.innerText.trim());
        return Boolean(value && (value.innerText.trim() !== before || deltaMoved));
    }"""
    delta = ""
    for i in range(1, thumbs.count()):  # push each sensor to either end of its range until the prediction moves
        for key in ("End", "Home"):
            thumbs.nth(i).focus()
            thumbs.nth(i).press(key)
            try:
                page.wait_for_function(moved, arg=["Predicted RUL (what-if)", before], timeout=20_000)
            except PlaywrightTimeout:
                continue
            card = page.locator("[data-testid=stMetric]").filter(has_text="Predicted RUL (what-if)").first
            delta = card.locator("[data-testid=stMetricDelta]").inner_text()
            break
        if delta:
            break
    assert delta and float(delta.split()[0]) != 0.0, "some sensor shift moves the prediction"
    assert _metric(page, "Predicted RUL") == before  # the baseline stays next to the what-if
    assert page.locator("[data-testid=stException]").count() == 0
    assert page.locator("[data-testid=stAlertContentError]").count() == 0
    page.screenshot(path=str(tmp_path / "engine_whatif.png"), full_page=True)
