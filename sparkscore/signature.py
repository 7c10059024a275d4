"""Model signatures: parse MLflow's JSON specs and hold input data to them.

Names and JSON shapes follow mlflow.types (DataType, ColSpec, TensorSpec, ParamSpec) so that a
signature written by mlflow reads back unchanged. Conversion follows mlflow's safe rules, judged
value by value: a conversion is allowed when no value changes (int -> long, int -> double below
2**53, a whole float -> long, a numeric string -> double) and refused, naming the row and the
value, when one would.

Two kinds of value carry more than a float64 or pandas' default timestamp can, so each is judged
exactly rather than through them:
- A decimal (Parquet/Arrow `decimal128`/`decimal256`, Spark `DecimalType`; pandas holds them as
  `decimal.Decimal`) becomes a double or float only when the float reads back as the decimal: its
  shortest spelling (what Python, Java and Spark print) equals the decimal at the decimal's
  scale. 12.34 survives, in decimal(4, 2) as in decimal(38, 20); 2**53 + 1 and
  0.10000000000000000001 do not. It becomes an integer or long only when it is whole and in
  range. Strings to integers are judged on their exact value the same way.
- The signature's datetime type is what mlflow hands a model: `datetime64[ns]`, which holds
  1677-09-21 00:12:43.145224193 to 2262-04-11 23:47:16.854775807. A timestamp, date or date
  string in that range reaches the model with its exact value whatever its unit; one outside it
  (year 9999, year 1) fails its own row, naming the value; a timezone-aware one fails its own
  row as mlflow refuses it. Without a datetime spec nothing is converted: a column keeps the unit
  Arrow read it with, so a year-9999 value reaches a model without a signature as it is.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sparkscore.errors import (
    MissingColumnError,
    ParamError,
    SchemaEnforcementError,
    TensorShapeError,
)


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

    def to_numpy(self) -> np.dtype:
        return np.dtype(_NUMPY[self])

    @classmethod
    def from_numpy(cls, dtype: np.dtype) -> DataType | None:
        dtype = np.dtype(dtype)
        if dtype.kind in "US":
            return cls.string
        for member, name in _NUMPY.items():
            if np.dtype(name) == dtype:
                return member
        return None


_NUMPY = {
    DataType.boolean: "bool",
    DataType.integer: "int32",
    DataType.long: "int64",
    DataType.float: "float32",
    DataType.double: "float64",
    DataType.string: "object",
    DataType.binary: "object",
    DataType.datetime: "datetime64[ns]",
}


@dataclass(frozen=True)
class ArrayType:
    """`{"type": "array", "items": ...}`: a list per row."""

    items: ColumnType

    def to_dict(self) -> dict[str, Any]:
        return {"type": "array", "items": _type_to_dict(self.items)}


@dataclass(frozen=True)
class ObjectType:
    """`{"type": "object", "properties": ...}`: a mapping per row, fields by name."""

    properties: tuple[tuple[str, ColumnType, bool], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                name: {**_type_to_dict(t), "required": req} for name, t, req in self.properties
            },
        }


@dataclass(frozen=True)
class MapType:
    """`{"type": "map", "values": ...}`: string keys to values of one type."""

    values: ColumnType

    def to_dict(self) -> dict[str, Any]:
        return {"type": "map", "values": _type_to_dict(self.values)}


@dataclass(frozen=True)
class AnyType:
    """`{"type": "any"}`: no constraint."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": "any"}


ColumnType = DataType | ArrayType | ObjectType | MapType | AnyType


@dataclass(frozen=True)
class ColSpec:
    type: ColumnType
    name: str | None = None
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = _type_to_dict(self.type)
        if self.name is not None:
            d["name"] = self.name
        d["required"] = self.required
        return d


@dataclass(frozen=True)
class TensorSpec:
    dtype: np.dtype
    shape: tuple[int, ...]
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": "tensor",
            "tensor-spec": {"dtype": self.dtype.name, "shape": list(self.shape)},
        }
        if self.name is not None:
            d["name"] = self.name
        return d


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: DataType | ObjectType
    default: Any = None
    shape: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "default": self.default,
            "shape": list(self.shape) if self.shape is not None else None,
            **_type_to_dict(self.type),
        }


Spec = ColSpec | TensorSpec


