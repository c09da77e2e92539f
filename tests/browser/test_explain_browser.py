"""In real headless Chromium, behind the one server, with a tiny champion trained on train_FD002: the server scores
test_FD002 and then explains it in the background; the Explain page draws the fleet importance and a dependence
plot for it, and the Engine page offers a what-if slider for a sensor outside the engine's top four."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PAGE_FIXTURES = Path(__file__).resolve().parents[1] / "pages" / "conftest.py"
FILES = ("train_FD002", "test_FD002", "RUL_FD002")


@pytest.fixture(scope="module")
def fd002_home(tmp_path_factory: pytest.TempPathFactory, cmapss_dir: Path) -> Path:
    """FD002 loaded and a tiny champion trained on train_FD002 (the page tests' recipe); nothing scored yet."""
    spec = importlib.util.spec_from_file_location("page_fixtures", PAGE_FIXTURES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_home(tmp_path_factory.mktemp("explain_browser"), cmapss_dir, FILES, ("train_FD002",))


def test_fleet_explanation_and_what_if_for_any_sensor(browser_page, dashboard, dashboard_env: dict[str, str],
                                                      fd002_home: Path, tmp_path: Path) -> None:
    url = dashboard({**dashboard_env, "PM_HOME": str(fd002_home)})
    page = browser_page
    page.goto(f"{url}/explain")
    page.get_by_role("heading", name="Fleet explanations").wait_for()
    # Scored, then explained in the background: the page polls the job and redraws once it has stored its result.
    page.get_by_text("Computed on all 259 open engines").wait_for(timeout=240_000)
    page.get_by_text("What drives the model over the fleet").wait_for()
    page.get_by_text("Dependence:").wait_for()
    assert page.locator("[data-testid=stPlotlyChart]").count() == 2
    regimes = page.locator("[data-testid=stPlotlyChart]").nth(1).locator(".legendtext").all_text_contents()
    assert len(regimes) > 1 and all(text.startswith("regime ") for text in regimes), regimes
    assert page.locator("[data-testid=stException]").count() == 0
    page.screenshot(path=str(tmp_path / "explain.png"), full_page=True)

    page.goto(f"{url}/engine?dataset=test_FD002&engine=7")
    page.get_by_text("Engine 7 of test_FD002").wait_for()
    page.get_by_role("tab", name="What if").click()
    page.get_by_text("Predicted RUL (what-if)").wait_for()
    # The last-N slider and the top four sensors' sliders.
    expect(page.get_by_role("slider")).to_have_count(5, timeout=60_000)
    chooser = page.locator("[data-testid=stMultiSelect]").filter(has_text="Sensors to shift")
    chooser.locator("input").click()
    options = page.get_by_role("option")
    options.first.wait_for()
    texts = [text.strip() for text in options.all_inner_texts()]
    pick = next(i for i, text in enumerate(texts) if "select all" not in text.lower())  # one sensor, not all
    added = texts[pick]
    options.nth(pick).click()
    page.keyboard.press("Escape")
    expect(page.get_by_role("slider")).to_have_count(6, timeout=60_000)
    mnemonic = added.split()[0]
    page.get_by_text(f"{mnemonic} shift").wait_for()
    assert page.locator("[data-testid=stException]").count() == 0
    page.screenshot(path=str(tmp_path / "engine_any_sensor.png"), full_page=True)
