"""Features checked as whole arrays: both ways of converting a batch agree, and refusals name the value."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.features import FeatureError, check_row, check_rows

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
        pytest.param([ROW, [1, "x", 3, 4]], {1: ["Feature 1 must be a number, got string."]}, id="string"),
        pytest.param([ROW, [None, 1, 2, 3]], {1: ["Feature 0 must be a number, got null."]}, id="null"),
        pytest.param([[1, [2]]], {0: ["Feature 1 must be a number, got array."]}, id="nested"),
        pytest.param([[1, {"a": 1}]], {0: ["Feature 1 must be a number, got object."]}, id="object"),
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


def test_booleans_are_refused_when_the_text_may_hold_them():
    with pytest.raises(FeatureError, match="got boolean"):
        check_rows([ROW, [True, 1, 2, 3]])


def test_ragged_and_named_rows_are_kept_for_the_model_to_order():
    named = {"a": 1.0, "b": 2.0}
    assert check_rows([ROW, ROW[:3]]).rows == (ROW, ROW[:3])
    assert check_rows([named, ROW], False).rows == (named, ROW)


def test_one_row_whose_sum_overflows_is_still_accepted():
    assert check_row([1e308, 1e308]).matrix.tolist() == [[1e308, 1e308]]
