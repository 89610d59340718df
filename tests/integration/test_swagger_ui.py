"""Swagger UI in a real browser (Debian's chromium, driven by Playwright) against a real gunicorn.

/docs must work without the internet: every request the page makes goes to
the server itself. The test opens it, finds every documented endpoint, and
runs "Try it out" on POST /api/v1/predict.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import write_iris_set
from tests.helpers import GunicornServer

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium package (apt-get install chromium) at /usr/bin/chromium"
    ),
]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("swagger")
    config = {"models": {"model_directory": str(write_iris_set(root / "models"))}}
    with GunicornServer(root, config, workers=2) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (the test extra)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.requested = []
    page.on("request", lambda req: page.requested.append(req.url))
    yield page
    context.close()


def documented_operations(server) -> set[tuple[str, str]]:
    spec = server.get("/openapi.json").json()
    return {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_docs_show_every_endpoint_from_the_server_alone(page, server):
    page.goto(server.url + "/docs")
    page.wait_for_selector(".opblock-summary")
    shown = set()
    for block in page.locator(".opblock-summary").all():
        method = block.locator(".opblock-summary-method").inner_text().strip().upper()
        path = block.locator(".opblock-summary-path").get_attribute("data-path")
        shown.add((method, path))
    expected = documented_operations(server)
    assert {("POST", "/api/v1/predict"), ("GET", "/api/v1/health"), ("GET", "/api/v1/metrics")} <= expected
    assert shown == expected
    outside = [url for url in page.requested if not url.startswith(server.url)]
    assert outside == [], f"/docs fetched from outside the server: {outside}"
    assert any(url.endswith("/docs/assets/swagger-ui-bundle.js") for url in page.requested)


def test_try_it_out_on_predict(page, server):
    page.goto(server.url + "/docs")
    operation = page.locator("#operations-predictions-post_api_v1_predict")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    live = operation.locator(".live-responses-table .response")
    live.locator(".response-col_status").wait_for()
    assert live.locator(".response-col_status").inner_text().strip() == "200"
    body = live.locator(".response-col_description pre").first.inner_text()
    assert '"prediction_label": "setosa"' in body
    assert all(url.startswith(server.url) for url in page.requested)
