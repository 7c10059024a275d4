"""One column's values converted to a signature type, losslessly, value by value.

A conversion is allowed when no value changes (int -> long, int -> double below 2**53, a whole
float -> long, a numeric string -> double) and refused, naming the row and the value, when one
would. This is broader than mlflow, which refuses by dtype (int64 for an integer column even in
range): docs/models.md lists each difference and why.

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

import decimal
import warnings
from typing import Any

import numpy as np
import pandas as pd

from sparkscore.signature import ColumnType, DataType, type_name

__all__ = ["convert", "decimal_lost"]

_MAX_EXACT_INT_IN_DOUBLE = 2**53


_INT_RANGE = {
    DataType.integer: (np.iinfo(np.int32).min, np.iinfo(np.int32).max),
    DataType.long: (np.iinfo(np.int64).min, np.iinfo(np.int64).max),
}


# A column already of the numpy dtype one of these names is handed on as it is: the casts below
# would copy it into the same dtype. (A boolean column of bool is handed on by its own branch.)
_NUMERIC = (DataType.integer, DataType.long, DataType.float, DataType.double)


def convert(values: pd.Series, t: ColumnType) -> tuple[Any, np.ndarray | None, str, dict[int, str]]:
    """Convert one column; return (values, bad-row mask or None, type name, the reason for each
    bad row that has one more precise than "cannot be converted safely")."""
    if not isinstance(t, DataType):
        return values, None, type_name(t), {}
    name = t.value
    dtype = values.dtype
    if t in _NUMERIC and dtype == t.to_numpy():
        return values, None, name, {}
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
            if mask.any():
                return values, mask, name, {}
            # Python booleans become bool, as mlflow makes them; with a missing value they stay
            # objects, since bool holds no missing value.
            return (values if values.isna().any() else values.astype(bool)), None, name, {}
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
                lambda v: (
                    isinstance(v, (int, float, decimal.Decimal, np.number, np.bool_))
                    and not _missing(v)
                )
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
    tick = np.array(count, dtype=f"timedelta64[{unit}]")  # a dtype string: unit is any str
    step = int(tick.astype("timedelta64[ns]").astype(np.int64))
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
    coerced = pd.to_numeric(
        objs.where(~is_bool, None).map(lambda v: float(v) if isinstance(v, decimal.Decimal) else v),
        errors="coerce",
    )
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
        ints = values.map(
            lambda v: (
                isinstance(v, (int, np.integer))
                and not isinstance(v, (bool, np.bool_))
                and not -limit <= v <= limit
            )
        ).to_numpy(dtype=bool)
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
    return np.fromiter(
        (decimal.Decimal(text) == d for text, d in zip(spelled, decimals)),
        dtype=bool,
        count=len(decimals),
    )


def _masked_cast(values: pd.Series, mask: np.ndarray, target: np.dtype) -> tuple[Any, Any]:
    if mask.any():
        values = values.where(~mask, 0)
        return values.astype(target), mask
    return values.astype(target), None


def decimal_lost(values: np.ndarray, cast: np.ndarray) -> decimal.Decimal | None:
    """The first decimal among `values` that its cast did not keep, or None."""
    at = np.flatnonzero(_instances(values, decimal.Decimal))
    if cast.dtype.kind == "f":
        kept = _reads_back(values[at], cast[at])
    else:
        kept = np.array([_exact_int(values[i]) == int(cast[i]) for i in at], dtype=bool)
    return values[at[~kept][0]] if not kept.all() else None
