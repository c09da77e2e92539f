"""In real headless Chromium, with a sign-in required (PM_AUTH=required, as when bound beyond loopback): the
dashboard shows the sign-in and nothing else, a viewer gets no delete or retrain buttons, an admin does, a
delete confirmed after the admin was demoted is refused, and a deep link to an engine opens that engine once
the user has signed in."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import pytest

from core.access import users
from core.access.roles import Role
from tests.conftest import cmapss_file

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"


def _sign_in(page, url: str, name: str) -> None:
    page.goto(url)
    _fill_sign_in(page, name)


def _fill_sign_in(page, name: str) -> None:
    page.get_by_role("heading", name="Sign in").wait_for()
    page.get_by_role("textbox", name="Name").fill(name)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(re.compile(rf"^{name} · ")).wait_for()


def _open(page, title: str, heading: str) -> None:
    page.locator("[data-testid=stSidebarNav] a", has_text=title).click()
    page.get_by_role("heading", name=heading).first.wait_for()


def test_sign_in_first_then_the_role_decides_the_buttons(browser_page, dashboard, dashboard_env: dict[str, str],
                                                         pm_home: Path, cmapss_dir: Path) -> None:
    from core.data import ingest

    ingest.load([cmapss_file(cmapss_dir, "train_FD001"), cmapss_file(cmapss_dir, "test_FD001")])
    users.add_user("vic", Role.VIEWER, PASSWORD)
    users.add_user("ada", Role.ADMIN, PASSWORD)
    url = dashboard({**dashboard_env, "PM_HOME": str(pm_home), "PM_AUTH": "required"})
    page = browser_page

    page.goto(f"{url}/data")
    page.get_by_role("heading", name="Sign in").wait_for()
    assert page.locator("[data-testid=stSidebarNav]").count() == 0
    assert page.get_by_role("heading", name="Fleet data").count() == 0

    _sign_in(page, url, "vic")
    _open(page, "Data", "Fleet data")
    page.get_by_text("Only the admin role or higher may delete datasets; you are a viewer.").wait_for()
    page.get_by_text("Only the operator role or higher may load data; you are a viewer.").wait_for()
    assert page.get_by_role("button", name="Delete…").count() == 0
    _open(page, "Models", "Models and retraining")
    page.get_by_text("Only the admin role or higher may retrain models; you are a viewer.").wait_for()
    assert page.get_by_role("button", name="Retrain").count() == 0
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()

    _sign_in(page, url, "ada")
    _open(page, "Models", "Models and retraining")
    page.get_by_role("button", name="Retrain").wait_for()
    _open(page, "Data", "Fleet data")
    page.get_by_role("button", name="Delete…").click()
    confirm = page.get_by_role("button", name=re.compile(r"^Yes, delete "))
    doomed = confirm.inner_text().removeprefix("Yes, delete ").strip()
    users.set_role("ada", Role.VIEWER)
    confirm.click()
    page.get_by_text("Only the admin role or higher may delete datasets; you are a viewer.").first.wait_for()
    assert "datasets" not in page.request.get(f"{url}/api/v1/health").json()  # no token: no fleet names
    token = (pm_home / "api_token").read_text(encoding="utf-8").strip()
    health = page.request.get(f"{url}/api/v1/health", headers={"Authorization": f"Bearer {token}"}).json()
    assert doomed in {d["name"] for d in health["datasets"]}


def test_a_deep_link_survives_the_sign_in(browser_page, dashboard, dashboard_env: dict[str, str], model_home: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PM_HOME", str(model_home))
    users.add_user("eve-engineer", Role.VIEWER, PASSWORD)
    url = dashboard({**dashboard_env, "PM_HOME": str(model_home), "PM_AUTH": "required"})
    page = browser_page

    page.goto(f"{url}/engine?dataset=test_FD001&engine=7")
    page.get_by_role("heading", name="Sign in").wait_for()
    page.get_by_role("button", name="Sign in").wait_for()
    assert page.get_by_text("Page not found").count() == 0 and page.get_by_role("dialog").count() == 0
    assert page.locator("[data-testid=stSidebarNav]").count() == 0
    assert page.get_by_role("heading", name="Engine").count() == 0, "nothing of the page before the sign-in"

    _fill_sign_in(page, "eve-engineer")
    page.get_by_text("Engine 7 of test_FD001").wait_for()
    opened = urllib.parse.urlparse(page.url)
    assert opened.path == "/engine"
    assert urllib.parse.parse_qs(opened.query) == {"dataset": ["test_FD001"], "engine": ["7"]}
    assert page.locator("[data-testid=stException]").count() == 0
