"""Running mini-batches as Spark tasks: one partition per mini-batch, each task committing its
own, and the retry that isolates the files of a mini-batch that failed every attempt.

A classic session runs them as an RDD; Spark Connect, which has none, as a DataFrame through
mapInArrow. What each task runs is sparkscore.tasks.run_batches.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import cast

from pyspark import SparkContext
from pyspark.sql import SparkSession

from sparkscore.layout import OutputLayout
from sparkscore.manifest import Manifest
from sparkscore.planner import MiniBatch
from sparkscore.shipping import Spark, ship_plan
from sparkscore.sparkerrors import STAGE_FAILURE, failed_task, failure_line, text_of
from sparkscore.tasks import arrow_task, batches_task
from sparkscore.writers import committed_manifests

__all__ = ["Task", "run_tasks"]

log = logging.getLogger("sparkscore")

# What runs a Spark task: tasks.run_batches bound to all but the mini-batches to isolate and
# the mini-batches to run.
Task = Callable[[frozenset[int], Iterable[MiniBatch]], Iterator[Manifest]]


def run_tasks(
    spark: Spark, sc: SparkContext | None, todo: list[MiniBatch], task: Task, layout: OutputLayout
) -> list[Manifest]:
    """Run the mini-batches as Spark tasks and return their manifests.

    When a mini-batch fails every attempt (a file that kills the Python worker), Spark aborts
    the job. What was committed stays committed; the mini-batch Spark names is run again in
    isolation (sparkscore.isolation: the file that kills its worker is found and recorded, the
    rest scored), the others as before. Should the job fail again, every mini-batch still left
    is isolated; a failure even then (not a file's fault: a full disk, a lost executor) is the
    run's error.
    """
    isolated: set[int] = set()
    pending: list[MiniBatch] = list(todo)
    done: list[Manifest] = []
    while True:
        try:
            return done + _launch(spark, sc, pending, task, frozenset(isolated))
        except Exception as e:
            text = text_of(e)
            if STAGE_FAILURE not in text:
                raise  # not a task that failed every attempt: the driver or Spark itself
            committed = committed_manifests(layout.filesystem(), layout)
            done += [committed[b.index] for b in pending if b.index in committed]
            named = _failed_batch(text, pending)  # Spark numbers the tasks it was given
            pending = [b for b in pending if b.index not in committed]
            suspects = {b.index for b in pending} - isolated
            failure = failure_line(e)
            if not suspects or ": OutputError: " in failure:
                raise  # not a file's fault: isolating its files cannot help
            if named is not None and named in suspects and not isolated:
                suspects = {named}
            isolated |= suspects
            log.warning(
                "mini-batch(es) %s failed every attempt (%s); scoring them again with "
                "their files isolated, so that a file that kills its worker fails alone",
                ", ".join(map(str, sorted(suspects))),
                failure,
            )


def _failed_batch(text: str, todo: list[MiniBatch]) -> int | None:
    """The mini-batch whose task made Spark abort the job, when Spark's message says."""
    task = failed_task(text)
    return None if task is None or task >= len(todo) else todo[task].index


def _launch(
    spark: Spark,
    sc: SparkContext | None,
    todo: list[MiniBatch],
    task: Task,
    isolated: frozenset[int],
) -> list[Manifest]:
    """One partition per mini-batch, each task unpickling its own mini-batch only (the whole
    plan in every task cost files x tasks). A classic session runs them as an RDD whose
    partitions hold the mini-batches: no SQL session or query planning (seconds, at start).
    Spark Connect has no RDDs: a DataFrame carries each mini-batch's position there, and each
    task reads its own from the plan shipped as one file (shipping.ship_plan)."""
    run = functools.partial(task, isolated)
    if sc is not None:
        manifests_json = (
            sc.parallelize(todo, len(todo))
            .mapPartitions(functools.partial(batches_task, run))
            .collect()
        )
    else:
        session = cast(SparkSession, spark)  # no SparkContext: Spark Connect
        manifests_json = [
            r.manifest
            for r in session.range(len(todo), numPartitions=len(todo))
            .mapInArrow(
                functools.partial(arrow_task, ship_plan(spark, todo), run), "manifest string"
            )
            .collect()
        ]
    return [Manifest.loads(m) for m in manifests_json]
