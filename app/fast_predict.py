"""The prediction endpoints' fast lane: a well-formed prediction answered without Flask's request machinery.

A single-row prediction's own work is tens of microseconds; Flask's request
context, webargs and marshmallow, flask-limiter's bookkeeping and the response
schema cost several times that. This WSGI layer sits in front of the Flask
application and answers ``POST /api/v1/predict``, ``/api/v1/predict/{name}``
and ``/api/v1/batch-predict`` itself when the request is one it can answer
exactly as the Flask views would, with the same stack: the API key and role
check, the rate limit (same storage, same keys, same headers), the registry,
the model through :mod:`app.inference` (metrics and the "Prediction completed"
log line), the request id, CORS and ``nosniff`` headers, the request metrics.

Everything else goes to Flask untouched, which is also how every error keeps
its one shape: the lane first checks, without side effects, that the request
is well-formed (content type and length, JSON that orjson parses, known fields,
numbers only, the model's feature count, a valid API key with the role, a model
that resolves); any doubt hands the request, body restored, to Flask. After
that, only three things can happen: a breached rate limit (handed to Flask,
which refuses it with its 429: with fixed windows the extra count changes
nothing), a model that overflows (422) or raises (500), which are answered
here in the error shape of :mod:`app.errors`. Features are checked and
converted as one array instead of field by field (:mod:`app.fast_features`),
answers are encoded as bytes (:mod:`app.fast_encoding`).
``api.fast_predictions: false`` turns the lane off.
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import orjson
from flask import Flask
from werkzeug.exceptions import default_exceptions
from werkzeug.http import HTTP_STATUS_CODES

from app.errors import ApiError
from app.extensions import _summary
from app.fast_encoding import SORTED, batch_body, single_body
from app.fast_features import Fallback, batch_matrix, row_matrix
from app.inference import interpret, recorded_run
from app.observability import METRICS_EXTENSION, REQUEST_ID_HEADER, WELL_FORMED_ID, new_request_id
from app.validation import is_valid_name

log = logging.getLogger(__name__)
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
PREFIX = "/api/v1/"
SINGLE_FIELDS = frozenset({"features", "model_name", "return_probabilities"})
PATH_FIELDS = frozenset({"features", "return_probabilities"})
BATCH_FIELDS = SINGLE_FIELDS
#: The routes the lane answers: path -> (Flask endpoint, route template for metrics).
ROUTES = {
    "predict": ("predictions.Predict", "/api/v1/predict"),
    "predict_path": ("predictions.PredictWithModel", "/api/v1/predict/{model_name}"),
    "batch": ("predictions.BatchPredict", "/api/v1/batch-predict"),
}
_JSON_TYPE = re.compile(r"^application/json\s*(;\s*charset=\"?utf-8\"?\s*)?$", re.IGNORECASE)


class FastPredictions:
    """WSGI middleware: the prediction endpoints' common case, else the wrapped Flask application."""

    def __init__(self, app: Flask, downstream: WSGIApp):
        self.app = app
        self.downstream = downstream
        self._setup: _Setup | None = None
        self._setup_failed = False

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "POST" or not path.startswith(PREFIX) or self._setup_failed:
            return self.downstream(environ, start_response)
        route, name = _route(path[len(PREFIX) :])
        if route is None:
            return self.downstream(environ, start_response)
        setup = self._setup or self._prepare()
        if setup is None:
            return self.downstream(environ, start_response)
        started = time.perf_counter()
        body: bytes | None = None
        try:
            body = _read_body(environ, setup.max_request_size)
            request = setup.check(route, name, environ, body)
        except Exception as exc:  # Fallback, or anything unexpected: Flask answers (and reports) it
            if not isinstance(exc, Fallback):
                log.debug("prediction fast lane: %r; Flask answers", exc)
            if body is not None:
                environ["wsgi.input"] = io.BytesIO(body)
            return self.downstream(environ, start_response)
        return setup.answer(request, environ, start_response, started, self.downstream, body)

    def _prepare(self) -> _Setup | None:
        try:
            self._setup = _Setup(self.app)
        except Fallback as reason:
            log.info("prediction fast lane off: %s", reason)
            self._setup_failed = True
            return None
        except Exception:
            log.exception("prediction fast lane off: it could not read the application's settings")
            self._setup_failed = True
            return None
        return self._setup


