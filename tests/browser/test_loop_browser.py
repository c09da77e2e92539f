"""In real headless Chromium, the operational loop as a new user walks it on a fresh store: upload the NASA files on
the Data page, a first model trains by itself, open the Fleet, record a failure on an evaluation engine, retrain
with one click and the defaults, and work the alerts on the Home page."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.browser.conftest import select_row

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TINY_RECIPE = {"epochs": 1, "n_trees": 10, "samples_per_epoch": 512, "hidden": 8, "layers": 1, "device": "cpu"}
"""Settings that keep each training of this test to seconds (the tuned-recipe file every training reads)."""


def _nasa_files(tmp_path: Path, cmapss_slice: Callable[..., list[str]], cmapss_text: Callable[[str], str],
                test_units: int) -> list[Path]:
    folder = tmp_path / "nasa"
    folder.mkdir()
    files = {"train_FD001.txt": cmapss_slice("train_FD001", units=12),
             "test_FD001.txt": cmapss_slice("test_FD001", units=test_units),
             "RUL_FD001.txt": cmapss_text("RUL_FD001").splitlines()[:test_units]}
    for name, lines in files.items():
        (folder / name).write_text("\n".join(lines) + "\n")
    return [folder / name for name in files]


def test_a_new_user_walks_the_loop_from_upload_to_retrain_after_a_recorded_failure(
        browser_page, dashboard, dashboard_env: dict[str, str], tmp_path: Path,
        cmapss_slice: Callable[..., list[str]], cmapss_text: Callable[[str], str]) -> None:
    home = Path(dashboard_env["PM_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "recipe.json").write_text(json.dumps({"val_rmse": 0.0, "settings": TINY_RECIPE}))
    files = _nasa_files(tmp_path, cmapss_slice, cmapss_text, test_units=8)
    token = "browser-loop-0123456789"
    url = dashboard({**dashboard_env, "PM_API_TOKEN": token})
    page = browser_page

    page.goto(f"{url}/data")
    page.locator("input[type=file]").first.set_input_files([str(f) for f in files])
    page.get_by_role("button", name=re.compile(r"^Load 3 files")).click()
    page.get_by_text(re.compile(r"Training a first model on train_FD001 in the background \(job ")).wait_for()
    page.get_by_text("rul-ensemble v1 (champion)").first.wait_for(timeout=600_000)

    page.get_by_role("link", name="Fleet").first.click()
    page.get_by_text(re.compile(r"Scores stored by model v1")).wait_for(timeout=300_000)

    page.goto(f"{url}/engine?dataset=test_FD001&engine=4")
    page.get_by_text("Engine 4 of test_FD001 (evaluation)").wait_for()
    page.get_by_role("tab", name="Outcomes").click()
    page.get_by_role("combobox", name="Event").click()
    page.get_by_role("option", name="failure").click()
    page.get_by_role("button", name="Record outcome").click()
    page.get_by_text(re.compile(r"Recorded failure of engine 4 \(test_FD001\)")).wait_for()

    page.get_by_role("link", name="Models").first.click()
    page.get_by_role("button", name="Retrain", exact=True).click()
    page.get_by_text(re.compile(r"Version 2 registered")).wait_for(timeout=600_000)
    assert page.get_by_text("reporting only").count() == 0
    page.screenshot(path=str(tmp_path / "loop-models.png"), full_page=True)

    auth = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 120
    while not page.request.get(f"{url}/api/v1/alerts?state=open", headers=auth).json()["alerts"]:
        assert time.monotonic() < deadline, "the server's watcher raised no alert after the recorded failure"
        time.sleep(0.5)
    page.get_by_role("link", name="Home").first.click()
    page.get_by_text(re.compile(r"^\d+ alerts?, newest first")).wait_for()
    grid = page.locator("[data-testid=stDataFrame]").last
    ack = page.get_by_role("button", name="Acknowledge 1 selected")
    select_row(page, grid, 0, ack)
    ack.click()
    page.get_by_text("Acknowledged 1 alert.").wait_for()
    (done,) = page.request.get(f"{url}/api/v1/alerts?state=acknowledged", headers=auth).json()["alerts"]
    assert done["acknowledged_by"] and done["acknowledged_at"]
    assert page.get_by_text("Traceback").count() == 0
    page.screenshot(path=str(tmp_path / "loop-home.png"), full_page=True)