@dataclass(frozen=True)
class Schema:
    """An ordered list of column or tensor specs (never a mix, as in mlflow)."""

    specs: tuple[Spec, ...]

    @property
    def is_tensor(self) -> bool:
        return bool(self.specs) and isinstance(self.specs[0], TensorSpec)

    @property
    def has_names(self) -> bool:
        return bool(self.specs) and all(s.name is not None for s in self.specs)

    def names(self) -> list[str]:
        return [s.name if s.name is not None else str(i) for i, s in enumerate(self.specs)]

    def required_names(self) -> list[str]:
        return [
            s.name for s in self.specs
            if s.name is not None and (isinstance(s, TensorSpec) or s.required)
        ]

    def to_list(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.specs]

    @classmethod
    def from_list(cls, items: Sequence[Mapping[str, Any]]) -> Schema:
        if not isinstance(items, list):
            raise TypeError(f"a schema is a JSON list of specs, got {type(items).__name__}")
        specs: list[Spec] = []
        for item in items:
            if item.get("type") == "tensor":
                ts = item["tensor-spec"]
                specs.append(
                    TensorSpec(
                        dtype=np.dtype(ts["dtype"]),
                        shape=tuple(int(d) for d in ts["shape"]),
                        name=item.get("name"),
                    )
                )
            else:
                specs.append(
                    ColSpec(
                        type=_type_from_dict(item),
                        name=item.get("name"),
                        required=bool(item.get("required", True)),
                    )
                )
        kinds = {isinstance(s, TensorSpec) for s in specs}
        if len(kinds) > 1:
            raise ValueError("a schema cannot mix tensor and column specs")
        return cls(tuple(specs))


@dataclass(frozen=True)
class Signature:
    inputs: Schema | None = None
    outputs: Schema | None = None
    params: tuple[ParamSpec, ...] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Signature:
        """From the parsed JSON of MLmodel's `signature` (inputs / outputs / params)."""
        params = None
        if d.get("params"):
            params = tuple(
                ParamSpec(
                    name=p["name"],
                    # mlflow writes "type" (older versions "dtype"); a dict param is an object
                    type=_type_from_dict({**p, "type": p.get("type") or p["dtype"]}),
                    default=p.get("default"),
                    shape=tuple(p["shape"]) if p.get("shape") is not None else None,
                )
                for p in d["params"]
            )
        return cls(
            inputs=Schema.from_list(d["inputs"]) if d.get("inputs") else None,
            outputs=Schema.from_list(d["outputs"]) if d.get("outputs") else None,
            params=params,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs.to_list() if self.inputs else None,
            "outputs": self.outputs.to_list() if self.outputs else None,
            "params": [p.to_dict() for p in self.params] if self.params else None,
        }


def _type_from_dict(d: Mapping[str, Any]) -> ColumnType:
    t = d["type"]
    if t == "array":
        return ArrayType(_type_from_dict(d["items"]))
    if t == "object":
        return ObjectType(
            tuple(
                (name, _type_from_dict(p), bool(p.get("required", True)))
                for name, p in d["properties"].items()
            )
        )
    if t == "map":
        return MapType(_type_from_dict(d["values"]))
    if t == "any":
        return AnyType()
    return DataType(t)


def _type_to_dict(t: ColumnType) -> dict[str, Any]:
    return {"type": t.value} if isinstance(t, DataType) else t.to_dict()


# ---------------------------------------------------------------------------------------------
# Input enforcement


@dataclass(frozen=True)
class Conformed:
    """Input held to a column schema: the good rows converted, the bad ones each with its error."""

    frame: pd.DataFrame
    bad: np.ndarray = field(repr=False)
    errors: tuple[SchemaEnforcementError, ...] = ()


