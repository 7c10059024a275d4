"""One mini-batch's work: read, enforce, predict, and sort every row into predictions or errors.

No Spark here: a task calls `score_batch` with a loaded model, so the heart of the job is tested
with plain files. Every row read ends up in exactly one place: a prediction row, an error record,
or (under `bad_rows: fail_file`) the count of a failed file's rows. An image file is one row.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pyarrow import fs as pafs

from sparkscore.csvfiles import CsvConversionError, CsvRaggedRowError, RaggedRow
from sparkscore.enforcement import conform, enforce
from sparkscore.errors import (
    BatchTimeoutError,
    MissingPassthroughError,
    ModelProcessError,
    PassthroughTypeError,
    PredictError,
    ReadError,
    SchemaEnforcementError,
    SparkscoreError,
)
from sparkscore.images import ImageInput, batch_key, read_bytes
from sparkscore.listing import InputFile
from sparkscore.loader import Model
from sparkscore.outputs import to_arrow
from sparkscore.planner import MiniBatch
from sparkscore.readers import BATCH_BYTES, MAX_AUTO_ROWS, batch_bytes, count_rows, read_batches
from sparkscore.signature import ColSpec, DataType, Schema

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
    batch_rows: int | None = None  # None: about BATCH_BYTES of input per predict call
    bad_rows: str = "fail_file"
    params: Mapping[str, Any] | None = None
    # The columns to read from each file (the signature's and passthrough's); None: all.
    read_columns: tuple[str, ...] | None = None

    @cached_property
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
    """What happened to one input file.

    `rows_unknown`: the file failed before its rows could be told apart (it was removed, is
    compressed, or its Parquet footer is unreadable), so its rows are in no count: the manifest
    record says so rather than claim the file held none.
    """

    name: str
    rows_read: int = 0
    rows_scored: int = 0
    rows_failed: int = 0
    failed: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)
    rows_unknown: bool = False

    def record(self) -> dict[str, Any]:
        record = {
            "file_name": self.name,
            "status": "failed" if self.failed else "succeeded",
            "rows_read": self.rows_read,
            "rows_scored": self.rows_scored,
            "rows_failed": self.rows_failed,
        }
        if self.rows_unknown:
            record["rows_unknown"] = True
        return record


class Sink:
    """Where a file's prediction batches go while it is scored; `discard` forgets them.

    A run of whole small files scored in one predict call, next to each other in a mini-batch,
    goes to its first file's sink as one batch (see _runs): their rows are final by then.
    """

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
    predictor = _Predictor(model, spec)
    gatherer = _Gatherer(model, spec, predictor)
    state = _score_into(fs, file, spec, model, sink, predictor, gatherer)
    gatherer.flush()
    predictor.flush()
    return state.finish()


@dataclass(eq=False)
class _FileState:
    """A file while its rows are read, queued and predicted."""

    result: FileResult
    sink: Sink
    position: int = 0  # in its mini-batch

    @property
    def failed(self) -> bool:
        return self.result.failed

    def fail(self, error: BaseException, stage: str) -> None:
        _fail(self.result, self.sink, error, stage)

    def finish(self) -> FileResult:
        r = self.result
        if not r.failed and r.rows_read == 0:
            self.fail(ReadError(file=r.name, reason="the file has no rows."), "read")
        if r.failed:
            r.rows_scored, r.rows_failed = 0, r.rows_read
        else:
            r.rows_failed = r.rows_read - r.rows_scored
        # Row by row, whichever reading found them (ragged rows, bad values); the file's own
        # record last.
        r.errors.sort(key=lambda e: (e["row"] is None, e["row"] or 0))
        return r


@dataclass
class _Queued:
    state: _FileState
    frame: Any
    rows: Any
    passthrough: list[pa.Array]
    nbytes: int
    # Inputs with equal keys share a predict call (images of one shape); None: predict alone.
    key: Hashable | None = "frame"
    # Rows [start, stop) of `frame`, which several small files share (see _Gatherer); None: all.
    span: tuple[int, int] | None = None


class _Predictor:
    """Rows waiting for `predict`, from one or many files: small files share one predict call.

    A call is made when `batch_rows` rows are waiting; its predictions are split back to each
    file's sink in order. Only inputs of one key share a call (tables, or images of one shape), so
    a change of shape starts a new call. When a shared call fails, each file's rows are predicted
    alone so the failure is charged to the file that caused it.
    """

    def __init__(self, model: Model, spec: ScoringSpec) -> None:
        self.model, self.spec = model, spec
        self.params = dict(spec.params or {}) or None
        self.queue: list[_Queued] = []
        self.rows = self.bytes = 0

    def add(self, item: _Queued) -> None:
        if self.queue and (item.key is None or item.key != self.queue[-1].key):
            self.flush()  # a table after images, or images of another shape: a call of their own
        self.queue.append(item)
        self.rows += len(item.rows)
        self.bytes += item.nbytes
        limit = self.spec.batch_rows
        if item.key is None or ((self.rows >= limit) if limit else (
                self.bytes >= BATCH_BYTES or self.rows >= MAX_AUTO_ROWS)):
            self.flush()

    def drop(self, state: _FileState) -> None:
        self.queue = [q for q in self.queue if q.state is not state]
        self.rows = sum(len(q.rows) for q in self.queue)
        self.bytes = sum(q.nbytes for q in self.queue)

    def flush(self) -> None:
        queue = [q for q in self.queue if not q.state.failed]
        self.queue, self.rows, self.bytes = [], 0, 0
        if not queue:
            return
        try:
            values = self._predict(queue)
        except BatchTimeoutError:
            raise
        except PredictError as e:
            states = list(dict.fromkeys(q.state for q in queue))
            if len(states) == 1:
                states[0].fail(e, "predict")
                return
            for state in states:
                self._flush_one([q for q in queue if q.state is state])
            return
        self._deliver(queue, values)

    def _flush_one(self, queue: list[_Queued]) -> None:
        try:
            self._deliver(queue, self._predict(queue))
        except PredictError as e:
            queue[0].state.fail(e, "predict")

    def _predict(self, queue: list[_Queued]) -> pa.Array:
        frames = _frames(queue)
        frame = frames[0] if len(frames) == 1 else _concat(frames)
        first = queue[0]
        rows = sum(len(q.rows) for q in queue)
        try:
            prediction = self.model.predict_conformed(frame, self.params)
            return to_arrow(prediction, self.spec.prediction_type, rows)
        except (BatchTimeoutError, ModelProcessError):
            # A dead model process fails the task, as a dead Python worker does: Spark retries.
            raise
        except Exception as e:  # the model's own code: any exception fails the rows it got
            cause = e.cause if isinstance(e, PredictError) else f"{type(e).__name__}: {e}"
            raise PredictError(file=first.state.result.name, first_row=int(first.rows[0]),
                               rows=rows, cause=cause) from None

    def _deliver(self, queue: list[_Queued], values: pa.Array) -> None:
        offset = 0
        for run in _runs(queue):
            n = sum(len(q.rows) for q in run)
            run[0].state.sink.add(_output_batch(self.spec, run, values.slice(offset, n)))
            for q in run:
                q.state.result.rows_scored += len(q.rows)
            offset += n


def _runs(queue: list[_Queued]) -> Iterator[list[_Queued]]:
    """Queued items in runs that share one output batch: whole small files (span set), next to
    each other in their mini-batch. A whole file's rows are final once predicted, so the run's
    batch can go to its first file's sink; one batch a file cost more than its rows' predict."""
    run: list[_Queued] = []
    for q in queue:
        if run and not (q.span is not None and run[-1].span is not None
                        and q.state.position == run[-1].state.position + 1):
            yield run
            run = []
        run.append(q)
    if run:
        yield run


def _score_into(
    fs: pafs.FileSystem,
    file: InputFile,
    spec: ScoringSpec,
    model: Model,
    sink: Sink,
    predictor: _Predictor,
    gatherer: _Gatherer | None = None,
    position: int = 0,
) -> _FileState:
    """Read and check one file, queueing its good rows; record its failures.

    A CSV is read again when the first reading cannot name the rows at fault: as text when a
    value does not parse as its declared type (enforcement then names each bad row, column and
    value), and on one thread when a row has too few or too many values (pyarrow then numbers
    each such row).
    """
    state = _FileState(FileResult(file.name), sink, position)
    if file.kind == "image":
        _image(fs, file, spec, model, state, predictor)
        return state
    types, exact = spec.column_types, False
    while True:
        try:
            _stream(fs, file, spec, model, state, predictor, types, gatherer, exact)
            return state
        except CsvConversionError as e:
            if types is not spec.column_types:
                # A column the model does not declare changed its inferred type between blocks.
                predictor.drop(state)
                reason = (f"a column changed type part way through the file ({e}); "
                          "make each column's values one type.")
                state.fail(ReadError(file=file.name, reason=reason), "read")
                _recount(fs, file, state.result)
                return state
            types = {name: pa.string() for name in spec.column_types}
        except CsvRaggedRowError:
            exact = True
        predictor.drop(state)
        sink.discard()
        state = _FileState(FileResult(file.name), sink, position)
        gatherer = None


def _stream(
    fs: pafs.FileSystem,
    file: InputFile,
    spec: ScoringSpec,
    model: Model,
    state: _FileState,
    predictor: _Predictor,
    column_types: Mapping[str, pa.DataType],
    gatherer: _Gatherer | None,
    exact: bool = False,
) -> None:
    """Check and queue a file's batches; every row is counted, whatever fails.

    `exact`: rows with the wrong number of values are skipped as they are parsed, and each is
    charged to the file as a bad row (see _Skipped).
    """
    result = state.result
    schema = model.input_schema
    skipped = _Skipped([]) if exact else None
    good = 0  # rows the reader gave, which skipped rows leave gaps between
    try:
        batches = read_batches(fs, file, batch_rows=spec.batch_rows, column_types=column_types,
                               columns=spec.read_columns,
                               ragged=skipped.rows if skipped is not None else None)
        for index, (batch, last) in enumerate(_with_last(batches)):
            offset = file.first_row + good
            rows = None
            if skipped is not None and skipped.rows:
                rows = file.first_row + skipped.file_rows(good, batch.num_rows)
                skipped.charge(state, predictor, spec.bad_rows, before=int(rows[-1]))
            good += batch.num_rows
            result.rows_read += batch.num_rows
            if result.failed:
                continue  # count the rest of the file's rows, score none of them
            if index == 0 and last and gatherer is not None and gatherer.add(state, batch, offset):
                continue  # a whole file in one batch: checked later, with other small files
            try:
                _check(spec, schema, state, predictor, batch, offset, rows)
            except BatchTimeoutError:
                raise
            except SparkscoreError as e:
                _fail_stream(state, predictor, e)  # and read on, to count the file's rows
        if skipped is not None:
            skipped.charge(state, predictor, spec.bad_rows, before=None)
    except (CsvConversionError, CsvRaggedRowError, BatchTimeoutError):
        raise
    except SparkscoreError as e:
        # The reader failed and cannot go on: the file's rows are counted another way.
        _fail_stream(state, predictor, e)
        _recount(fs, file, result)


@dataclass
class _Skipped:
    """CSV rows pyarrow skipped for having the wrong number of values, in file order.

    The reader appends each one as it parses it, before it gives the rows that follow; the
    skipped rows are charged to the file (an error record and a row read each) as the batches
    around them pass, and leave gaps in the file rows of the rows the reader gave.
    """

    rows: list[RaggedRow]
    charged: int = 0  # skipped rows already charged to the file
    passed: int = 0  # skipped rows before the reader's rows looked at so far

    def file_rows(self, good: int, n: int) -> np.ndarray:
        """The file rows (0-based) of the reader's rows `good` to `good + n - 1`.

        Skipped row i has `row - i` of the reader's rows before it; only those among the batch's
        rows are looked at, so a file of many skipped rows costs no more per batch.
        """
        rows = self.rows
        while self.passed < len(rows) and rows[self.passed].row - self.passed <= good:
            self.passed += 1
        end = self.passed
        while end < len(rows) and rows[end].row - end < good + n:
            end += 1
        within = np.array([rows[i].row - i for i in range(self.passed, end)], dtype=np.int64)
        positions = np.arange(good, good + n, dtype=np.int64)
        return positions + self.passed + np.searchsorted(within, positions, side="right")

    def charge(self, state: _FileState, predictor: _Predictor, bad_rows: str,
               before: int | None) -> None:
        """Charge the skipped rows before file row `before` (None: all the rest)."""
        result = state.result
        new = []
        while self.charged < len(self.rows) and (
                before is None or self.rows[self.charged].row < before):
            new.append(self.rows[self.charged])
            self.charged += 1
        for row in new:
            result.errors.append(error_record(result.name, row.row, "read",
                                              row.error(result.name)))
        result.rows_read += len(new)
        if new and bad_rows == "fail_file" and not result.failed:
            result.failed = True
            state.sink.discard()
            predictor.drop(state)


def _recount(fs: pafs.FileSystem, file: InputFile, result: FileResult) -> None:
    """The rows of a file that failed while it was read, counted another way; when even that
    fails, the record says its rows are unknown instead of claiming there were none."""
    try:
        result.rows_read = count_rows(fs, file)
    except (pa.ArrowException, OSError, ValueError, SparkscoreError):
        result.rows_read, result.rows_unknown = 0, True
    result.rows_scored, result.rows_failed = 0, result.rows_read


def _with_last(batches: Iterator[pa.RecordBatch]) -> Iterator[tuple[pa.RecordBatch, bool]]:
    """Each batch and whether it is the file's last; a failure to read the next batch comes
    after the batch before it, as it does without looking ahead."""
    held = next(batches, None)
    while held is not None:
        try:
            following = next(batches, None)
        except Exception:
            yield held, False
            raise
        yield held, following is None
        held = following


def _fail_stream(state: _FileState, predictor: _Predictor, error: SparkscoreError) -> None:
    """A file-level failure while a file is read or checked: none of its rows are predicted."""
    predictor.drop(state)
    # read: the file; validate: missing or mistyped columns, passthrough problems
    state.fail(error, "read" if isinstance(error, ReadError) else "validate")


def _check(
    spec: ScoringSpec,
    schema: Schema | None,
    state: _FileState,
    predictor: _Predictor,
    batch: pa.RecordBatch,
    offset: int,
    file_rows: np.ndarray | None = None,
) -> None:
    """Hold one batch of a file to the signature, record its bad rows, queue its good ones.

    Its rows are the file's rows from `offset` on, or `file_rows` when rows were skipped.
    """
    result = state.result
    name = result.name
    frame = batch.to_pandas()
    names = batch.schema.names
    missing = [column for column, _ in spec.passthrough if column not in names]
    if missing:
        raise MissingPassthroughError(file=name, column=missing[0], present=names)
    checked = conform(frame, schema, file=name, row_offset=offset if file_rows is None else 0)
    errors = list(checked.errors) if file_rows is None else [
        _moved(err, name, int(file_rows[err.row])) for err in checked.errors]
    for err in errors:
        result.errors.append(error_record(name, err.row, "validate", err))
    if checked.errors and spec.bad_rows == "fail_file":
        result.failed = True
        state.sink.discard()
        predictor.drop(state)
        return
    if checked.frame.empty:
        return
    positions = _positions(checked.bad)
    rows = offset + positions if file_rows is None else file_rows[positions]
    passthrough = _passthrough(spec, name, batch, checked.bad)
    model_input, key = checked.frame, "frame"
    if schema is not None and schema.is_tensor:
        # As mlflow: a table given to a tensor model becomes that tensor (or fails here,
        # naming the file and the shapes, instead of inside the model).
        model_input = enforce(checked.frame, schema, file=name)
        key = batch_key(model_input, schema.specs[0].shape[:1] == (-1,))
    predictor.add(_Queued(state, model_input, rows, passthrough,
                          batch.nbytes * len(rows) // batch.num_rows, key))


@dataclass
class _Part:
    state: _FileState
    batch: pa.RecordBatch
    offset: int


# Arrow types whose pandas column has one dtype whatever the values (an integer column with a
# null becomes float64, so null presence is part of the gathering key), and whose conversion is
# judged value by value, so a column checked whole holds each value to the same rule as alone.
def _plain_type(t: pa.DataType) -> bool:
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_string(t) or pa.types.is_large_string(t))


class _Gatherer:
    """Small files' batches held as Arrow, then converted and checked as one.

    With files of a few hundred rows, one to_pandas and one conform per file cost more than the
    prediction; gathered, they run once per about one predict call's rows. Each bad row's error
    is charged back to its own file and row, and a gathered check that raises (a missing column)
    is redone file by file, so every outcome is the one the file would have alone.
    """

    def __init__(self, model: Model, spec: ScoringSpec, predictor: _Predictor) -> None:
        self.spec, self.predictor = spec, predictor
        self.schema = model.input_schema
        # A datetime column is parsed with a format inferred from its first value, and a tensor
        # is enforced whole: both are checked file by file.
        self.enabled = not (self.schema is not None and (self.schema.is_tensor or any(
            isinstance(s, ColSpec) and s.type is DataType.datetime for s in self.schema.specs)))
        self.parts: list[_Part] = []
        self.rows = self.bytes = 0
        # The last plain schema seen, and its columns whose nulls change their pandas dtype:
        # files of one folder share a schema, so each is judged once, not once a file.
        self.seen: pa.Schema | None = None
        self.nullable: list[int] = []
        self.nulls: tuple[bool, ...] = ()

    def add(self, state: _FileState, batch: pa.RecordBatch, offset: int) -> bool:
        """Hold `batch` (a whole file) for a gathered check; False: check it alone now."""
        if not self.enabled or batch.num_rows == 0:
            return False
        schema = batch.schema
        if self.seen is None or not schema.equals(self.seen, check_metadata=True):
            if not all(_plain_type(f.type) for f in schema):
                return False
            self.flush()
            self.seen = schema
            self.nullable = [i for i, f in enumerate(schema)
                             if pa.types.is_integer(f.type) or pa.types.is_boolean(f.type)]
        nulls = tuple(batch.column(i).null_count > 0 for i in self.nullable)
        if nulls != self.nulls:
            self.flush()
            self.nulls = nulls
        self.parts.append(_Part(state, batch, offset))
        self.rows += batch.num_rows
        self.bytes += batch_bytes(batch)
        limit = self.spec.batch_rows
        if (self.rows >= limit) if limit else (self.bytes >= BATCH_BYTES
                                               or self.rows >= MAX_AUTO_ROWS):
            self.flush()
        return True

    def flush(self) -> None:
        parts, self.parts = self.parts, []
        self.rows = self.bytes = 0
        if len(parts) == 1:
            self._alone(parts[0])
        elif parts:
            self._together(parts)

    def _alone(self, part: _Part) -> None:
        try:
            _check(self.spec, self.schema, part.state, self.predictor, part.batch, part.offset)
        except BatchTimeoutError:
            raise
        except SparkscoreError as e:
            _fail_stream(part.state, self.predictor, e)

    def _together(self, parts: list[_Part]) -> None:
        try:
            frame = pa.Table.from_batches([p.batch for p in parts]).to_pandas()
            names = parts[0].batch.schema.names
            present = all(column in names for column, _ in self.spec.passthrough)
            checked = conform(frame, self.schema) if present else None
        except BatchTimeoutError:
            raise
        except Exception:  # a missing column: each file alone fails (or not) as it would have
            checked = None
        if checked is None:
            for part in parts:
                self._alone(part)
            return
        bad = checked.bad
        good_before = np.concatenate([[0], np.cumsum(~bad)])
        errors = list(checked.errors)
        e = start = 0
        for part in parts:
            stop = start + part.batch.num_rows
            mine = []
            while e < len(errors) and errors[e].row < stop:
                mine.append(errors[e])
                e += 1
            self._deliver(part, checked.frame, bad[start:stop], mine, start,
                          (int(good_before[start]), int(good_before[stop])))
            start = stop

    def _deliver(self, part: _Part, conformed: pd.DataFrame, bad: Any,
                 errors: list[SchemaEnforcementError], start: int, span: tuple[int, int]) -> None:
        """One gathered file's share: what `_check` would have done with it alone."""
        state, result = part.state, part.state.result
        name = result.name
        for err in errors:
            row = part.offset + err.row - start
            result.errors.append(error_record(name, row, "validate", _moved(err, name, row)))
        if errors and self.spec.bad_rows == "fail_file":
            result.failed = True
            state.sink.discard()
            self.predictor.drop(state)
            return
        if span[0] == span[1]:
            return
        rows = part.offset + (_positions(bad) if span[1] - span[0] < len(bad) else
                              np.arange(len(bad), dtype=np.int64))
        passthrough: list[pa.Array] = []
        if self.spec.passthrough:
            try:
                passthrough = _passthrough(self.spec, name, part.batch, bad)
            except SparkscoreError as e:
                _fail_stream(state, self.predictor, e)
                return
        self.predictor.add(_Queued(state, conformed, rows, passthrough,
                                   batch_bytes(part.batch) * len(rows) // len(bad),
                                   "frame", span))


