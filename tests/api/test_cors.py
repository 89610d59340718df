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


def test_a_preflight_learns_the_methods_and_the_headers_it_asked_for(make_app):
    client = make_app(security={"enable_cors": True, "cors_origins": ["http://localhost:3000"]}).test_client()
    preflight = client.options(
        "/api/v1/predict",
        headers={
            "Origin": "HTTP://LOCALHOST:3000",  # schemes and hosts compare without regard to case
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-API-Key, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "HTTP://LOCALHOST:3000"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "X-API-Key, content-type"


def test_api_answers_vary_by_origin_and_errors_carry_cors_too(make_app):
    client = make_app(security={"enable_cors": True, "cors_origins": ["http://localhost:3000"]}).test_client()
    plain = client.post("/api/v1/predict", json={"features": ROW})
    assert plain.headers["Vary"] == "Origin" and "Access-Control-Allow-Origin" not in plain.headers
    refused = client.post("/api/v1/predict", json={"features": "x"}, headers={"Origin": "http://localhost:3000"})
    assert refused.status_code == 422
    assert refused.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "Vary" not in client.get("/openapi.json", headers={"Origin": "http://localhost:3000"}).headers


def test_any_origin_when_the_origins_include_a_star(make_app):
    client = make_app(security={"enable_cors": True, "cors_origins": ["*"]}).test_client()
    response = client.get("/api/v1/health/live", headers={"Origin": "https://dashboard.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://dashboard.example"
