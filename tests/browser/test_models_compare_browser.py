"""In real headless Chromium: pick two versions on the Models page and see their differing parameters listed,
with the metric deltas, overlaid loss curves and training data side by side."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.browser.conftest import wait_idle
from tests.test_compare import log_version

pytestmark = pytest.mark.browser


def test_two_versions_compared_list_their_parameter_differences(
        browser_page, dashboard, dashboard_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        cmapss_slice: Callable[..., list[str]]) -> None:
    from core.data import ingest

    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "train_FD001.txt").write_text("\n".join(cmapss_slice("train_FD001", units=5)) + "\n")
    monkeypatch.setenv("PM_HOME", dashboard_env["PM_HOME"])
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ingest.load([folder])
    a = log_version(tmp_path, "a", {"epochs": 1, "n_trees": 20, "hidden": 8},
                    {"val_rmse": 14.0, "test_FD001_rmse": 15.0}, "train_FD001", epochs=1)
    b = log_version(tmp_path, "b", {"epochs": 3, "n_trees": 20, "hidden": 16},
                    {"val_rmse": 13.0, "test_FD001_rmse": 14.5}, "train_FD001,train_FD003", epochs=3)
    url = dashboard(dashboard_env)
    page = browser_page
    page.goto(f"{url}/models")
    page.get_by_text("Compare two versions").wait_for()
    wait_idle(page)
    for label, version in (("Version A", a), ("Version B", b)):
        page.get_by_role("combobox", name=label).click()
        page.get_by_role("option", name=f"v{version}", exact=True).click()
        wait_idle(page)
    page.get_by_role("button", name="Compare", exact=True).click()
    page.get_by_text("Parameters that differ (2; 1 equal)").wait_for()
    page.get_by_text(f"v{a} (A) against v{b} (B); every delta is B minus A.").wait_for()
    page.get_by_text("Loss curves (A solid, B dashed)").wait_for()
    page.locator(".js-plotly-plot").last.wait_for()
    rows = page.locator("[data-testid=stTable]").get_by_role("row").all_inner_texts()
    cells = [" ".join(row.split()) for row in rows]
    assert cells[1:] == ["epochs 1 3", "hidden 8 16"], cells
    assert page.get_by_text("Traceback").count() == 0
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