def conform(
    data: pd.DataFrame, schema: Schema | None, *, file: str | None = None, row_offset: int = 0
) -> Conformed:
    """Convert every column the schema names; collect one error per row that cannot convert.

    Rows that fail are dropped from `frame` (so the rest can still be scored) and reported in
    `errors`, each naming the file, the row (counted from `row_offset`), the column and the value.
    A missing required column is not a row problem: it raises MissingColumnError.
    """
    n = len(data)
    if schema is None or not schema.specs or schema.is_tensor:
        return Conformed(data, np.zeros(n, dtype=bool))
    if schema.has_names:
        pairs = []
        for spec in schema.specs:
            assert isinstance(spec, ColSpec) and spec.name is not None
            if spec.name not in data.columns:
                if spec.required:
                    raise MissingColumnError(file=file, column=spec.name,
                                             present=list(data.columns))
                continue
            pairs.append((spec.name, spec.name, spec))
    else:
        if len(data.columns) < len(schema.specs):
            missing = schema.names()[len(data.columns)]
            raise MissingColumnError(file=file, column=missing, present=list(data.columns))
        pairs = [(c, c, s) for c, s in zip(data.columns, schema.specs)]
    bad = np.zeros(n, dtype=bool)
    first_error: dict[int, SchemaEnforcementError] = {}
    columns: dict[Any, Any] = {}
    for source, target, spec in pairs:
        assert isinstance(spec, ColSpec)
        converted, col_bad, expected, reasons = _convert(data[source], spec.type)
        columns[target] = converted
        if col_bad is not None and col_bad.any():
            for i in np.flatnonzero(col_bad & ~bad):
                value = data[source].iloc[i]
                reason = reasons.get(int(i))
                first_error[int(i)] = SchemaEnforcementError(
                    file=file,
                    row=row_offset + int(i),
                    column=str(source),
                    value=_plain(value),
                    expected=expected,
                    reason=None if reason is None else _row_reason(str(source), value, reason),
                )
            bad |= col_bad
    frame = pd.DataFrame(columns, index=data.index)
    if bad.any():
        frame = frame.loc[~bad]
    errors = tuple(first_error[i] for i in sorted(first_error))
    return Conformed(frame, bad, errors)


def enforce(
    data: Any, schema: Schema | None, *, file: str | None = None, row_offset: int = 0
) -> Any:
    """Hold `data` to `schema` as mlflow's pyfunc predict does, raising on the first bad row."""
    if schema is None or not schema.specs:
        return data
    if schema.is_tensor:
        return _enforce_tensors(data, schema, file=file)
    if isinstance(data, np.ndarray) and data.ndim == 2:
        data = pd.DataFrame(data, columns=schema.names()[: data.shape[1]])
    if isinstance(data, Mapping):
        data = pd.DataFrame(dict(data))
    if not isinstance(data, pd.DataFrame):
        raise SchemaEnforcementError(
            file=file, row=None, column="*", value=type(data).__name__, expected="a DataFrame",
            reason=f"the model has a column signature, so its input must be a pandas DataFrame, "
            f"got {type(data).__name__}.",
        )
    result = conform(data, schema, file=file, row_offset=row_offset)
    if result.errors:
        raise result.errors[0]
    return result.frame


