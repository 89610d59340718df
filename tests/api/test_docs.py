"""The OpenAPI document flask-smorest generates: every endpoint, schemas, examples, the error shape."""

from __future__ import annotations

ENDPOINTS = {
    ("/api/v1/predict", "post"),
    ("/api/v1/predict/{model_name}", "post"),
    ("/api/v1/batch-predict", "post"),
    ("/api/v1/models", "get"),
    ("/api/v1/models/load", "post"),
    ("/api/v1/models/{model_name}", "delete"),
    ("/api/v1/models/{model_name}/info", "get"),
    ("/api/v1/adapters", "get"),
}


def test_openapi_lists_every_endpoint_with_a_schema(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    found = {(path, method) for path, ops in spec["paths"].items() for method in ops if method != "parameters"}
    assert ENDPOINTS <= found
    for path, method in ENDPOINTS:
        op = spec["paths"][path][method]
        assert op.get("summary"), (path, method)
        assert "application/json" in op["responses"]["200"]["content"], (path, method)
        if method == "post":
            body = op["requestBody"]["content"]["application/json"]
            assert "example" in body or "examples" in body, (path, method)


def test_error_schema_documents_request_id(client):
    spec = client.get("/openapi.json").get_json()
    error = spec["components"]["schemas"]["Error"]
    assert {"code", "status", "message", "errors", "request_id"} <= set(error["properties"])


def test_features_documented_as_list_or_object(client):
    spec = client.get("/openapi.json").get_json()
    features = spec["components"]["schemas"]["PredictRequest"]["properties"]["features"]
    assert [alt["type"] for alt in features["oneOf"]] == ["array", "object"]


def test_swagger_ui_is_served(client):
    page = client.get("/docs")
    assert page.status_code == 200 and b"swagger" in page.data.lower()
