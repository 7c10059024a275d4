"""A batch of a file held to the model's signature: bad rows recorded, good rows queued.

Each bad row is one error record naming its file row, column and value; under `bad_rows:
fail_file` the first one fails the file. The good rows go to predict with their passthrough
values, cast to each column's one output type.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from sparkscore.batching import ModelInput, Predictor, Queued
from sparkscore.enforcement import conform, enforce
from sparkscore.errors import (
    MissingPassthroughError,
    PassthroughTypeError,
    SchemaEnforcementError,
    one_line,
)
from sparkscore.failures import FileState, error_record
from sparkscore.images import batch_key
from sparkscore.signature import Schema, TensorSpec

if TYPE_CHECKING:  # scoring.py, the public surface, imports this module
    from sparkscore.scoring import ScoringSpec

__all__ = ["at_row", "check_batch", "good_positions", "passthrough_arrays"]


def check_batch(
    spec: ScoringSpec,
    schema: Schema | None,
    state: FileState,
    predictor: Predictor,
    batch: pa.RecordBatch,
    offset: int,
    file_rows: np.ndarray | None = None,
) -> None:
    """Hold one batch of a file to the signature, record its bad rows, queue its good ones.

    Its rows are the file's rows from `offset` on, or `file_rows` when rows were skipped. Raises
    the SparkscoreError that fails the whole file (a missing column, a passthrough problem).
    """
    result = state.result
    name = result.name
    frame = batch.to_pandas()
    names = batch.schema.names
    missing = [column for column, _ in spec.passthrough if column not in names]
    if missing:
        raise MissingPassthroughError(file=name, column=missing[0], present=names)
    checked = conform(frame, schema, file=name, row_offset=offset if file_rows is None else 0)
    errors = (
        list(checked.errors)
        if file_rows is None
        else [at_row(err, name, int(file_rows[err.row])) for err in checked.errors]
    )
    for err in errors:
        result.errors.append(error_record(name, err.row, "validate", err))
    if checked.errors and spec.bad_rows == "fail_file":
        state.fail()
        return
    if checked.frame.empty:
        return
    positions = good_positions(checked.bad)
    rows = offset + positions if file_rows is None else file_rows[positions]
    passthrough = passthrough_arrays(spec, name, batch, checked.bad)
    model_input: ModelInput = checked.frame
    key: Hashable | None = "frame"
    if schema is not None and schema.is_tensor:
        # As mlflow: a table given to a tensor model becomes that tensor (or fails here,
        # naming the file and the shapes, instead of inside the model).
        tensor = schema.specs[0]
        assert isinstance(tensor, TensorSpec)
        model_input = enforce(checked.frame, schema, file=name)
        key = batch_key(model_input, tensor.shape[:1] == (-1,))
    predictor.add(
        Queued(
            state, model_input, rows, passthrough, batch.nbytes * len(rows) // batch.num_rows, key
        )
    )


def good_positions(bad: np.ndarray) -> np.ndarray:
    """The positions of the rows not marked bad."""
    return np.flatnonzero(~bad).astype(np.int64)


def passthrough_arrays(
    spec: ScoringSpec, name: str, batch: pa.RecordBatch, bad: np.ndarray
) -> list[pa.Array]:
    """The passthrough columns of a batch's good rows, as Arrow read them (nested types too),
    cast to the column's output type."""
    keep = pa.array(~bad) if bad.any() else None
    arrays = []
    for column, t in spec.passthrough:
        values = batch.column(column)
        if keep is not None:
            values = values.filter(keep)
        if values.type != t:
            try:
                # safe: an id 1.5 must not become 1 on its way through
                values = values.cast(t)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
                raise PassthroughTypeError(
                    file=name, column=column, expected=t, detail=one_line(e)
                ) from None
        arrays.append(values)
    return arrays


def at_row(err: SchemaEnforcementError, file: str, row: int) -> SchemaEnforcementError:
    """A row's error found in rows numbered otherwise, at its row in `file`."""
    return SchemaEnforcementError(
        file=file,
        row=row,
        column=err.column,
        value=err.value,
        expected=err.expected,
        reason=err.reason,
    )
