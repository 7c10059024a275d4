"""The one map from signature types to Spark types, used by the UDF and by the job's writers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_type

from sparkscore.errors import SettingsError
from sparkscore.signature import (
    AnyType,
    ArrayType,
    ColSpec,
    ColumnType,
    DataType,
    MapType,
    ObjectType,
    Signature,
    TensorSpec,
)

SCALARS: dict[DataType, T.DataType] = {
    DataType.boolean: T.BooleanType(),
    DataType.integer: T.IntegerType(),
    DataType.long: T.LongType(),
    DataType.float: T.FloatType(),
    DataType.double: T.DoubleType(),
    DataType.string: T.StringType(),
    DataType.binary: T.BinaryType(),
    DataType.datetime: T.TimestampType(),
}


def column_type(t: ColumnType) -> T.DataType:
    if isinstance(t, DataType):
        return SCALARS[t]
    if isinstance(t, ArrayType):
        return T.ArrayType(column_type(t.items))
    if isinstance(t, ObjectType):
        return T.StructType([T.StructField(n, column_type(f), True) for n, f, _ in t.properties])
    if isinstance(t, MapType):
        return T.MapType(T.StringType(), column_type(t.values))
    if isinstance(t, AnyType):
        return T.StringType()
    raise TypeError(t)


def tensor_element_type(dtype: np.dtype) -> T.DataType:
    dtype = np.dtype(dtype)
    if dtype.kind in "US" or dtype == np.dtype(object):
        return T.StringType()
    if dtype.kind == "u":
        widened = {1: T.ShortType(), 2: T.IntegerType(), 4: T.LongType()}.get(dtype.itemsize)
        if widened is None:
            raise TypeError(f"tensor dtype {dtype} has no lossless Spark type")
        return widened
    mapped = DataType.from_numpy(dtype)
    if mapped is not None:
        return SCALARS[mapped]
    small = {np.dtype("int8"): T.ByteType(), np.dtype("int16"): T.ShortType(),
             np.dtype("float16"): T.FloatType()}
    if dtype in small:
        return small[dtype]
    raise TypeError(f"tensor dtype {dtype} has no Spark type")


def spec_type(spec: ColSpec | TensorSpec) -> T.DataType:
    """A row's value for this spec: a tensor loses its batch dimension, each further one is an array."""
    if isinstance(spec, ColSpec):
        return column_type(spec.type)
    result = tensor_element_type(spec.dtype)
    for _ in spec.shape[1:]:
        result = T.ArrayType(result)
    return result


def output_type(signature: Signature | None, result_type: str | T.DataType | None = None) -> T.DataType:
    """The Spark type of one prediction: `result_type` if given, else from the output schema.

    Examples
    --------
    >>> output_type(None)
    DoubleType()
    """
    if result_type is not None:
        return parse_type(result_type)
    outputs = signature.outputs if signature else None
    if outputs is None or not outputs.specs:
        return T.DoubleType()
    if len(outputs.specs) == 1:
        return spec_type(outputs.specs[0])
    return T.StructType(
        [T.StructField(name, spec_type(spec), True) for name, spec in zip(outputs.names(), outputs.specs)]
    )


def parse_type(value: str | T.DataType) -> T.DataType:
    """A DDL string (`double`, `array<double>`, `struct<a:int>`) or a DataType, checked once."""
    if isinstance(value, T.DataType):
        return value
    try:
        return T._parse_datatype_string(value)
    except Exception:
        raise SettingsError(
            key="result_type", value=value,
            reason="must be a Spark SQL type such as double, string, array<double> or "
            "struct<label:string,score:double>",
        ) from None


def arrow_type(spark_type: T.DataType) -> pa.DataType:
    """The Arrow type that carries a Spark type between Python and the JVM."""
    return to_arrow_type(spark_type, timezone="UTC")
