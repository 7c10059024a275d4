"""Array, object and map columns held to their signature type, row by row, as mlflow holds them.

mlflow's `Array`, `Object` and `Map` specs (`{"type": "array", "items": ...}` and so on) describe
one Python value per row: a list, a dict with named properties, a dict with string keys. Each
row's value is checked and its leaves converted with the same lossless rules as a scalar column
(`values.convert`); a row that does not fit fails alone, with a reason naming the element, the
property or the key, so the rest of the file is still scored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sparkscore.signature import AnyType, ArrayType, ColumnType, DataType, MapType, ObjectType
from sparkscore.signature import type_name as _type_name
from sparkscore.values import convert

__all__ = ["convert_nested"]


class _Unfit(Exception):
    """One row's value does not fit its type; the message is the reason, starting 'which'."""


def convert_nested(
    values: pd.Series, t: ColumnType
) -> tuple[pd.Series, np.ndarray | None, str, dict[int, str]]:
    """Like `values.convert`, for a column whose type is an array, object, map or any."""
    if isinstance(t, AnyType):
        return values, None, _type_name(t), {}
    out: list[Any] = []
    reasons: dict[int, str] = {}
    for i, value in enumerate(values.tolist()):
        if _missing(value):
            out.append(value)
            continue
        try:
            out.append(_fit(value, t))
        except _Unfit as e:
            reasons[i] = str(e)
            out.append(None)
    bad = np.zeros(len(values), dtype=bool)
    bad[list(reasons)] = True
    converted = pd.Series(out, index=values.index, name=values.name, dtype=object)
    return converted, (bad if bad.any() else None), _type_name(t), reasons


def _fit(value: Any, t: ColumnType, *, required: bool = True) -> Any:
    if isinstance(t, AnyType):
        return value
    if _missing(value):
        if required:
            raise _Unfit(f"which is missing, but {_type_name(t)} is required.")
        return value
    if isinstance(t, DataType):
        return _scalar(value, t)
    if isinstance(t, ArrayType):
        return _array(value, t)
    if isinstance(t, ObjectType):
        return _object(value, t)
    if isinstance(t, MapType):
        return _map(value, t)
    raise AssertionError(t)


def _scalar(value: Any, t: DataType) -> Any:
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        raise _Unfit(f"which is a {type(value).__name__}, not a {t.value}.")
    converted, bad, _, reasons = convert(pd.Series([value], dtype=object), t)
    if bad is not None and bad[0]:
        raise _Unfit(reasons.get(0, f"which cannot be converted safely to {t.value}."))
    out = converted.iloc[0] if isinstance(converted, pd.Series) else converted[0]
    return out.item() if isinstance(out, np.generic) else out


def _array(value: Any, t: ArrayType) -> Any:
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise _Unfit(f"which is a {type(value).__name__}, not an {_type_name(t)}.")
    items = []
    for i, item in enumerate(value):
        try:
            items.append(_fit(item, t.items))
        except _Unfit as e:
            raise _Unfit(f"whose element {i} has value {_shown(item)}, {e}") from None
    return np.array(items) if isinstance(value, np.ndarray) else items


def _object(value: Any, t: ObjectType) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Unfit(f"which is a {type(value).__name__}, not an {_type_name(t)}.")
    declared = {name: (ptype, required) for name, ptype, required in t.properties}
    missing = [n for n, (_, required) in declared.items() if required and n not in value]
    if missing:
        raise _Unfit(f"which lacks the required properties {', '.join(map(repr, missing))}.")
    extra = [k for k in value if k not in declared]
    if extra:
        raise _Unfit(
            f"which has properties the signature does not declare: {', '.join(map(repr, extra))}."
        )
    out = {}
    for name, item in value.items():
        ptype, required = declared[name]
        try:
            out[name] = _fit(item, ptype, required=required)
        except _Unfit as e:
            raise _Unfit(f"whose property '{name}' has value {_shown(item)}, {e}") from None
    return out


def _map(value: Any, t: MapType) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Unfit(f"which is a {type(value).__name__}, not a {_type_name(t)}.")
    keys = [k for k in value if not isinstance(k, str)]
    if keys:
        raise _Unfit(f"whose key {keys[0]!r} is not a string; a map's keys are strings.")
    out = {}
    for key, item in value.items():
        try:
            out[key] = _fit(item, t.values)
        except _Unfit as e:
            raise _Unfit(f"whose key '{key}' has value {_shown(item)}, {e}") from None
    return out


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _shown(value: Any) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)
