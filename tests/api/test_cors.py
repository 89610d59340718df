"""CORS answers only the configured origins (security.enable_cors / CORS_ENABLED)."""

from __future__ import annotations

ROW = [5.1, 3.5, 1.4, 0.2]


def test_configured_origin_is_allowed(make_app):
    client = make_app(security={"enable_cors": True, "cors_origins": ["http://localhost:3000"]}).test_client()
    response = client.post("/api/v1/predict", json={"features": ROW}, headers={"Origin": "http://localhost:3000"})
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]
    preflight = client.options(
        "/api/v1/predict",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"


def test_other_origins_get_no_cors_headers(make_app):
    client = make_app(security={"enable_cors": True, "cors_origins": ["http://localhost:3000"]}).test_client()
    response = client.post("/api/v1/predict", json={"features": ROW}, headers={"Origin": "http://evil.example"})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_disabled_sends_no_headers(make_app):
    client = make_app(security={"enable_cors": False, "cors_origins": ["http://localhost:3000"]}).test_client()
    response = client.post("/api/v1/predict", json={"features": ROW}, headers={"Origin": "http://localhost:3000"})
    assert "Access-Control-Allow-Origin" not in response.headers
