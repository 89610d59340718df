"""Features checked as whole arrays: both ways of converting a batch agree, and refusals name the value."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.errors import InvalidFeatures
from app.features import FeatureError, check_row, check_rows, model_matrix

ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param([ROW] * 3, id="floats"),
        pytest.param([[5, 3, 1, 0], ROW], id="ints-and-floats"),
        pytest.param([[1e308, 1e308]], id="a-sum-that-overflows"),
        pytest.param([[10**20, 1]], id="a-large-integer"),
    ],
)
@pytest.mark.parametrize("booleans_possible", [True, False], ids=["exact", "packed"])
def test_numbers_become_one_float64_matrix(rows, booleans_possible):
    matrix = check_rows(rows, booleans_possible).matrix
    assert matrix.dtype == np.float64 and matrix.flags.writeable
    assert np.array_equal(matrix, np.array(rows, dtype=np.float64))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        pytest.param([[1, [2]]], {0: ["Feature 1 must be a number, string, boolean or null, got array."]}, id="nested"),
        pytest.param(
            [[1, {"a": 1}]], {0: ["Feature 1 must be a number, string, boolean or null, got object."]}, id="object"
        ),
        pytest.param([[math.nan, 1]], {0: ["Feature 0 must be a finite number, got nan."]}, id="nan"),
        pytest.param(
            [[10**400, 1]], {0: ["Feature 0 must be a finite number, got an integer beyond float64."]}, id="huge-int"
        ),
    ],
)
@pytest.mark.parametrize("booleans_possible", [True, False], ids=["exact", "packed"])
def test_what_is_no_finite_number_is_refused_by_row(rows, message, booleans_possible):
    with pytest.raises(FeatureError) as caught:
        check_rows(rows, booleans_possible)
    assert caught.value.messages == message


@pytest.mark.parametrize("booleans_possible", [True, False], ids=["exact", "packed"])
def test_strings_booleans_and_nulls_are_kept_for_the_model_to_judge(booleans_possible):
    rows = [ROW, [1, "x", 3, 4], [None, 1, 2, 3], [True, 1, 2, 3]]
    assert check_rows(rows, booleans_possible).rows == tuple(rows)
    assert check_row({"island": "Dream", "sex": None}).rows == ({"island": "Dream", "sex": None},)


@pytest.mark.parametrize(
    ("rows", "names", "nullable", "message"),
    [
        pytest.param([[1, "x"]], None, False, "Feature 1 must be a number, got string.", id="string"),
        pytest.param([ROW[:2], [None, 1]], None, False, "row 1: Feature 0 must be a number, got null.", id="null"),
        pytest.param([[True, 1]], None, True, "Feature 0 must be a number, got boolean.", id="boolean"),
        pytest.param([{"a": 1, "b": "x"}], ["a", "b"], False, "Feature 'b' must be a number, got string.", id="named"),
    ],
)
def test_a_matrix_model_takes_numbers_only_and_nulls_where_it_takes_nan(rows, names, nullable, message):
    with pytest.raises(InvalidFeatures) as caught:
        model_matrix(check_rows(rows), 2, names, "m", nullable)
    assert caught.value.description == message


def test_nulls_are_nan_for_a_model_that_takes_them():
    matrix = model_matrix(check_rows([[None, 1], [2, 3]]), 2, None, "m", nullable=True)
    assert np.isnan(matrix[0, 0]) and matrix[1].tolist() == [2.0, 3.0]


def test_ragged_and_named_rows_are_kept_for_the_model_to_order():
    named = {"a": 1.0, "b": 2.0}
    assert check_rows([ROW, ROW[:3]]).rows == (ROW, ROW[:3])
    assert check_rows([named, ROW], False).rows == (named, ROW)


def test_one_row_whose_sum_overflows_is_still_accepted():
    assert check_row([1e308, 1e308]).matrix.tolist() == [[1e308, 1e308]]
