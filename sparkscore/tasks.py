"""What runs on executors: one Spark task scores one mini-batch and commits it.

Workers import this module (and the pure core it uses), never the driver or the session:
the functions here are what the driver pickles by reference into each task.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
from pyarrow import fs as pafs
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
from sparkscore.scriptoutput import commit_script_batch
from sparkscore.scriptrun import ScriptSpec, azure_environment, run_isolated, run_script
from sparkscore.shipping import (
    ShippedCode,
    ShippedModel,
    ShippedPlan,
)
from sparkscore.spilling import spill_buffers
from sparkscore.storage import resolve
from sparkscore.worker import WORKER
from sparkscore.writers import commit_batch

__all__ = ["alarm", "arrow_task", "batches_task", "run_batches"]

# run_batches with everything but the mini-batches bound: what one Spark task runs.
Task = Callable[[Iterable[MiniBatch]], Iterator[Manifest]]


def batches_task(task: Task, batches: Iterable[MiniBatch]) -> Iterator[str]:
    """Run the mini-batches a partition holds; yield each one's manifest as JSON."""
    for batch in batches:
        for manifest in task([batch]):
            yield manifest.dumps()


def arrow_task(
    plan: ShippedPlan, task: Task, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """batches_task under mapInArrow (Spark Connect), given the mini-batches' positions in
    the shipped plan, each read from it alone."""
    for positions in batches:
        for manifest in batches_task(task, map(plan.batch, positions.column(0).to_pylist())):
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
    *,
    code: ShippedCode | None = None,
    script: ScriptSpec | None = None,
) -> Iterator[Manifest]:
    """What each Spark task runs over its one mini-batch (top level, so workers import it).

    A mini-batch in `isolated` failed every attempt before: its files are scored in forked
    children (sparkscore.isolation), so that one that kills its worker fails alone. With a
    scoring script (`code`, `script`), the script scores it instead (`scripted`).
    """
    in_fs, _ = resolve(input_uri)
    out_fs = layout.filesystem()
    for batch in batches:
        if code is not None and script is not None:
            manifest = scripted(shipped, code, script, in_fs, layout, timeout, batch, isolated)
            if counters is not None:
                counters.add(manifest)
            yield manifest
            continue
        model = shipped.load()
        threads = WORKER.hold_threads(model, shipped.sha256, spec.threads)
        buffers, sink_for = spill_buffers()
        with alarm(timeout, batch):
            if batch.index in isolated:
                result = score_isolated(in_fs, batch, shipped.load, spec, sink_for)
            else:
                result = score_batch(in_fs, batch, model, spec, sink_for)
        task = _task_run(shipped.sha256, batch.index in isolated, threads)
        manifest = commit_batch(out_fs, layout, result, buffers, spec.output_schema, task)
        if counters is not None:
            counters.add(manifest)
        yield manifest


def scripted(
    shipped: ShippedModel,
    code: ShippedCode,
    script: ScriptSpec,
    in_fs: pafs.FileSystem,
    layout: OutputLayout,
    timeout: float | None,
    batch: MiniBatch,
    isolated: frozenset[int],
) -> Manifest:
    """One mini-batch through the scoring script, imported (and its init called) once per
    worker. A failure is raised for Spark to retry, and recorded against the mini-batch's files
    in its last attempt (after `max_retries`); a mini-batch `isolated` after every attempt
    killed its worker is run once more in a forked child (scriptrun.run_isolated)."""
    folder = code.local_path()
    key = script.key(code.key, shipped.sha256)

    def load() -> Any:
        return WORKER.load_script(
            key,
            os.path.join(folder, *code.relative.split("/")),
            folder,
            lambda: azure_environment(script, shipped.azure_model_dir(script.model_name)),
        )

    timed = functools.partial(alarm, timeout, batch)
    if batch.index in isolated:
        result = run_isolated(in_fs, batch, load, script, timed)
    else:
        final = _attempt() >= script.max_retries
        result = run_script(in_fs, batch, load, script, final=final, timed=timed)
    task = _task_run(key, batch.index in isolated)
    return commit_script_batch(layout.filesystem(), layout, result, task)


def _attempt() -> int:
    """Which attempt of its Spark task this is (0: the first)."""
    context = TaskContext.get()
    return context.attemptNumber() if context else 0


def _task_run(key: str, isolated: bool, threads: int | None = None) -> TaskRun:
    """This task's attempt, its worker, how many times the worker loaded `key`, and the most
    threads a native pool there may start."""
    return TaskRun(
        attempt=_attempt(),
        worker=f"{os.uname().nodename}:{os.getpid()}",
        model_loads=WORKER.loads.get(key, 0),
        isolated=isolated,
        threads=threads,
    )


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