def _image(
    fs: pafs.FileSystem,
    file: InputFile,
    spec: ScoringSpec,
    model: Model,
    state: _FileState,
    predictor: _Predictor,
) -> None:
    """Queue one image file as one row (row 0); a file the model cannot take fails alone."""
    state.result.rows_read = 1
    how = ImageInput.for_schema(model.input_schema)
    try:
        how.check(name=file.name)  # before reading: a table model fails every image alike
        data = read_bytes(fs, file)
        model_input = how.model_input(data, name=file.name)
    except BatchTimeoutError:
        raise
    except ReadError as e:
        state.fail(e, "read")
        return
    except SparkscoreError as e:  # the signature cannot take this image: shape, dtype, kind
        state.fail(e, "validate")
        return
    nbytes = model_input.nbytes if isinstance(model_input, np.ndarray) else len(data)
    # An image has no columns: its passthrough values are null.
    passthrough = [pa.nulls(1, t) for _, t in spec.passthrough]
    predictor.add(_Queued(state, model_input, np.zeros(1, dtype=np.int64), passthrough, nbytes,
                          batch_key(model_input, how.batchable)))


def _frames(queue: list[_Queued]) -> list[Any]:
    """The inputs of queued items, adjacent spans of one shared frame taken as one slice."""
    runs: list[list[Any]] = []
    for q in queue:
        if q.span is None:
            runs.append([q.frame, None, None])
        elif runs and runs[-1][0] is q.frame and runs[-1][2] == q.span[0]:
            runs[-1][2] = q.span[1]
        else:
            runs.append([q.frame, *q.span])
    return [f if start is None or (start == 0 and stop == len(f)) else f.iloc[start:stop]
            for f, start, stop in runs]


