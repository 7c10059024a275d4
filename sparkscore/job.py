"""The batch job on the driver: a prepared run (sparkscore.preparation) executed: the
mini-batches run as Spark tasks, accounted, summarized.

`score()` is the Python entry point; the command line (sparkscore.cli, run by
sparkscore.console) calls `prepare` and `execute` the same way. What runs on executors is in
sparkscore.tasks (launched by sparkscore.launch), the session's start and stop in
sparkscore.session, the resume protocol in sparkscore.resume, the run record in
sparkscore.summary.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pyarrow import fs as pafs
from pyspark import SparkContext
from pyspark.sql import SparkSession

from sparkscore import azureconfig, tables
from sparkscore import drift as drifts
from sparkscore import summary as summaries
from sparkscore.envbuild import BuiltEnvironment
from sparkscore.errors import DriftError, ErrorThresholdExceeded
from sparkscore.launch import run_tasks
from sparkscore.layout import (
    remove_dir,
    replace_dir,
    sweep_temporary,
)
from sparkscore.manifest import Manifest
from sparkscore.model import ModelSpec
from sparkscore.planner import MiniBatch
from sparkscore.preparation import Job, prepare
from sparkscore.progress import Progress
from sparkscore.report import write_report
from sparkscore.scriptoutput import land_outputs, write_script_csv
from sparkscore.scriptrun import ScriptSpec
from sparkscore.session import (
    forward_storage_env,
    ignored,
    task_attempts,
    task_cpus,
    task_slots,
)
from sparkscore.settings import Settings
from sparkscore.shipping import (
    ShippedEnvironment,
    Spark,
    context_of,
    ship_code,
    ship_model,
)
from sparkscore.sparkml import score_pipeline
from sparkscore.storage import redact_record
from sparkscore.summary import EnvironmentRecord, RunRecord
from sparkscore.tasks import run_batches
from sparkscore.threads import budget_for
from sparkscore.writers import fail_split_files, write_csv, write_json

__all__ = ["execute", "nothing_new", "run", "score"]

log = logging.getLogger("sparkscore")


def score(
    spark: SparkSession,
    model: str | os.PathLike[str],
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    config: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    **settings: Any,
) -> dict[str, Any]:
    """Score every file under `input` with the model and write OUT; return the run summary.

    Settings come from the defaults, then `config` (YAML), then `overrides` (`key=value`), then
    keyword arguments. Raises ErrorThresholdExceeded (after writing everything) when more files
    failed than `error_threshold` allows.

    Examples
    --------
    >>> summary = sparkscore.score(spark, "model", "in/", "out/",  # doctest: +SKIP
    ...                            passthrough_columns=["id"])
    >>> summary["rows_scored"]  # doctest: +SKIP
    300
    """
    resolved = Settings.load(config, overrides, **settings)
    for level, line in azureconfig.notes(config):
        log.log(level, line)
    instances = azureconfig.instances(config)
    if instances is not None:
        # The session is the caller's, started already: its task slots are what they are.
        log.warning(ignored(instances, "the session passed to score() has its own task slots"))
    return run(spark, os.fspath(model), os.fspath(input), os.fspath(output), resolved)


def run(
    spark: Spark, model_uri: str, input_uri: str, output_uri: str, settings: Settings
) -> dict[str, Any]:
    return execute(
        spark, prepare(model_uri, input_uri, output_uri, settings, parallelism=task_slots(spark))
    )


def execute(spark: Spark, job: Job) -> dict[str, Any]:
    """Score the mini-batches not yet committed as Spark tasks, then account and summarize.

    Returns the run record as written to `_summary.json` (`report.html` is written beside it);
    raises ErrorThresholdExceeded after writing everything when more files failed than
    `error_threshold` allows, or DriftError when a column drifted from the reference under
    `fail_on_drift`. An incremental run with nothing new returns its record at once, writing
    nothing and running no task.
    """
    if job.nothing_new:
        return nothing_new(job, spark.version)
    out_fs = job.layout.filesystem()
    todo = [b for b in job.plan.batches if b.index not in job.committed]
    threads = budget_for(job.settings.threads, task_cpus(spark))
    fresh, environment = _score(spark, job, todo, threads)
    manifests = _account(out_fs, job, fresh)
    if job.script is not None:
        landed = land_outputs(out_fs, job.layout, manifests)
        log.info("%d file(s) the scoring script wrote landed in %s", landed, job.output_uri)
    _finish_output(out_fs, job, rescored=bool(todo))
    drift = drifts.check(out_fs, job.layout, manifests, job.settings, job.reference)
    failed = _threshold_error(job, manifests) or _drift_error(job, drift)
    record = replace(
        _record(job, spark.version, environment),
        error=str(failed) if failed else None,
        manifests=tuple(manifests),
        files_skipped=len({f.file_name for m in job.committed.values() for f in m.files}),
        drift=drift,
        threads=threads,
    )
    summary: dict[str, Any] = redact_record(record.to_json())
    if job.final.is_table:
        # The commit carries the summary; the summary then says which versions hold the rows.
        scored = [f.name for f in job.plan.files] if job.ledger is not None else []
        committed = tables.commit_run(
            out_fs, job.layout, manifests, job.scoring.output_schema, job.settings, summary, scored
        )
        summary = redact_record(replace(record, table=committed).to_json())
    write_json(out_fs, job.layout.summary, summary)
    records = job.output_uri.rstrip("/") + job.layout.root[len(job.final.root) :]
    if job.settings.report:
        write_report(out_fs, job.layout, output=records if job.final.is_table else job.output_uri)
    if job.layout is not job.final and not job.layout.run:
        replace_dir(out_fs, job.layout.root, job.final.root)
    if job.ledger is not None:
        # Last: until the ledger names this run, no reader follows its rows and a later run
        # plans as if it had not run.
        job.ledger.after(
            job_id=job.job_id, sha256=job.sha256, files=job.plan.files, manifests=manifests
        ).write(out_fs)
    if failed:
        raise failed
    return summary


def nothing_new(job: Job, spark_version: str) -> dict[str, Any]:
    """The record of an incremental run that found nothing new: it scored no file and wrote
    nothing (a run every few minutes over a quiet folder leaves no trace)."""
    record = _record(job, spark_version, EnvironmentRecord(mismatches=job.mismatched))
    summary: dict[str, Any] = redact_record(record.to_json())
    return summary


def _record(job: Job, spark_version: str, environment: EnvironmentRecord) -> RunRecord:
    """The run record of `job` before it scored anything."""
    return RunRecord(
        job_id=job.job_id,
        started=job.started,
        ended=summaries.now(),
        error=None,
        model=job.model,
        model_uri=job.model_uri,
        model_sha256=job.sha256,
        model_located=job.located,
        input_uri=job.input_uri,
        plan=job.plan,
        output_uri=job.output_uri,
        settings=job.settings,
        manifests=(),
        spark_version=spark_version,
        environment=environment,
        files_skipped=0,
        incremental=_incremental(job),
    )


def _incremental(job: Job) -> dict[str, Any] | None:
    """What the run summary says of an incremental run: the files it left alone, and the
    files whose earlier rows its own supersede."""
    if job.ledger is None:
        return None
    return {
        "ledger": job.ledger.path,
        "files_unchanged": len(job.plan.unchanged),
        "files_superseded": sum(f.name in job.ledger.entries for f in job.plan.files),
        "rescore": job.settings.rescore,
    }


def _score(
    spark: Spark, job: Job, todo: list[MiniBatch], threads: int | None
) -> tuple[list[Manifest], EnvironmentRecord]:
    """Ship the model and run `todo` as Spark tasks, each worker held to `threads` native
    threads; their manifests, and where the model ran."""
    environment = EnvironmentRecord(
        mismatches=job.mismatched, built=job.environment, probe=job.probe
    )
    if not todo:
        return [], environment
    if job.model is not None and job.model.sparkml is not None:
        return _score_pipeline(spark, job, job.model, todo), environment
    shipped = ship_model(spark, job.model_path, job.environment, spec=job.model, packed=job.packed)
    if job.environment is not None and shipped.environment is not None:
        environment = _shipped(environment, job.environment, shipped.environment)
    log.debug("model shipped as %s", shipped.archive)
    sc = context_of(spark)
    if sc is not None:
        forward_storage_env(sc)
    with Progress(sc, len(todo), job.layout, job.committed) as progress:
        task = functools.partial(
            run_batches,
            shipped,
            job.layout,
            job.input_uri,
            replace(job.scoring, threads=threads),
            job.settings.timeout,
            progress.counters,
            **_script_task(spark, job),
        )
        return run_tasks(spark, sc, todo, task, job.layout), environment


def _script_task(spark: Spark, job: Job) -> dict[str, Any]:
    """What tasks need to run the scoring script (nothing without one): its code, shipped."""
    if job.script is None:
        return {}
    spec = ScriptSpec(
        model_name=None
        if os.path.isfile(job.model_path)
        else os.path.basename(os.path.normpath(job.model_path)),
        environment=job.settings.environment_variables or {},
        reserved=("predictions", "errors", job.settings.output_file_name),
        # The last attempt records a failure: the last Spark gives, whatever max_retries asks.
        max_retries=task_attempts(context_of(spark), job.settings.max_retries + 1) - 1,
    )
    return {"code": ship_code(spark, job.script), "script": spec}


def _score_pipeline(
    spark: Spark, job: Job, spec: ModelSpec, todo: list[MiniBatch]
) -> list[Manifest]:
    """A Spark MLlib model: the mini-batches through its PipelineModel, in the JVM."""
    # The job may have run on a SparkContext alone: a pipeline needs its SQL session.
    session = SparkSession.builder.getOrCreate() if isinstance(spark, SparkContext) else spark
    sc = context_of(spark)
    if sc is not None:
        forward_storage_env(sc)
    with Progress(sc, len(todo), job.layout, job.committed) as progress:
        return score_pipeline(
            session,
            spec=spec,
            scoring=job.scoring,
            output_columns=job.settings.spark_output_columns,
            layout=job.layout,
            plan=job.plan,
            todo=todo,
            timeout=job.settings.timeout,
            counters=progress.counters,
        )


def _shipped(
    record: EnvironmentRecord, built: BuiltEnvironment, shipped: ShippedEnvironment
) -> EnvironmentRecord:
    if shipped.archive is None:
        return replace(record, shipped="in place")
    return replace(record, shipped="archive", archive_bytes=os.path.getsize(built.archive))


def _account(fs: pafs.FileSystem, job: Job, fresh: list[Manifest]) -> list[Manifest]:
    """Every committed mini-batch, in order, with split files failed whole where one slice
    failed; checked to account for every row read exactly once."""
    manifests = sorted([*job.committed.values(), *fresh], key=lambda m: m.batch)
    sweep_temporary(fs, job.layout)
    manifests = fail_split_files(fs, job.layout, manifests, job.settings.bad_rows)
    summaries.check_invariant(manifests)
    return manifests


def _finish_output(fs: pafs.FileSystem, job: Job, *, rescored: bool) -> None:
    """Consolidate CSV output, or drop the predictions of a summary_only run."""
    layout, settings = job.layout, job.settings
    if settings.output_format == "csv" and settings.output_action == "append_row":
        # A resumed run with nothing left to score keeps the CSV the earlier run consolidated:
        # that run removed the staged parts, so consolidating again would write only a header.
        if rescored or fs.get_file_info(layout.csv).type != pafs.FileType.File:
            indexes = [b.index for b in job.plan.batches]
            if job.script is not None:
                write_script_csv(fs, layout, indexes)
            else:
                write_csv(fs, layout, indexes, [name for name, _ in job.scoring.passthrough])
        remove_dir(fs, f"{layout.root}/_staging")
    elif settings.output_action == "summary_only":
        remove_dir(fs, layout.predictions)
        remove_dir(fs, f"{layout.root}/_staging")


def _threshold_error(job: Job, manifests: Sequence[Manifest]) -> ErrorThresholdExceeded | None:
    failed = summaries.counts(manifests)["files_failed"]
    if 0 <= job.settings.error_threshold < failed:
        return ErrorThresholdExceeded(
            failed=failed, threshold=job.settings.error_threshold, total=len(job.plan.files)
        )
    return None


def _drift_error(job: Job, drift: drifts.Drift | None) -> DriftError | None:
    if drift is None or not drift.flagged or not job.settings.fail_on_drift:
        return None
    return DriftError(columns=drift.flagged, reference=drift.reference)
