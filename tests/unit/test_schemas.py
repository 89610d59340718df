"""The request schemas, loaded directly: what a body may hold and what is refused before any model runs."""

from __future__ import annotations

import math
from typing import Any

import marshmallow as ma
import pytest

from app.api.fields import MAX_BATCH_ROWS, MAX_FEATURES
from app.api.models.schemas import LoadModelRequestSchema, RollbackRequestSchema
from app.api.predictions.schemas import BatchPredictRequestSchema, PredictPathRequestSchema, PredictRequestSchema
from app.features import Features
from app.validation import NAME_MESSAGE

ROW = [5.1, 3.5, 1.4, 0.2]
NAMED = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def as_rows(features: Features) -> list[Any]:
    """The rows a schema loaded, as Python lists (named rows as sent)."""
    return features.matrix.tolist() if features.matrix is not None else list(features.rows)


def refused(schema: ma.Schema, body: dict[str, Any]) -> dict[str, Any]:
    """Load ``body``, expect a ValidationError, and return its messages."""
    with pytest.raises(ma.ValidationError) as caught:
        schema.load(body)
    return caught.value.messages


# --- features: what one row may be -------------------------------------------

GOOD_ROWS = [
    pytest.param(ROW, id="floats"),
    pytest.param([5, 3, 1, 0], id="ints"),
    pytest.param([5, 3.5, -1, 0.0], id="mixed"),
    pytest.param([1e308, -1e308, 5e-324, 0], id="extreme-finite"),
    pytest.param([1.0], id="one-feature"),
    pytest.param([0.5] * MAX_FEATURES, id="max-features"),
    pytest.param(NAMED, id="named"),
    pytest.param({"a": 1, "b": 2.5}, id="named-mixed"),
    # Typed values: whether they suit a column is the model's to say (app.model_input).
    pytest.param(["5.1", 3.5, 1.4, 0.2], id="string-item"),
    pytest.param([True, 3.5, None, 0.2], id="boolean-and-null-items"),
    pytest.param({"island": "Dream", "sex": None, "bill_length_mm": 39.1}, id="named-typed"),
]

BAD_ROWS = [
    pytest.param("invalid", "list of values", id="string"),
    pytest.param("5.1", "list of values", id="numeric-string"),
    pytest.param(5.1, "list of values", id="scalar"),
    pytest.param(True, "list of values", id="boolean-scalar"),
    pytest.param([[5.1, 3.5], [1.4, 0.2]], "got array", id="nested-list"),
    pytest.param([{"a": 1}], "got object", id="object-item"),
    pytest.param([], "at least one", id="empty-list"),
    pytest.param({}, "at least one", id="empty-object"),
    pytest.param([1.0] * (MAX_FEATURES + 1), f"at most {MAX_FEATURES}", id="too-many-features"),
    pytest.param({f"f{i}": 1.0 for i in range(MAX_FEATURES + 1)}, f"at most {MAX_FEATURES}", id="too-many-named"),
    pytest.param([math.nan, 3.5], "finite", id="nan"),
    pytest.param([math.inf, 3.5], "finite", id="inf"),
    pytest.param([-math.inf, 3.5], "finite", id="neg-inf"),
    pytest.param({"a": math.nan}, "finite", id="named-nan"),
    pytest.param({"a": [1]}, "got array", id="named-list"),
    pytest.param({"a": {"b": 1}}, "got object", id="named-object"),
]


@pytest.mark.parametrize("schema_class", [PredictRequestSchema, PredictPathRequestSchema])
@pytest.mark.parametrize("row", GOOD_ROWS)
def test_single_prediction_accepts_numbers(schema_class, row):
    assert as_rows(schema_class().load({"features": row})["features"]) == [row]


@pytest.mark.parametrize("schema_class", [PredictRequestSchema, PredictPathRequestSchema])
@pytest.mark.parametrize(("row", "text"), BAD_ROWS)
def test_single_prediction_refuses(schema_class, row, text):
    messages = refused(schema_class(), {"features": row})
    assert list(messages) == ["features"]
    assert text in str(messages["features"])


