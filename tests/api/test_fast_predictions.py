"""The WSGI fast lane answers exactly as the Flask views do, and hands Flask everything else.

Each case is sent to two applications built from one configuration, one with
``api.fast_predictions`` on and one with it off; status, headers and JSON body
must agree (but for what differs between any two requests: ids, times).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from app.security.auth import new_api_key
from tests.factories import IRIS_FEATURES, KNOWN_ROWS, write_sklearn_regressor
from tests.helpers import assert_error, captured_json_log

ROW = KNOWN_ROWS["setosa"]
KEY, KEY_SHA = new_api_key()
ADMIN, ADMIN_SHA = new_api_key()
SECURITY = {
    "api_keys": [
        {"name": "client", "sha256": KEY_SHA, "roles": ["predict"]},
        {"name": "ops", "sha256": ADMIN_SHA, "roles": ["admin"]},
    ],
    "rate_limit_enabled": True,
    "rate_limits": {"predict": "50/minute", "batch_predict": "50/minute"},
    "enable_cors": True,
    "cors_origins": ["http://localhost:3000"],
}
#: Headers whose values differ between any two requests.
VOLATILE_HEADERS = {"X-Request-ID", "Content-Length", "X-RateLimit-Reset", "Retry-After"}
VOLATILE_FIELDS = {"timestamp", "prediction_time", "request_id"}

#: Enough rows for the vectorised paths (more than 8), every class among them, ints and floats.
MANY_ROWS = [list(row) for row in KNOWN_ROWS.values()] * 7 + [[5, 3, 1, 0], [6.7, 3.0, 5.2, 2.3e0]]
NAMED = dict(zip(reversed(IRIS_FEATURES), reversed(KNOWN_ROWS["virginica"]), strict=True))
CASES = [
    pytest.param("/api/v1/predict", {"features": ROW}, id="default-model"),
    pytest.param("/api/v1/predict", {"features": ROW, "model_name": "iris_xgboost"}, id="body-model"),
    pytest.param("/api/v1/predict/iris_classifier", {"features": ROW}, id="path-model"),
    pytest.param("/api/v1/predict/iris_xgboost", {"features": KNOWN_ROWS["virginica"]}, id="xgboost"),
    pytest.param("/api/v1/predict/iris_classifier", {"features": NAMED}, id="named-features"),
    pytest.param("/api/v1/predict", {"features": [5, 3, 1, 0]}, id="integers"),
    pytest.param("/api/v1/predict", {"features": ROW, "return_probabilities": False}, id="no-probabilities"),
    pytest.param("/api/v1/predict", {"features": ROW, "return_probabilities": None}, id="probabilities-null"),
    pytest.param("/api/v1/predict/petal", {"features": [5.1, 3.5, 1.4]}, id="regressor"),
    pytest.param("/api/v1/batch-predict", {"features": list(KNOWN_ROWS.values())}, id="batch"),
    pytest.param(
        "/api/v1/batch-predict",
        {"features": [ROW] * 3, "model_name": "iris_xgboost", "return_probabilities": True},
        id="batch-probabilities",
    ),
    pytest.param("/api/v1/batch-predict", {"features": [[5.1, 3.5, 1.4]], "model_name": "petal"}, id="batch-regressor"),
    pytest.param("/api/v1/batch-predict", {"features": MANY_ROWS}, id="batch-many-rows"),
    pytest.param(
        "/api/v1/batch-predict",
        {"features": MANY_ROWS, "model_name": "iris_xgboost", "return_probabilities": True},
        id="batch-many-rows-probabilities",
    ),
    pytest.param(
        "/api/v1/batch-predict",
        {"features": [r[:3] for r in MANY_ROWS], "model_name": "petal", "return_probabilities": True},
        id="batch-many-rows-regressor",
    ),
    pytest.param("/api/v1/predict", {"features": [1e308] * 4}, id="overflow-422"),
    pytest.param("/api/v1/predict", {"features": ROW[:3]}, id="wrong-count-422"),
    pytest.param("/api/v1/predict", {"features": [True, 1, 2, 3]}, id="boolean-422"),
    pytest.param("/api/v1/predict", {"features": ROW, "extra": 1}, id="unknown-field-422"),
    pytest.param("/api/v1/predict", {"features": ROW, "model_name": "nope"}, id="unknown-model-404"),
    pytest.param("/api/v1/predict", {"features": ROW, "return_probabilities": "yes"}, id="truthy-string"),
    pytest.param("/api/v1/batch-predict", {"features": [ROW, {"sepal_length": 1}]}, id="batch-mixed-rows-422"),
]


@pytest.fixture
def pair(make_app, model_dir):
    """Two applications over one model directory: the fast lane on, and off."""
    write_sklearn_regressor(model_dir, name="petal")
    return {fast: counting(make_app(security=SECURITY, api={"fast_predictions": fast})) for fast in (True, False)}


def counting(app: Any) -> Any:
    """Count the requests the fast lane hands to Flask (``app.flask_answered``)."""
    app.flask_answered = 0
    lane = app.wsgi_app
    downstream = lane.downstream

    def count(environ: dict[str, Any], start_response: Any) -> Any:
        app.flask_answered += 1
        return downstream(environ, start_response)

    lane.downstream = count
    return app


def send(app: Any, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    data = body if isinstance(body, str) else json.dumps(body)
    return app.test_client().post(
        path, data=data, headers={"Content-Type": "application/json", "X-API-Key": KEY, **(headers or {})}
    )


def comparable(response: Any) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE_HEADERS}
    return response.status_code, headers, strip(response.get_json())


def strip(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: strip(v) for k, v in body.items() if k not in VOLATILE_FIELDS}
    if isinstance(body, list):
        return [strip(v) for v in body]
    return body


@pytest.mark.parametrize(("path", "body"), CASES)
def test_the_fast_lane_answers_as_flask_does(pair, path, body):
    fast, flask = (send(pair[mode], path, body) for mode in (True, False))
    assert comparable(fast) == comparable(flask)
    if fast.status_code >= 400:
        assert_error(fast, fast.status_code)


def test_well_formed_predictions_do_not_reach_flask(pair):
    app = pair[True]
    for path, body in [("/api/v1/predict", {"features": ROW}), ("/api/v1/batch-predict", {"features": [ROW]})]:
        assert send(app, path, body).status_code == 200
    assert app.flask_answered == 0
    assert send(app, "/api/v1/predict", {"features": "bad"}).status_code == 422
    assert app.flask_answered == 1


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": "http://localhost:3000"}, id="cors-origin"),
        pytest.param({"X-API-Key": "not-a-key"}, id="bad-key-401"),
        pytest.param({"X-API-Key": ""}, id="empty-key-401"),
        pytest.param({"Content-Type": "application/json; charset=latin-1"}, id="other-charset"),
    ],
)
def test_other_requests_are_answered_by_flask_alike(pair, headers):
    fast, flask = (send(pair[mode], "/api/v1/predict", {"features": ROW}, headers) for mode in (True, False))
    assert comparable(fast) == comparable(flask)
    assert pair[True].flask_answered == 1


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param('{"features": [NaN, 1, 2, 3]}', id="nan-422"),
        pytest.param('{"features": [1e999, 1, 2, 3]}', id="huge-422"),
        pytest.param('{"features": [5.1, 3.5,', id="malformed-400"),
        pytest.param('{"features": [' + "1" * 400 + ", 1, 2, 3]}", id="huge-integer-422"),
    ],
)
def test_json_that_orjson_refuses_gets_flasks_answer(pair, raw):
    fast, flask = (send(pair[mode], "/api/v1/predict", raw) for mode in (True, False))
    assert comparable(fast) == comparable(flask)
    assert fast.status_code in (400, 422)


def rows_text(*rows: str) -> str:
    return '{"features": [' + ", ".join(rows) + "]}"


GOOD = "[5.1, 3.5, 1.4, 0.2]"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(rows_text(GOOD, '[5.1, "3.5", 1.4, 0.2]'), id="string"),
        pytest.param(rows_text(GOOD, "[5.1, true, 1.4, 0.2]"), id="boolean"),
        pytest.param(rows_text(GOOD, "[5.1, null, 1.4, 0.2]"), id="null"),
        pytest.param(rows_text(GOOD, "[[5.1], 3.5, 1.4, 0.2]"), id="nested"),
        pytest.param(rows_text("[5.1, 3.5, 1.4]", "[0.2, 5.1, 3.5, 1.4, 0.2]"), id="ragged-same-total"),
        pytest.param(rows_text(GOOD, "[]"), id="empty-row"),
        pytest.param(rows_text(GOOD, "5.1"), id="number-for-a-row"),
        pytest.param(rows_text(GOOD, '{"sepal_length": 5.1}'), id="object-for-a-row"),
        pytest.param(rows_text(GOOD, "[5.1, 3.5, 1.4, 1e999]"), id="infinite"),
        pytest.param('{"features": [' + GOOD + '], "features": [[1, 2, 3, 4]]}', id="duplicate-key"),
    ],
)
def test_batches_that_are_not_a_matrix_of_numbers_get_flasks_answer(pair, raw):
    fast, flask = (send(pair[mode], "/api/v1/batch-predict", raw) for mode in (True, False))
    assert comparable(fast) == comparable(flask)
    assert pair[True].flask_answered == 1


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(rows_text(GOOD, "[6.3,2.9,5.6,1.8]", "[ 5 , 3 , 1 , 0 ]"), id="spacing"),
        pytest.param(rows_text(GOOD, "[6.3e0, 2.9E+0, 56e-1, -1.8]"), id="exponents-and-signs"),
        pytest.param(rows_text(GOOD).replace("{", '{"return_probabilities": true, ', 1), id="with-a-literal"),
        pytest.param(rows_text(GOOD).replace("{", '{"model_name": "iris_xgboost",', 1), id="named-model"),
    ],
)
def test_batches_of_numbers_are_answered_by_the_lane_as_by_flask(pair, raw):
    fast, flask = (send(pair[mode], "/api/v1/batch-predict", raw) for mode in (True, False))
    assert fast.status_code == 200
    assert comparable(fast) == comparable(flask)
    assert pair[True].flask_answered == 0


@pytest.fixture
def json_log(pair):
    """The JSON lines the applications log while the test runs."""
    with captured_json_log() as lines:
        yield lines


def test_admin_keys_predict_too_and_the_user_is_logged(pair, json_log):
    fast = send(pair[True], "/api/v1/predict", {"features": ROW}, {"X-API-Key": ADMIN, "X-Request-ID": "fast-1"})
    assert fast.status_code == 200 and pair[True].flask_answered == 0
    [line] = [e for e in json_log() if e["message"] == "Prediction completed" and e["request_id"] == "fast-1"]
    assert line["user_id"] == "ops" and line["model_name"] == "iris_classifier"


def test_rate_limits_are_shared_with_flask_and_refused_in_its_shape(make_app):
    app = counting(make_app(security={**SECURITY, "rate_limits": {"predict": "3/minute"}}))
    remaining = []
    for body in ({"features": ROW}, {"features": "bad"}, {"features": ROW}):  # fast, Flask, fast
        remaining.append(send(app, "/api/v1/predict", body).headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    refused = send(app, "/api/v1/predict", {"features": ROW})
    assert_error(refused, 429)
    assert refused.headers["X-RateLimit-Limit"] == "3" and int(refused.headers["Retry-After"]) > 0


def test_request_metrics_count_fast_answers(pair):
    app = pair[True]
    for _ in range(3):
        send(app, "/api/v1/predict/iris_classifier", {"features": ROW})
    text = app.test_client().get("/api/v1/metrics").get_data(as_text=True)
    assert 'http_requests_total{endpoint="/api/v1/predict/{model_name}",method="POST",status="200"} 3.0' in text
    assert 'model_predictions_total{model_name="iris_classifier",status="success"} 3.0' in text


def test_the_lane_can_be_turned_off(pair):
    assert send(pair[False], "/api/v1/predict", {"features": ROW}).status_code == 200
    assert pair[False].flask_answered == 1


def test_a_group_with_several_limits_leaves_predictions_to_flask(make_app, caplog, monkeypatch):
    limits = {"predict": "50/minute;500/hour", "batch_predict": "50/minute"}
    app = counting(make_app(security={**SECURITY, "rate_limits": limits}))
    lane_log = logging.getLogger("app.fast_predict")  # the app's loggers do not propagate to caplog's
    monkeypatch.setattr(lane_log, "handlers", [caplog.handler])
    caplog.set_level(logging.INFO, logger=lane_log.name)
    for _ in range(2):
        response = send(app, "/api/v1/predict", {"features": ROW})
        assert response.status_code == 200 and response.headers["X-RateLimit-Limit"]
    assert app.flask_answered == 2
    assert "prediction fast lane off" in caplog.text and "not a single limit" in caplog.text


@pytest.mark.parametrize("fast", [True, False], ids=["fast-lane", "flask"])
def test_a_failing_rate_limit_storage_is_a_json_500(make_app, monkeypatch, fast):
    app = make_app(security=SECURITY, api={"fast_predictions": fast})
    storage = app.extensions["modelserve_limiter"].storage

    def down(*args: Any, **kwargs: Any) -> int:
        raise ConnectionError("storage unreachable")

    monkeypatch.setattr(storage, "incr", down)
    assert_error(send(app, "/api/v1/predict", {"features": ROW}), 500)


def test_an_unexpected_error_before_the_answer_is_left_to_flask(pair, monkeypatch):
    app = pair[True]
    monkeypatch.setattr(app.extensions["modelserve"].registry, "get", lambda name: 1 / 0)
    assert_error(send(app, "/api/v1/predict", {"features": ROW}), 500)
    assert app.flask_answered == 1
