"""In real headless Chromium: the Drift page shows one point per load of a dataset loaded in three parts, and the
drift report it downloads opens with network access blocked and shows every sensor and its charts."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from core.data.cmapss import SENSORS
from tests.browser.conftest import wait_idle

pytestmark = pytest.mark.browser

HISTORY = """() => {
    const plot = [...document.querySelectorAll('.js-plotly-plot')].find(
        p => p.layout && p.layout.title && String(p.layout.title.text).includes('Drift share per load'));
    return plot ? Array.from(plot.data[0].x) : null;
}"""


@pytest.fixture()
def three_part_home(model_home: Path, tmp_path: Path, cmapss_dir: Path) -> Path:
    """A copy of the model home with train_FD003's engines 1-30 loaded into the fleet dataset ``fleet3`` in three
    files."""
    import gzip

    from core.data import ingest

    home = Path(shutil.copytree(model_home, tmp_path / "home"))
    lines = gzip.decompress((cmapss_dir / "train_FD003.txt.gz").read_bytes()).decode().splitlines()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PM_HOME", str(home))
        for i, (first, last) in enumerate([(1, 10), (11, 20), (21, 30)]):
            part = tmp_path / f"part{i}.txt"
            part.write_text("\n".join(x for x in lines if first <= int(x.split()[0]) <= last) + "\n")
            ingest.load([part], role="fleet", dataset="fleet3")
    return home


def _choose(page, label: str, option: str) -> None:
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


def test_drift_over_time_per_load_and_the_report_opens_offline(browser_page, dashboard, dashboard_env: dict[str, str],
                                                                three_part_home: Path, tmp_path: Path) -> None:
    url = dashboard({**dashboard_env, "PM_HOME": str(three_part_home)})
    page = browser_page
    page.goto(f"{url}/drift")
    page.get_by_text("Drift over time").wait_for()
    _choose(page, "Current", "fleet3")
    page.wait_for_function(f"(() => {{ const x = ({HISTORY})(); return x && x.length === 3; }})()")
    assert page.evaluate(HISTORY) == ["load 1", "load 2", "load 3"]

    wait_idle(page)
    with page.expect_download(timeout=180_000) as download:
        page.get_by_role("button", name="Download the drift report (HTML)").click()
    saved = tmp_path / "report.html"
    download.value.save_as(saved)

    context = page.context.browser.new_context()
    offline = context.new_page()
    requested: list[str] = []

    def block(route) -> None:
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith(("file:", "data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            requested.append(route.request.url)
            route.abort()

    context.route("**/*", block)
    offline.on("request", lambda request: None if request.url.startswith(("file:", "data:", "blob:"))
               else requested.append(request.url))
    offline.goto(saved.as_uri())
    offline.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2")
    text = offline.locator("body").inner_text()
    assert all(sensor in text for sensor in SENSORS), "every sensor is listed"
    assert "Multivariate drift" in text and "Data quality per load" in text
    assert requested == [], f"the report asked other hosts: {requested}"
    context.close()
    assert page.locator("[data-testid=stException]").count() == 0
