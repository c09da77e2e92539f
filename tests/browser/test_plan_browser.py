"""In real headless Chromium: open the Plan page, change the slots per week and see the calendar and the costs
follow, then download the plan as CSV and a week's work package."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from core.operations import scoring_job
from tests.browser.conftest import wait_idle

pytestmark = pytest.mark.browser

CALENDAR = """() => {
    const plot = [...document.querySelectorAll('.js-plotly-plot')].find(
        p => p.layout && p.layout.title && String(p.layout.title.text).includes('Calendar:'));
    return plot ? Array.from(plot.data[0].y).map(Number) : null;
}"""


@pytest.fixture(scope="module")
def scored_home(model_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the model home whose engines the champion has scored (what the scoring job leaves)."""
    home = Path(shutil.copytree(model_home, tmp_path_factory.mktemp("plan_browser") / "home"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PM_HOME", str(home))
        scoring_job.score_stale()
    return home


def _metric(page, label: str) -> str:
    card = page.locator("[data-testid=stMetric]").filter(has_text=label).first
    return card.locator("[data-testid=stMetricValue]").inner_text()


def test_change_slots_then_download_the_plan_and_a_work_package(browser_page, dashboard, dashboard_env: dict[str, str],
                                                               scored_home: Path, tmp_path: Path) -> None:
    url = dashboard({**dashboard_env, "PM_HOME": str(scored_home)})
    page = browser_page
    page.goto(f"{url}/plan")
    page.get_by_text("Expected cost against the baselines").wait_for()
    page.wait_for_function(f"({CALENDAR})() !== null")
    before = page.evaluate(CALENDAR)
    cost_before = _metric(page, "Expected cost of the plan")
    assert len(before) == 8 and 1 < max(before) <= 5 and sum(before) == int(_metric(page, "Planned within the horizon"))

    slots = page.get_by_role("spinbutton", name="Shop slots per week")
    slots.fill("1")
    slots.press("Enter")
    page.wait_for_function(f"(() => {{ const y = ({CALENDAR})(); return y && Math.max(...y) <= 1; }})()")
    after = page.evaluate(CALENDAR)
    assert sum(after) == int(_metric(page, "Planned within the horizon")) and sum(after) <= 8
    page.wait_for_function("""(before) => {
        const card = [...document.querySelectorAll('[data-testid=stMetric]')]
            .find(c => c.innerText.includes('Expected cost of the plan'));
        return card && !card.innerText.includes(before);
    }""", arg=cost_before)

    wait_idle(page)
    with page.expect_download() as csv_download:
        page.get_by_role("button", name="Download the plan (CSV)").click()
    with open(csv_download.value.path(), newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 100 and {"week", "engine", "dataset", "p_fail_before", "reason"} <= set(rows[0])
    assert sum(1 for r in rows if r["week"]) == sum(after)

    wait_idle(page)
    with page.expect_download() as package:
        page.get_by_role("button", name="Download the work package (HTML)").click()
    text = Path(package.value.path()).read_text(encoding="utf-8")
    assert "Work package: week" in text and "Latest readings" in text and text.count("<tr>") >= 3
    assert page.locator("[data-testid=stException]").count() == 0
    page.screenshot(path=str(tmp_path / "plan.png"), full_page=True)
