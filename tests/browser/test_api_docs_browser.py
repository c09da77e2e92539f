"""In real headless Chromium with every request that leaves the machine blocked: the API docs at /api/v1/docs
render the operations (Swagger UI's files come from the server itself), and "Authorize" offers the bearer token."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.browser

LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")


def test_the_api_docs_render_offline_with_bearer_authorize(browser_page, dashboard,
                                                           dashboard_env: dict[str, str]) -> None:
    url = dashboard(dashboard_env)
    blocked: list[str] = []

    def only_loopback(route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page = browser_page
    page.route("**/*", only_loopback)
    page.goto(f"{url}/api/v1/docs")
    page.locator(".opblock").first.wait_for()
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    for path in ("/health", "/predict", "/batch-predict", "/readings", "/engines/{dataset}/{engine}", "/alerts"):
        assert any(p.replace("\u200b", "") == path for p in paths), (path, paths)
    page.locator("button.authorize").first.click()
    dialog = page.locator(".dialog-ux")
    dialog.wait_for()
    assert "HTTP (bearer)" in dialog.inner_text() or "bearer" in dialog.inner_text().lower()
    assert blocked == [], f"the docs asked for files from elsewhere: {blocked}"
