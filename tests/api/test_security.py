"""Authentication, roles, rate limits and model trust, with authentication on and off."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import jwt
import pytest

from app.config import ConfigError
from app.security.auth import new_api_key
from app.security.policy import OPEN, AccessTable
from tests.factories import KNOWN_ROWS, write_sklearn_classifier, write_skops_classifier
from tests.helpers import assert_error

ROW = KNOWN_ROWS["setosa"]
SECRET = "s" * 64
PREDICT_KEY, PREDICT_SHA = new_api_key()
ADMIN_KEY, ADMIN_SHA = new_api_key()
KEYS = [
    {"name": "scorer", "sha256": PREDICT_SHA, "roles": ["predict"]},
    {"name": "ops", "sha256": ADMIN_SHA, "roles": ["admin"]},
]


@pytest.fixture
def secured(make_app):
    return make_app(security={"api_keys": KEYS, "jwt": {"secret": SECRET}}).test_client()


def token(claims: dict | None = None, key: str = SECRET, algorithm: str = "HS256", **headers) -> str:
    now = int(time.time())
    body = {"sub": "alice", "roles": ["predict"], "exp": now + 300, "iat": now, **(claims or {})}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm, headers=headers)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


# --- open by default in development --------------------------------------------------


def test_without_configured_auth_everything_is_open(client):
    assert client.post("/api/v1/predict", json={"features": ROW}).status_code == 200
    assert client.get("/api/v1/audit").status_code == 200


def test_production_refuses_to_start_without_authentication(make_app):
    with pytest.raises(ConfigError, match="production needs authentication"):
        make_app(environment="production")


def test_production_may_run_open_when_the_operator_says_so(make_app):
    client = make_app(environment="production", security={"allow_anonymous": True}).test_client()
    assert client.post("/api/v1/predict/iris_xgboost", json={"features": ROW}).status_code == 200
    # production refuses unverified pickles by default: the .joblib default model waits for trust
    assert_error(client.post("/api/v1/predict", json={"features": ROW}), 404)


# --- API keys ----------------------------------------------------------------------------


def test_missing_credentials_get_401(secured):
    body = assert_error(secured.post("/api/v1/predict", json={"features": ROW}), 401, contains="X-API-Key")
    assert "credentials" in body["message"]


def test_wrong_key_gets_401(secured):
    assert_error(secured.post("/api/v1/predict", json={"features": ROW}, headers={"X-API-Key": "ms_nope"}), 401)


def test_predict_key_predicts_but_cannot_manage(secured):
    headers = {"X-API-Key": PREDICT_KEY}
    assert secured.post("/api/v1/predict", json={"features": ROW}, headers=headers).status_code == 200
    assert secured.get("/api/v1/models", headers=headers).status_code == 200
    body = {"model_name": "x", "model_path": "iris_classifier.joblib"}
    assert_error(secured.post("/api/v1/models/load", json=body, headers=headers), 403, contains="admin")
    assert_error(secured.delete("/api/v1/models/iris_xgboost", headers=headers), 403)
    assert_error(secured.get("/api/v1/audit", headers=headers), 403)


def test_admin_key_manages_and_predicts(secured):
    headers = {"X-API-Key": ADMIN_KEY}
    body = {"model_name": "copy", "model_path": "iris_classifier.joblib"}
    assert secured.post("/api/v1/models/load", json=body, headers=headers).status_code == 200
    assert secured.post("/api/v1/predict/copy", json={"features": ROW}, headers=headers).status_code == 200
    entries = secured.get("/api/v1/audit", headers=headers).get_json()["entries"]
    assert entries[0]["actor"] == "ops" and entries[0]["action"] == "load"


def test_header_name_comes_from_config(make_app):
    client = make_app(security={"api_keys": KEYS, "api_key_header": "X-Model-Key"}).test_client()
    assert (
        client.post("/api/v1/predict", json={"features": ROW}, headers={"X-Model-Key": PREDICT_KEY}).status_code == 200
    )
    assert_error(client.post("/api/v1/predict", json={"features": ROW}, headers={"X-API-Key": PREDICT_KEY}), 401)


def test_keys_and_tokens_never_reach_the_logs(secured, capfd):
    secured.post("/api/v1/predict", json={"features": ROW}, headers={"X-API-Key": PREDICT_KEY})
    secured.post("/api/v1/predict", json={"features": ROW}, headers={"X-API-Key": PREDICT_KEY + "x"})
    secured.post("/api/v1/predict", json={"features": ROW}, headers=bearer(token()))
    out, err = capfd.readouterr()
    assert PREDICT_KEY not in out + err and token().split(".")[2] not in out + err


def test_api_keys_from_the_environment(make_app, monkeypatch):
    monkeypatch.setenv("MODELSERVE_API_KEYS", json.dumps([KEYS[0]]))
    client = make_app().test_client()
    assert_error(client.post("/api/v1/predict", json={"features": ROW}), 401)
    assert client.post("/api/v1/predict", json={"features": ROW}, headers={"X-API-Key": PREDICT_KEY}).status_code == 200


def test_create_api_key_prints_the_secret_once_and_the_config_line(runner):
    result = runner.invoke(args=["create-api-key", "ci-bot", "--role", "admin"])
    assert result.exit_code == 0, result.output
    secret = result.output.split("store it now): ")[1].split()[0]
    entry = json.loads(result.output.strip().splitlines()[-1].strip()[2:])
    assert entry["name"] == "ci-bot" and entry["roles"] == ["admin"]
    from app.security.auth import key_digest

    assert entry["sha256"] == key_digest(secret) and secret not in json.dumps(entry)


# --- JWT -------------------------------------------------------------------------------------


def test_valid_jwt_with_the_role(secured):
    assert secured.post("/api/v1/predict", json={"features": ROW}, headers=bearer(token())).status_code == 200
    admin = token({"roles": ["admin"], "sub": "bob"})
    assert secured.get("/api/v1/audit", headers=bearer(admin)).status_code == 200


def test_jwt_without_the_role_gets_403(secured):
    assert_error(secured.get("/api/v1/audit", headers=bearer(token())), 403, contains="alice")


def _none_alg_token() -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'sub': 'eve', 'roles': ['admin'], 'exp': 2**33})}."


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: token({"exp": int(time.time()) - 10}), id="expired"),
        pytest.param(lambda: token({"nbf": int(time.time()) + 3600}), id="not-yet-valid"),
        pytest.param(lambda: token(key="x" * 40), id="bad-signature"),
        pytest.param(lambda: token(algorithm="HS512"), id="wrong-algorithm"),
        pytest.param(_none_alg_token, id="alg-none"),
        pytest.param(lambda: token({"exp": None}), id="no-exp"),
        pytest.param(lambda: "not.a.token", id="garbage"),
        pytest.param(lambda: token({"roles": "admin predict", "sub": None}), id="no-subject"),
    ],
)
def test_bad_jwts_get_401(secured, bad):
    assert_error(secured.post("/api/v1/predict", json={"features": ROW}, headers=bearer(bad())), 401)


def test_basic_auth_scheme_is_refused(secured):
    headers = {"Authorization": "Basic YWxpY2U6cGFzcw=="}
    assert_error(secured.post("/api/v1/predict", json={"features": ROW}, headers=headers), 401)


def test_roles_claim_is_configurable(make_app):
    client = make_app(security={"jwt": {"secret": SECRET, "roles_claim": "scopes"}}).test_client()
    good = token({"scopes": ["predict"], "roles": None})
    assert client.post("/api/v1/predict", json={"features": ROW}, headers=bearer(good)).status_code == 200
    assert_error(client.post("/api/v1/predict", json={"features": ROW}, headers=bearer(token())), 403)


def test_rs256_public_key_and_algorithm_confusion(make_app):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    client = make_app(security={"jwt": {"algorithm": "RS256", "public_key": public_pem}}).test_client()
    good = token(key=private, algorithm="RS256")
    assert client.post("/api/v1/predict", json={"features": ROW}, headers=bearer(good)).status_code == 200
    # an attacker signs HS256 with the (public) key as the shared secret
    forged = (
        jwt.api_jws.PyJWS().encode(
            json.dumps({"sub": "eve", "roles": ["admin"], "exp": int(time.time()) + 60}).encode(),
            public_pem.encode(),
            algorithm="HS256",
        )
        if False
        else None
    )
    assert forged is None  # PyJWT itself refuses to HMAC-sign with a PEM key; build it by hand:
    import hashlib
    import hmac

    head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    claims = json.dumps({"sub": "eve", "roles": ["admin"], "exp": int(time.time()) + 60}).encode()
    payload = base64.urlsafe_b64encode(claims).rstrip(b"=")
    signature = hmac.new(public_pem.encode(), head + b"." + payload, hashlib.sha256).digest()
    forged = b".".join([head, payload, base64.urlsafe_b64encode(signature).rstrip(b"=")]).decode()
    assert_error(client.get("/api/v1/audit", headers=bearer(forged)), 401)


# --- every route declares what it needs --------------------------------------------------


def test_every_route_declares_its_role(app):
    table = AccessTable(app)
    undeclared = [
        f"{method} {rule.rule}"
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
        if table.declared(rule.endpoint, method) is None
    ]
    assert undeclared == []


def test_openapi_documents_the_security_schemes(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }
    predict = spec["paths"]["/api/v1/predict"]["post"]
    assert {"ApiKeyAuth": []} in predict["security"] and "401" in predict["responses"]


def test_docs_stay_open_with_auth_on(secured):
    assert secured.get("/openapi.json").status_code == 200
    assert secured.get("/docs").status_code == 200


# --- rate limits -------------------------------------------------------------------------------


def test_rate_limit_gives_429_in_the_error_shape_with_headers(make_app):
    client = make_app(security={"rate_limits": {"predict": "3/minute"}}).test_client()
    for _ in range(3):
        assert client.post("/api/v1/predict", json={"features": ROW}).status_code == 200
    response = client.post("/api/v1/predict/iris_xgboost", json={"features": ROW})  # same group, shared counter
    body = assert_error(response, 429)
    assert int(response.headers["Retry-After"]) > 0
    assert response.headers["X-RateLimit-Limit"] == "3" and response.headers["X-RateLimit-Remaining"] == "0"
    assert "3 per 1 minute" in body["message"]
    assert client.post("/api/v1/batch-predict", json={"features": [ROW]}).status_code == 200  # another group


def test_rate_limits_are_per_identity(make_app):
    client = make_app(security={"api_keys": KEYS, "rate_limits": {"predict": "2/minute"}}).test_client()
    for _ in range(2):
        assert (
            client.post("/api/v1/predict", json={"features": ROW}, headers={"X-API-Key": PREDICT_KEY}).status_code
            == 200
        )
    assert_error(client.post("/api/v1/predict", json={"features": ROW}, headers={"X-API-Key": PREDICT_KEY}), 429)
    assert client.post("/api/v1/predict", json={"features": ROW}, headers={"X-API-Key": ADMIN_KEY}).status_code == 200


def test_forwarded_for_is_ignored_unless_proxies_are_trusted(make_app):
    limits = {"rate_limits": {"predict": "1/minute"}}
    untrusted = make_app(security=limits).test_client()
    assert (
        untrusted.post("/api/v1/predict", json={"features": ROW}, headers={"X-Forwarded-For": "10.0.0.1"}).status_code
        == 200
    )
    response = untrusted.post("/api/v1/predict", json={"features": ROW}, headers={"X-Forwarded-For": "10.0.0.2"})
    assert_error(response, 429)  # the header did not make a new client

    trusted = make_app(security={**limits, "trusted_proxies": 1}).test_client()
    assert (
        trusted.post("/api/v1/predict", json={"features": ROW}, headers={"X-Forwarded-For": "10.0.0.1"}).status_code
        == 200
    )
    assert (
        trusted.post("/api/v1/predict", json={"features": ROW}, headers={"X-Forwarded-For": "10.0.0.2"}).status_code
        == 200
    )


def test_rate_limiting_can_be_disabled(make_app):
    client = make_app(security={"rate_limit_enabled": False, "rate_limits": {"predict": "1/minute"}}).test_client()
    for _ in range(3):
        assert client.post("/api/v1/predict", json={"features": ROW}).status_code == 200


# --- model trust --------------------------------------------------------------------------------


class Exploit:
    """Unpickling this creates a marker file: what a malicious model would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def strict(make_app):
    return make_app(security={"allow_unverified_pickles": False})


