"""flask-smorest's Api and Blueprint, subclassed once: our error body and our JSON body parser.

The routes of the Open Inference Protocol (``/v2``) answer errors in that
protocol's shape, ``{"error": "..."}``, from the same handler; a
validation error there is the protocol's 400 rather than a 422.

An Api is created per application by the factory (flask-smorest keeps one
spec per Api instance, and tests build many applications).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import orjson
from flask import g, request
from flask_smorest import Api, Blueprint
from webargs import core
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException, InternalServerError

from app.api.fields import CsvBody
from app.errors import BadRequest, ErrorSchema, is_v2_path

CSV = "text/csv"


class ModelServeApi(Api):
    """flask-smorest's Api with our error body: its own shape plus ``request_id``."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> tuple[dict[str, Any], int, dict[str, str]]:
        """flask-smorest's body, completed: a message always, the request id, and werkzeug's headers (``Allow``)."""
        if isinstance(error, InternalServerError):
            # Flask has logged the traceback (logger "app", with the request id); the client gets none of it.
            error = InternalServerError()
        payload, status, headers = super().handle_http_exception(error)
        if "message" not in payload:
            payload["message"] = _summary(payload.get("errors")) or error.description or error.name
        payload["request_id"] = g.get("request_id", "-")
        extra = {name: value for name, value in error.get_headers() if name.lower() != "content-type"}
        if is_v2_path(request.path):
            return {"error": payload["message"]}, 400 if status == 422 else status, {**extra, **(headers or {})}
        return payload, status, {**extra, **(headers or {})}


class JsonObject(dict):
    """A JSON object parsed from a request body, whether the body's text holds a JSON boolean, and
    whether its numbers are all finite as float64.

    Where it holds no boolean, no value in the object is one either, which lets
    the features be converted without checking each value's type; where orjson
    parsed it (it refuses NaN, infinities and numbers beyond float64), no number
    needs checking for finiteness (:func:`app.features.check_rows`).
    """

    __slots__ = ("booleans_possible", "numbers_finite")


class JsonBodyParser(FlaskParser):
    """webargs' Flask parser reading JSON bodies with orjson.

    orjson refuses what the JSON standard refuses, NaN and Infinity included;
    such a body is read again by the standard library, which takes them, so
    that a NaN feature is a 422 naming the feature rather than a 400.
    """

    def load_json(self, req: Any, schema: Any) -> Any:
        if req.mimetype == CSV:
            return csv_body(req)
        if not core.is_json(req.mimetype):
            return core.missing
        data = req.get_data(cache=True)
        if not data:
            return core.missing
        return self.parse_body(data)

    def parse_body(self, data: bytes) -> Any:
        """JSON text as Python, a JSON object as a :class:`JsonObject`; 400 when it is no JSON."""
        numbers_finite = True
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            numbers_finite = False  # the standard library takes NaN, Infinity, 1e400 and integers of any size
            try:
                parsed = json.loads(data)
            except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                raise BadRequest("Invalid JSON body.", errors={"json": ["Invalid JSON body."]}) from None
        if type(parsed) is not dict:
            return parsed
        found = JsonObject(parsed)
        found.booleans_possible = b"true" in data or b"false" in data
        found.numbers_finite = numbers_finite
        return found


def csv_body(req: Any) -> Any:
    """A ``text/csv`` body (``/batch-predict`` only, see :mod:`app.hygiene`) as the JSON body it stands for.

    The header names the columns; each line becomes an object of cell texts, which
    the model's signature types (:mod:`app.model_input`). The body's other fields
    come from the query string: ``model_name``, ``return_probabilities``.
    """
    try:
        text = req.get_data(cache=True).decode("utf-8-sig")
        lines = list(csv.reader(io.StringIO(text)))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BadRequest(f"Invalid CSV body: {exc}", errors={"body": [f"Invalid CSV body: {exc}"]}) from None
    lines = [line for line in lines if line]
    if not lines:
        return core.missing
    header = [name.strip() for name in lines[0]]
    rows = CsvBody()
    for number, line in enumerate(lines[1:], start=1):
        if len(line) != len(header):
            message = f"CSV line {number + 1} has {len(line)} fields for {len(header)} columns."
            raise BadRequest(message, errors={"body": [message]})
        rows.append(dict(zip(header, line, strict=True)))
    found = JsonObject(features=rows)
    for name, value in req.args.items():
        found[name] = {"true": True, "false": False}.get(value, value) if name == "return_probabilities" else value
    found.booleans_possible = True
    found.numbers_finite = True  # cells are text, typed later by the model's signature: no number yet
    return found


class ModelServeBlueprint(Blueprint):
    """flask-smorest's Blueprint, parsing JSON bodies with :class:`JsonBodyParser`."""

    ARGUMENTS_PARSER = JsonBodyParser()


def _summary(errors: Any, prefix: str = "") -> str | None:
    """First validation message with its location, e.g. ``json.features: Not a valid list.``."""
    if isinstance(errors, dict) and errors:
        key, inner = next(iter(errors.items()))
        return _summary(inner, f"{prefix}{key}.")
    if isinstance(errors, list) and errors:
        return _summary(errors[0], prefix)
    if isinstance(errors, str):
        return f"{prefix.rstrip('.')}: {errors}" if prefix else errors
    return None
