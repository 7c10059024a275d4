"""Whatever `predict` returned, as one Arrow array of the prediction type, one value per row.

mlflow models return numpy arrays, pandas Series or DataFrames, or lists; the UDF and the job
both need exactly one typed value per input row, so the shaping lives here once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sparkscore.dtypes import python_value
from sparkscore.errors import PredictError, one_line

__all__ = ["to_arrow"]


def to_arrow(prediction: Any, pa_type: pa.DataType, rows: int) -> pa.Array:
    """Shape one predict result into `rows` values of `pa_type`, or say why it cannot."""
    try:
        if pa.types.is_struct(pa_type):
            array = _struct(prediction, pa_type)
        else:
            array = _column(prediction, pa_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, KeyError) as e:
        raise PredictError(
            file=None,
            first_row=None,
            rows=rows,
            cause=f"its output ({_describe(prediction)}) does not fit the prediction type "
            f"{pa_type} ({one_line(e)}); set result_type to the type the model "
            "returns.",
        ) from None
    if len(array) != rows:
        raise PredictError(
            file=None,
            first_row=None,
            rows=rows,
            cause=f"it returned {len(array)} values for {rows} input rows.",
        )
    return array


def _column(prediction: Any, pa_type: pa.DataType) -> pa.Array:
    if isinstance(prediction, pd.DataFrame):
        prediction = (
            prediction.iloc[:, 0]
            if prediction.shape[1] == 1 or not _is_list(pa_type)
            else prediction.to_numpy()
        )
    if isinstance(prediction, pd.Series):
        prediction = prediction.to_numpy()
    if isinstance(prediction, np.ndarray) and prediction.ndim > 1:
        if not _is_list(pa_type):
            if prediction.shape[1:] == (1,) * (prediction.ndim - 1):
                prediction = prediction.reshape(-1)
            else:
                raise ValueError(f"a {prediction.ndim}-D result needs an array type")
        else:
            return _tensor(prediction, pa_type)
    if (
        isinstance(prediction, np.ndarray)
        and prediction.dtype == object
        or isinstance(prediction, list)
    ):
        return _objects([python_value(v) for v in prediction], pa_type)
    if _is_list(pa_type):
        return pa.array(list(prediction), type=pa_type)
    return pa.array(prediction, from_pandas=True).cast(pa_type, safe=True)


def _objects(values: list[Any], pa_type: pa.DataType) -> pa.Array:
    """Python values as `pa_type`; pa.array(type=int64) truncates 1.5 to 1, so that is checked."""
    array = pa.array(values, type=pa_type, from_pandas=True)
    if _has(pa_type, pa.types.is_integer):
        try:
            inferred = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return array
        if _has(inferred.type, pa.types.is_floating):
            inferred.cast(pa_type, safe=True)  # raises on a fraction
    return array


def _has(t: pa.DataType, test: Callable[[pa.DataType], bool]) -> bool:
    """Whether `t` or any type nested in it passes `test`."""
    return bool(test(t)) or any(_has(t.field(i).type, test) for i in range(t.num_fields))


def _tensor(prediction: np.ndarray, pa_type: pa.DataType) -> pa.Array:
    """An n-D array as one nested list per row; the cast is safe, so 1.5 never becomes 1."""
    values: pa.Array = pa.array(prediction.reshape(-1), from_pandas=True)
    for size in reversed(prediction.shape[1:]):
        values = pa.FixedSizeListArray.from_arrays(values, size)
    return values.cast(pa_type, safe=True)


def _struct(prediction: Any, pa_type: pa.StructType) -> pa.Array:
    names = [pa_type.field(i).name for i in range(pa_type.num_fields)]
    if isinstance(prediction, pd.DataFrame):
        columns = {str(c): prediction[c] for c in prediction.columns}
        missing = [n for n in names if n not in columns]
        if missing and prediction.shape[1] == len(names):
            columns = dict(zip(names, (prediction.iloc[:, i] for i in range(len(names)))))
        elif missing:
            raise KeyError(f"the model's output has no column {missing[0]!r}")
    elif (
        isinstance(prediction, np.ndarray)
        and prediction.ndim == 2
        and prediction.shape[1] == len(names)
    ):
        columns = {n: prediction[:, i] for i, n in enumerate(names)}
    elif isinstance(prediction, dict):
        columns = {n: prediction[n] for n in names}
    else:
        raise ValueError(f"a struct of {', '.join(names)} needs a DataFrame with those columns")
    arrays = [_column(columns[n], pa_type.field(n).type) for n in names]
    return pa.StructArray.from_arrays(arrays, fields=list(pa_type))


def _is_list(t: pa.DataType) -> bool:
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def _describe(prediction: Any) -> str:
    if isinstance(prediction, pd.DataFrame):
        return f"a DataFrame with columns {list(prediction.columns)}"
    if isinstance(prediction, np.ndarray):
        return f"an array of {prediction.dtype} with shape {list(prediction.shape)}"
    return type(prediction).__name__
