"""Array, object and map columns: each row's value held to its type, bad rows named alone."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sparkscore.nested import convert_nested
from sparkscore.signature import AnyType, ArrayType, MapType, ObjectType
from sparkscore.signature import DataType as D

PERSON = ObjectType((("name", D.string, True), ("age", D.long, False)))


def _bad_rows(result: tuple) -> list[int]:
    bad = result[1]
    return [] if bad is None else np.flatnonzero(bad).tolist()


def test_an_array_of_strings_refuses_numbers_naming_the_element() -> None:
    result = convert_nested(pd.Series([["a", "b"], [], ["c", 7]]), ArrayType(D.string))
    assert _bad_rows(result) == [2]
    assert result[3] == {
        2: "whose element 1 has value 7, which cannot be converted safely to string."
    }
    assert result[0].tolist()[:2] == [["a", "b"], []]


def test_array_leaves_convert_losslessly_and_keep_numpy_arrays() -> None:
    values, bad, _, _ = convert_nested(pd.Series([np.array([1, 2]), [3.0]]), ArrayType(D.double))
    assert bad is None
    assert isinstance(values[0], np.ndarray) and values[0].tolist() == [1.0, 2.0]
    assert values[1] == [3.0]
    _, bad, _, reasons = convert_nested(pd.Series([[1.5]]), ArrayType(D.long))
    assert reasons == {
        0: "whose element 0 has value 1.5, which cannot be converted safely to long."
    }


def test_an_object_needs_its_required_properties_and_no_others() -> None:
    result = convert_nested(
        pd.Series(
            [
                {"name": "ann", "age": 3},
                {"age": 3},
                {"name": "bo", "pet": "cat"},
                {"name": "cy"},
                {"name": "di", "age": "old"},
            ]
        ),
        PERSON,
    )
    assert _bad_rows(result) == [1, 2, 4]
    assert result[3] == {
        1: "which lacks the required properties 'name'.",
        2: "which has properties the signature does not declare: 'pet'.",
        4: "whose property 'age' has value 'old', which cannot be converted safely to long.",
    }
    assert result[0][3] == {"name": "cy"}


def test_a_map_takes_string_keys_and_values_of_its_type() -> None:
    result = convert_nested(
        pd.Series([{"x": 1.5, "y": 2}, {"x": "heavy"}, {1: 2.0}, "x"]), MapType(D.double)
    )
    assert _bad_rows(result) == [1, 2, 3]
    assert (
        result[3][1] == "whose key 'x' has value 'heavy', which cannot be converted safely "
        "to double."
    )
    assert result[3][2] == "whose key 1 is not a string; a map's keys are strings."
    assert result[3][3] == "which is a str, not a map."
    assert result[0][0] == {"x": 1.5, "y": 2.0}


def test_nested_types_compose_and_missing_rows_pass() -> None:
    t = ArrayType(MapType(ArrayType(D.string)))
    result = convert_nested(pd.Series([[{"k": ["a"]}], None, [{"k": [None]}]]), t)
    assert _bad_rows(result) == [2]
    assert result[3][2] == (
        "whose element 0 has value {'k': [None]}, whose key 'k' has value "
        "[None], whose element 0 has value None, which is missing, but "
        "string is required."
    )


def test_any_accepts_every_value() -> None:
    values, bad, _, _ = convert_nested(pd.Series([1, "x", {"a": []}]), AnyType())
    assert bad is None and values.tolist() == [1, "x", {"a": []}]