def _route(rest: str) -> tuple[str | None, str | None]:
    if rest == "predict":
        return "predict", None
    if rest == "batch-predict":
        return "batch", None
    if rest.startswith("predict/"):
        name = rest[len("predict/") :]
        return ("predict_path", name) if is_valid_name(name) else (None, None)
    return None, None


def _read_body(environ: dict[str, Any], max_size: int) -> bytes:
    if environ.get("QUERY_STRING") or environ.get("HTTP_TRANSFER_ENCODING") or environ.get("HTTP_ORIGIN"):
        raise Fallback
    if not _JSON_TYPE.match(environ.get("CONTENT_TYPE", "")):
        raise Fallback
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise Fallback from None
    if length <= 0 or length > max_size:
        raise Fallback
    body = environ["wsgi.input"].read(length)
    if len(body) != length:
        environ["wsgi.input"] = io.BytesIO(body)
        raise Fallback
    return body


class _Request:
    __slots__ = ("route", "model_name", "served", "X", "with_probabilities", "user_id", "limit_key", "request_id")

    def __init__(
        self,
        route: str,
        model_name: str,
        served: Any,
        X: np.ndarray,
        with_probabilities: bool,
        user_id: str | None,
        limit_key: str,
        request_id: str,
    ):
        self.route = route
        self.model_name = model_name
        self.served = served
        self.X = X
        self.with_probabilities = with_probabilities
        self.user_id = user_id
        self.limit_key = limit_key
        self.request_id = request_id


