"""One mini-batch's work: read, enforce, predict, and sort every row into predictions or errors.

No Spark here: a task calls `score_batch` with a loaded model, so the heart of the job is tested
with plain files. Every row read ends up in exactly one place: a prediction row, an error record,
or (under `bad_rows: fail_file`) the count of a failed file's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pyarrow import fs as pafs

from sparkscore.errors import (
    BatchTimeoutError,
    PredictError,
    ReadError,
    SchemaEnforcementError,
    SparkscoreError,
)
from sparkscore.loader import Model
from sparkscore.outputs import to_arrow
from sparkscore.planner import InputFile, MiniBatch
from sparkscore.readers import CsvConversionError, count_rows, read_batches
from sparkscore.signature import conform

ERROR_SCHEMA = pa.schema([
    pa.field("file_name", pa.string(), nullable=False),
    pa.field("row", pa.int64()),
    pa.field("stage", pa.string(), nullable=False),
    pa.field("error_type", pa.string(), nullable=False),
    pa.field("message", pa.string(), nullable=False),
])


@dataclass(frozen=True)
class ScoringSpec:
    """What every task needs, decided once on the driver; small and picklable."""

    prediction_type: pa.DataType
    passthrough: tuple[tuple[str, pa.DataType], ...] = ()
    column_types: Mapping[str, pa.DataType] = field(default_factory=dict)
    batch_rows: int = 10_000
    bad_rows: str = "fail_file"
    params: Mapping[str, Any] | None = None

    @property
    def output_schema(self) -> pa.Schema:
        return pa.schema(
            [
                pa.field("file_name", pa.string(), nullable=False),
                pa.field("row", pa.int64(), nullable=False),
                pa.field("prediction", self.prediction_type),
            ]
            + [pa.field(name, t) for name, t in self.passthrough]
        )


@dataclass
class FileResult:
    """What happened to one input file."""

    name: str
    rows_read: int = 0
    rows_scored: int = 0
    rows_failed: int = 0
    failed: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {
            "file_name": self.name,
            "status": "failed" if self.failed else "succeeded",
            "rows_read": self.rows_read,
            "rows_scored": self.rows_scored,
            "rows_failed": self.rows_failed,
        }


class Sink:
    """Where a file's prediction batches go while it is scored; `discard` forgets them."""

    def add(self, batch: pa.RecordBatch) -> None:
        raise NotImplementedError

    def discard(self) -> None:
        raise NotImplementedError


def error_record(file: str, row: int | None, stage: str, error: BaseException) -> dict[str, Any]:
    return {
        "file_name": file,
        "row": row,
        "stage": stage,
        "error_type": type(error).__name__,
        "message": str(error),
    }


def score_file(
    fs: pafs.FileSystem,
    file: InputFile,
    model: Model,
    spec: ScoringSpec,
    sink: Sink,
) -> FileResult:
    """Score one file into `sink`; on a file-level failure the sink is discarded."""
    try:
        return _score_file(fs, file, model, spec, sink, spec.column_types)
    except CsvConversionError:
        # A value did not parse as its declared type: read the declared columns as text so that
        # enforcement can name each bad row, column and value.
        sink.discard()
    text = {name: pa.string() for name in spec.column_types}
    try:
        return _score_file(fs, file, model, spec, sink, text)
    except CsvConversionError as e:
        # A column the model does not declare changed its inferred type between CSV blocks.
        reason = (f"a column changed type part way through the file ({e}); "
                  "make each column's values one type.")
        return _fail(FileResult(file.name), sink, ReadError(file=file.name, reason=reason), "read")