@pytest.mark.parametrize("schema_class", [PredictRequestSchema, BatchPredictRequestSchema])
def test_integer_too_large_for_a_float_is_refused(schema_class):
    row = [10**400, 3.5, 1.4, 0.2]
    body = {"features": [row] if schema_class is BatchPredictRequestSchema else row}
    assert "finite" in str(refused(schema_class(), body))


def test_error_names_the_bad_feature():
    assert refused(PredictRequestSchema(), {"features": [1, 2, [3]]}) == {
        "features": ["Feature 2 must be a number, string, boolean or null, got array."]
    }
    assert refused(PredictRequestSchema(), {"features": {"petal": math.inf}}) == {
        "features": ["Feature 'petal' must be a finite number, got inf."]
    }


# --- the rest of the single-prediction body ----------------------------------


def test_defaults():
    loaded = PredictRequestSchema().load({"features": ROW})
    assert as_rows(loaded.pop("features")) == [ROW]
    assert loaded == {"model_name": "default", "return_probabilities": None}
    loaded = PredictPathRequestSchema().load({"features": ROW})
    assert as_rows(loaded.pop("features")) == [ROW]
    assert loaded == {"return_probabilities": None}


@pytest.mark.parametrize("value", [True, False, None])
def test_return_probabilities(value):
    body = {"features": ROW, "return_probabilities": value}
    assert PredictRequestSchema().load(body)["return_probabilities"] is value


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({}, "features", "Missing data"),
        ({"features": None}, "features", "may not be null"),
        ({"features": ROW, "colour": "red"}, "colour", "Unknown field"),
        ({"features": ROW, "return_probabilities": "perhaps"}, "return_probabilities", "Not a valid boolean"),
        ({"features": ROW, "model_name": None}, "model_name", "may not be null"),
        ({"features": ROW, "model_name": 5}, "model_name", "Not a valid string"),
    ],
)
def test_single_prediction_body_refusals(body, field, text):
    messages = refused(PredictRequestSchema(), body)
    assert field in messages and text in str(messages[field])


def test_path_form_refuses_model_name_in_the_body():
    messages = refused(PredictPathRequestSchema(), {"features": ROW, "model_name": "iris_classifier"})
    assert messages == {"model_name": ["Unknown field."]}


# --- model names (shared by predict, batch and load) -------------------------

GOOD_NAMES = ["default", "iris_classifier", "iris-xgboost", "A1", "x", "a" * 64, "loader", "trusty", "Load"]
BAD_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("has space", id="space"),
    pytest.param("../x", id="dotdot"),
    pytest.param("a/b", id="slash"),
    pytest.param("a.b", id="dot"),
    pytest.param("a" * 65, id="65-chars"),
    pytest.param("naïve", id="non-ascii"),
    pytest.param(" x", id="leading-space"),
    pytest.param("load", id="reserved-load"),
    pytest.param("trust", id="reserved-trust"),
]
TRAILING_NEWLINE = pytest.param("iris\n", id="trailing-newline")


def name_body(schema_class: type[ma.Schema], name: str) -> dict[str, Any]:
    if schema_class is LoadModelRequestSchema:
        return {"model_name": name, "model_path": "x.pkl"}
    if schema_class is BatchPredictRequestSchema:
        return {"features": [ROW], "model_name": name}
    return {"features": ROW, "model_name": name}


NAMED_SCHEMAS = [PredictRequestSchema, BatchPredictRequestSchema, LoadModelRequestSchema]


@pytest.mark.parametrize("schema_class", NAMED_SCHEMAS)
@pytest.mark.parametrize("name", GOOD_NAMES)
def test_model_name_accepted(schema_class, name):
    assert schema_class().load(name_body(schema_class, name))["model_name"] == name


@pytest.mark.parametrize("schema_class", NAMED_SCHEMAS)
@pytest.mark.parametrize("name", [*BAD_NAMES, TRAILING_NEWLINE])
def test_model_name_refused(schema_class, name):
    messages = refused(schema_class(), name_body(schema_class, name))
    assert messages == {"model_name": [NAME_MESSAGE]}