def _row_reason(column: str, value: Any, reason: str) -> str:
    return f"column '{column}' has value {_plain(value)!r}, {reason}"


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value a user would type."""
    if isinstance(value, np.generic):
        return value.item()
    return value


_MAX_EXACT_INT_IN_DOUBLE = 2**53
_INT_RANGE = {
    DataType.integer: (np.iinfo(np.int32).min, np.iinfo(np.int32).max),
    DataType.long: (np.iinfo(np.int64).min, np.iinfo(np.int64).max),
}


def _convert(
    values: pd.Series, t: ColumnType
) -> tuple[Any, np.ndarray | None, str, dict[int, str]]:
    """Convert one column; return (values, bad-row mask or None, type name, the reason for each
    bad row that has one more precise than "cannot be converted safely")."""
    if not isinstance(t, DataType):
        return values, None, _type_name(t), {}
    name = t.value
    dtype = values.dtype
    if t in (DataType.integer, DataType.long):
        return (*_to_int(values, t), name, {})
    if t in (DataType.float, DataType.double):
        return (*_to_float(values, t), name, {})
    if t is DataType.string:
        if isinstance(dtype, pd.StringDtype):
            return values, None, name, {}
        if dtype == object:
            nonstr = values.map(lambda v: not (isinstance(v, str) or _missing(v)))
            mask = nonstr.to_numpy(dtype=bool)
            return values, (mask if mask.any() else None), name, {}
        mask = values.notna().to_numpy(dtype=bool)
        return values, (mask if mask.any() else None), name, {}
    if t is DataType.boolean:
        if dtype == bool or isinstance(dtype, pd.BooleanDtype):
            return values, None, name, {}
        if dtype == object:
            bad = values.map(lambda v: not (_missing(v) or isinstance(v, (bool, np.bool_))))
            mask = bad.to_numpy(dtype=bool)
            return values, (mask if mask.any() else None), name, {}
        return values, values.notna().to_numpy(dtype=bool), name, {}
    if t is DataType.datetime:
        converted, bad, reasons = _to_datetime64(values)
        return converted, bad, name, reasons
    if t is DataType.binary:
        if dtype == object:
            bad = values.map(lambda v: not (_missing(v) or isinstance(v, (bytes, bytearray))))
            mask = bad.to_numpy(dtype=bool)
            return values, (mask if mask.any() else None), name, {}
        return values, np.ones(len(values), dtype=bool), name, {}
    raise AssertionError(t)


# What mlflow gives a model for a datetime spec; pandas' Timestamp.min and max are its range.
_DATETIME = np.dtype("datetime64[ns]")
_NAT = np.datetime64("NaT", "ns")
_AWARE_REASON = "which is not a timezone-naive datetime."
_RANGE_REASON = (
    f"which is outside the range of the signature's datetime type (datetime64[ns]: "
    f"{pd.Timestamp.min} to {pd.Timestamp.max})."
)
# How each value of a datetime column fared.
_HELD, _UNREAD, _AWARE, _OUT_OF_RANGE = 0, 1, 2, 3


def _to_datetime64(values: pd.Series) -> tuple[pd.Series, np.ndarray | None, dict[int, str]]:
    """A column as datetime64[ns], exact; each value it cannot hold is a bad row of its own.

    mlflow casts the whole column and fails it whole; here a year-9999 value (which Arrow and
    pandas read at microseconds) fails only its row, and a timezone-aware value fails as not
    naive, whatever else the column holds.
    """
    dtype = values.dtype
    n = len(values)
    status = np.full(n, _HELD, dtype=np.int8)
    if dtype.kind == "M" and getattr(values.dt, "tz", None) is not None:
        status[values.notna().to_numpy(dtype=bool)] = _AWARE
        ns = np.full(n, _NAT)
    elif dtype.kind == "M" and values.to_numpy().dtype.kind == "M":
        ns, out = _as_ns(values.to_numpy())
        status[out] = _OUT_OF_RANGE
    elif dtype.kind in "iufcb" or isinstance(dtype, pd.BooleanDtype):
        # pandas would read numbers as nanoseconds since 1970; mlflow refuses them too.
        status[values.notna().to_numpy(dtype=bool)] = _UNREAD
        ns = np.full(n, _NAT)
    else:
        if dtype == object:
            numbers = values.map(
                lambda v: isinstance(v, (int, float, decimal.Decimal, np.number, np.bool_))
                and not _missing(v)
            ).to_numpy(dtype=bool)
            if numbers.any():
                values = values.where(~numbers, None)
                status[numbers] = _UNREAD
        ns = _parse_datetimes(values, status)
    reasons = {int(i): _AWARE_REASON for i in np.flatnonzero(status == _AWARE)}
    reasons.update({int(i): _RANGE_REASON for i in np.flatnonzero(status == _OUT_OF_RANGE)})
    bad = status != _HELD
    return pd.Series(ns, index=values.index), (bad if bad.any() else None), reasons


def _as_ns(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Naive datetime64 of any unit as nanoseconds, exact, and a mask of those out of range.

    numpy's own cast wraps around silently past 2262; pandas' raises for the whole column.
    """
    unit, count = np.datetime_data(arr.dtype)
    if (unit, count) == ("ns", 1):
        return arr, np.zeros(len(arr), dtype=bool)
    step = int(np.timedelta64(count, unit).astype("timedelta64[ns]").astype(np.int64))
    limit = np.iinfo(np.int64).max // step  # the int64 minimum itself is NaT
    ticks = arr.view(np.int64)
    out = ~np.isnat(arr) & ((ticks > limit) | (ticks < -limit))
    return np.where(out, np.datetime64("NaT"), arr).astype(_DATETIME), out


def _parse_datetimes(values: pd.Series, status: np.ndarray) -> np.ndarray:
    """Strings, dates and datetimes as datetime64[ns], judging each value into `status`.

    Parse fast with the format pandas infers from the first value, then the misses again with
    each value's own format, so that '2024-01-02' and '2024-01-02 05:06:07' both parse in one
    column; values still unread (another time zone, a date pandas read at a unit that cannot
    hold it) are judged one by one.
    """
    ns = np.full(len(values), _NAT)
    pending = values.notna().to_numpy(dtype=bool) & (status == _HELD)
    for how in ({}, {"format": "mixed"}):
        if not pending.any():
            break
        rows = np.flatnonzero(pending)
        try:
            with warnings.catch_warnings():  # "could not infer format": the misses are retried
                warnings.simplefilter("ignore", UserWarning)
                parsed = pd.to_datetime(values.iloc[rows], errors="coerce", **how)
        except ValueError:  # time zones that differ: judged value by value below
            continue
        read = parsed.notna().to_numpy(dtype=bool)
        if getattr(parsed.dtype, "tz", None) is not None:
            status[rows[read]] = _AWARE
        else:
            ns[rows], out = _as_ns(parsed.to_numpy())
            status[rows[out]] = _OUT_OF_RANGE
        pending[rows[read]] = False
    for i in np.flatnonzero(pending):
        status[i], ns[i] = _one_datetime(values.iloc[i])
    return ns


