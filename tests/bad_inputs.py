"""Every class of bad input the API must refuse with a clear 4xx, as one table.

Used by the in-process API tests and, over HTTP, by the gunicorn integration
tests; both serve the iris set and the penguins pipeline. Each case: (id, method,
path, raw body or None, content type, status, text the error must contain).
"""

from __future__ import annotations

import json

from tests.factories import PENGUIN

JSON = "application/json"
ROW = [5.1, 3.5, 1.4, 0.2]


def _j(obj: object) -> str:
    return json.dumps(obj)


#: Served by both the in-process and the gunicorn bad-input tests (tests.factories.write_penguins_pipeline).
PENGUINS = "/api/v1/predict/penguins"
OMIT = object()


#: Two penguins as a text/csv body (header row; an empty cell is a missing value).
CSV_TEXT = (
    "island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex\n"
    "Torgersen,40.3,18.0,195,3250,female\n"
    "Torgersen,39.1,18.7,181,3750,\n"
)


def _penguin(**changes: object) -> dict[str, object]:
    """A row of the penguins data, with ``changes`` (a column set to OMIT is left out)."""
    row = {**PENGUIN, **changes}
    return {k: v for k, v in row.items() if v is not OMIT}


def _named_row_batch(value: str) -> str:
    """A two-row batch of named rows whose second row's first value is ``value`` (JSON text)."""

    def row(first: str) -> str:
        return f'{{"sepal_length": {first}, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}}'

    return f'{{"features": [{row("5.1")}, {row(value)}]}}'


