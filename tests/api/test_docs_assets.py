"""/docs loads Swagger UI from the service itself, never from a CDN."""

from __future__ import annotations

import re

from tests.helpers import assert_error


def test_docs_page_points_at_local_assets_only(client):
    page = client.get("/docs").get_data(as_text=True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(src.startswith("/docs/assets/") for src in sources), sources
    assert "https://" not in page and "http://" not in page
    assert '"validatorUrl": null' in page


def test_assets_are_served_with_a_cache_lifetime(client):
    for name, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")):
        response = client.get(f"/docs/assets/{name}")
        assert response.status_code == 200 and kind in response.content_type
        assert "max-age=86400" in response.headers["Cache-Control"]
        assert len(response.data) > 10_000
        response.close()


def test_unknown_and_escaping_asset_paths_are_404(client):
    assert_error(client.get("/docs/assets/nope.js"), 404)
    assert_error(client.get("/docs/assets/../openapi.json/x"), 404)
    assert_error(client.get("/docs/assets/%2e%2e/__init__.py"), 404)
