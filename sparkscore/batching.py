"""Predict calls: rows waiting for `predict`, from one or many files, and their predictions.

Small files share one predict call: a call is made when `batch_rows` rows (or, with `batch_rows:
auto`, about BATCH_BYTES of input) are waiting, and its predictions are split back to each file's
sink in order. Only inputs of one key share a call (tables, or images of one shape), so a change
of shape starts a new call. When a shared call fails, each file's rows are predicted alone so the
failure is charged to the file that caused it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa

from sparkscore.errors import BatchTimeoutError, ModelProcessError, PredictError
from sparkscore.failures import FileState
from sparkscore.loader import Model
from sparkscore.outputs import to_arrow
from sparkscore.profile import sample_of
from sparkscore.readers import BATCH_BYTES, MAX_AUTO_ROWS

if TYPE_CHECKING:  # scoring.py, the public surface, imports this module
    from sparkscore.scoring import ScoringSpec

__all__ = ["ModelInput", "Predictor", "Queued", "full"]

# What a model is given: a table, or a tensor (images, or a table given to a tensor model).
ModelInput: TypeAlias = pd.DataFrame | np.ndarray


def full(rows: int, nbytes: int, batch_rows: int | None) -> bool:
    """Whether this many rows, of this many bytes, make one predict call."""
    if batch_rows:
        return rows >= batch_rows
    return nbytes >= BATCH_BYTES or rows >= MAX_AUTO_ROWS


@dataclass(frozen=True, eq=False)
class Queued:
    """Good rows of one file, waiting for predict.

    `rows`: their file rows. `key`: inputs with equal keys share a predict call (images of one
    shape); None: predict alone. `span`: rows [start, stop) of `model_input`, a frame several
    small files share (see gathering.py); None: all of it.
    """

    state: FileState
    model_input: ModelInput
    rows: np.ndarray
    passthrough: list[pa.Array]
    nbytes: int
    key: Hashable | None = "frame"
    span: tuple[int, int] | None = None


class Predictor:
    """Rows waiting for `predict`, from one or many files (see the module docstring)."""

    def __init__(self, model: Model, spec: ScoringSpec) -> None:
        self.model, self.spec = model, spec
        self.params = dict(spec.params or {}) or None
        self.queue: list[Queued] = []
        self.rows = self.bytes = 0

    def add(self, item: Queued) -> None:
        if self.queue and (item.key is None or item.key != self.queue[-1].key):
            self.flush()  # a table after images, or images of another shape: a call of their own
        self.queue.append(item)
        self.rows += len(item.rows)
        self.bytes += item.nbytes
        if item.key is None or full(self.rows, self.bytes, self.spec.batch_rows):
            self.flush()

    def drop(self, file: FileState) -> None:
        """Forget a failed file's waiting rows."""
        self.queue = [q for q in self.queue if q.state is not file]
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

    def _flush_one(self, queue: list[Queued]) -> None:
        try:
            self._deliver(queue, self._predict(queue))
        except PredictError as e:
            queue[0].state.fail(e, "predict")

    def _predict(self, queue: list[Queued]) -> pa.Array:
        inputs = _inputs(queue)
        model_input = inputs[0] if len(inputs) == 1 else _concat(inputs)
        first = queue[0]
        rows = sum(len(q.rows) for q in queue)
        try:
            prediction = self.model.predict_conformed(model_input, self.params)
            return to_arrow(prediction, self.spec.prediction_type, rows)
        except (BatchTimeoutError, ModelProcessError):
            # A dead model process fails the task, as a dead Python worker does: Spark retries.
            raise
        except Exception as e:  # the model's own code: any exception fails the rows it got
            cause = e.cause if isinstance(e, PredictError) else f"{type(e).__name__}: {e}"
            raise PredictError(
                file=first.state.result.name, first_row=int(first.rows[0]), rows=rows, cause=cause
            ) from None

    def _deliver(self, queue: list[Queued], values: pa.Array) -> None:
        offset = 0
        for run in _runs(queue):
            n = sum(len(q.rows) for q in run)
            sink = run[0].state.sink
            assert sink is not None  # a file scored in a task has a sink
            predicted = values.slice(offset, n)
            sink.add(_output_batch(self.spec, run, predicted))
            if self.spec.profile:  # profiled as its output is kept: by the run's first file
                _profile(run, predicted)
            for q in run:
                q.state.result.rows_scored += len(q.rows)
            offset += n


def _runs(queue: list[Queued]) -> Iterator[list[Queued]]:
    """Queued items in runs that share one output batch: whole small files (span set), next to
    each other in their mini-batch. A whole file's rows are final once predicted, so the run's
    batch can go to its first file's sink; one batch a file cost more than its rows' predict."""
    run: list[Queued] = []
    for q in queue:
        if run and not (
            q.span is not None
            and run[-1].span is not None
            and q.state.position == run[-1].state.position + 1
        ):
            yield run
            run = []
        run.append(q)
    if run:
        yield run


def _profile(run: list[Queued], predicted: pa.Array) -> None:
    """Sample a run's rows, what the model was given and what it returned, into its first
    file's sample (its output is kept or forgotten with that file's)."""
    inputs = _inputs(run)
    model_input = inputs[0] if len(inputs) == 1 else _concat(inputs)
    parts, offset = [], 0
    for q in run:  # each one file's rows, in order
        parts.append(sample_of(q.rows, increasing=True) + offset)
        offset += len(q.rows)
    run[0].state.profiled(model_input, predicted, np.concatenate(parts))


def _inputs(queue: list[Queued]) -> list[ModelInput]:
    """The inputs of queued items, adjacent spans of one shared frame taken as one slice."""
    runs: list[tuple[ModelInput, int | None, int | None]] = []
    for q in queue:
        if q.span is None:
            runs.append((q.model_input, None, None))
        elif runs and runs[-1][0] is q.model_input and runs[-1][2] == q.span[0]:
            runs[-1] = (q.model_input, runs[-1][1], q.span[1])
        else:
            runs.append((q.model_input, *q.span))
    inputs: list[ModelInput] = []
    for model_input, start, stop in runs:
        if start is None or (start == 0 and stop == len(model_input)):
            inputs.append(model_input)
        else:
            assert isinstance(model_input, pd.DataFrame)  # spans are of gathered frames
            inputs.append(model_input.iloc[start:stop])
    return inputs


def _concat(inputs: list[ModelInput]) -> ModelInput:
    """Inputs of one key as one: rows of DataFrames, or tensors along the batch dimension."""
    if isinstance(inputs[0], np.ndarray):
        return np.concatenate(inputs)
    return pd.concat(inputs, ignore_index=True)


def _output_batch(spec: ScoringSpec, run: list[Queued], values: pa.Array) -> pa.RecordBatch:
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
        passthrough = [
            pa.concat_arrays([q.passthrough[i] for q in run]) for i in range(len(spec.passthrough))
        ]
    arrays = [names, rows, values, *passthrough]
    return pa.RecordBatch.from_arrays(arrays, schema=spec.output_schema)
