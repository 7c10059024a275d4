"""The type of one prediction, as the Arrow type Spark carries it in, without Spark.

`result_type` (Spark SQL DDL, as a user writes it) wins; otherwise the model's output schema
decides: none is a double, one spec is its own type, several are a struct of them by name. The
job types its output with this; the UDF's Spark return type is this type read back by
sparkscore.sparktypes, so the two cannot disagree.

Arrow types follow pyspark's `to_arrow_type(..., timezone="UTC")` exactly, field names included
(`list<element: double>`): a Spark timestamp is `timestamp[us, tz=UTC]`, a map's keys are not
null, every other field and element may be.
"""

from __future__ import annotations

import re

import pyarrow as pa

from sparkscore.dtypes import TYPES, tensor_spark_name
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

__all__ = ["column_type", "parse_ddl", "prediction_type", "spec_type"]


def prediction_type(signature: Signature | None, result_type: str | None = None) -> pa.DataType:
    """The Arrow type of one prediction: `result_type` if given, else from the output schema.

    Examples
    --------
    >>> prediction_type(None)
    DataType(double)
    >>> prediction_type(None, "array<float>")
    ListType(list<element: float>)
    """
    if result_type is not None:
        return parse_ddl(result_type)
    outputs = signature.outputs if signature else None
    if outputs is None or not outputs.specs:
        return pa.float64()
    if len(outputs.specs) == 1:
        return spec_type(outputs.specs[0])
    return _struct([(name, spec_type(spec)) for name, spec in zip(outputs.names(), outputs.specs)])


def spec_type(spec: ColSpec | TensorSpec) -> pa.DataType:
    """A row's value for this spec: a tensor loses its batch dimension, each further one is an
    array."""
    if isinstance(spec, ColSpec):
        return column_type(spec.type)
    result = _SIMPLE[tensor_spark_name(spec.dtype)]
    # Only a -1 is the batch: a fixed first dimension is part of each row's value (as mlflow).
    per_row = spec.shape[1:] if spec.shape and spec.shape[0] == -1 else spec.shape
    for _ in per_row:
        result = _list(result)
    return result


def column_type(t: ColumnType) -> pa.DataType:
    """A column spec's type as a prediction; `any` has no Spark type and is written as text."""
    if isinstance(t, DataType):
        return _SIMPLE[TYPES[t].spark]
    if isinstance(t, ArrayType):
        return _list(column_type(t.items))
    if isinstance(t, ObjectType):
        return _struct([(name, column_type(f)) for name, f, _ in t.properties])
    if isinstance(t, MapType):
        return _map(pa.string(), column_type(t.values))
    if isinstance(t, AnyType):
        return pa.string()
    raise TypeError(t)


def parse_ddl(value: str) -> pa.DataType:
    """A Spark DDL type (`double`, `array<double>`, `struct<a:int>`, `a int, b string`), checked
    once, here, so a typo fails before any Spark work."""
    if isinstance(value, str) and value.strip():
        try:
            return _DDLParser(value).parse()
        except ValueError:
            pass
    raise SettingsError(
        key="result_type",
        value=value,
        reason="must be a Spark SQL type such as double, string, array<double> or "
        "struct<label:string,score:double>",
    )


def _list(element: pa.DataType) -> pa.DataType:
    return pa.list_(pa.field("element", element, nullable=True))


def _map(key: pa.DataType, value: pa.DataType) -> pa.DataType:
    return pa.map_(pa.field("key", key, nullable=False), pa.field("value", value, nullable=True))


def _struct(fields: list[tuple[str, pa.DataType]]) -> pa.DataType:
    return pa.struct([pa.field(name, t, nullable=True) for name, t in fields])


# Spark's type names (and their synonyms) as Spark carries them in Arrow.
_SIMPLE: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "bool": pa.bool_(),
    "tinyint": pa.int8(),
    "byte": pa.int8(),
    "smallint": pa.int16(),
    "short": pa.int16(),
    "int": pa.int32(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "long": pa.int64(),
    "float": pa.float32(),
    "real": pa.float32(),
    "double": pa.float64(),
    "string": pa.string(),
    "binary": pa.binary(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "timestamp_ltz": pa.timestamp("us", tz="UTC"),
    "timestamp_ntz": pa.timestamp("us"),
    "void": pa.null(),
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

    def parse(self) -> pa.DataType:
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
        return _struct(fields)

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

    def _type(self) -> pa.DataType:
        name = self._word().lower()
        if name in _SIMPLE:
            return _SIMPLE[name]
        if name in ("decimal", "dec", "numeric"):
            if not self._accept("("):
                return pa.decimal128(10, 0)
            precision, scale = self._int(), 0
            if self._accept(","):
                scale = self._int()
            self._expect(")")
            return pa.decimal128(precision, scale)
        if name in ("char", "varchar"):  # Spark reads both as string outside a table
            self._expect("(")
            self._int()
            self._expect(")")
            return pa.string()
        if name in ("array", "map", "struct"):
            self._expect("<")
            result = self._nested(name)
            self._expect(">")
            return result
        raise ValueError(f"unknown type {name!r}")

    def _nested(self, name: str) -> pa.DataType:
        """What is between `<` and `>` of an array, a map or a struct."""
        if name == "array":
            return _list(self._type())
        if name == "map":
            key = self._type()
            self._expect(",")
            return _map(key, self._type())
        fields = []
        if self._peek() != ">":
            fields.append(self._field())
            while self._accept(","):
                fields.append(self._field())
        return _struct(fields)

    def _field(self) -> tuple[str, pa.DataType]:
        name = self._word()
        self._accept(":")
        return name, self._type()
