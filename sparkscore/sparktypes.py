"""The Spark edge of the type map: pyspark types read from the Arrow types the core derives.

sparkscore.predictiontype types a prediction in Arrow, as Spark carries it; the Spark type is
that Arrow type read back by pyspark, never derived a second time, so the UDF's return type and
the job's output cannot disagree. A pyspark `DataType` a user passes is taken as it is.
"""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_type, to_arrow_type

from sparkscore.predictiontype import parse_ddl, prediction_type
from sparkscore.signature import Signature

__all__ = ["arrow_type", "output_type", "parse_type", "prediction_types", "spark_type"]


def spark_type(arrow: pa.DataType) -> T.DataType:
    """The Spark type an Arrow type carries (a naive timestamp is Spark's timestamp_ntz)."""
    return from_arrow_type(arrow, prefer_timestamp_ntz=True)


def arrow_type(spark: T.DataType) -> pa.DataType:
    """The Arrow type that carries a Spark type between Python and the JVM."""
    return to_arrow_type(spark, timezone="UTC")


def prediction_types(
    signature: Signature | None,
    result_type: str | T.DataType | None = None,
) -> tuple[T.DataType, pa.DataType]:
    """The Spark type of one prediction and the Arrow type carrying it, as one pair."""
    if isinstance(result_type, T.DataType):
        return result_type, arrow_type(result_type)
    arrow = prediction_type(signature, result_type)
    return spark_type(arrow), arrow


def output_type(
    signature: Signature | None, result_type: str | T.DataType | None = None
) -> T.DataType:
    """The Spark type of one prediction: `result_type` if given, else from the output schema.

    Examples
    --------
    >>> output_type(None)
    DoubleType()
    """
    return prediction_types(signature, result_type)[0]


def parse_type(value: str | T.DataType) -> T.DataType:
    """A DDL string (`double`, `array<double>`, `struct<a:int>`) or a DataType, checked once."""
    if isinstance(value, T.DataType):
        return value
    return spark_type(parse_ddl(value))
