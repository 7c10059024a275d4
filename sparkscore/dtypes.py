"""The one map from the signature's scalar types to numpy, Arrow and Spark types.

Each mlflow `DataType` has one row (`TYPES`): the numpy dtype a model receives for it (what
mlflow's pyfunc gives a model), the Arrow type a column of it is read as (a CSV column parses
to it, so a long stays a long and a datetime keeps nanoseconds), and the Spark SQL name of the
type a prediction of it has. sparkscore.predictiontype carries that Spark type in Arrow, in the
pure core; sparkscore.sparktypes, the Spark edge, turns the same Arrow type into pyspark's.

Tensor specs name numpy dtypes; `tensor_spark_name` gives each the Spark type that holds it
without loss. `python_value` turns numpy values back into the Python values a user types.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["TYPES", "DataType", "SignatureTypes", "python_value", "tensor_spark_name"]


class DataType(enum.Enum):
    """MLflow's column data types."""

    boolean = "boolean"
    integer = "integer"
    long = "long"
    float = "float"
    double = "double"
    string = "string"
    binary = "binary"
    datetime = "datetime"

    def to_numpy(self) -> np.dtype[Any]:
        return TYPES[self].numpy

    @classmethod
    def from_numpy(cls, dtype: np.dtype[Any]) -> DataType | None:
        dtype = np.dtype(dtype)
        if dtype.kind in "US":
            return cls.string
        for member, types in TYPES.items():
            if types.numpy == dtype:
                return member
        return None


@dataclass(frozen=True)
class SignatureTypes:
    """What one signature type is in numpy, in Arrow, and in Spark."""

    numpy: np.dtype[Any]  # what the model receives, as mlflow gives it
    arrow: pa.DataType  # what an input column is read as
    spark: str  # the Spark SQL type of a prediction, by its DDL name


TYPES: Mapping[DataType, SignatureTypes] = MappingProxyType(
    {
        DataType.boolean: SignatureTypes(np.dtype("bool"), pa.bool_(), "boolean"),
        DataType.integer: SignatureTypes(np.dtype("int32"), pa.int32(), "int"),
        DataType.long: SignatureTypes(np.dtype("int64"), pa.int64(), "bigint"),
        DataType.float: SignatureTypes(np.dtype("float32"), pa.float32(), "float"),
        DataType.double: SignatureTypes(np.dtype("float64"), pa.float64(), "double"),
        DataType.string: SignatureTypes(np.dtype("object"), pa.string(), "string"),
        DataType.binary: SignatureTypes(np.dtype("object"), pa.binary(), "binary"),
        DataType.datetime: SignatureTypes(
            np.dtype("datetime64[ns]"), pa.timestamp("ns"), "timestamp"
        ),
    }
)

# Tensor dtypes no signature type names. Spark has no unsigned integers: each widens to the
# next signed size, which holds all its values.
_TENSOR_ONLY = {
    np.dtype("int8"): "tinyint",
    np.dtype("int16"): "smallint",
    np.dtype("float16"): "float",
    np.dtype("uint8"): "smallint",
    np.dtype("uint16"): "int",
    np.dtype("uint32"): "bigint",
}


def tensor_spark_name(dtype: np.dtype[Any]) -> str:
    """The Spark SQL type holding one element of a tensor of `dtype`, by its DDL name."""
    dtype = np.dtype(dtype)
    if dtype.kind in "US" or dtype == np.dtype(object):
        return "string"
    if dtype in _TENSOR_ONLY:
        return _TENSOR_ONLY[dtype]
    if dtype.kind == "u":
        raise TypeError(f"tensor dtype {dtype} has no lossless Spark type")
    mapped = DataType.from_numpy(dtype)
    if mapped is None:
        raise TypeError(f"tensor dtype {dtype} has no Spark type")
    return TYPES[mapped].spark


def python_value(value: Any) -> Any:
    """A numpy scalar or array as the Python value (or list of them) a user would type."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        # tolist converts each element as .item() does, but not the objects an object array holds
        return [python_value(v) for v in value] if value.dtype == object else value.tolist()
    return value