def _one_datetime(value: Any) -> tuple[int, np.datetime64]:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError, OverflowError):
        return _UNREAD, _NAT
    if stamp is pd.NaT:
        return _UNREAD, _NAT
    if stamp.tz is not None:
        return _AWARE, _NAT
    try:
        return _HELD, stamp.as_unit("ns").to_datetime64()
    except (ValueError, OverflowError):  # OutOfBoundsDatetime is a ValueError
        return _OUT_OF_RANGE, _NAT


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and v != v


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or _isnan(v)


def _numeric(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values as float64 with a mask of entries that are present but not numbers."""
    if values.dtype == bool or isinstance(values.dtype, pd.BooleanDtype):
        return np.zeros(len(values)), values.notna().to_numpy(dtype=bool)
    if values.dtype.kind in "iuf":
        return values.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(values), bool)
    if isinstance(values.dtype, pd.api.extensions.ExtensionDtype) and values.dtype.kind in "iuf":
        return values.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(values), bool)
    objs = values.astype(object)
    is_bool = objs.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
    coerced = pd.to_numeric(objs.where(~is_bool, None).map(
        lambda v: float(v) if isinstance(v, decimal.Decimal) else v), errors="coerce")
    as_float = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    present = objs.map(lambda v: not (v is None or _isnan(v) or v is pd.NA)).to_numpy(dtype=bool)
    return as_float, (np.isnan(as_float) & present) | is_bool


def _to_int(values: pd.Series, t: DataType) -> tuple[Any, np.ndarray | None]:
    lo, hi = _INT_RANGE[t]
    target = t.to_numpy()
    dtype = values.dtype
    if dtype.kind in "iu" and not isinstance(dtype, pd.api.extensions.ExtensionDtype):
        if np.can_cast(dtype, target, "safe"):
            return values.astype(target), None
        arr = values.to_numpy()
        mask = (arr < lo) | (arr > hi)
        return _masked_cast(values, mask, target)
    if dtype.kind in "iu":
        # nullable Int64 / UInt64: compare as integers, a float64 detour would round above 2**53
        raw = values.to_numpy(dtype=np.uint64 if dtype.kind == "u" else np.int64, na_value=0)
        mask = values.isna().to_numpy(dtype=bool) | (raw < lo) | (raw > hi)
        return _masked_cast(pd.Series(np.where(mask, 0, raw), index=values.index), mask, target)
    arr, bad = _numeric(values)
    with np.errstate(invalid="ignore"):
        # hi + 1 (2**31, 2**63) is exact as a float; hi itself rounds up to it for long
        mask = bad | np.isnan(arr) | (np.mod(arr, 1) != 0) | (arr < lo) | (arr >= float(hi + 1))
    filled = np.where(mask, 0, arr).astype(target)
    if dtype == object or isinstance(dtype, pd.StringDtype):
        # float64 holds integers exactly only up to 2**53, and reads a decimal or text such as
        # 1.00000000000000000001 as the whole 1.0: take those from the value itself
        objs = values.to_numpy(dtype=object)
        spelled = _instances(objs, (str, decimal.Decimal))
        for i in np.flatnonzero(~mask & ((np.abs(arr) >= _MAX_EXACT_INT_IN_DOUBLE) | spelled)):
            exact = _exact_int(objs[i])
            if exact is None or not lo <= exact <= hi:
                mask[i] = True
                filled[i] = 0
            else:
                filled[i] = exact
    return pd.Series(filled, index=values.index), (mask if mask.any() else None)


def _exact_int(v: Any) -> int | None:
    """The integer a value spells exactly, or None (bools and fractions are not integers)."""
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, str):
        try:
            v = decimal.Decimal(v.strip())
        except decimal.InvalidOperation:
            return None
    if isinstance(v, (float, np.floating, decimal.Decimal)):
        try:
            return int(v) if v == int(v) else None
        except (ValueError, OverflowError):
            return None
    return None


def _to_float(values: pd.Series, t: DataType) -> tuple[Any, np.ndarray | None]:
    target = t.to_numpy()
    dtype = values.dtype
    limit = _MAX_EXACT_INT_IN_DOUBLE if target == np.float64 else 2**24
    if dtype.kind == "f" and not isinstance(dtype, pd.api.extensions.ExtensionDtype):
        if np.can_cast(dtype, target, "safe"):
            return values.astype(target), None
        arr = values.to_numpy()
        with np.errstate(over="ignore"):
            back = arr.astype(target).astype(arr.dtype)
        mask = ~((back == arr) | np.isnan(arr))
        return _masked_cast(values, mask, target)
    if dtype.kind in "iu" and not isinstance(dtype, pd.api.extensions.ExtensionDtype):
        # numpy calls int64 -> float64 "safe", but float64 holds integers exactly only to 2**53
        if dtype.itemsize * 8 <= np.finfo(target).nmant + 1:
            return values.astype(target), None
        arr = values.to_numpy()
        mask = (arr > limit) | (arr < -limit)
        return _masked_cast(values, mask, target)
    if dtype.kind in "iu":
        raw = values.to_numpy(dtype=np.uint64 if dtype.kind == "u" else np.int64, na_value=0)
        mask = (raw > limit) | (raw < -limit)
        arr = np.where(values.isna().to_numpy(dtype=bool), np.nan, raw.astype(np.float64))
        return _masked_cast(pd.Series(arr, index=values.index), mask, target)
    arr, bad = _numeric(values)
    decimals = np.zeros(len(arr), dtype=bool)
    if dtype == object:
        ints = values.map(lambda v: isinstance(v, (int, np.integer))
                          and not isinstance(v, (bool, np.bool_))
                          and not -limit <= v <= limit).to_numpy(dtype=bool)
        bad = bad | ints
        objs = values.to_numpy(dtype=object)
        decimals = _instances(objs, decimal.Decimal)
        rows = np.flatnonzero(decimals & ~bad)
        if len(rows):
            with np.errstate(over="ignore"):
                nearest = arr[rows].astype(target)
            bad[rows] = ~_reads_back(objs[rows], nearest)
    if target == np.float32:
        with np.errstate(over="ignore"):
            back = arr.astype(np.float32).astype(np.float64)
        bad = bad | ~((back == arr) | np.isnan(arr) | decimals)
    return _masked_cast(pd.Series(np.where(bad, 0.0, arr), index=values.index), bad, target)


def _instances(objs: np.ndarray, kinds: type | tuple[type, ...]) -> np.ndarray:
    return np.fromiter((isinstance(v, kinds) for v in objs), dtype=bool, count=len(objs))


def _reads_back(decimals: np.ndarray, nearest: np.ndarray) -> np.ndarray:
    """For each decimal, whether the float nearest it (float64 or float32) reads back as it.

    Reading back is the float's shortest spelling, as Python, Java and Spark print it (and as
    Spark casts a double to a decimal), at the decimal's scale: 12.34 in decimal(38, 20) is
    12.34000000000000000000 and its double reads back as 12.34, so it survives; the double
    nearest 9007199254740993 reads back as 9007199254740992, so that row is refused. (A
    float's exact binary value, 12.339999999999999857891452847979962825775146484375, would
    refuse every decimal fraction but halves, quarters and the like.)
    """
    # repr of a Python float and str of a numpy float32 are their shortest spellings
    spelled = map(repr, nearest.tolist()) if nearest.dtype == np.float64 else map(str, nearest)
    return np.fromiter((decimal.Decimal(text) == d for text, d in zip(spelled, decimals)),
                       dtype=bool, count=len(decimals))


def _masked_cast(values: pd.Series, mask: np.ndarray, target: np.dtype) -> tuple[Any, Any]:
    if mask.any():
        values = values.where(~mask, 0)
        return values.astype(target), mask
    return values.astype(target), None


def _type_name(t: ColumnType) -> str:
    return t.value if isinstance(t, DataType) else _type_to_dict(t)["type"]


def _enforce_tensors(data: Any, schema: Schema, *, file: str | None) -> Any:
    specs = [s for s in schema.specs if isinstance(s, TensorSpec)]
    if schema.has_names and len(specs) > 1 or (schema.has_names and isinstance(data, Mapping)):
        if isinstance(data, pd.DataFrame):
            data = {s.name: _column_tensor(data[s.name], s, file) for s in specs
                    if _has(data, s, file)}
        if not isinstance(data, Mapping):
            raise SchemaEnforcementError(
                file=file, row=None, column="*", value=type(data).__name__,
                expected="a mapping of named tensors",
                reason="the model takes named tensors, so its input must be a dict of arrays "
                f"or a DataFrame with those columns, got {type(data).__name__}.",
            )
        return {s.name: _check_tensor(np.asarray(data[s.name]), s, file) for s in specs
                if _has(data, s, file)}
    spec = specs[0]
    if isinstance(data, pd.DataFrame):
        if len(data.columns) == 1:
            return _column_tensor(data[data.columns[0]], spec, file)
        values = data.to_numpy()
        _check_shape(values, spec, file)  # as mlflow: a wrong shape is named before a wrong type
        return _check_tensor(_safe_tensor_cast(values, spec, file), spec, file)
    return _check_tensor(np.asarray(data), spec, file)


def _has(data: Any, spec: TensorSpec, file: str | None) -> bool:
    if spec.name not in data:
        raise MissingColumnError(file=file, column=str(spec.name), present=list(data))
    return True


def _column_tensor(series: pd.Series, spec: TensorSpec, file: str | None) -> np.ndarray:
    """A DataFrame column of scalars, lists or arrays, stacked and reshaped to the spec."""
    name = spec.name or "the unnamed input"
    if len(series) and isinstance(series.iloc[0], (list, np.ndarray)):
        try:
            stacked = np.stack([np.asarray(v) for v in series])
        except ValueError:
            shapes = sorted({np.shape(v) for v in series})
            raise TensorShapeError(file=file, column=name, shape=shapes[0],
                                   expected=spec.shape) from None
        target_shape = tuple(len(series) if d == -1 and i == 0 else d
                             for i, d in enumerate(spec.shape))
        try:
            stacked = stacked.reshape(target_shape)
        except ValueError:
            raise TensorShapeError(file=file, column=name, shape=stacked.shape,
                                   expected=spec.shape) from None
        return _check_tensor(_safe_tensor_cast(stacked, spec, file), spec, file)
    arr = _safe_tensor_cast(series.to_numpy(), spec, file)
    if spec.shape == (-1, 1):
        arr = arr.reshape(-1, 1)
    return _check_tensor(arr, spec, file)


def _safe_tensor_cast(arr: np.ndarray, spec: TensorSpec, file: str | None) -> np.ndarray:
    if arr.dtype == spec.dtype or spec.dtype == np.dtype(object):
        return arr
    try:
        cast = arr.astype(spec.dtype)
    except (TypeError, ValueError):
        cast = None
    ok = cast is not None
    if ok and arr.dtype.kind in "iufb" and spec.dtype.kind in "iufb":
        with np.errstate(invalid="ignore"):
            ok = bool(np.all((cast == arr) | (np.isnan(arr) if arr.dtype.kind == "f" else False)))
    if ok and arr.dtype == object and spec.dtype.kind in "iuf":
        # decimals (a Parquet decimal column) are held to the rule columns are
        lost = _decimal_lost(arr.ravel(), cast.ravel())
        if lost is not None:
            name = spec.name or "the unnamed input"
            raise SchemaEnforcementError(
                file=file, row=None, column=name, value=lost, expected=str(spec.dtype),
                reason=f"tensor input '{name}' has value {lost!r}, which cannot be converted "
                f"safely to {spec.dtype}.",
            )
    if not ok:
        raise SchemaEnforcementError(
            file=file, row=None, column=spec.name or "the unnamed input", value=str(arr.dtype),
            expected=str(spec.dtype),
            reason=f"tensor input '{spec.name or 'the unnamed input'}' of dtype {arr.dtype} "
            f"cannot be converted safely to {spec.dtype}.",
        )
    return cast


def _decimal_lost(values: np.ndarray, cast: np.ndarray) -> decimal.Decimal | None:
    """The first decimal among `values` that its cast did not keep, or None."""
    at = np.flatnonzero(_instances(values, decimal.Decimal))
    if cast.dtype.kind == "f":
        kept = _reads_back(values[at], cast[at])
    else:
        kept = np.array([_exact_int(values[i]) == int(cast[i]) for i in at], dtype=bool)
    return values[at[~kept][0]] if not kept.all() else None


def _check_shape(arr: np.ndarray, spec: TensorSpec, file: str | None) -> None:
    if len(arr.shape) != len(spec.shape) or any(
        e != -1 and e != a for e, a in zip(spec.shape, arr.shape)
    ):
        name = spec.name or "the unnamed input"
        raise TensorShapeError(file=file, column=name, shape=arr.shape, expected=spec.shape)


def _check_tensor(arr: np.ndarray, spec: TensorSpec, file: str | None) -> np.ndarray:
    name = spec.name or "the unnamed input"
    _check_shape(arr, spec, file)
    if arr.dtype != spec.dtype and spec.dtype != np.dtype(object):
        if not np.can_cast(arr.dtype, spec.dtype, "safe"):
            raise SchemaEnforcementError(
                file=file, row=None, column=name, value=str(arr.dtype), expected=str(spec.dtype),
                reason=f"tensor input '{name}' has dtype {arr.dtype}, which cannot be converted "
                f"safely to {spec.dtype}.",
            )
        arr = arr.astype(spec.dtype)
    return arr


# ---------------------------------------------------------------------------------------------
# Params

_PARAM_WIDENING = {
    DataType.long: (DataType.integer,),
    # a Python float is mlflow's own value for a float param (its defaults are written so)
    DataType.float: (DataType.integer, DataType.long, DataType.double),
    DataType.double: (DataType.integer, DataType.long, DataType.float),
}


def enforce_params(
    params: Mapping[str, Any] | None, specs: Sequence[ParamSpec] | None
) -> dict[str, Any] | None:
    """Validate inference params against the model's ParamSchema and fill in defaults."""
    params = dict(params or {})
    if not specs:
        if params:
            name = sorted(params)[0]
            raise ParamError(
                name=name, reason="the model declares no inference parameters, so none can be "
                "passed; remove params."
            )
        return None
    by_name = {p.name: p for p in specs}
    unknown = sorted(set(params) - set(by_name))
    if unknown:
        raise ParamError(
            name=unknown[0], reason=f"is not a parameter of this model; its parameters are "
            f"{', '.join(sorted(by_name))}."
        )
    result = {}
    for spec in specs:
        value = params.get(spec.name)
        if value is None:  # mlflow validates defaults too: a datetime default is read as one
            value = spec.default
        result[spec.name] = None if value is None else _param_value(spec, value)
    return result


