"""The binary tensor data extension's framing: a JSON header, then raw tensor bytes.

A request (or response) whose ``Inference-Header-Content-Length`` header is
``n`` has its JSON in the body's first ``n`` bytes and the tensors' bytes
after them, in the order of the inputs (outputs) whose
``parameters.binary_data_size`` say how many each takes. The blueprint's
parser reads the JSON part through the usual ``@blp.arguments`` schema; the
view takes the bytes after it with :func:`binary_part`.
"""

from __future__ import annotations

from typing import Any

from flask import Request
from webargs import core

from app.errors import BadRequest
from app.extensions import JsonBodyParser, ModelServeBlueprint

HEADER_LENGTH = "Inference-Header-Content-Length"
#: The header as WSGI names it: read from the environ, as every request asks whether it was sent.
_ENVIRON_KEY = "HTTP_INFERENCE_HEADER_CONTENT_LENGTH"


def _header_length(req: Request, size: int) -> int | None:
    value = req.environ.get(_ENVIRON_KEY)
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        length = -1
    if not 0 <= length <= size:
        raise BadRequest(f"{HEADER_LENGTH} must be a number of bytes from 0 to the body's {size}; got {value!r}.")
    return length


def binary_part(req: Request) -> memoryview:
    """The body's bytes after the JSON header (empty without the extension)."""
    if _ENVIRON_KEY not in req.environ:
        return memoryview(b"")
    data = req.get_data(cache=True)
    length = _header_length(req, len(data))
    return memoryview(data)[length:] if length is not None else memoryview(b"")


class V2BodyParser(JsonBodyParser):
    """The JSON parser of ``/api/v1``, reading only the JSON header of a binary-extension body,
    and whatever content type a V2 client declared (:func:`app.hygiene.check_body` let it in)."""

    def load_json(self, req: Any, schema: Any) -> Any:
        data = req.get_data(cache=True)
        length = _header_length(req, len(data))
        head = data[:length] if length is not None else data
        return self.parse_body(head) if head else core.missing


class V2Blueprint(ModelServeBlueprint):
    ARGUMENTS_PARSER = V2BodyParser()
