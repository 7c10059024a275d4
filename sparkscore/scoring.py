"""One mini-batch's work: read, enforce, predict, and sort every row into predictions or errors.

No Spark here: a task calls `score_batch` with a loaded model, so the heart of the job is tested
with plain files. Every row read ends up in exactly one place: a prediction row, an error record,
or (under `bad_rows: fail_file`) the count of a failed file's rows. An image file is one row.

This module is the public surface and reads each file; the rest is in its own module: how a file
fails (failures.py), a batch held to the signature (checking.py), small files checked together
(gathering.py), and predict calls shared by files (batching.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
from pyarrow import fs as pafs

from sparkscore.batching import Predictor, Queued
from sparkscore.checking import check_batch
from sparkscore.csvfiles import CsvConversionError, CsvRaggedRowError, RaggedRow
from sparkscore.errors import BatchTimeoutError, ReadError, SparkscoreError
from sparkscore.failures import FileState, error_record
from sparkscore.gathering import Gatherer
from sparkscore.images import ImageInput, batch_key, read_bytes
from sparkscore.listing import InputFile
from sparkscore.loader import Model
from sparkscore.planner import MiniBatch
from sparkscore.prefetch import prefetching
from sparkscore.profile import Profile
from sparkscore.readers import count_rows, read_batches
from sparkscore.sample import Sample

__all__ = ["BatchResult", "FileResult", "ScoringSpec", "Sink", "failed_file", "score_batch"]


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
    profile: bool = True  # profile the scored rows (sparkscore.profile)
    threads: int | None = None  # each worker's native thread budget (sparkscore.threads)

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


class Sink:
    """Where a file's prediction batches go while it is scored; `discard` forgets them.

    A run of whole small files scored in one predict call, next to each other in a mini-batch,
    goes to its first file's sink as one batch (see batching._runs): their rows are final by then.
    """

    def add(self, batch: pa.RecordBatch) -> None:
        raise NotImplementedError

    def discard(self) -> None:
        raise NotImplementedError


@dataclass
class BatchResult:
    """What happened to each file of one mini-batch, in file order, and the profile of the rows
    it scored (None: not profiled)."""

    index: int
    files: list[FileResult]
    profile: Profile | None = None

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
    predictor = Predictor(model, spec)
    gatherer = Gatherer(model, spec, predictor)
    states: list[FileState] = []
    try:
        with prefetching(fs, batch.files) as files_fs:
            for position, file in enumerate(batch.files):
                state = FileState(FileResult(file.name), sink_for(file), position, predictor)
                states.append(state)
                _score_file(files_fs, file, spec, model, state, predictor, gatherer)
        gatherer.flush()
        predictor.flush()
    except BatchTimeoutError as e:
        for state in states:
            state.forget()
        failed = [failed_file(fs, f, e, "timeout") for f in batch.files]
        return BatchResult(batch.index, failed, Profile() if spec.profile else None)
    files = [state.finish() for state in states]
    return BatchResult(batch.index, files, _kept_profile(spec, states))


def _kept_profile(spec: ScoringSpec, states: list[FileState]) -> Profile | None:
    """The profile of the rows kept: those of the files that did not fail."""
    if not spec.profile:
        return None
    return Sample.joined(s.sample for s in states if s.sample is not None and not s.failed)


def failed_file(
    fs: pafs.FileSystem, file: InputFile, error: BaseException, stage: str
) -> FileResult:
    """A file that failed whole from outside its own reading (a timeout, a worker that died):
    one record, and its rows still count as failed, so the row accounting stays whole."""
    state = FileState(FileResult(file.name))
    _recount(fs, file, state.result)
    state.fail(error, stage)
    return state.result


def _score_file(
    fs: pafs.FileSystem,
    file: InputFile,
    spec: ScoringSpec,
    model: Model,
    state: FileState,
    predictor: Predictor,
    gatherer: Gatherer | None,
) -> None:
    """Read and check one file, queueing its good rows; record its failures.

    A CSV is read again when the first reading cannot name the rows at fault: as text when a
    value does not parse as its declared type (enforcement then names each bad row, column and
    value), and on one thread when a row has too few or too many values (pyarrow then numbers
    each such row).
    """
    if file.kind == "image":
        _image(fs, file, spec, model, state, predictor)
        return
    types, exact = spec.column_types, False
    while True:
        try:
            _stream(fs, file, spec, model, state, predictor, types, gatherer, exact)
            return
        except CsvConversionError as e:
            if types is not spec.column_types:
                # A column the model does not declare changed its inferred type between blocks.
                reason = (
                    f"a column changed type part way through the file ({e}); "
                    "make each column's values one type."
                )
                state.fail(ReadError(file=file.name, reason=reason))
                _recount(fs, file, state.result)
                return
            types = {name: pa.string() for name in spec.column_types}
        except CsvRaggedRowError:
            exact = True
        state.forget()
        state.result = FileResult(file.name)
        gatherer = None


def _stream(
    fs: pafs.FileSystem,
    file: InputFile,
    spec: ScoringSpec,
    model: Model,
    state: FileState,
    predictor: Predictor,
    column_types: Mapping[str, pa.DataType],
    gatherer: Gatherer | None,
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
        batches = read_batches(
            fs,
            file,
            batch_rows=spec.batch_rows,
            column_types=column_types,
            columns=spec.read_columns,
            ragged=skipped.rows if skipped is not None else None,
        )
        for index, (batch, last) in enumerate(_with_last(batches)):
            offset = file.first_row + good
            rows = None
            if skipped is not None and skipped.rows:
                rows = file.first_row + skipped.file_rows(good, batch.num_rows)
                skipped.charge(state, spec.bad_rows, before=int(rows[-1]))
            good += batch.num_rows
            result.rows_read += batch.num_rows
            if result.failed:
                continue  # count the rest of the file's rows, score none of them
            if index == 0 and last and gatherer is not None and gatherer.add(state, batch, offset):
                continue  # a whole file in one batch: checked later, with other small files
            try:
                check_batch(spec, schema, state, predictor, batch, offset, rows)
            except BatchTimeoutError:
                raise
            except SparkscoreError as e:
                state.fail(e)  # and read on, to count the file's rows
        if skipped is not None:
            skipped.charge(state, spec.bad_rows, before=None)
    except (CsvConversionError, CsvRaggedRowError, BatchTimeoutError):
        raise
    except SparkscoreError as e:
        # The reader failed and cannot go on: the file's rows are counted another way.
        state.fail(e)
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

    def charge(self, state: FileState, bad_rows: str, before: int | None) -> None:
        """Charge the skipped rows before file row `before` (None: all the rest)."""
        result = state.result
        new = []
        while self.charged < len(self.rows) and (
            before is None or self.rows[self.charged].row < before
        ):
            new.append(self.rows[self.charged])
            self.charged += 1
        for row in new:
            result.errors.append(error_record(result.name, row.row, "read", row.error(result.name)))
        result.rows_read += len(new)
        if new and bad_rows == "fail_file" and not result.failed:
            state.fail()


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


def _image(
    fs: pafs.FileSystem,
    file: InputFile,
    spec: ScoringSpec,
    model: Model,
    state: FileState,
    predictor: Predictor,
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
    except SparkscoreError as e:  # unreadable, or the signature cannot take it: shape, dtype, kind
        state.fail(e)
        return
    nbytes = model_input.nbytes if isinstance(model_input, np.ndarray) else len(data)
    # An image has no columns: its passthrough values are null.
    passthrough = [pa.nulls(1, t) for _, t in spec.passthrough]
    predictor.add(
        Queued(
            state,
            model_input,
            np.zeros(1, dtype=np.int64),
            passthrough,
            nbytes,
            batch_key(model_input, how.batchable),
        )
    )
