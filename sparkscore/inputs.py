"""What `predict` accepts for a column signature, made into the DataFrame mlflow would make.

Code written for `mlflow.pyfunc.load_model(...).predict` passes lists of rows, lists of records,
dicts of scalars (one row), dicts of arrays, Series and arrays; mlflow turns each into a pandas
DataFrame before it enforces the signature (`mlflow.models.utils._enforce_schema`). This does the
same, and where mlflow would fail inside pandas it refuses with an error naming the columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from sparkscore.errors import SchemaEnforcementError, one_line
from sparkscore.signature import ArrayType, ColSpec, ObjectType, Schema

__all__ = ["as_frame"]


def as_frame(data: Any, schema: Schema, *, file: str | None = None) -> pd.DataFrame:
    """`data` as a DataFrame for the column signature `schema`."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame()
    if isinstance(data, np.ndarray):
        return _from_array(data, schema, file)
    if isinstance(data, Mapping):
        return _from_mapping(data, schema, file)
    if isinstance(data, (list, tuple)):
        return _built(lambda: pd.DataFrame(list(data)), file)
    if np.isscalar(data):
        return pd.DataFrame([data])
    raise SchemaEnforcementError(
        file=file,
        row=None,
        column="*",
        value=type(data).__name__,
        expected="a DataFrame",
        reason=f"the model has a column signature, so its input must be a pandas DataFrame (or a "
        f"list, dict or array that makes one), got {type(data).__name__}.",
    )


def _from_array(data: np.ndarray, schema: Schema, file: str | None) -> pd.DataFrame:
    """Columns labelled 0, 1, ... as mlflow labels them; for a signature with names, an array
    with exactly as many columns takes the names in order (sparkscore's own convenience)."""
    if data.ndim > 2:
        raise SchemaEnforcementError(
            file=file,
            row=None,
            column="*",
            value=f"an array of shape {data.shape}",
            expected="a 2-D array",
            reason=f"the model has a column signature, so an array input must have one or two "
            f"dimensions (rows x columns), got shape {data.shape}.",
        )
    frame = pd.DataFrame(data)
    if not schema.has_names:
        return frame
    names = schema.names()
    if frame.shape[1] == len(names):
        return frame.set_axis(names, axis=1)
    raise SchemaEnforcementError(
        file=file,
        row=None,
        column="*",
        value=f"an array of {frame.shape[1]} columns",
        expected=f"the {len(names)} columns the signature names",
        reason=f"the input is an array of {frame.shape[1]} unnamed columns, but the model "
        f"signature names {len(names)} ({_listed(names)}): pass a DataFrame with those columns, "
        f"or an array of exactly {len(names)} columns in that order.",
    )


def _from_mapping(data: Mapping[Any, Any], schema: Schema, file: str | None) -> pd.DataFrame:
    """A dict of scalars is one row; a dict of arrays is columns, keeping the signature's."""
    if schema.has_names:
        names = set(schema.names())
        data = {k: v for k, v in data.items() if k in names}
    nested = any(
        isinstance(s, ColSpec) and isinstance(s.type, (ArrayType, ObjectType)) for s in schema.specs
    )
    if nested or all(_row_value(v) for v in data.values()):
        return pd.DataFrame([dict(data)])
    columns = {
        k: v.tolist() if isinstance(v, np.ndarray) and v.ndim > 1 else v for k, v in data.items()
    }
    return _built(lambda: pd.DataFrame(columns), file)


def _row_value(value: Any) -> bool:
    """A dict entry that is one row's value rather than a column of values."""
    if value is None or np.isscalar(value):
        return True
    if isinstance(value, np.ndarray):
        return value.ndim == 0
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _built(make: Any, file: str | None) -> pd.DataFrame:
    try:
        frame = make()
    except ValueError as e:
        raise SchemaEnforcementError(
            file=file,
            row=None,
            column="*",
            value=None,
            expected="a DataFrame",
            reason=f"the input cannot be made into a DataFrame for the model's column signature: "
            f"{one_line(e)}.",
        ) from None
    assert isinstance(frame, pd.DataFrame)
    return frame


def _listed(names: list[str], shown: int = 20) -> str:
    head = ", ".join(names[:shown])
    return head if len(names) <= shown else f"{head} and {len(names) - shown} more"
