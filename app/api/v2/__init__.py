"""The Open Inference Protocol (V2), REST: :mod:`.resources` (the views), :mod:`.schemas`,
:mod:`.tensors` (tensors to arrays and back), :mod:`.framing` (the binary extension) and
:mod:`.infer` (tensors to the shared prediction path)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


def register(api: Any) -> None:
    """The V2 error body as response components, then the blueprint (whose views refer to them)."""
    from app.api.v2.resources import V2_ERRORS, blp
    from app.api.v2.schemas import V2ErrorSchema, tensor_data_openapi

    api.ma_plugin.converter.add_attribute_function(tensor_data_openapi)
    api.spec.components.schema("V2Error", schema=V2ErrorSchema)
    for code, name in V2_ERRORS.items():
        description = HTTPStatus(int(code)).phrase
        api.spec.components.response(
            name, {"description": description, "content": {"application/json": {"schema": "V2Error"}}}
        )
    api.register_blueprint(blp)
