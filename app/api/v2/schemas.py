"""Request and response bodies of the Open Inference Protocol (V2) REST endpoints."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.v2.tensors import DATATYPES, Inputs
from app.validation import StrictBoolean

#: The bounds of a request input, the same for its documented schema and for :func:`plain_input`.
NAME_LENGTH = (1, 256)
DATATYPE_LENGTH = (1, 16)
MAX_DIMENSIONS = 8
MAX_DIMENSION = 2**31
MAX_INPUTS = 1000
INPUT_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.3, 2.9, 5.6, 1.8]]
INFER_EXAMPLE = {
    "id": "42",
    "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": IRIS_ROWS}],
    "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
}


class _Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class V2ErrorSchema(ma.Schema):
    """The protocol's error body (every error of a ``/v2`` route)."""

    error = ma.fields.String(required=True, metadata={"example": "input 'input-0': shape [1, 4] needs 4 values"})


class Parameters(ma.fields.Dict):
    """The protocol's free-form ``parameters`` object."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(keys=ma.fields.String(), load_default=None, allow_none=True, **kwargs)


class TensorData(ma.fields.Field):
    """A tensor's ``data``: a list, flat or nested, checked value by value by :mod:`app.api.v2.tensors`
    (walking it here as marshmallow fields would cost as much as the prediction)."""

    default_error_messages = {"invalid": "Must be a list (flat or nested row-major)."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if type(value) is not list:
            raise self.make_error("invalid")
        return value


def tensor_data_openapi(converter: Any, field: ma.fields.Field, **_: Any) -> dict[str, Any]:
    """apispec attribute function: document :class:`TensorData` as the JSON it accepts."""
    if isinstance(field, TensorData):
        return {"type": "array", "items": {}}
    return {}


class RequestInputSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    name = ma.fields.String(required=True, validate=ma.validate.Length(*NAME_LENGTH), metadata={"example": "input-0"})
    shape = ma.fields.List(
        ma.fields.Integer(strict=True, validate=ma.validate.Range(0, MAX_DIMENSION)),
        required=True,
        validate=ma.validate.Length(0, MAX_DIMENSIONS),
        metadata={"example": [1, 4]},
    )
    datatype = ma.fields.String(
        required=True,
        validate=ma.validate.Length(*DATATYPE_LENGTH),
        metadata={"description": f"One of {', '.join(DATATYPES)}.", "example": "FP64"},
    )
    parameters = Parameters(
        metadata={"description": "binary_data_size: the tensor's bytes follow the JSON header (no 'data')."}
    )
    data = TensorData(
        metadata={
            "description": "The values, row-major: flat or nested lists (strings for BYTES).",
            "example": [[5.1, 3.5, 1.4, 0.2]],
        }
    )


def plain_input(spec: Any) -> bool:
    """Whether :class:`RequestInputSchema` would load ``spec`` as it is: the common input, checked in one
    pass of type tests. False does not mean it is wrong, only that the schema is to judge it."""
    if type(spec) is not dict or not spec.keys() <= INPUT_KEYS:
        return False
    name, shape, datatype = spec.get("name"), spec.get("shape"), spec.get("datatype")
    parameters = spec.get("parameters")
    return (
        type(name) is str
        and NAME_LENGTH[0] <= len(name) <= NAME_LENGTH[1]
        and type(datatype) is str
        and DATATYPE_LENGTH[0] <= len(datatype) <= DATATYPE_LENGTH[1]
        and type(shape) is list
        and len(shape) <= MAX_DIMENSIONS
        and all(type(n) is int and 0 <= n <= MAX_DIMENSION for n in shape)
        and (parameters is None or (type(parameters) is dict and all(type(k) is str for k in parameters)))
        and ("data" not in spec or type(spec["data"]) is list)
    )


class InputTensors(ma.fields.List):
    """The request's ``inputs``: documented, and where in doubt loaded, as a list of :class:`RequestInputSchema`.

    Inputs that :func:`plain_input` accepts, as nearly every request's are, are taken as they are: the
    nested schema's work, a field at a time for each input, would cost more than the prediction. Any
    other list goes through the nested schema, whose messages name what is wrong. Loads as
    :class:`~app.api.v2.tensors.Inputs`, which remembers whether the body can hold a boolean.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(ma.fields.Nested(RequestInputSchema), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Inputs:
        if type(value) is not list or not all(map(plain_input, value)):
            value = super()._deserialize(value, attr, data, **kwargs)
        return Inputs(value, getattr(data, "booleans_possible", True))


class RequestOutputSchema(_Strict):
    name = ma.fields.String(required=True, metadata={"description": "predict or predict_proba."})
    parameters = Parameters(metadata={"description": "binary_data: true for this output's bytes after the JSON."})


class InferenceRequestSchema(_Strict):
    id = ma.fields.String(metadata={"description": "Echoed in the response."})
    parameters = Parameters(
        metadata={
            "description": "return_probabilities: true adds predict_proba; binary_data_output: true sends every "
            "output as binary data."
        }
    )
    inputs = InputTensors(required=True, validate=ma.validate.Length(1, MAX_INPUTS))
    outputs = ma.fields.List(ma.fields.Nested(RequestOutputSchema), validate=ma.validate.Length(0, 2))


class ResponseOutputSchema(ma.Schema):
    name = ma.fields.String(required=True, metadata={"example": "predict"})
    shape = ma.fields.List(ma.fields.Integer(), required=True, metadata={"example": [2, 1]})
    datatype = ma.fields.String(required=True, metadata={"example": "INT64"})
    parameters = ma.fields.Dict()
    data = ma.fields.List(ma.fields.Raw(), metadata={"example": [0, 2]})


class InferenceResponseSchema(ma.Schema):
    model_name = ma.fields.String(required=True, metadata={"example": "iris_classifier"})
    model_version = ma.fields.String(metadata={"example": "1"})
    id = ma.fields.String(metadata={"example": "42"})
    parameters = ma.fields.Dict()
    outputs = ma.fields.List(ma.fields.Nested(ResponseOutputSchema), required=True)


class ServerMetadataSchema(ma.Schema):
    name = ma.fields.String(required=True, metadata={"example": "modelserve"})
    version = ma.fields.String(required=True, metadata={"example": "0.1.0"})
    extensions = ma.fields.List(ma.fields.String(), required=True, metadata={"example": ["binary_tensor_data"]})


class LiveSchema(ma.Schema):
    live = ma.fields.Boolean(required=True)


class ReadySchema(ma.Schema):
    ready = ma.fields.Boolean(required=True)


class ModelReadySchema(ReadySchema):
    name = ma.fields.String(required=True, metadata={"example": "iris_classifier"})
    version = ma.fields.String(metadata={"example": "1"})


class MetadataTensorSchema(ma.Schema):
    name = ma.fields.String(required=True, metadata={"example": "input-0"})
    datatype = ma.fields.String(required=True, metadata={"example": "FP64"})
    shape = ma.fields.List(ma.fields.Integer(), required=True, metadata={"example": [-1, 4]})
    parameters = ma.fields.Dict()


class ModelMetadataSchema(ma.Schema):
    name = ma.fields.String(required=True, metadata={"example": "iris_classifier"})
    versions = ma.fields.List(ma.fields.String(), required=True, metadata={"example": ["1"]})
    platform = ma.fields.String(required=True, metadata={"example": "sklearn"})
    inputs = ma.fields.List(ma.fields.Nested(MetadataTensorSchema), required=True)
    outputs = ma.fields.List(ma.fields.Nested(MetadataTensorSchema), required=True)
    parameters = ma.fields.Dict()


class RepositoryIndexRequestSchema(_Strict):
    ready = StrictBoolean(load_default=False, metadata={"description": "Only the models that are ready."})


class RepositoryModelSchema(ma.Schema):
    name = ma.fields.String(required=True, metadata={"example": "iris_classifier"})
    version = ma.fields.String(metadata={"example": "1"})
    state = ma.fields.String(metadata={"example": "READY"})
    reason = ma.fields.String(metadata={"example": ""})


class RepositoryLoadRequestSchema(_Strict):
    parameters = Parameters(
        metadata={
            "description": "model_path (and model_type): the file in the model directory to load as a new "
            "version; without it, the model's current file is loaded again."
        }
    )


class RepositoryUnloadRequestSchema(_Strict):
    parameters = Parameters(metadata={"description": "Accepted and ignored (unload_dependents)."})


class EmptySchema(ma.Schema):
    """The repository extension's success body: an empty object."""