# --- batch -------------------------------------------------------------------


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param([ROW], id="one"),
        pytest.param([ROW, [6, 3, 5, 2]], id="two"),
        pytest.param([NAMED, NAMED], id="named"),
        pytest.param([ROW, NAMED], id="list-and-named"),
        pytest.param([ROW] * MAX_BATCH_ROWS, id="max-rows"),
    ],
)
def test_batch_accepts(rows):
    body = BatchPredictRequestSchema().load({"features": rows})
    assert as_rows(body.pop("features")) == rows
    assert body == {"model_name": "default", "return_probabilities": False}


@pytest.mark.parametrize(
    ("features", "text"),
    [
        pytest.param([], "Length must be between 1 and 1000", id="no-rows"),
        pytest.param([ROW] * (MAX_BATCH_ROWS + 1), "Length must be between 1 and 1000", id="1001-rows"),
        pytest.param(ROW, "list of values", id="flat-row"),
        pytest.param("rows", "Not a valid list", id="string"),
        pytest.param(None, "may not be null", id="null"),
        pytest.param({"a": [1]}, "Not a valid list", id="object"),
    ],
)
def test_batch_refuses_the_row_list(features, text):
    messages = refused(BatchPredictRequestSchema(), {"features": features})
    assert list(messages) == ["features"] and text in str(messages["features"])


def test_batch_reports_each_bad_row_by_index():
    rows = [ROW, ["x", 1], [], [math.nan], ROW, [[1]]]
    assert refused(BatchPredictRequestSchema(), {"features": rows}) == {
        "features": {
            2: ["Must contain at least one feature."],
            3: ["Feature 0 must be a finite number, got nan."],
            5: ["Feature 0 must be a number, string, boolean or null, got array."],
        }
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "features"),
        ({"features": [ROW], "return_probabilities": None}, "return_probabilities"),
        ({"features": [ROW], "return_probabilities": "perhaps"}, "return_probabilities"),
        ({"features": [ROW], "rows": 1}, "rows"),
    ],
)
def test_batch_body_refusals(body, field):
    assert field in refused(BatchPredictRequestSchema(), body)


# --- load model --------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected_type"),
    [
        ({"model_name": "custom_model", "model_path": "models/trained/custom_model.pkl"}, None),
        ({"model_name": "m", "model_path": "m.joblib", "model_type": "sklearn"}, "sklearn"),
        ({"model_name": "m", "model_path": "m.json", "model_type": None}, None),
    ],
)
def test_load_request_accepts(body, expected_type):
    loaded = LoadModelRequestSchema().load(body)
    assert loaded["model_name"] == body["model_name"] and loaded["model_path"] == body["model_path"]
    assert loaded["model_type"] == expected_type


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"model_path": "m.pkl"}, "model_name", "Missing data"),
        ({"model_name": "m"}, "model_path", "Missing data"),
        ({"model_name": "m", "model_path": ""}, "model_path", "Length"),
        ({"model_name": "m", "model_path": "x" * 4097}, "model_path", "Length"),
        ({"model_name": "m", "model_path": 5}, "model_path", "Not a valid string"),
        ({"model_name": "m", "model_path": None}, "model_path", "may not be null"),
        ({"model_name": "m", "model_path": "m.pkl", "model_type": ""}, "model_type", "Length"),
        ({"model_name": "m", "model_path": "m.pkl", "model_type": "x" * 33}, "model_type", "Length"),
        ({"model_name": "m", "model_path": "m.pkl", "model_type": 1}, "model_type", "Not a valid string"),
        ({"model_name": "m", "model_path": "m.pkl", "force": True}, "force", "Unknown field"),
    ],
)
def test_load_request_refuses(body, field, text):
    messages = refused(LoadModelRequestSchema(), body)
    assert field in messages and text in str(messages[field])


@pytest.mark.parametrize(("version", "loaded"), [(1, 1), (2.0, 2), (None, None)])
def test_versions_are_json_integers(version, loaded):
    assert RollbackRequestSchema().load({"version": version})["version"] == loaded


@pytest.mark.parametrize("version", [1.5, True, "1", 0, -1])
def test_versions_refuse_what_is_no_positive_integer(version):
    assert "version" in refused(RollbackRequestSchema(), {"version": version})
