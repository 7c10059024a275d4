"""What runs on executors: one Spark task scores one mini-batch and commits it.

Workers import this module (and the pure core it uses), never the driver or the session:
the functions here are what the driver pickles by reference into each task.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
from pyspark import TaskContext

from sparkscore.errors import (
    BatchTimeoutError,
)
from sparkscore.isolation import score_isolated
from sparkscore.layout import OutputLayout
from sparkscore.manifest import Manifest, TaskRun
from sparkscore.planner import MiniBatch
from sparkscore.progress import Counters
from sparkscore.scoring import ScoringSpec, score_batch
from sparkscore.shipping import (
    ShippedModel,
)
from sparkscore.storage import resolve
from sparkscore.worker import WORKER
from sparkscore.writers import commit_batch, spill_buffers

__all__ = ["alarm", "arrow_task", "positions_task", "run_batches"]

# run_batches with everything but the mini-batches bound: what one Spark task runs.
Task = Callable[[Iterable[MiniBatch]], Iterator[Manifest]]


def positions_task(todo: list[MiniBatch], task: Task, positions: Iterable[int]) -> Iterator[str]:
    """Run the mini-batches at `positions` in `todo`; yield each one's manifest as JSON."""
    for i in positions:
        for manifest in task([todo[i]]):
            yield manifest.dumps()


def arrow_task(
    todo: list[MiniBatch], task: Task, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """positions_task under mapInArrow (Spark Connect)."""
    for positions in batches:
        for manifest in positions_task(todo, task, positions.column(0).to_pylist()):
            yield pa.RecordBatch.from_pydict({"manifest": [manifest]})


def run_batches(
    shipped: ShippedModel,
    layout: OutputLayout,
    input_uri: str,
    spec: ScoringSpec,
    timeout: float | None,
    counters: Counters | None,
    isolated: frozenset[int],
    batches: Iterable[MiniBatch],
) -> Iterator[Manifest]:
    """What each Spark task runs over its one mini-batch (top level, so workers import it).

    A mini-batch in `isolated` failed every attempt before: its files are scored in forked
    children (sparkscore.isolation), so that one that kills its worker fails alone.
    """
    in_fs, _ = resolve(input_uri)
    out_fs = layout.filesystem()
    for batch in batches:
        model = shipped.load()
        threads = WORKER.hold_threads(model, shipped.sha256, spec.threads)
        buffers, sink_for = spill_buffers(spec.output_schema)
        with alarm(timeout, batch):
            if batch.index in isolated:
                result = score_isolated(in_fs, batch, shipped.load, spec, sink_for)
            else:
                result = score_batch(in_fs, batch, model, spec, sink_for)
        context = TaskContext.get()
        task = TaskRun(
            attempt=context.attemptNumber() if context else 0,
            worker=f"{os.uname().nodename}:{os.getpid()}",
            model_loads=WORKER.loads.get(shipped.sha256, 0),
            isolated=batch.index in isolated,
            threads=threads,
        )
        manifest = commit_batch(out_fs, layout, result, buffers, spec.output_schema, task)
        if counters is not None:
            counters.add(manifest)
        yield manifest


@contextlib.contextmanager
def alarm(seconds: float | None, batch: MiniBatch) -> Iterator[None]:
    """Stop a mini-batch that runs longer than `timeout`: SIGALRM interrupts the model's Python.

    Spark runs a task in its Python worker's main thread, where the signal is delivered; a model
    stuck inside C code is interrupted when control returns to Python.
    """
    if not seconds:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise BatchTimeoutError(seconds=seconds, files=list(batch.names))

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
