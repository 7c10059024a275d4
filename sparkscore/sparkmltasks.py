"""What runs on executors when a Spark MLlib pipeline scores a mini-batch in the JVM.

One Spark task runs three steps on one partition, one mini-batch: `read_task` reads the files
and holds them to the signature exactly as every other model's task does (sparkscore.scoring,
with a model that returns the rows it is given), the pipeline transforms the good rows in the
JVM, and `commit_task` commits the predictions, the errors and the manifest (writers.commit_batch).

The two Python steps run in two Python workers of the same task on the same executor: the read
step leaves what it found (each file's outcome and errors) in the executor's SparkFiles folder,
keyed by the task attempt, before its first row leaves; the commit step reads it once its rows
have all arrived, which is after the read step ended. sparkscore.sparkml builds the steps.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark import SparkFiles, TaskContext

from sparkscore.errors import SparkPipelineError
from sparkscore.layout import OutputLayout
from sparkscore.loader import Model
from sparkscore.manifest import TaskRun
from sparkscore.model import ModelSpec
from sparkscore.planner import MiniBatch
from sparkscore.profile import sample_of
from sparkscore.progress import Counters
from sparkscore.sample import Sample
from sparkscore.scoring import BatchResult, ScoringSpec, score_batch
from sparkscore.spilling import SpillBuffer, SpillFile, spill_buffers
from sparkscore.storage import resolve
from sparkscore.tasks import alarm
from sparkscore.writers import commit_batch

__all__ = ["FILE", "ROW", "PipelineRun", "carried", "commit_task", "read_task"]

# The lineage columns rows carry through the pipeline, named so no stage's column meets them.
FILE, ROW = "_sparkscore_file", "_sparkscore_row"


def carried(name: str) -> str:
    """The name a passthrough column travels under through the pipeline."""
    return f"_sparkscore_pass_{name}"


@dataclass(frozen=True)
class PipelineRun:
    """What both steps need, decided on the driver; small and picklable.

    `read` is the job's ScoringSpec with the model's input columns as the "prediction": the
    read step yields each good row's converted inputs. `output` is the job's ScoringSpec with
    the prediction the pipeline gives (one column, or a struct of `spark_output_columns`).
    """

    spec: ModelSpec  # with the signature the rows are held to
    read: ScoringSpec
    output: ScoringSpec
    layout: OutputLayout
    input_uri: str
    timeout: float | None
    key: str  # the run: sidecar files of two runs in one session never meet

    @cached_property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.read.prediction_type.field(i).name for i in range(self.read_width))

    @property
    def read_width(self) -> int:
        return int(self.read.prediction_type.num_fields)


class _Rows:
    """The read step's model: it "predicts" the rows it is given, converted, as they are."""

    def predict(self, data: Any) -> Any:
        return data