def _param_value(spec: ParamSpec, value: Any) -> Any:
    if spec.shape is not None:
        if not isinstance(value, (list, tuple, np.ndarray)):
            raise ParamError(name=spec.name, reason=f"must be a list of "
                             f"{_type_name(spec.type)}, got {value!r}.")
        return [_param_scalar(spec, v) for v in value]
    return _param_scalar(spec, value)


def _param_scalar(spec: ParamSpec, value: Any) -> Any:
    t = spec.type
    if isinstance(t, ObjectType):
        if not isinstance(value, Mapping):
            raise ParamError(name=spec.name, reason=f"must be an object (a dict with "
                             f"{', '.join(n for n, _, _ in t.properties)}), got {value!r}.")
        missing = [n for n, _, required in t.properties if required and n not in value]
        if missing:
            raise ParamError(name=spec.name, reason=f"is missing the required property "
                             f"'{missing[0]}', got {value!r}.")
        return value  # as mlflow: checked, passed on unchanged
    kind = _python_kind(value)
    if kind is t or kind in _PARAM_WIDENING.get(t, ()):
        return {DataType.long: int, DataType.integer: int, DataType.float: float,
                DataType.double: float, DataType.boolean: bool, DataType.string: str,
                DataType.binary: bytes}.get(t, lambda v: v)(value)
    if t is DataType.datetime and isinstance(value, (str, dt.date)):
        try:
            return pd.Timestamp(value).to_pydatetime()
        except ValueError:
            pass
    raise ParamError(
        name=spec.name, reason=f"must be of type {t.value}, got {value!r} "
        f"({type(value).__name__}), which cannot be converted safely."
    )


def _python_kind(value: Any) -> DataType | None:
    if isinstance(value, (bool, np.bool_)):
        return DataType.boolean
    if isinstance(value, (int, np.integer)):
        return DataType.integer if -(2**31) <= int(value) < 2**31 else DataType.long
    if isinstance(value, np.float32):
        return DataType.float
    if isinstance(value, (float, np.floating)):
        return DataType.double
    if isinstance(value, str):
        return DataType.string
    if isinstance(value, bytes):
        return DataType.binary
    if isinstance(value, dt.datetime):
        return DataType.datetime
    return None
