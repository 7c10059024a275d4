"""Whatever predict returns becomes one typed value per input row, or a clear PredictError."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sparkscore.errors import PredictError
from sparkscore.outputs import to_arrow

SCORED = pa.struct([("label", pa.string()), ("score", pa.float64())])


def cause(prediction: object, pa_type: pa.DataType, rows: int) -> PredictError:
    with pytest.raises(PredictError) as info:
        to_arrow(prediction, pa_type, rows)
    return info.value


def test_to_arrow_1d_array_is_a_scalar_column() -> None:
    array = to_arrow(np.array([1, 0, 1]), pa.int64(), 3)

    assert array.type == pa.int64()
    assert array.to_pylist() == [1, 0, 1]


def test_to_arrow_int_predictions_become_double() -> None:
    array = to_arrow(np.array([1, 2]), pa.float64(), 2)

    assert array.type == pa.float64()
    assert array.to_pylist() == [1.0, 2.0]


@pytest.mark.parametrize(
    "prediction",
    [
        pd.Series([1.5, 2.5]),
        [1.5, 2.5],
        np.array([1.5, 2.5], dtype=object),
        pd.DataFrame({"p": [1.5, 2.5]}),
        np.array([[1.5], [2.5]]),
    ],
    ids=["series", "list", "object-array", "one-column-frame", "n-by-1-array"],
)
def test_to_arrow_one_value_per_row_from_any_container(prediction: object) -> None:
    assert to_arrow(prediction, pa.float64(), 2).to_pylist() == [1.5, 2.5]


def test_to_arrow_missing_values_become_nulls() -> None:
    assert to_arrow(np.array([1.0, np.nan]), pa.float64(), 2).to_pylist() == [1.0, None]
    assert to_arrow(["a", None], pa.string(), 2).to_pylist() == ["a", None]


def test_to_arrow_2d_array_is_an_array_per_row() -> None:
    array = to_arrow(np.array([[0.25, 0.75], [0.5, 0.5]]), pa.list_(pa.float64()), 2)

    assert array.type == pa.list_(pa.float64())
    assert array.to_pylist() == [[0.25, 0.75], [0.5, 0.5]]


def test_to_arrow_2d_int_array_widens_to_double_elements() -> None:
    array = to_arrow(np.array([[1, 2], [3, 4]]), pa.list_(pa.float64()), 2)

    assert array.to_pylist() == [[1.0, 2.0], [3.0, 4.0]]


def test_to_arrow_3d_array_is_a_nested_array_per_row() -> None:
    prediction = np.arange(12, dtype=np.float64).reshape(2, 2, 3)
    array = to_arrow(prediction, pa.list_(pa.list_(pa.float64())), 2)

    assert array.to_pylist() == [
        [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]],
        [[6.0, 7.0, 8.0], [9.0, 10.0, 11.0]],
    ]


def test_to_arrow_ragged_object_array_is_a_list_per_row() -> None:
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.array([1.0, 2.0]), np.array([3.0])

    assert to_arrow(ragged, pa.list_(pa.float64()), 2).to_pylist() == [[1.0, 2.0], [3.0]]


def test_to_arrow_frame_of_several_columns_for_an_array_type_is_a_row_each() -> None:
    prediction = pd.DataFrame({0: [0.1, 0.2], 1: [0.9, 0.8]})

    assert to_arrow(prediction, pa.list_(pa.float64()), 2).to_pylist() == [[0.1, 0.9], [0.2, 0.8]]


def test_to_arrow_frame_with_named_columns_is_a_struct_by_name() -> None:
    prediction = pd.DataFrame({"score": [1, 2], "extra": [0, 0], "label": ["a", "b"]})
    array = to_arrow(prediction, SCORED, 2)

    assert array.type == SCORED
    assert array.to_pylist() == [{"label": "a", "score": 1.0}, {"label": "b", "score": 2.0}]


def test_to_arrow_frame_with_other_names_is_a_struct_by_position_when_the_count_agrees() -> None:
    prediction = pd.DataFrame({"x": ["a", "b"], "y": [0.5, 0.25]})

    assert to_arrow(prediction, SCORED, 2).to_pylist() == [
        {"label": "a", "score": 0.5},
        {"label": "b", "score": 0.25},
    ]


def test_to_arrow_2d_array_and_dict_fill_a_struct() -> None:
    both = pa.struct([("p", pa.float64()), ("q", pa.float64())])

    assert to_arrow(np.array([[1.0, 2.0]]), both, 1).to_pylist() == [{"p": 1.0, "q": 2.0}]
    assert to_arrow({"label": ["a"], "score": [3]}, SCORED, 1).to_pylist() == [
        {"label": "a", "score": 3.0}
    ]


def test_to_arrow_struct_missing_a_named_column_says_which() -> None:
    error = cause(pd.DataFrame({"label": ["a"]}), SCORED, 1)

    assert error.cause == (
        "its output (a DataFrame with columns ['label']) does not fit the prediction type "
        "struct<label: string, score: double> (\"the model's output has no column 'score'\"); "
        "set result_type to the type the model returns."
    )


def test_to_arrow_length_mismatch_is_a_predict_error() -> None:
    error = cause(np.array([1.0, 2.0, 3.0]), pa.float64(), 2)

    assert error.cause == "it returned 3 values for 2 input rows."
    assert str(error) == "the model's predict failed: it returned 3 values for 2 input rows."
    assert (error.file, error.first_row, error.rows) == (None, None, 2)


def test_to_arrow_text_for_a_double_is_a_predict_error() -> None:
    error = cause(np.array(["x", "y"], dtype=object), pa.float64(), 2)

    assert error.cause == (
        "its output (an array of object with shape [2]) does not fit the prediction type double "
        "(Could not convert 'x' with type str: tried to convert to double); "
        "set result_type to the type the model returns."
    )


def test_to_arrow_2d_array_for_a_scalar_type_is_a_predict_error() -> None:
    error = cause(np.ones((2, 3)), pa.float64(), 2)

    assert error.cause == (
        "its output (an array of float64 with shape [2, 3]) does not fit the prediction type "
        "double (a 2-D result needs an array type); set result_type to the type the model "
        "returns."
    )


@pytest.mark.parametrize(
    ("prediction", "pa_type", "describe"),
    [
        (np.array([1.5]), pa.int64(), "an array of float64 with shape [1]"),
        ([1.5], pa.int64(), "list"),
        (np.array([[1.5, 2.0]]), pa.list_(pa.int64()), "an array of float64 with shape [1, 2]"),
    ],
    ids=["array", "list", "2d-array"],
)
def test_to_arrow_never_truncates_a_fraction(prediction, pa_type, describe) -> None:
    error = cause(prediction, pa_type, 1)

    assert error.cause == (
        f"its output ({describe}) does not fit the prediction type {pa_type} "
        "(Float value 1.500000 was truncated converting to int64); "
        "set result_type to the type the model returns."
    )


def test_to_arrow_refuses_int_beyond_2_53_as_double() -> None:
    error = cause(np.array([2**53 + 1]), pa.float64(), 1)

    assert error.cause == (
        "its output (an array of int64 with shape [1]) does not fit the prediction type double "
        "(Integer value 9007199254740993 not in range: -9007199254740992 to 9007199254740992); "
        "set result_type to the type the model returns."
    )