class _Setup:
    """What the lane needs from the application, read once on the first request it sees."""

    def __init__(self, app: Flask):
        from app.security.policy import RATE_ATTR, ROLE_ATTR, view_method
        from app.security.rate_limits import FixedWindowCounter

        settings = app.config["MODELSERVE"]
        if not settings["api"].get("fast_predictions", True):
            raise Fallback("api.fast_predictions is false")
        self.app = app
        self.max_request_size: int = settings["api"]["max_request_size"]
        self.registry = app.extensions["modelserve"].registry
        self.metrics = app.extensions.get(METRICS_EXTENSION)
        auth = app.extensions.get("modelserve_auth")
        if auth is None:
            raise Fallback("no access control registered")
        self.authenticator, self.enforce = auth
        self.key_header = "HTTP_" + self.authenticator.header.upper().replace("-", "_")
        self.has_keys = bool(self.authenticator.keys)
        self.roles: dict[str, str] = {}
        self.limits: dict[str, Any] = {}
        limiter = app.extensions.get("modelserve_limiter")
        with app.app_context():
            for route, (endpoint, _) in ROUTES.items():
                method = view_method(endpoint, "POST")
                self.roles[route] = getattr(method, ROLE_ATTR, None) or "admin"
                group = getattr(method, RATE_ATTR, None)
                if limiter is not None and group:
                    text = settings["security"]["rate_limits"][group]
                    try:
                        self.limits[route] = FixedWindowCounter(limiter, group, text)
                    except ValueError as exc:  # e.g. several limits in one group: Flask's Limiter counts them
                        raise Fallback(str(exc)) from None
        self.cors = _cors_headers(app)

    # --- phase 1: checks without side effects --------------------------------

    def check(self, route: str, path_name: str | None, environ: dict[str, Any], body: bytes) -> _Request:
        user_id = self._identify(environ, self.roles[route])
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise Fallback from None
        if type(data) is not dict:
            raise Fallback
        allowed = PATH_FIELDS if route == "predict_path" else SINGLE_FIELDS
        if not data.keys() <= allowed or "features" not in data:
            raise Fallback
        model_name = path_name or data.get("model_name", "default")
        if type(model_name) is not str or not is_valid_name(model_name):
            raise Fallback
        probabilities = data.get("return_probabilities", False if route == "batch" else None)
        if not (type(probabilities) is bool or (probabilities is None and route != "batch")):
            raise Fallback
        try:
            served = self.registry.get(model_name)
        except ApiError:
            raise Fallback from None
        if route == "batch":
            X = batch_matrix(served, data, body)
        else:
            X = row_matrix(served, data["features"])
        rid = environ.get("HTTP_X_REQUEST_ID", "")
        return _Request(
            route,
            model_name,
            served,
            X,
            probabilities is not False,
            user_id,
            f"user:{user_id}" if user_id else f"addr:{environ.get('REMOTE_ADDR') or '-'}",
            rid if rid and WELL_FORMED_ID.match(rid) else new_request_id(),
        )

    def _identify(self, environ: dict[str, Any], role: str) -> str | None:
        if not self.enforce:
            return None  # as the access policy: nothing to check credentials against
        key = environ.get(self.key_header)
        if key is None or not self.has_keys:
            raise Fallback  # no key (or a JWT): the full stack decides
        found = self.authenticator.identity_for_key(key)
        if found is None or not found.has(role):
            raise Fallback
        return found.user_id

    # --- phase 2: the answer ---------------------------------------------------

    def answer(
        self,
        request: _Request,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        started: float,
        downstream: WSGIApp,
        body: bytes,
    ) -> Iterable[bytes]:
        limit = self.limits.get(request.route)
        limit_headers: list[tuple[str, str]] = []
        if limit is not None:
            try:
                allowed, limit_headers = limit.hit(request.limit_key)
            except Exception:  # the storage failed (Redis down): Flask tries again and reports it
                allowed = False
            if not allowed:  # Flask refuses it, in its shape, with its headers and metrics
                environ["wsgi.input"] = io.BytesIO(body)
                return downstream(environ, start_response)
        headers: list[tuple[str, str]]
        served, X = request.served, request.X
        try:
            data = self._predict(request, served, X)
            status = 200
            headers = [("X-Model-Name", served.name), ("X-Model-Version", str(served.version))]
        except ApiError as error:
            status, headers = error.code, []
            data = orjson.dumps(_error(error.code, error.data, request.request_id), option=SORTED)
        except Exception:
            rid, where = request.request_id, environ.get("PATH_INFO")
            self.app.logger.error(f"Exception on {where} [POST]", exc_info=True, extra={"request_id": rid})
            status, headers = 500, []
            data = orjson.dumps(_error(500, {}, request.request_id), option=SORTED)
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            *headers,
            *limit_headers,
            *self.cors,
            ("X-Content-Type-Options", "nosniff"),
            (REQUEST_ID_HEADER, request.request_id),
        ]
        start_response(f"{status} {HTTP_STATUS_CODES[status]}", headers)
        if self.metrics is not None:
            self.metrics.observe_request("POST", ROUTES[request.route][1], status, time.perf_counter() - started)
        return [data]

    def _predict(self, request: _Request, served: Any, X: np.ndarray) -> bytes:
        """The view's body for the model's answer, counted and logged as in :func:`app.inference.predict_matrix`."""
        raw, proba, seconds = recorded_run(served, X, self.metrics, request.user_id, request.request_id)
        if request.route == "batch":
            outputs = interpret(served, raw, proba, seconds, labels=False)
            return batch_body(request.model_name, served, outputs, request.with_probabilities)
        outputs = interpret(served, raw, proba, seconds)
        return single_body(request.model_name, served, outputs, request.with_probabilities)


def _error(code: int, data: dict[str, Any], request_id: str) -> dict[str, Any]:
    """The error body of :class:`app.extensions.ModelServeApi` for an error raised by the model call."""
    payload: dict[str, Any] = {"code": code, "status": HTTP_STATUS_CODES[code]}
    if code != 500:  # as the Api: an unexpected error says no more than its name
        payload.update({key: data[key] for key in ("message", "errors") if key in data})
    if "message" not in payload:
        error = default_exceptions[code]()
        payload["message"] = _summary(payload.get("errors")) or error.description or error.name
    payload["request_id"] = request_id
    return payload


def _cors_headers(app: Flask) -> list[tuple[str, str]]:
    """The headers flask-cors adds to a POST without an Origin header (the lane hands those with one to Flask)."""
    from werkzeug.wrappers import Response

    functions = [f for f in app.after_request_funcs.get(None, []) if getattr(f, "__name__", "") == "cors_after_request"]
    if not app.config["MODELSERVE"]["security"]["enable_cors"]:
        return []
    if len(functions) != 1:
        raise Fallback("CORS is on but its after_request function was not found")
    with app.test_request_context("/api/v1/predict", method="POST"):
        response = Response()
        before = list(response.headers.items())
        response = functions[0](response)
    return [item for item in response.headers.items() if item not in before]
