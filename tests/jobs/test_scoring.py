"""Reading files in chunks and scoring them: column matching, ids, bad rows, formats."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from app.inference import feature_names_of, predict_rows
from app.jobs.errors import InputFileError
from app.jobs.scoring import Aborted, RowError, ScoreOptions, score_file
from app.jobs.sources import CsvSource, inspect, plan_columns
from app.model_input import signature_of
from app.services import services
from tests.factories import (
    IRIS_FEATURES,
    iris,
    penguins,
    penguins_model,
    write_penguins_pipeline,
    write_sklearn_regressor,
)
from tests.jobs.conftest import write_iris_csv


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


@pytest.fixture
def served(jobs_app):
    return services(jobs_app).registry.get("iris_classifier")


def score(served, path: Path, tmp_path: Path, **options):
    chunks: list[int] = []
    id_column = options.pop("id_column", None)
    delimiter = options.pop("delimiter", ",")
    fmt = "parquet" if path.suffix == ".parquet" else "csv"
    source, plan = inspect(path, fmt, IRIS_FEATURES, 4, id_column, delimiter)
    out, errors = tmp_path / "out.csv", tmp_path / "errors.csv"
    summary = score_file(
        served, source, plan, out, errors, ScoreOptions(**options), lambda s: chunks.append(s.rows_done) or True
    )
    return summary, read_csv(out), chunks, errors


def test_chunks_carry_ids_and_match_in_process_predictions(served, data_dir, tmp_path):
    path = write_iris_csv(data_dir / "iris.csv")
    summary, rows, chunks, _ = score(served, path, tmp_path, chunk_rows=40, return_probabilities=True)
    assert summary.rows_done == 150 and chunks == [40, 80, 120, 150]
    assert rows[0] == ["id", "prediction", "prediction_label", *[f"probability_{n}" for n in served.labels]]
    expected, _ = predict_rows(served, iris()[0].tolist(), with_probabilities=True)
    for line, want in zip(rows[1:], expected, strict=True):
        assert int(line[1]) == want["prediction"] and line[2] == want["prediction_label"]
        assert [float(p) for p in line[3:]] == want["probabilities"]
    assert [line[0] for line in rows[1:4]] == ["s1", "s2", "s3"]


def test_columns_are_matched_by_name_in_any_order_and_extras_ignored(served, data_dir, tmp_path):
    X, _ = iris()
    order = ["petal_width", "note", "sepal_length", "petal_length", "sepal_width"]
    lines = [",".join(order)] + [f"{r[3]},hello,{r[0]},{r[2]},{r[1]}" for r in X[:20]]
    (data_dir / "shuffled.csv").write_text("\n".join(lines) + "\n")
    _, rows, _, _ = score(served, data_dir / "shuffled.csv", tmp_path, chunk_rows=7)
    expected, _ = predict_rows(served, X[:20].tolist(), with_probabilities=False)
    assert rows[0] == ["row", "prediction", "prediction_label"]
    assert [int(r[1]) for r in rows[1:]] == [e["prediction"] for e in expected]
    assert [r[0] for r in rows[1:3]] == ["1", "2"]


def test_a_model_without_feature_names_takes_columns_in_order(jobs_app, model_dir, data_dir, tmp_path):
    write_sklearn_regressor(model_dir, name="petal_width")
    registry = services(jobs_app).registry
    registry.load("petal_width", "petal_width.joblib", None)
    served = registry.get("petal_width")
    X, _ = iris()
    (data_dir / "three.csv").write_text(
        "key,a,b,c\n" + "".join(f"k{i},{r[0]},{r[1]},{r[2]}\n" for i, r in enumerate(X))
    )
    source, plan = inspect(data_dir / "three.csv", "csv", None, 3, "key")
    assert plan.features == ["a", "b", "c"] and plan.id_column == "key"
    out = tmp_path / "o.csv"
    score_file(served, source, plan, out, tmp_path / "e.csv", ScoreOptions(), lambda s: True)
    rows = read_csv(out)
    assert rows[0] == ["key", "prediction"]
    assert float(rows[1][1]) == pytest.approx(predict_rows(served, [X[0, :3].tolist()], False)[0][0]["prediction"])
    with pytest.raises(InputFileError, match="4 feature column"):
        inspect(data_dir / "three.csv", "csv", None, 3)  # without the id column there are four


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("id,sepal_length,sepal_width,petal_length\n1,2,3,4\n", "Missing column(s) petal_width"),
        ("sepal_length;sepal_width;petal_length;petal_width\n1;2;3;4\n", 'looks delimited by ";"'),
        ("5.1,3.5,1.4,0.2\n4.9,3.0,1.4,0.2\n", "holds numbers, not column names"),
        ("a,a,b\n1,2,3\n", "repeats column(s) a"),
    ],
)
def test_files_that_cannot_be_scored_at_all(data_dir, content, message):
    path = data_dir / "bad.csv"
    path.write_text(content)
    with pytest.raises(InputFileError) as refused:
        inspect(path, "csv", IRIS_FEATURES, 4)
    assert message in refused.value.description


def test_the_right_delimiter_reads_the_same_file(served, data_dir, tmp_path):
    path = data_dir / "semi.csv"
    path.write_text("sepal_length;sepal_width;petal_length;petal_width\n5.1;3.5;1.4;0.2\n")
    summary, rows, _, _ = score(served, path, tmp_path, delimiter=";")
    assert summary.rows_done == 1 and rows[1][2] == "setosa"


def test_a_header_only_file_scores_zero_rows(served, data_dir, tmp_path):
    path = data_dir / "header.csv"
    path.write_text(",".join(IRIS_FEATURES) + "\n")
    summary, rows, _, _ = score(served, path, tmp_path)
    assert summary.rows_done == 0 and rows == [["row", "prediction", "prediction_label"]]
    assert CsvSource(path).count_rows() == 0


BAD_ROWS = (
    "id,sepal_length,sepal_width,petal_length,petal_width\n"
    "a,5.1,3.5,1.4,0.2\n"
    "b,5.1,3.5,1.4,abc\n"
    "c,5.1,,1.4,0.2\n"
    "d,5.1,3.5,1.4\n"
    "e,nan,3.5,1.4,0.2\n"
    "\n"
    "f,6.3,3.3,6.0,2.5\n"
)


def test_bad_rows_fail_the_job_with_the_row_and_column(served, data_dir, tmp_path):
    (data_dir / "bad.csv").write_text(BAD_ROWS)
    with pytest.raises(RowError) as failed:
        score(served, data_dir / "bad.csv", tmp_path)
    assert failed.value.description == "row 2: column petal_width is not numeric"


def test_bad_rows_go_to_the_error_file_when_skipped(served, data_dir, tmp_path):
    (data_dir / "bad.csv").write_text(BAD_ROWS)
    summary, rows, _, errors = score(served, data_dir / "bad.csv", tmp_path, on_error="skip", chunk_rows=2)
    assert (summary.rows_done, summary.rows_failed) == (2, 4)
    assert [r[0] for r in rows[1:]] == ["a", "f"] and rows[2][2] == "virginica"
    assert read_csv(errors) == [
        ["row", "id", "error"],
        ["2", "b", "row 2: column petal_width is not numeric"],
        ["3", "c", "row 3: column sepal_width is empty"],
        ["4", "d", "row 4: expected 5 fields, found 4"],
        ["5", "e", "row 5: column sepal_length is not a finite number"],
    ]


def test_row_numbers_read_with_thousands_separators(served, data_dir, tmp_path):
    path = write_iris_csv(data_dir / "big.csv", repeats=9)
    with path.open("a") as fh:
        fh.write("bad,1,2,3,x\n")
    with pytest.raises(RowError) as failed:
        score(served, path, tmp_path, chunk_rows=500)
    assert failed.value.description == "row 1,351: column petal_width is not numeric"


def test_a_false_progress_callback_aborts(served, data_dir, tmp_path):
    path = write_iris_csv(data_dir / "iris.csv")
    source, plan = inspect(path, "csv", IRIS_FEATURES, 4)
    with pytest.raises(Aborted):
        score_file(
            served, source, plan, tmp_path / "o.csv", tmp_path / "e.csv", ScoreOptions(chunk_rows=10), lambda s: False
        )


def test_parquet_is_read_in_batches(served, data_dir, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    X, _ = iris()
    columns = {name: X[:, i] for i, name in enumerate(IRIS_FEATURES)}
    columns["id"] = [f"p{i}" for i in range(len(X))]
    petal_width = pa.array([None if i == 3 else v for i, v in enumerate(X[:, 3])], type=pa.float64())
    table = pa.table({**columns, "petal_width": petal_width})
    pq.write_table(table, data_dir / "iris.parquet")
    summary, rows, chunks, errors = score(served, data_dir / "iris.parquet", tmp_path, chunk_rows=64, on_error="skip")
    assert summary.rows_done == 149 and summary.rows_failed == 1 and chunks == [63, 127, 149]
    assert rows[1][0] == "p0" and rows[4][0] == "p4"
    assert read_csv(errors)[1] == ["4", "p3", "row 4: column petal_width is empty"]
    pq.write_table(pa.table({**columns, "petal_width": pa.array(["x"] * len(X))}), data_dir / "text.parquet")
    with pytest.raises(InputFileError, match="Column petal_width is not numeric"):
        inspect(data_dir / "text.parquet", "parquet", IRIS_FEATURES, 4)


def test_parquet_without_pyarrow_says_what_to_install(data_dir, monkeypatch):
    (data_dir / "x.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(InputFileError, match="needs pyarrow"):
        inspect(data_dir / "x.parquet", "parquet", IRIS_FEATURES, 4)


def test_plan_prefers_an_explicit_id_column():
    plan = plan_columns(["ref", "id", *IRIS_FEATURES], IRIS_FEATURES, 4, "ref")
    assert plan.id_column == "ref" and plan.indices == [2, 3, 4, 5]
    with pytest.raises(InputFileError, match="id_column 'nope'"):
        plan_columns(IRIS_FEATURES, IRIS_FEATURES, 4, "nope")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_typed_model_scores_a_file_as_the_in_process_model(jobs_app, model_dir, data_dir, tmp_path, fmt):
    """The penguins pipeline over the whole data set (strings, NaN rows) from CSV and Parquet, one bad row skipped."""
    write_penguins_pipeline(model_dir)
    registry = services(jobs_app).registry
    registry.load("penguins", "penguins.joblib", None)
    served = registry.get("penguins")
    X = penguins()[0].copy()
    X.insert(0, "id", [f"p{i}" for i in range(len(X))])
    bad = X.copy().astype({"island": object})
    bad.loc[5, "island"] = "Atlantis"
    path = data_dir / f"penguins.{fmt}"
    bad.to_csv(path, index=False) if fmt == "csv" else bad.to_parquet(path, index=False)
    source, plan = inspect(path, fmt, feature_names_of(served), None, None, ",", signature_of(served))
    out, errors = tmp_path / "out.csv", tmp_path / "errors.csv"
    options = ScoreOptions(return_probabilities=True, on_error="skip", chunk_rows=100)
    summary = score_file(served, source, plan, out, errors, options, lambda s: True)
    assert (summary.rows_done, summary.rows_failed) == (len(X) - 1, 1)
    assert read_csv(errors)[1] == [
        "6",
        "p5",
        "row 6: Feature 'island' must be one of 'Biscoe', 'Dream', 'Torgersen', got 'Atlantis'.",
    ]
    model = penguins_model("pipeline")
    keep = [i for i in range(len(X)) if i != 5]
    labels = model.predict(penguins()[0].iloc[keep])
    rows = read_csv(out)[1:]
    assert [r[0] for r in rows] == [f"p{i}" for i in keep]
    assert [r[2] for r in rows] == list(labels)