def _score_file(
    fs: pafs.FileSystem,
    file: InputFile,
    model: Model,
    spec: ScoringSpec,
    sink: Sink,
    column_types: Mapping[str, pa.DataType],
) -> FileResult:
    result = FileResult(file.name)
    schema = model.input_schema
    keep_going = True
    try:
        for batch in read_batches(fs, file, batch_rows=spec.batch_rows, column_types=column_types):
            offset = result.rows_read
            result.rows_read += batch.num_rows
            if not keep_going:
                continue
            frame = batch.to_pandas()
            missing = [name for name, _ in spec.passthrough if name not in frame.columns]
            if missing:
                raise MissingPassthroughError(file.name, missing[0], list(frame.columns))
            checked = conform(frame, schema, file=file.name, row_offset=offset)
            for err in checked.errors:
                result.errors.append(error_record(file.name, err.row, "validate", err))
            if checked.errors and spec.bad_rows == "fail_file":
                result.failed = True
                sink.discard()
                keep_going = False  # count the rest of the file's rows, score none of them
                continue
            if checked.frame.empty:
                continue
            rows = offset + _positions(checked.bad)
            try:
                prediction = model.predict_conformed(checked.frame, dict(spec.params or {}) or None)
                values = to_arrow(prediction, spec.prediction_type, len(checked.frame))
            except BatchTimeoutError:
                raise
            except Exception as e:  # the model's own code: any exception is the file's failure
                cause = e.cause if isinstance(e, PredictError) else f"{type(e).__name__}: {e}"
                raise PredictError(
                    file=file.name, first_row=int(rows[0]), rows=len(rows), cause=cause
                ) from None
            good = frame.loc[~checked.bad] if checked.bad.any() else frame
            sink.add(_output_batch(spec, file.name, rows, values, good))
            result.rows_scored += len(rows)
    except (CsvConversionError, BatchTimeoutError):
        raise
    except ReadError as e:
        return _fail(result, sink, e, "read")
    except (MissingPassthroughError, PassthroughTypeError) as e:
        return _fail(result, sink, e, "validate")
    except SchemaEnforcementError as e:
        return _fail(result, sink, e, "validate")
    except PredictError as e:
        return _fail(result, sink, e, "predict")
    except SparkscoreError as e:
        return _fail(result, sink, e, "validate")
    if result.rows_read == 0:
        return _fail(result, sink, ReadError(file=file.name, reason="the file has no rows."), "read")
    if result.failed:
        result.rows_scored = 0
        result.rows_failed = result.rows_read
    else:
        result.rows_failed = result.rows_read - result.rows_scored
    return result


class MissingPassthroughError(SparkscoreError):
    """A column named in passthrough_columns is absent from a file."""

    def __init__(self, file: str, column: str, present: list[str]) -> None:
        self.file, self.column = file, column
        super().__init__(
            f"{file}: the passthrough column '{column}' is not in this file (columns present: "
            f"{', '.join(map(str, present))}); fix passthrough_columns or the file."
        )


class PassthroughTypeError(SparkscoreError):
    """A passthrough column's values cannot be written with the type the column has elsewhere."""

    def __init__(self, file: str, column: str, expected: pa.DataType, detail: str) -> None:
        self.file, self.column, self.expected = file, column, expected
        super().__init__(
            f"{file}: the passthrough column '{column}' cannot be written as {expected}, its type "
            f"in the output ({detail}); give the column one type in every file."
        )


def _fail(result: FileResult, sink: Sink, error: BaseException, stage: str) -> FileResult:
    """The whole file fails: nothing of it is kept, and one record says why."""
    sink.discard()
    result.failed = True
    result.rows_scored = 0
    result.rows_failed = result.rows_read
    result.errors = [r for r in result.errors if r["row"] is not None]
    result.errors.append(error_record(result.name, None, stage, error))
    return result


def _positions(bad: Any) -> Any:
    import numpy as np

    return np.flatnonzero(~bad).astype(np.int64)


def _output_batch(
    spec: ScoringSpec, name: str, rows: Any, values: pa.Array, frame: Any
) -> pa.RecordBatch:
    n = len(rows)
    arrays = [pa.array([name] * n, pa.string()), pa.array(rows, pa.int64()), values]
    for column, t in spec.passthrough:
        try:
            # safe: an id 1.5 must not become 1 on its way through
            arrays.append(pa.array(frame[column].to_numpy(), from_pandas=True).cast(t))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            raise PassthroughTypeError(name, column, t, " ".join(str(e).split())) from None
    return pa.RecordBatch.from_arrays(arrays, schema=spec.output_schema)


@dataclass
class BatchResult:
    index: int
    files: list[FileResult]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [e for f in self.files for e in f.errors]


def score_batch(
    fs: pafs.FileSystem,
    batch: MiniBatch,
    model: Model,
    spec: ScoringSpec,
    sink_for: Callable[[InputFile], Sink],
) -> BatchResult:
    """Score each file of a mini-batch in order, each into its own sink.

    A BatchTimeoutError raised while it runs (the task's alarm) fails every file of the
    mini-batch with stage `timeout`: none of its predictions are kept.
    """
    results: list[FileResult] = []
    sinks: list[Sink] = []
    try:
        for file in batch.files:
            sinks.append(sink_for(file))
            results.append(score_file(fs, file, model, spec, sinks[-1]))
    except BatchTimeoutError as e:
        for sink in sinks:
            sink.discard()
        timed_out = []
        for file in batch.files:
            r = FileResult(file.name, rows_read=_rows_in(fs, file))
            timed_out.append(_fail(r, _NoSink(), e, "timeout"))
        return BatchResult(batch.index, timed_out)
    return BatchResult(batch.index, results)


def _rows_in(fs: pafs.FileSystem, file: InputFile) -> int:
    """A timed-out file's rows still count as failed rows, so the row accounting stays whole."""
    try:
        return count_rows(fs, file)
    except (pa.ArrowException, OSError):
        return 0


class _NoSink(Sink):
    def add(self, batch: pa.RecordBatch) -> None:
        pass

    def discard(self) -> None:
        pass
