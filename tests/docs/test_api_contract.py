"""The API contract page describes every endpoint the application serves."""

from __future__ import annotations

import re

from tests.helpers import PROJECT_ROOT

CONTRACT = PROJECT_ROOT / "docs" / "api.md"
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def served_endpoints(app) -> set[str]:
    """``METHOD /path/{param}`` for every API route of ``app``, and the documentation routes."""
    found = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)
        if path.startswith(("/api/", "/v2")) or path in ("/docs", "/openapi.json"):
            found |= {f"{method} {path}" for method in rule.methods - IGNORED_METHODS}
    return found


def test_every_endpoint_is_in_the_api_contract(app):
    contract = CONTRACT.read_text(encoding="utf-8")
    endpoints = served_endpoints(app)
    assert {"POST /api/v1/predict", "GET /api/v1/health/ready", "GET /openapi.json", "GET /v2"} <= endpoints
    assert sorted(e for e in endpoints if f"`{e}`" not in contract) == []


def test_the_contract_states_the_error_shape_and_its_statuses():
    contract = CONTRACT.read_text(encoding="utf-8")
    for field in ("code", "status", "message", "errors", "request_id"):
        assert f"| `{field}` |" in contract, field
    for status in (400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503):
        assert f"| {status} |" in contract, status