def read_task(
    todo: Sequence[MiniBatch], run: PipelineRun, positions: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Read and check the mini-batch at each position; yield its good rows, with lineage."""
    in_fs, _ = resolve(run.input_uri)
    model = Model(spec=run.spec, impl=_Rows())
    for held in positions:
        for i in held.column(0).to_pylist():
            batch = todo[i]
            buffers, sink_for = spill_buffers()
            with alarm(run.timeout, batch):
                result = score_batch(in_fs, batch, model, run.read, sink_for)
            with open(_sidecar(run), "wb") as f:
                pickle.dump(result, f)
            for file, buffer in zip(result.files, buffers):
                if not file.failed:
                    for rows in buffer.batches():
                        yield _flattened(run, rows)
                buffer.discard()


def _flattened(run: PipelineRun, rows: pa.RecordBatch) -> pa.RecordBatch:
    """file_name, row, the input columns (out of their struct) and passthrough, as carried."""
    inputs = rows.column(2)
    arrays = [rows.column(0), rows.column(1)]
    arrays += [inputs.field(i) for i in range(run.read_width)]
    arrays += [rows.column(3 + i) for i in range(len(run.read.passthrough))]
    names = [FILE, ROW, *run.inputs, *(carried(n) for n, _ in run.read.passthrough)]
    return pa.RecordBatch.from_arrays(arrays, names=names)


def commit_task(
    run: PipelineRun, counters: Counters | None, rows: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Commit the mini-batch whose transformed rows arrive; yield its manifest as JSON."""
    buffers: dict[str, SpillBuffer] = {}
    spill = SpillFile()  # one budget for the mini-batch's files, as spill_buffers gives
    sample = Sample()
    for batch in rows:
        for name, part in _by_file(batch):
            out = _output(run, part)
            if name not in buffers:
                buffers[name] = SpillBuffer(spill)
            buffers[name].add(out)
            if run.output.profile:
                _profile(run, part, out.column(2), sample)
    path = _sidecar(run)
    with open(path, "rb") as f:
        result: BatchResult = pickle.load(f)
    ordered = [buffers.get(f.name) or SpillBuffer(spill) for f in result.files]
    for file, buffer in zip(result.files, ordered):
        if not file.failed and buffer.rows != file.rows_scored:
            raise SparkPipelineError(
                path=run.spec.path,
                reason=f"its pipeline gave {buffer.rows} rows for the {file.rows_scored} rows of "
                f"{file.name} it was given; sparkscore scores pipelines that keep every row "
                "(no filter, aggregation or join stage)",
            )
    if run.output.profile:
        result.profile = sample.profile()
    context = TaskContext.get()
    task = TaskRun(
        attempt=context.attemptNumber() if context else 0,
        worker=f"{os.uname().nodename}:{os.getpid()}",
    )
    out_fs = run.layout.filesystem()
    manifest = commit_batch(out_fs, run.layout, result, ordered, run.output.output_schema, task)
    with contextlib.suppress(OSError):
        os.unlink(path)
    if counters is not None:
        counters.add(manifest)
    yield pa.RecordBatch.from_pydict({"manifest": [manifest.dumps()]})


def _sidecar(run: PipelineRun) -> str:
    """Where the read step of this task attempt leaves its outcome for the commit step."""
    context = TaskContext.get()
    attempt = context.taskAttemptId() if context else 0
    return os.path.join(SparkFiles.getRootDirectory(), f"sparkscore-{run.key}-{attempt}.pickle")


def _by_file(batch: pa.RecordBatch) -> Iterator[tuple[str, pa.RecordBatch]]:
    """The rows of each file in a batch, in order: a file's rows arrive together."""
    names = batch.column(0).to_numpy(zero_copy_only=False)
    if not len(names):
        return
    starts = np.flatnonzero(names[1:] != names[:-1]) + 1
    bounds = [0, *starts.tolist(), len(names)]
    for start, stop in zip(bounds, bounds[1:]):
        yield str(names[start]), batch.slice(start, stop - start)


def _output(run: PipelineRun, part: pa.RecordBatch) -> pa.RecordBatch:
    """The output rows: file_name, row, prediction and passthrough, in the output's types.

    The commit step's rows are the lineage, the prediction, the inputs when profiled, and the
    passthrough columns last (sparkml.score_pipeline selects them)."""
    schema = run.output.output_schema
    first = part.num_columns - len(run.output.passthrough)
    arrays = [part.column(i) for i in (0, 1, 2, *range(first, part.num_columns))]
    return pa.RecordBatch.from_arrays(
        [a.cast(f.type) for a, f in zip(arrays, schema)], schema=schema
    )


def _profile(run: PipelineRun, part: pa.RecordBatch, prediction: pa.Array, into: Sample) -> None:
    """Sample a file's rows: the inputs the pipeline was given, and its prediction."""
    taken = pa.array(sample_of(part.column(1).to_numpy(), increasing=True))
    inputs = pa.Table.from_batches([part.select(list(range(3, 3 + run.read_width)))])
    frame = inputs.rename_columns(list(run.inputs)).take(taken).to_pandas()
    into.add_sampled(frame, prediction.take(taken), len(prediction))