def _concat(frames: list[Any]) -> Any:
    """Inputs of one key as one: rows of DataFrames, or tensors along the batch dimension."""
    if isinstance(frames[0], np.ndarray):
        return np.concatenate(frames)
    return pd.concat(frames, ignore_index=True)


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
    return np.flatnonzero(~bad).astype(np.int64)


def _passthrough(spec: ScoringSpec, name: str, batch: pa.RecordBatch, bad: Any) -> list[pa.Array]:
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
                raise PassthroughTypeError(file=name, column=column, expected=t,
                                           detail=" ".join(str(e).split())) from None
        arrays.append(values)
    return arrays


def _moved(err: SchemaEnforcementError, file: str, row: int) -> SchemaEnforcementError:
    """A row's error found in rows numbered otherwise, at its row in `file`."""
    return SchemaEnforcementError(file=file, row=row, column=err.column, value=err.value,
                                  expected=err.expected, reason=err.reason)


def _output_batch(spec: ScoringSpec, run: list[_Queued], values: pa.Array) -> pa.RecordBatch:
    """The output rows of one or more queued items, with each row's file and row."""
    if len(run) == 1:
        q = run[0]
        names = pa.repeat(pa.scalar(q.state.result.name, pa.string()), len(q.rows))
        rows, passthrough = pa.array(q.rows, pa.int64()), q.passthrough
    else:
        counts = [len(q.rows) for q in run]
        which = np.repeat(np.arange(len(run)), counts)
        names = pa.array([q.state.result.name for q in run], pa.string()).take(which)
        rows = pa.array(np.concatenate([q.rows for q in run]), pa.int64())
        passthrough = [pa.concat_arrays([q.passthrough[i] for q in run])
                       for i in range(len(spec.passthrough))]
    arrays = [names, rows, values, *passthrough]
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
    predictor = _Predictor(model, spec)
    gatherer = _Gatherer(model, spec, predictor)
    states: list[_FileState] = []
    try:
        for position, file in enumerate(batch.files):
            states.append(_score_into(fs, file, spec, model, sink_for(file), predictor, gatherer,
                                      position))
        gatherer.flush()
        predictor.flush()
    except BatchTimeoutError as e:
        for state in states:
            state.sink.discard()
        return BatchResult(batch.index, [failed_file(fs, f, e, "timeout") for f in batch.files])
    return BatchResult(batch.index, [state.finish() for state in states])


def failed_file(fs: pafs.FileSystem, file: InputFile, error: BaseException,
                stage: str) -> FileResult:
    """A file that failed whole from outside its own reading (a timeout, a worker that died):
    one record, and its rows still count as failed, so the row accounting stays whole."""
    result = FileResult(file.name)
    _recount(fs, file, result)
    return _fail(result, _NoSink(), error, stage)


class _NoSink(Sink):
    def add(self, batch: pa.RecordBatch) -> None:
        pass

    def discard(self) -> None:
        pass
