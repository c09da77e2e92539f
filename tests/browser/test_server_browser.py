"""In real headless Chromium, behind the one server: cold deep links get the app's navigation (not Streamlit's
legacy pages/ sidebar), the Home page shows the API token and alerts, and the API answers on the same origin."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api_support import build_trained_home, engine_body

pytestmark = pytest.mark.browser

TITLES = ["Home", "Data", "Fleet", "Plan", "Engine", "Explain", "Drift", "Models"]


@pytest.fixture(scope="module")
def model_home(tmp_path_factory: pytest.TempPathFactory, cmapss_dir: Path) -> Path:
    return build_trained_home(tmp_path_factory.mktemp("server_browser_home"), cmapss_dir)


def _nav(page) -> list[str]:
    page.locator("[data-testid=stSidebarNav]").wait_for()
    return [text.split("\n")[-1].strip() for text in page.locator("[data-testid=stSidebarNav] a").all_inner_texts()]


def test_deep_links_token_and_api_behind_one_server(browser_page, dashboard, dashboard_env: dict[str, str],
                                                    model_home: Path) -> None:
    url = dashboard({**dashboard_env, "PM_HOME": str(model_home)})
    page = browser_page
    for path, heading in (("/fleet", "Fleet"), ("/models", "Models and retraining")):
        page.goto(f"{url}{path}")
        page.get_by_role("heading", name=heading).first.wait_for()
        assert _nav(page) == TITLES

    page.goto(url)
    page.get_by_role("heading", name="Alerts").wait_for()
    page.get_by_text("REST API access").click()
    token = (model_home / "api_token").read_text().strip()
    page.get_by_text(token).wait_for()

    assert page.request.get(f"{url}/api/v1/health").json()["champion_version"] == 1
    body = engine_body(model_home, "test_FD001", 1, engine="ESN-1")
    refused = page.request.post(f"{url}/api/v1/predict", data=body)
    assert refused.status == 401
    answer = page.request.post(f"{url}/api/v1/predict", data=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 200 and answer.json()["engine"] == "ESN-1"
    assert "pm_predictions_total" in page.request.get(f"{url}/metrics").text()
