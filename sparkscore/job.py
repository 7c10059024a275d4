"""The batch job on the driver: prepare (check the model, plan, claim the output), then
execute (run the mini-batches as Spark tasks, account, summarize).

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
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pyarrow as pa
from pyarrow import fs as pafs
from pyspark.sql import SparkSession

from sparkscore import azureconfig, tables
from sparkscore import drift as drifts
from sparkscore import summary as summaries
from sparkscore.environment import BuiltEnvironment, ensure_environment, read_environment
from sparkscore.errors import DriftError, ErrorThresholdExceeded
from sparkscore.launch import run_tasks
from sparkscore.layout import (
    OutputLayout,
    abandoned_staging,
    claim_output,
    errors_table,
    remove_dir,
    replace_dir,
    run_layout,
    sweep_temporary,
)
from sparkscore.listing import check_output_apart
from sparkscore.loader import load_model, warn_untrusted
from sparkscore.manifest import Manifest
from sparkscore.model import ModelSpec, read_spec
from sparkscore.modelprocess import ModelProcess
from sparkscore.passthrough import passthrough_types
from sparkscore.planner import MiniBatch, Plan, plan
from sparkscore.predictiontype import prediction_type
from sparkscore.profile import Profile
from sparkscore.progress import Progress
from sparkscore.readers import csv_column_types
from sparkscore.registry import local_model_dir
from sparkscore.requirements import Mismatch, mismatches, read_pins
from sparkscore.resume import RunIdentity, committed_batches, previous_run
from sparkscore.scoring import ScoringSpec
from sparkscore.script import ScoringScript, checked_script
from sparkscore.scriptoutput import land_outputs, write_script_csv
from sparkscore.scriptrun import ScriptSpec
from sparkscore.session import forward_storage_env, task_attempts, task_slots
from sparkscore.settings import Settings
from sparkscore.shipping import (
    PackedModel,
    ShippedEnvironment,
    Spark,
    context_of,
    pack_model,
    ship_code,
    ship_model,
)
from sparkscore.storage import redact_record, resolve
from sparkscore.summary import EnvironmentRecord, Probe, RunRecord
from sparkscore.tasks import run_batches
from sparkscore.writers import fail_split_files, write_csv, write_json

__all__ = ["Job", "execute", "prepare", "run", "score"]

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
    return run(spark, os.fspath(model), os.fspath(input), os.fspath(output), resolved)


@dataclass(frozen=True, kw_only=True)
class Job:
    """Everything decided before Spark starts: the model, the plan, the output and its state."""

    job_id: str
    started: datetime
    model_uri: str
    model_path: str  # a local directory, wherever model_uri points
    model: ModelSpec
    packed: PackedModel  # the model directory zipped, with its content hash
    located: Mapping[str, str | None]  # how a registry or remote model URI resolved
    input_uri: str
    output_uri: str
    plan: Plan
    final: OutputLayout
    layout: OutputLayout  # where this run writes: `final`, or a staging folder beside it
    settings: Settings
    scoring: ScoringSpec
    committed: Mapping[int, Manifest]  # by an earlier run this one resumes
    mismatched: tuple[Mismatch, ...] = ()  # the model's pins that differ from what runs here
    environment: BuiltEnvironment | None = None  # the model's own, when not env_manager: local
    probe: Probe | None = None  # the model loaded in that environment
    reference: Profile | None = None  # the profile to compare with (settings.reference)
    script: ScoringScript | None = None  # Azure's batch driver, which scores instead of predict

    @property
    def sha256(self) -> str:
        return self.packed.sha256


def run(
    spark: Spark, model_uri: str, input_uri: str, output_uri: str, settings: Settings
) -> dict[str, Any]:
    return execute(
        spark, prepare(model_uri, input_uri, output_uri, settings, parallelism=task_slots(spark))
    )


def prepare(
    model_uri: str, input_uri: str, output_uri: str, settings: Settings, *, parallelism: int
) -> Job:
    """Check the model, plan the input and claim the output, without Spark.

    Everything that can be refused is refused here, before a session costs seconds to start.
    `parallelism` (task slots) sizes `mini_batch_size: auto`; a resumed run reuses the one its
    first run planned with, so it sees the same mini-batches.
    """
    started = summaries.now()
    job_id = f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    check_output_apart(input_uri, output_uri, recursive=settings.recursive)
    script = checked_script(settings)
    reference = _reference(settings)
    model_path, located = local_model_dir(model_uri)
    if script is None:
        spec, environment, probe, mismatched = _model_environment(model_path, settings)
    else:  # the script's init() loads the model, in each worker: it is only read here
        spec, environment, probe, mismatched = read_spec(model_path), None, None, ()
    packed = pack_model(model_path)  # zipped and hashed in one read, while the session starts
    sha = packed.sha256
    final = OutputLayout.at(output_uri, settings.output_format, settings.output_file_name)
    out_fs = final.filesystem()
    if final.is_table:
        check_output_apart(input_uri, errors_table(output_uri), recursive=settings.recursive)
        # A resumed run finishes the run it resumes, under its job id: the id of the commit.
        layout = tables.run_into(out_fs, final, job_id, settings)
        job_id, abandoned = layout.run, []
    else:
        abandoned = abandoned_staging(out_fs, final)
        layout = run_layout(
            out_fs,
            final,
            overwrite=settings.overwrite,
            resume=settings.resume,
            job_id=job_id,
            abandoned=abandoned,
        )
    previous = previous_run(out_fs, layout) if settings.resume else None
    if previous is not None and previous.parallelism is not None:
        parallelism = previous.parallelism
    the_plan = plan(
        input_uri,
        mini_batch_size=settings.mini_batch_size,
        recursive=settings.recursive,
        ignore_unsupported=settings.ignore_unsupported,
        parallelism=parallelism,
        any_type=script is not None,
    )
    scoring = _scoring_spec(spec, settings, the_plan)
    if final.is_table:
        tables.claim(out_fs, layout, scoring.output_schema, settings)
    else:
        claim_output(
            out_fs,
            final,
            layout,
            overwrite=settings.overwrite,
            resume=settings.resume,
            abandoned=abandoned,
        )
    committed = committed_batches(
        out_fs,
        layout,
        RunIdentity.of(
            sha256=sha, plan=the_plan, settings=settings, job_id=job_id, parallelism=parallelism
        ),
        previous,
    )
    log.info(
        "planned %d files (%d bytes) into %d mini-batches; %d already committed",
        len(the_plan.files),
        the_plan.total_bytes,
        len(the_plan.batches),
        len(committed),
    )
    return Job(
        job_id=job_id,
        started=started,
        model_uri=model_uri,
        model_path=model_path,
        model=spec,
        packed=packed,
        located=located,
        input_uri=input_uri,
        output_uri=output_uri,
        plan=the_plan,
        final=final,
        layout=layout,
        settings=settings,
        scoring=scoring,
        committed=committed,
        mismatched=mismatched,
        environment=environment,
        probe=probe,
        reference=reference,
        script=script,
    )


def _reference(settings: Settings) -> Profile | None:
    """The reference profile, read before anything costs time: one that is missing fails now."""
    if settings.reference is None:
        return None
    return drifts.read_reference(settings.reference)


def _model_environment(
    model_path: str, settings: Settings
) -> tuple[ModelSpec, BuiltEnvironment | None, Probe | None, tuple[Mismatch, ...]]:
    """Load the model where it will run: here (warning of each pin that differs), or in its own
    environment, built (or found in the cache) now, before any task starts."""
    if settings.env_manager == "local":
        # The one load on the driver, on purpose: a model that cannot load here is refused before
        # any task starts; each worker loads its own copy.
        spec = load_model(model_path, trust_model=settings.trust_model).spec
        mismatched = tuple(mismatches(read_pins(spec)))
        for m in mismatched:
            log.warning(
                "the model pins %s==%s but %s is installed",
                m.package,
                m.pinned,
                m.installed or "nothing",
            )
        return spec, None, None, mismatched
    spec = read_spec(model_path)
    warn_untrusted(spec, trusted=settings.trust_model)
    built = ensure_environment(read_environment(spec), settings.env_manager, settings.env_cache)
    log.info(
        "model environment %s: %s in %.1fs",
        built.key[:12],
        "reused from the cache" if built.reused else f"built with {built.tool}",
        built.seconds,
    )
    # Load the model once in its environment here: one that cannot load fails now, by name.
    started = time.perf_counter()
    process = ModelProcess(model_path, built.site_packages)
    process.close()
    return (
        spec,
        built,
        Probe(
            seconds=time.perf_counter() - started,
            loaded_with=process.info["packages"],
            python=process.info["python"],
        ),
        (),
    )


def execute(spark: Spark, job: Job) -> dict[str, Any]:
    """Score the mini-batches not yet committed as Spark tasks, then account and summarize.

    Returns the run record as written to `_summary.json`; raises ErrorThresholdExceeded after
    writing everything when more files failed than `error_threshold` allows, or DriftError when
    a column drifted from the reference under `fail_on_drift`.
    """
    out_fs = job.layout.filesystem()
    todo = [b for b in job.plan.batches if b.index not in job.committed]
    fresh, environment = _score(spark, job, todo)
    manifests = _account(out_fs, job, fresh)
    if job.script is not None:
        landed = land_outputs(out_fs, job.layout, manifests)
        log.info("%d file(s) the scoring script wrote landed in %s", landed, job.output_uri)
    _finish_output(out_fs, job, rescored=bool(todo))
    drift = drifts.check(out_fs, job.layout, manifests, job.settings, job.reference)
    failed = _threshold_error(job, manifests) or _drift_error(job, drift)
    record = RunRecord(
        job_id=job.job_id,
        started=job.started,
        ended=summaries.now(),
        error=str(failed) if failed else None,
        model=job.model,
        model_uri=job.model_uri,
        model_sha256=job.sha256,
        model_located=job.located,
        input_uri=job.input_uri,
        plan=job.plan,
        output_uri=job.output_uri,
        settings=job.settings,
        manifests=tuple(manifests),
        spark_version=spark.version,
        environment=environment,
        files_skipped=len({f.file_name for m in job.committed.values() for f in m.files}),
        drift=drift,
    )
    summary: dict[str, Any] = redact_record(record.to_json())
    if job.final.is_table:
        # The commit carries the summary; the summary then says which versions hold the rows.
        committed = tables.commit_run(
            out_fs, job.layout, manifests, job.scoring.output_schema, job.settings, summary
        )
        summary = redact_record(replace(record, table=committed).to_json())
    write_json(out_fs, job.layout.summary, summary)
    if job.layout is not job.final and not job.final.is_table:
        replace_dir(out_fs, job.layout.root, job.final.root)
    if failed:
        raise failed
    return summary


def _score(
    spark: Spark, job: Job, todo: list[MiniBatch]
) -> tuple[list[Manifest], EnvironmentRecord]:
    """Ship the model and run `todo` as Spark tasks; their manifests, and where the model ran."""
    environment = EnvironmentRecord(
        mismatches=job.mismatched, built=job.environment, probe=job.probe
    )
    if not todo:
        return [], environment
    shipped = ship_model(spark, job.model_path, job.environment, spec=job.model, packed=job.packed)
    if job.environment is not None and shipped.environment is not None:
        environment = _shipped(environment, job.environment, shipped.environment)
    log.debug("model shipped as %s", shipped.archive)
    sc = context_of(spark)
    if sc is not None:
        forward_storage_env(sc)
    with Progress(sc, len(todo)) as progress:
        task = functools.partial(
            run_batches,
            shipped,
            job.layout,
            job.input_uri,
            job.scoring,
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
        model_name=os.path.basename(os.path.normpath(job.model_path)),
        environment=job.settings.environment_variables or {},
        reserved=("predictions", "errors", job.settings.output_file_name),
        # The last attempt records a failure: the last Spark gives, whatever max_retries asks.
        max_retries=task_attempts(context_of(spark), job.settings.max_retries + 1) - 1,
    )
    return {"code": ship_code(spark, job.script), "script": spec}


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


def _scoring_spec(spec: ModelSpec, settings: Settings, the_plan: Plan) -> ScoringSpec:
    schema = spec.signature.inputs if spec.signature else None
    column_types = csv_column_types(schema)
    passthrough = []
    if settings.passthrough_columns:
        # A column the signature types is read as that type; any other takes one type from
        # every file (passthrough.common_type), or the job is refused here, naming the files.
        in_fs, _ = resolve(the_plan.uri)
        found = passthrough_types(
            in_fs,
            the_plan.files,
            [name for name in settings.passthrough_columns if name not in column_types],
            uri=the_plan.uri,
        )
        passthrough = [
            (name, column_types.get(name) or found[name]) for name in settings.passthrough_columns
        ]
        # A column written as text is read from CSV as text: `007` stays `007`.
        column_types = {
            **column_types,
            **{name: t for name, t in found.items() if pa.types.is_string(t)},
        }
    read_columns = None
    if schema is not None and schema.has_names and not schema.is_tensor:
        # As mlflow, predict sees only the signature's columns: no other needs decoding.
        read_columns = tuple(dict.fromkeys([*schema.names(), *(n for n, _ in passthrough)]))
    return ScoringSpec(
        prediction_type=prediction_type(spec.signature, settings.result_type),
        passthrough=tuple(passthrough),
        column_types=column_types,
        batch_rows=None if settings.batch_rows == "auto" else settings.batch_rows,
        bad_rows=settings.bad_rows,
        params=spec.params(settings.params),
        read_columns=read_columns,
        profile=settings.profiling,
    )