BAD_REQUESTS = [
    # --- /predict: the features ---
    ("string-features", "POST", "/api/v1/predict", _j({"features": "invalid"}), JSON, 422, "list of values"),
    ("numeric-string", "POST", "/api/v1/predict", _j({"features": ["5.1", 3.5, 1.4, 0.2]}), JSON, 422, "string"),
    ("boolean", "POST", "/api/v1/predict", _j({"features": [True, 3.5, 1.4, 0.2]}), JSON, 422, "boolean"),
    ("null-feature", "POST", "/api/v1/predict", _j({"features": [None, 3.5, 1.4, 0.2]}), JSON, 422, "null"),
    ("null-features", "POST", "/api/v1/predict", _j({"features": None}), JSON, 422, "features"),
    ("nested", "POST", "/api/v1/predict", _j({"features": [[5.1, 3.5], [1.4, 0.2]]}), JSON, 422, "array"),
    ("empty", "POST", "/api/v1/predict", _j({"features": []}), JSON, 422, "at least one"),
    ("empty-object", "POST", "/api/v1/predict", _j({"features": {}}), JSON, 422, "at least one"),
    ("over-long", "POST", "/api/v1/predict", _j({"features": [1.0] * 1001}), JSON, 422, "at most 1000"),
    ("nan", "POST", "/api/v1/predict", '{"features": [NaN, 3.5, 1.4, 0.2]}', JSON, 422, "finite"),
    ("infinity", "POST", "/api/v1/predict", '{"features": [Infinity, 3.5, 1.4, 0.2]}', JSON, 422, "finite"),
    ("neg-infinity", "POST", "/api/v1/predict", '{"features": [-Infinity, 3.5, 1.4, 0.2]}', JSON, 422, "finite"),
    ("huge-number", "POST", "/api/v1/predict", '{"features": [1e999, 3.5, 1.4, 0.2]}', JSON, 422, "finite"),
    # named rows in a batch: the standard library parses these bodies, orjson refuses them
    *(
        (f"batch-named-{name}", "POST", "/api/v1/batch-predict", _named_row_batch(value), JSON, 422, "finite")
        for name, value in (("nan", "NaN"), ("infinity", "Infinity"), ("huge-number", "1e999"))
    ),
    ("too-few", "POST", "/api/v1/predict", _j({"features": [5.1, 3.5, 1.4]}), JSON, 422, "expected 4 features"),
    ("too-many", "POST", "/api/v1/predict", _j({"features": ROW + [1.0]}), JSON, 422, "expected 4 features"),
    ("missing-features", "POST", "/api/v1/predict", _j({"model_name": "default"}), JSON, 422, "features"),
    ("unknown-field", "POST", "/api/v1/predict", _j({"features": ROW, "colour": "red"}), JSON, 422, "unknown"),
    (
        "named-missing",
        "POST",
        "/api/v1/predict",
        _j({"features": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4}}),
        JSON,
        422,
        "petal_width",
    ),
    (
        "named-unknown",
        "POST",
        "/api/v1/predict",
        _j(
            {
                "features": {
                    "sepal_length": 5.1,
                    "sepal_width": 3.5,
                    "petal_length": 1.4,
                    "petal_width": 0.2,
                    "colour": 1,
                }
            }
        ),
        JSON,
        422,
        "colour",
    ),
    (
        "probabilities-not-bool",
        "POST",
        "/api/v1/predict",
        _j({"features": ROW, "return_probabilities": "maybe"}),
        JSON,
        422,
        "return_probabilities",
    ),
    # --- the body itself ---
    ("malformed-json", "POST", "/api/v1/predict", '{"features": [5.1, 3.5,', JSON, 400, "json"),
    ("json-array-body", "POST", "/api/v1/predict", _j([ROW]), JSON, 422, ""),
    ("empty-body", "POST", "/api/v1/predict", "", JSON, 422, "missing data"),
    ("text-plain", "POST", "/api/v1/predict", _j({"features": ROW}), "text/plain", 415, "application/json"),
    ("form", "POST", "/api/v1/predict", "features=1", "application/x-www-form-urlencoded", 415, "json"),
    ("no-content-type", "POST", "/api/v1/predict", _j({"features": ROW}), None, 415, "json"),
    # --- model names ---
    ("unknown-model", "POST", "/api/v1/predict", _j({"features": ROW, "model_name": "nope"}), JSON, 404, "nope"),
    (
        "bad-name-body",
        "POST",
        "/api/v1/predict",
        _j({"features": ROW, "model_name": "../etc"}),
        JSON,
        422,
        "model_name",
    ),
    ("unknown-model-path", "POST", "/api/v1/predict/nope", _j({"features": ROW}), JSON, 404, "nope"),
    ("bad-name-path", "POST", "/api/v1/predict/bad%20name", _j({"features": ROW}), JSON, 422, "model_name"),
    ("long-name-path", "POST", "/api/v1/predict/" + "a" * 65, _j({"features": ROW}), JSON, 422, "model_name"),
    # --- batch ---
    ("batch-empty", "POST", "/api/v1/batch-predict", _j({"features": []}), JSON, 422, "features"),
    ("batch-too-many", "POST", "/api/v1/batch-predict", _j({"features": [ROW] * 1001}), JSON, 422, "features"),
    ("batch-bad-row", "POST", "/api/v1/batch-predict", _j({"features": [ROW, [1, "x", 3, 4]]}), JSON, 422, "string"),
    ("batch-boolean", "POST", "/api/v1/batch-predict", _j({"features": [ROW, [1, True, 3, 4]]}), JSON, 422, "boolean"),
    ("batch-null", "POST", "/api/v1/batch-predict", _j({"features": [ROW, [1, None, 3, 4]]}), JSON, 422, "null"),
    ("batch-not-rows", "POST", "/api/v1/batch-predict", _j({"features": ROW}), JSON, 422, "features"),
    (
        "batch-ragged",
        "POST",
        "/api/v1/batch-predict",
        _j({"features": [ROW, ROW[:3]]}),
        JSON,
        422,
        "expected 4 features",
    ),
    (
        "batch-unknown-model",
        "POST",
        "/api/v1/batch-predict",
        _j({"features": [ROW], "model_name": "nope"}),
        JSON,
        404,
        "nope",
    ),
    # --- a model fitted on a DataFrame, checked against its signature (the penguins pipeline) ---
    ("typed-missing-column", "POST", PENGUINS, _j({"features": _penguin(island=OMIT)}), JSON, 422, "missing island"),
    ("typed-unknown-column", "POST", PENGUINS, _j({"features": _penguin(colour="red")}), JSON, 422, "unknown colour"),
    (
        "typed-string-for-number",
        "POST",
        PENGUINS,
        _j({"features": _penguin(bill_length_mm="long")}),
        JSON,
        422,
        "Feature 'bill_length_mm' must be a number, got string",
    ),
    (
        "typed-number-for-string",
        "POST",
        PENGUINS,
        _j({"features": _penguin(island=3)}),
        JSON,
        422,
        "Feature 'island' must be a string, got number",
    ),
    (
        "typed-unknown-category",
        "POST",
        PENGUINS,
        _j({"features": _penguin(island="Atlantis")}),
        JSON,
        422,
        "Feature 'island' must be one of 'Biscoe', 'Dream', 'Torgersen', got 'Atlantis'",
    ),
    (
        "typed-null-not-taken",
        "POST",
        PENGUINS,
        _j({"features": _penguin(island=None)}),
        JSON,
        422,
        "Feature 'island' must be a string, got null",
    ),
    (
        "typed-batch-names-the-row",
        "POST",
        "/api/v1/batch-predict",
        _j({"model_name": "penguins", "features": [_penguin(), _penguin(), _penguin(sex="unknown")]}),
        JSON,
        422,
        "row 2: Feature 'sex' must be one of 'female', 'male', got 'unknown'",
    ),
    # --- the other input formats ---
    (
        "format-two-at-once",
        "POST",
        "/api/v1/predict",
        _j({"features": ROW, "instances": [ROW]}),
        JSON,
        422,
        "only one of features, instances",
    ),
    (
        "format-several-rows-on-predict",
        "POST",
        "/api/v1/predict",
        _j({"instances": [ROW, ROW]}),
        JSON,
        422,
        "send several to /batch-predict",
    ),
    (
        "format-split-width",
        "POST",
        "/api/v1/batch-predict",
        _j({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [1, 2, 3]]}}),
        JSON,
        422,
        "row 1 has 3 values for 2 columns",
    ),
    (
        "format-split-not-object",
        "POST",
        "/api/v1/batch-predict",
        _j({"dataframe_split": [[1, 2]]}),
        JSON,
        422,
        "'columns'",
    ),
    (
        "format-split-column-not-a-name",
        "POST",
        "/api/v1/predict",
        _j({"dataframe_split": {"columns": [{}], "data": [ROW[:1]]}}),
        JSON,
        422,
        "distinct names",
    ),
    ("csv-on-predict", "POST", "/api/v1/predict", CSV_TEXT, "text/csv", 415, "application/json"),
    (
        "csv-not-a-number",
        "POST",
        "/api/v1/batch-predict?model_name=penguins",
        CSV_TEXT.replace("39.1", "long"),
        "text/csv",
        422,
        "row 1: Feature 'bill_length_mm' must be a number, got 'long'",
    ),
    ("csv-ragged", "POST", "/api/v1/batch-predict", CSV_TEXT + "Dream,1\n", "text/csv", 400, "CSV line 4 has 2 fields"),
    # --- model management ---
    ("load-missing-fields", "POST", "/api/v1/models/load", _j({"model_name": "x"}), JSON, 422, "model_path"),
    (
        "load-bad-name",
        "POST",
        "/api/v1/models/load",
        _j({"model_name": "a b", "model_path": "x.pkl"}),
        JSON,
        422,
        "model_name",
    ),
    (
        "load-absolute",
        "POST",
        "/api/v1/models/load",
        _j({"model_name": "x", "model_path": "/etc/passwd"}),
        JSON,
        400,
        "relative",
    ),
    (
        "load-traversal",
        "POST",
        "/api/v1/models/load",
        _j({"model_name": "x", "model_path": "../../../etc/passwd"}),
        JSON,
        400,
        "..",
    ),
    (
        "load-missing-file",
        "POST",
        "/api/v1/models/load",
        _j({"model_name": "x", "model_path": "nope.pkl"}),
        JSON,
        404,
        "nope.pkl",
    ),
    (
        "load-unknown-type",
        "POST",
        "/api/v1/models/load",
        _j({"model_name": "x", "model_path": "iris_classifier.joblib", "model_type": "tensorflow"}),
        JSON,
        422,
        "sklearn",
    ),
    ("load-text-plain", "POST", "/api/v1/models/load", "model_name=x", "text/plain", 415, "json"),
    (
        "load-reserved-name",
        "POST",
        "/api/v1/models/load",
        _j({"model_name": "trust", "model_path": "iris_classifier.joblib"}),
        JSON,
        422,
        "model_name",
    ),
    ("delete-unknown", "DELETE", "/api/v1/models/nope", None, None, 404, "nope"),
    ("delete-reserved-name", "DELETE", "/api/v1/models/load", None, None, 405, ""),
    ("delete-bad-name", "DELETE", "/api/v1/models/bad%20name", None, None, 422, "model_name"),
    ("info-unknown", "GET", "/api/v1/models/nope/info", None, None, 404, "nope"),
    ("info-bad-name", "GET", "/api/v1/models/bad%20name/info", None, None, 422, "model_name"),
    # --- routing ---
    ("unknown-url", "GET", "/api/v1/nothing-here", None, None, 404, ""),
    ("wrong-method", "GET", "/api/v1/predict", None, None, 405, ""),
]
