"""One map from every signature type to its numpy, Arrow and Spark types."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from sparkscore.dtypes import TYPES, DataType, python_value, tensor_spark_name
from sparkscore.predictiontype import parse_ddl
from sparkscore.signature import Signature

MLFLOW_TYPES = ["boolean", "integer", "long", "float", "double", "string", "binary", "datetime"]


def test_types_cover_every_signature_type() -> None:
    assert [t.value for t in DataType] == MLFLOW_TYPES
    assert list(TYPES) == list(DataType)


def test_types_read_back_from_a_signature_as_mlflow_writes_them() -> None:
    sig = Signature.from_dict({"inputs": [{"type": name} for name in MLFLOW_TYPES]})

    assert sig.inputs is not None
    assert [TYPES[s.type] for s in sig.inputs.specs] == list(TYPES.values())


@pytest.mark.parametrize("t", list(DataType))
def test_types_row_is_one_type_in_numpy_arrow_and_spark(t: DataType) -> None:
    row = TYPES[t]

    if row.numpy != np.dtype(object):  # object holds strings and bytes alike
        assert pa.from_numpy_dtype(row.numpy) == row.arrow
    assert t.to_numpy() == row.numpy
    assert isinstance(parse_ddl(row.spark), pa.DataType)


def test_types_arrow_is_what_a_column_is_read_as() -> None:
    assert {t.value: str(TYPES[t].arrow) for t in DataType} == {
        "boolean": "bool",
        "integer": "int32",
        "long": "int64",
        "float": "float",
        "double": "double",
        "string": "string",
        "binary": "binary",
        "datetime": "timestamp[ns]",
    }


@pytest.mark.parametrize(
    ("dtype", "name"),
    [
        ("float64", "double"),
        ("float32", "float"),
        ("float16", "float"),
        ("int64", "bigint"),
        ("int32", "int"),
        ("int16", "smallint"),
        ("int8", "tinyint"),
        ("uint8", "smallint"),
        ("uint16", "int"),
        ("uint32", "bigint"),
        ("bool", "boolean"),
        ("U3", "string"),
        ("object", "string"),
        ("datetime64[ns]", "timestamp"),
    ],
)
def test_tensor_spark_name_holds_every_value(dtype: str, name: str) -> None:
    assert tensor_spark_name(np.dtype(dtype)) == name


@pytest.mark.parametrize(
    ("dtype", "message"),
    [
        ("uint64", "tensor dtype uint64 has no lossless Spark type"),
        ("complex128", "tensor dtype complex128 has no Spark type"),
    ],
)
def test_tensor_spark_name_refuses_what_spark_cannot_hold(dtype: str, message: str) -> None:
    with pytest.raises(TypeError, match=f"^{message}$"):
        tensor_spark_name(np.dtype(dtype))


def test_python_value_is_what_a_user_would_type() -> None:
    assert python_value(np.int64(3)) == 3 and type(python_value(np.int64(3))) is int
    assert python_value(np.array([[1.5], [2.5]])) == [[1.5], [2.5]]
    assert python_value(np.array([np.array([1, 2]), None], dtype=object)) == [[1, 2], None]
    assert python_value(np.datetime64("2024-01-02T03:04:05", "us")) == dt.datetime(
        2024, 1, 2, 3, 4, 5
    )
    assert python_value(("a", 1)) == ("a", 1)  # tuples stay: Arrow reads them as struct values
