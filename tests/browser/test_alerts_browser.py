"""In real headless Chromium, behind the one server: the server's own watcher turns stored HIGH scores into alert
episodes, the Home page groups them by kind with counts, and an operator acknowledges one selected row."""

from __future__ import annotations

import getpass
import time
from pathlib import Path

import pytest

from tests.browser.conftest import select_row

pytestmark = pytest.mark.browser


def test_home_lists_grouped_alerts_and_acknowledging_a_selected_one_records_who(
        browser_page, dashboard, dashboard_env: dict[str, str], model_home: Path) -> None:
    url = dashboard({**dashboard_env, "PM_HOME": str(model_home), "PM_API_TOKEN": "browser-alerts-0123456789"})
    page = browser_page
    auth = {"Authorization": "Bearer browser-alerts-0123456789"}
    scored = page.request.post(f"{url}/api/v1/batch-predict", data={"dataset": "test_FD001"}, headers=auth).json()
    high = sum(e["risk"] == "HIGH" for e in scored["engines"])
    assert high, "the tiny model calls some test_FD001 engines HIGH"
    deadline = time.monotonic() + 120
    while page.request.get(f"{url}/api/v1/alerts?state=open", headers=auth).json()["counts"]["risk"] < high:
        assert time.monotonic() < deadline, "the server's watcher did not raise the alerts"
        time.sleep(0.5)
    assert page.request.get(f"{url}/api/v1/health").json()["status"] == "ok"

    page.goto(url)
    page.get_by_text(f"{high} alerts, newest first").wait_for()
    page.get_by_text(f"open ({high})").wait_for()
    page.get_by_text(f"Engine at HIGH risk ({high})").wait_for()
    grid = page.locator("[data-testid=stDataFrame]").last
    ack = page.get_by_role("button", name="Acknowledge 1 selected")
    select_row(page, grid, 0, ack)
    ack.click()
    page.get_by_text("Acknowledged 1 alert.").wait_for()
    page.get_by_text(f"{high - 1} alerts, newest first").wait_for()

    (done,) = page.request.get(f"{url}/api/v1/alerts?state=acknowledged", headers=auth).json()["alerts"]
    assert done["acknowledged_by"] == f"local ({getpass.getuser()})" and done["acknowledged_at"]