def test_a_malicious_pickle_is_refused_before_it_is_read(strict, model_dir, tmp_path):
    import pickle

    marker = tmp_path / "pwned"
    (model_dir / "evil.pkl").write_bytes(pickle.dumps(Exploit(marker)))
    body = assert_error(
        strict.test_client().post("/api/v1/models/load", json={"model_name": "evil", "model_path": "evil.pkl"}), 403
    )
    assert "not trusted" in body["message"] and "/api/v1/models/trust" in body["message"]
    assert not marker.exists()


def test_untrusted_pickles_are_not_auto_loaded_but_safe_formats_are(strict):
    names = {m["name"]: m["loaded"] for m in strict.test_client().get("/api/v1/models").get_json()["models"]}
    assert names == {"iris_xgboost": True}  # .json booster: no code runs; the .joblib waits for trust


def test_trusting_a_file_lets_it_load_until_it_changes(strict, model_dir):
    client = strict.test_client()
    write_sklearn_classifier(model_dir, name="mine", suffix=".pkl")
    load = {"model_name": "mine", "model_path": "mine.pkl"}
    assert_error(client.post("/api/v1/models/load", json=load), 403)
    trusted = client.post("/api/v1/models/trust", json={"model_path": "mine.pkl"})
    assert trusted.status_code == 200 and trusted.get_json()["file"] == "mine.pkl"
    assert client.post("/api/v1/models/load", json=load).status_code == 200
    (model_dir / "mine.pkl").write_bytes((model_dir / "mine.pkl").read_bytes() + b"\n")  # changed content
    assert_error(client.post("/api/v1/models/load", json=load), 403)
    audit = client.get("/api/v1/audit").get_json()["entries"]
    assert ("trust", "mine.pkl", "success") in [(e["action"], e["target"], e["outcome"]) for e in audit]


