"""In real headless Chromium: Markdown in the Engine page's address, in a dataset name or in an engine id (a link,
bold, LaTeX, colour, a shortcode, a bare address) is shown as the text it is, and the page holds no link to it."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest

from core.data import fleet_ops, queries, store

pytestmark = pytest.mark.browser

PHISH = "**Session expired.** [Sign in again](http://127.0.0.1:9449/phish)"
DATASET = f"{PHISH} $x^2$ :red[alert]"
ENGINE = "**E1** [o](http://127.0.0.1:9449/e) $y$ :fire: www.x.io a@b.co"
WORD_JOINER = "\u2060"


@pytest.fixture(scope="module")
def hostile_home(model_home: Path) -> Path:
    """The module's FD001 home with a fleet dataset named :data:`DATASET` holding one engine :data:`ENGINE`."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PM_HOME", str(model_home))
        with store.connect(read_only=True) as con:
            rows = queries.engine_readings(con, "test_FD001", 1)
        fleet_ops.append_readings(DATASET, rows.drop(columns="unit").assign(engine=ENGINE))
    return model_home


def _shown(locator) -> str:
    """The text a reader sees (the word joiners that keep bare addresses from becoming links are invisible)."""
    return locator.inner_text().replace(WORD_JOINER, "")


def _assert_no_markup(page) -> None:
    assert page.locator('a[href*="9449"]').count() == 0, "a link made from a name"
    assert page.locator('a[href*="x.io"], a[href^="mailto:"]').count() == 0, "a bare address made a link"
    assert page.locator(".katex").count() == 0, "LaTeX drawn from a name"
    main = page.locator("[data-testid=stMain]")
    assert main.locator("[data-testid=stAlertContainer] strong, [data-testid=stCaptionContainer] strong").count() == 0


def test_markdown_in_the_address_and_in_names_is_shown_as_text(browser_page, dashboard, dashboard_env: dict[str, str],
                                                                hostile_home: Path) -> None:
    url = dashboard({**dashboard_env, "PM_HOME": str(hostile_home)})
    page = browser_page
    page.goto(f"{url}/engine?dataset=**Session%20expired.**%20[Sign%20in%20again](http://127.0.0.1:9449/phish)")
    warning = page.get_by_text("No dataset named")
    warning.wait_for()
    assert _shown(warning) == f"No dataset named '{PHISH}' is loaded; showing another one."
    assert page.get_by_text("**Session expired.**").first.is_visible()
    page.get_by_role("tab", name="What if").wait_for()
    _assert_no_markup(page)

    page.goto(f"{url}/engine?{urllib.parse.urlencode({'dataset': DATASET, 'engine': ENGINE})}")
    caption = page.locator("[data-testid=stCaptionContainer]").filter(has_text="(fleet).")
    caption.wait_for()
    assert _shown(caption).startswith(f"Engine {ENGINE} of {DATASET} (fleet).")
    page.get_by_role("tab", name="What if").wait_for()
    _assert_no_markup(page)
