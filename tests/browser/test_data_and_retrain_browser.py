"""In real headless Chromium: upload a file on the Data page; retrain from the Models page and watch it finish."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser


def test_upload_on_the_data_page_lists_the_dataset_and_trains_a_first_model(
        browser_page, dashboard, dashboard_env: dict[str, str], tmp_path: Path,
        cmapss_slice: Callable[..., list[str]]) -> None:
    upload = tmp_path / "train_FD001.txt"
    upload.write_text("\n".join(cmapss_slice("train_FD001", units=3)) + "\n")
    home = Path(dashboard_env["PM_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    tiny = {"epochs": 1, "n_trees": 10, "samples_per_epoch": 512, "hidden": 8, "layers": 1, "device": "cpu"}
    (home / "recipe.json").write_text(json.dumps({"val_rmse": 0.0, "settings": tiny}))  # keeps the training tiny
    url = dashboard(dashboard_env)
    page = browser_page
    page.goto(f"{url}/data")
    page.get_by_text("C-MAPSS files, NASA's zip, CSV or Parquet").first.wait_for()  # no folder tabs without PM_IMPORT_ROOT
    page.locator("input[type=file]").first.set_input_files(str(upload))
    page.get_by_role("button", name=re.compile(r"^Load 1 file")).click()
    page.get_by_text("Loaded 1 datasets").wait_for()
    page.get_by_text("1 datasets · 3 engines").wait_for()
    page.get_by_text(re.compile(r"Training a first model on train_FD001 in the background \(job ")).wait_for()
    page.get_by_text("rul-ensemble v1 (champion)").first.wait_for(timeout=600_000)  # it trained by itself
    assert page.get_by_text("Traceback").count() == 0
    page.screenshot(path=str(tmp_path / "data.png"), full_page=True)


def test_one_click_retrain_shows_live_progress_and_the_result(browser_page, dashboard, dashboard_env: dict[str, str],
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              cmapss_slice: Callable[..., list[str]]) -> None:
    from core.data import ingest

    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "train_FD001.txt").write_text("\n".join(cmapss_slice("train_FD001", units=10)) + "\n")
    monkeypatch.setenv("PM_HOME", dashboard_env["PM_HOME"])
    ingest.load([folder])
    url = dashboard(dashboard_env)
    page = browser_page
    page.goto(url)
    page.get_by_role("link", name="Models").first.click()
    page.get_by_text("No model is registered yet").wait_for()
    page.get_by_text("Options").click()
    page.get_by_label("LSTM epochs").fill("1")
    page.get_by_label("LSTM epochs").press("Enter")
    page.get_by_label("XGBoost trees").fill("10")
    page.get_by_label("XGBoost trees").press("Enter")
    page.get_by_role("button", name="Retrain", exact=True).click()
    page.get_by_text(re.compile(r"Job \d{8}-\d{6}-[0-9a-f]{6}")).first.wait_for(timeout=60_000)
    page.reload()
    page.get_by_text(re.compile(r"Job \d{8}-\d{6}-[0-9a-f]{6}")).first.wait_for(timeout=60_000)
    page.get_by_text(re.compile(r"Version 1 registered")).wait_for(timeout=600_000)
    page.get_by_text("No champion yet: the first version becomes champion.").wait_for()
    page.get_by_text("rul-ensemble v1 (champion)").first.wait_for(timeout=30_000)
    assert page.get_by_text("Traceback").count() == 0
    page.screenshot(path=str(tmp_path / "models.png"), full_page=True)