def test_trusted_models_in_config(make_app, model_dir):
    from app.model_files import sha256_of

    digest = sha256_of(model_dir / "iris_classifier.joblib")
    app = make_app(security={"allow_unverified_pickles": False, "trusted_models": [digest]})
    assert app.test_client().post("/api/v1/predict/iris_classifier", json={"features": ROW}).status_code == 200


def test_skops_loads_without_trust(strict, model_dir):
    write_skops_classifier(model_dir)
    load = {"model_name": "safe", "model_path": "iris_skops.skops"}
    assert strict.test_client().post("/api/v1/models/load", json=load).status_code == 200


def test_trust_refuses_paths_outside_the_model_directory(strict):
    client = strict.test_client()
    assert_error(client.post("/api/v1/models/trust", json={"model_path": "../../etc/passwd"}), 400)
    assert_error(client.post("/api/v1/models/trust", json={"model_path": "/etc/passwd"}), 400)
    assert_error(client.post("/api/v1/models/trust", json={"model_path": "nope.pkl"}), 404)
    assert_error(client.post("/api/v1/models/trust", json={}), 422)
    assert_error(client.post("/api/v1/models/trust", data="x", content_type="text/plain"), 415)


def test_the_openapi_document_is_open(app):
    assert AccessTable(app).declared("api-docs.openapi_json", "GET") == OPEN


def test_rate_limit_rejections_and_failed_loads_are_counted_in_metrics(make_app, model_dir):
    client = make_app(security={"rate_limits": {"predict": "1/minute"}}).test_client()
    assert client.post("/api/v1/predict", json={"features": ROW}).status_code == 200
    assert_error(client.post("/api/v1/predict/iris_xgboost", json={"features": ROW}), 429)
    (model_dir / "broken.joblib").write_bytes(b"not a pickle")
    assert_error(client.post("/api/v1/models/load", json={"model_name": "b", "model_path": "broken.joblib"}), 422)
    text = client.get("/api/v1/metrics").get_data(as_text=True)
    assert 'rate_limit_rejections_total{endpoint="/api/v1/predict/{model_name}"} 1.0' in text
    assert 'model_loads_total{model_name="unknown",status="error"} 1.0' in text


def test_the_spec_examples_with_credentials_work_while_auth_is_off(client):
    """The spec's curl examples send X-API-Key / Bearer placeholders to an open development server."""
    for headers in ({"X-API-Key": "your-api-key"}, {"Authorization": "Bearer your-jwt-token"}):
        assert client.post("/api/v1/predict", json={"features": [1, 2, 3, 4]}, headers=headers).status_code == 200
