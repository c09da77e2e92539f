"""In real headless Chromium: a click on a Fleet column header sorts every engine (not just the page shown), the
caption says the order in force, and the page's CSV download holds that order with formula-like engine ids
neutralised; the table's own toolbar offers no raw CSV export."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from core.data import fleet_ops, queries, store
from tests.browser.conftest import settled_box, wait_idle

pytestmark = pytest.mark.browser


def _download(page) -> list[dict[str, str]]:
    wait_idle(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    return list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))


def _choose(page, label: str, option: str) -> None:
    """Pick `option` in the select box `label`. Right after a download Chromium may spend the first click on the
    page's focus, so the list is opened again until it shows."""
    wait_idle(page)
    box = page.get_by_role("combobox", name=label)
    for _ in range(3):
        box.click()
        try:
            page.get_by_role("listbox").wait_for(timeout=5_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    page.get_by_role("option", name=option, exact=True).click()


def _order_caption(page) -> str:
    return page.locator("[data-testid=stCaptionContainer]").filter(has_text="then split into pages").inner_text()


def test_a_header_click_sorts_the_whole_fleet_and_the_csv_follows(browser_page, dashboard,
                                                                  dashboard_env: dict[str, str], model_home: Path,
                                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    home = Path(shutil.copytree(model_home, tmp_path / "home"))
    monkeypatch.setenv("PM_HOME", str(home))
    with store.connect(read_only=True) as con:
        readings = queries.engine_readings(con, "test_FD001", 3)
    fleet_ops.append_readings("line-a", pd.concat([readings.assign(engine=e) for e in ("=1+2", "ESN-7")])
                              .drop(columns="unit"))
    url = dashboard({**dashboard_env, "PM_HOME": str(home)})
    page = browser_page
    page.goto(f"{url}/fleet")
    page.get_by_text("Cost of acting on the risk levels").wait_for()  # drawn once the scoring job has scored
    assert "sorted by risk (triage order), riskiest first" in _order_caption(page)

    triage = _download(page)
    assert len(triage) == 102 and "'=1+2" in {row["engine"] for row in triage}, "formula ids neutralised"
    assert not any(row["engine"].startswith("=") for row in triage)

    _choose(page, "Rows per page", "50")
    page.get_by_text("Page 1 of 3").wait_for()

    page.locator("[data-testid=stPlotlyChart] .main-svg").first.wait_for()
    grid = page.locator("[data-testid=stDataFrame]").first
    grid.scroll_into_view_if_needed()
    ruls = sorted(float(row["rul"]) for row in triage)
    assert ruls[-1] not in [float(row["rul"]) for row in triage[:50]], "riskiest first, it is not on page 1"
    for words, expected in (("lowest first", ruls[0]), ("highest first", ruls[-1])):
        wait_idle(page)
        box = settled_box(grid)  # the chart above the table is drawn after it
        page.mouse.click(box["x"] + 250, box["y"] + 17)  # the 'predicted RUL' header (a canvas: by position)
        page.get_by_text(f"sorted by predicted RUL, {words}").wait_for()
        caption = _order_caption(page)
        assert "Page 1 of 3" in caption and "only the rows of this page" in caption
        shown = _download(page)
        values = [float(row["rul"]) for row in shown]
        assert len(values) == 102 and values == sorted(values, reverse=words == "highest first")
        first_cell = grid.get_by_test_id("glide-cell-3-0")  # predicted RUL of the table's first row
        assert round(float(first_cell.text_content()), 1) == expected, "page 1 opens with the fleet's extreme"

    grid.hover()
    labels = grid.locator("[data-testid=stElementToolbar] button").evaluate_all(
        "buttons => buttons.map(b => b.getAttribute('aria-label') || '')")
    assert labels and not any("download" in label.lower() for label in labels), labels
