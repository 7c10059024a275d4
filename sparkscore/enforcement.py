"""Input data held to a signature: columns converted and checked row by row (`conform`), and the
whole input made what the model takes (`enforce`), tensors included.

A bad value fails its own row, named by file, row, column and value; a missing column or a wrong
tensor shape fails the input. The conversion of each column is in sparkscore.values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sparkscore.dtypes import python_value
from sparkscore.errors import MissingColumnError, SchemaEnforcementError, TensorShapeError
from sparkscore.inputs import as_frame
from sparkscore.nested import convert_nested
from sparkscore.signature import ColSpec, DataType, Schema, TensorSpec
from sparkscore.values import convert, decimal_lost

__all__ = ["Conformed", "conform", "enforce", "unplaced"]


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
    pairs: list[tuple[Any, Any, ColSpec]] = []  # (source column, target column, spec)
    if schema.has_names:
        for spec in schema.specs:
            assert isinstance(spec, ColSpec) and spec.name is not None
            if spec.name not in data.columns:
                if spec.required:
                    raise MissingColumnError(
                        file=file, column=spec.name, present=list(data.columns)
                    )
                continue
            pairs.append((spec.name, spec.name, spec))
    else:
        if len(data.columns) < len(schema.specs):
            missing = schema.names()[len(data.columns)]
            raise MissingColumnError(file=file, column=missing, present=list(data.columns))
        # a schema that is not a tensor schema holds column specs only
        pairs = [(c, c, s) for c, s in zip(data.columns, schema.specs) if isinstance(s, ColSpec)]
    bad = np.zeros(n, dtype=bool)
    first_error: dict[int, SchemaEnforcementError] = {}
    columns: dict[Any, Any] = {}
    kept = True  # every column already what its spec asks, converted by nothing
    for source, target, spec in pairs:
        convert_column = convert if isinstance(spec.type, DataType) else convert_nested
        column = data[source]
        converted, col_bad, expected, reasons = convert_column(column, spec.type)
        columns[target] = converted
        kept = kept and converted is column
        if col_bad is not None and col_bad.any():
            for i in np.flatnonzero(col_bad & ~bad):
                value = data[source].iloc[i]
                reason = reasons.get(int(i))
                first_error[int(i)] = SchemaEnforcementError(
                    file=file,
                    row=row_offset + int(i),
                    column=str(source),
                    value=python_value(value),
                    expected=expected,
                    reason=None if reason is None else _row_reason(str(source), value, reason),
                )
            bad |= col_bad
    if kept and not bad.any() and list(columns) == list(data.columns):
        # Copy-on-write makes this shallow copy safe to hand a model that writes to its input,
        # and it spares re-stacking the columns into one block: a copy of the whole batch.
        return Conformed(data.copy(deep=False), bad)
    frame = pd.DataFrame(columns, index=data.index)
    if bad.any():
        frame = frame.loc[~bad]
    errors = tuple(first_error[i] for i in sorted(first_error))
    return Conformed(frame, bad, errors)


def enforce(
    data: Any, schema: Schema | None, *, file: str | None = None, row_offset: int = 0
) -> Any:
    """Hold `data` to `schema` as `predict` does (mlflow's rules, with the differences
    docs/models.md lists), raising on the first bad row."""
    if schema is None or not schema.specs:
        return data
    if schema.is_tensor:
        return _enforce_tensors(data, schema, file=file)
    result = conform(as_frame(data, schema, file=file), schema, file=file, row_offset=row_offset)
    if result.errors:
        raise result.errors[0]
    return result.frame


def unplaced(e: SchemaEnforcementError) -> SchemaEnforcementError:
    """The error without its file and row: in a DataFrame scored in Arrow batches (spark_udf,
    sparkml.transform), a row number inside one batch means nothing to the user; the column and
    the value are what find the bad data."""
    return SchemaEnforcementError(
        file=None, row=None, column=e.column, value=e.value, expected=e.expected, reason=e.reason
    )


def _row_reason(column: str, value: Any, reason: str) -> str:
    return f"column '{column}' has value {python_value(value)!r}, {reason}"


def _enforce_tensors(data: Any, schema: Schema, *, file: str | None) -> Any:
    specs = [s for s in schema.specs if isinstance(s, TensorSpec)]
    if schema.has_names:
        # As mlflow: named tensors reach the model by name, one of them as much as several.
        if isinstance(data, np.ndarray) and len(specs) == 1:
            data = {specs[0].name: data}
        if isinstance(data, pd.DataFrame):
            data = {
                s.name: _column_tensor(data[s.name], s, file) for s in specs if _has(data, s, file)
            }
        if not isinstance(data, Mapping):
            raise SchemaEnforcementError(
                file=file,
                row=None,
                column="*",
                value=type(data).__name__,
                expected="a mapping of named tensors",
                reason="the model takes named tensors, so its input must be a dict of arrays "
                f"or a DataFrame with those columns, got {type(data).__name__}.",
            )
        return {
            s.name: _check_tensor(np.asarray(data[s.name]), s, file)
            for s in specs
            if _has(data, s, file)
        }
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
            raise TensorShapeError(
                file=file, column=name, shape=shapes[0], expected=spec.shape
            ) from None
        target_shape = tuple(
            len(series) if d == -1 and i == 0 else d for i, d in enumerate(spec.shape)
        )
        try:
            stacked = stacked.reshape(target_shape)
        except ValueError:
            raise TensorShapeError(
                file=file, column=name, shape=stacked.shape, expected=spec.shape
            ) from None
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
        raise _unsafe_cast(arr, spec, file) from None
    if arr.dtype.kind in "iufb" and spec.dtype.kind in "iufb":
        with np.errstate(invalid="ignore"):
            if not np.all((cast == arr) | (np.isnan(arr) if arr.dtype.kind == "f" else False)):
                raise _unsafe_cast(arr, spec, file)
    if arr.dtype == object and spec.dtype.kind in "iuf":
        # decimals (a Parquet decimal column) are held to the rule columns are
        lost = decimal_lost(arr.ravel(), cast.ravel())
        if lost is not None:
            name = spec.name or "the unnamed input"
            raise SchemaEnforcementError(
                file=file,
                row=None,
                column=name,
                value=lost,
                expected=str(spec.dtype),
                reason=f"tensor input '{name}' has value {lost!r}, which cannot be converted "
                f"safely to {spec.dtype}.",
            )
    return cast


def _unsafe_cast(arr: np.ndarray, spec: TensorSpec, file: str | None) -> SchemaEnforcementError:
    name = spec.name or "the unnamed input"
    return SchemaEnforcementError(
        file=file,
        row=None,
        column=name,
        value=str(arr.dtype),
        expected=str(spec.dtype),
        reason=f"tensor input '{name}' of dtype {arr.dtype} cannot be converted safely to "
        f"{spec.dtype}.",
    )


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
                file=file,
                row=None,
                column=name,
                value=str(arr.dtype),
                expected=str(spec.dtype),
                reason=f"tensor input '{name}' has dtype {arr.dtype}, which cannot be converted "
                f"safely to {spec.dtype}.",
            )
        arr = arr.astype(spec.dtype)
    return arr
