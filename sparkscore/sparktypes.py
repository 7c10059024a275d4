"""The one map from signature types to Spark types, used by the UDF and by the job's writers."""

from __future__ import annotations

import re

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
    """A row's value for this spec: a tensor loses its batch dimension, each further one is an
    array."""
    if isinstance(spec, ColSpec):
        return column_type(spec.type)
    result = tensor_element_type(spec.dtype)
    for _ in spec.shape[1:]:
        result = T.ArrayType(result)
    return result


def output_type(signature: Signature | None,
                result_type: str | T.DataType | None = None) -> T.DataType:
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
        [T.StructField(name, spec_type(spec), True)
         for name, spec in zip(outputs.names(), outputs.specs)]
    )


def parse_type(value: str | T.DataType) -> T.DataType:
    """A DDL string (`double`, `array<double>`, `struct<a:int>`) or a DataType, checked once."""
    if isinstance(value, T.DataType):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return _DDLParser(value).parse()
        except ValueError:
            pass
    try:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("not a type")
        # Spark's own parser knows rarer types, but needs a running SparkContext (none on
        # executors or before the session starts), hence ours first.
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


_SIMPLE: dict[str, T.DataType] = {
    "boolean": T.BooleanType(), "tinyint": T.ByteType(), "byte": T.ByteType(),
    "smallint": T.ShortType(), "short": T.ShortType(), "int": T.IntegerType(),
    "integer": T.IntegerType(), "bigint": T.LongType(), "long": T.LongType(),
    "float": T.FloatType(), "real": T.FloatType(), "double": T.DoubleType(),
    "string": T.StringType(), "binary": T.BinaryType(), "date": T.DateType(),
    "timestamp": T.TimestampType(), "timestamp_ltz": T.TimestampType(),
    "timestamp_ntz": T.TimestampNTZType(), "void": T.NullType(),
}
_TOKEN = re.compile(r"\s*(?:(`(?:[^`]|``)*`)|([A-Za-z_][A-Za-z0-9_]*)|(\d+)|([<>(),:]))")


class _DDLParser:
    """Spark's DDL type syntax without a JVM: `array<double>`, `struct<a:int,b string>`,
    `map<string,double>`, `decimal(10,2)`, or a bare field list `a double, b string`."""

    def __init__(self, text: str) -> None:
        self.tokens: list[str] = []
        pos, text = 0, text.rstrip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise ValueError(f"unexpected text at {text[pos:]!r}")
            self.tokens.append(m.group(m.lastindex or 0))
            pos = m.end()
        self.i = 0

    def parse(self) -> T.DataType:
        start = self.i
        try:
            result = self._type()
            if self.i == len(self.tokens):
                return result
        except ValueError:
            pass
        self.i = start  # "a double, b string": a struct without struct<>
        fields = [self._field()]
        while self._accept(","):
            fields.append(self._field())
        if self.i != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.i]!r}")
        return T.StructType(fields)

    def _peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _accept(self, token: str) -> bool:
        if self._peek() == token:
            self.i += 1
            return True
        return False

    def _expect(self, token: str) -> None:
        if not self._accept(token):
            raise ValueError(f"expected {token!r}, got {self._peek()!r}")

    def _word(self) -> str:
        token = self._peek()
        if token is None or not (token[0].isalpha() or token[0] in "_`"):
            raise ValueError(f"expected a name, got {token!r}")
        self.i += 1
        return token[1:-1].replace("``", "`") if token[0] == "`" else token

    def _int(self) -> int:
        token = self._peek()
        if token is None or not token.isdigit():
            raise ValueError(f"expected a number, got {token!r}")
        self.i += 1
        return int(token)

    def _type(self) -> T.DataType:
        name = self._word().lower()
        if name in _SIMPLE:
            return _SIMPLE[name]
        if name in ("decimal", "dec", "numeric"):
            if not self._accept("("):
                return T.DecimalType(10, 0)
            precision, scale = self._int(), 0
            if self._accept(","):
                scale = self._int()
            self._expect(")")
            return T.DecimalType(precision, scale)
        if name == "array":
            self._expect("<")
            element = self._type()
            self._expect(">")
            return T.ArrayType(element)
        if name == "map":
            self._expect("<")
            key = self._type()
            self._expect(",")
            value = self._type()
            self._expect(">")
            return T.MapType(key, value)
        if name == "struct":
            self._expect("<")
            fields = []
            if not self._accept(">"):
                fields.append(self._field())
                while self._accept(","):
                    fields.append(self._field())
                self._expect(">")
            return T.StructType(fields)
        raise ValueError(f"unknown type {name!r}")

    def _field(self) -> T.StructField:
        name = self._word()
        self._accept(":")
        return T.StructField(name, self._type(), True)
