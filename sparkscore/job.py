"""The batch job on the driver: prepare (check the model, plan, claim the output), then
execute (run the mini-batches as Spark tasks, account, summarize).

`score()` is the Python entry point; `main()` is what `spark-submit jobs/score.py` and the
`sparkscore score` console command call. What runs on executors is in sparkscore.tasks, the
session's start and stop in sparkscore.session.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
from pyspark import SparkContext
from pyspark.sql import SparkSession

from sparkscore import daemon
from sparkscore import summary as summaries
from sparkscore.environment import (
    BuiltEnvironment,
    ensure_environment,
    read_environment,
)
from sparkscore.errors import (
    ErrorThresholdExceeded,
    ResumeError,
    SparkscoreError,
)
from sparkscore.listing import check_output_apart
from sparkscore.loader import load_model, warn_untrusted
from sparkscore.model import ModelSpec, directory_sha256, read_spec
from sparkscore.modelprocess import ModelProcess
from sparkscore.passthrough import passthrough_types
from sparkscore.planner import MiniBatch, Plan, plan
from sparkscore.predictiontype import prediction_type
from sparkscore.preflight import preflight
from sparkscore.progress import Progress
from sparkscore.readers import csv_column_types
from sparkscore.registry import local_model_dir
from sparkscore.requirements import Mismatch, mismatches, read_pins
from sparkscore.scoring import ScoringSpec
from sparkscore.session import (
    JobSession,
    failure_line,
    forward_storage_env,
    local_parallelism,
    session,
    submitted_master,
    task_slots,
)
from sparkscore.settings import Settings
from sparkscore.shipping import (
    ShippedEnvironment,
    Spark,
    context_of,
    ship_model,
)
from sparkscore.signature import enforce_params
from sparkscore.storage import redact, redact_record, resolve
from sparkscore.tasks import arrow_task, positions_task, run_batches
from sparkscore.writers import (
    OutputLayout,
    abandoned_staging,
    fail_split_files,
    is_empty,
    prepare_output,
    read_json,
    read_manifests,
    remove_dir,
    replace_dir,
    staging,
    sweep_temporary,
    write_csv,
    write_json,
)

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
    return run(spark, os.fspath(model), os.fspath(input), os.fspath(output), resolved)


@dataclass(frozen=True)
class Job:
    """Everything decided before Spark starts: the model, the plan, the output and its state."""

    job_id: str
    started: datetime
    model_uri: str
    model_path: str
    model: ModelSpec
    sha256: str
    input_uri: str
    output_uri: str
    plan: Plan
    final: OutputLayout
    layout: OutputLayout
    settings: Settings
    scoring: ScoringSpec
    committed: dict[int, dict[str, Any]]
    mismatched: tuple[Mismatch, ...]
    located: dict[str, Any]
    environment: BuiltEnvironment | None = None  # the model's own, when not env_manager: local
    environment_record: dict[str, Any] = dataclasses.field(default_factory=dict)


def run(spark: Spark, model_uri: str, input_uri: str, output_uri: str,
        settings: Settings) -> dict[str, Any]:
    return execute(spark, prepare(model_uri, input_uri, output_uri, settings,
                                  parallelism=task_slots(spark)))


def prepare(model_uri: str, input_uri: str, output_uri: str, settings: Settings, *,
            parallelism: int) -> Job:
    """Check the model, plan the input and claim the output, without Spark.

    Everything that can be refused is refused here, before a session costs seconds to start.
    `parallelism` (task slots) sizes `mini_batch_size: auto`; a resumed run reuses the one its
    first run planned with, so it sees the same mini-batches.
    """
    started = summaries.now()
    job_id = f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    check_output_apart(input_uri, output_uri, recursive=settings.recursive)
    model_path, located = local_model_dir(model_uri)
    spec, environment, record, mismatched = _model_environment(model_path, settings)
    sha = directory_sha256(model_path)
    final = OutputLayout.at(output_uri, settings.output_format, settings.output_file_name)
    out_fs = final.filesystem()
    abandoned = abandoned_staging(out_fs, final)
    layout = _output_layout(out_fs, final, settings, job_id, abandoned)
    if settings.resume:
        parallelism = _previous_run(out_fs, layout).get("parallelism", parallelism)
    the_plan = plan(input_uri, mini_batch_size=settings.mini_batch_size,
                    recursive=settings.recursive, ignore_unsupported=settings.ignore_unsupported,
                    parallelism=parallelism)
    scoring = _scoring_spec(spec, settings, the_plan)
    prepare_output(out_fs, final, overwrite=settings.overwrite, resume=settings.resume,
                   interrupted=bool(abandoned))
    for old in abandoned:
        if old.root != layout.root:
            remove_dir(out_fs, old.root)
            log.warning("removed %s: the staging folder of an overwrite run that did not finish",
                        old.root)
    out_fs.create_dir(layout.root, recursive=True)
    committed = _committed_batches(out_fs, layout, settings, sha, the_plan, job_id, parallelism)
    log.info("planned %d files (%d bytes) into %d mini-batches; %d already committed",
             len(the_plan.files), the_plan.total_bytes, len(the_plan.batches), len(committed))
    return Job(job_id, started, model_uri, model_path, spec, sha, input_uri, output_uri,
               the_plan, final, layout, settings, scoring, committed, mismatched, located,
               environment, record)


def _output_layout(fs: Any, final: OutputLayout, settings: Settings, job_id: str,
                   abandoned: list[OutputLayout]) -> OutputLayout:
    """Where this run writes: the output itself; with overwrite, a staging folder beside it
    that replaces it once this run has succeeded (a failed run leaves the old output intact);
    with resume, the staging folder of an overwrite run that was interrupted, if there is one,
    since that run is the one to finish."""
    if settings.resume and abandoned:
        log.warning("resuming the overwrite run that was interrupted in %s; its output "
                    "replaces %s when it succeeds", abandoned[-1].root, final.uri)
        return abandoned[-1]
    if settings.overwrite and not settings.resume and not is_empty(fs, final.root):
        return staging(final, job_id)
    return final


def _model_environment(model_path: str, settings: Settings) -> tuple[
        ModelSpec, BuiltEnvironment | None, dict[str, Any], tuple[Mismatch, ...]]:
    """Load the model where it will run: here (warning of each pin that differs), or in its own
    environment, built (or found in the cache) now, before any task starts."""
    if settings.env_manager == "local":
        spec = load_model(model_path, trust_model=settings.trust_model).spec
        mismatched = tuple(mismatches(read_pins(spec)))
        for m in mismatched:
            log.warning("the model pins %s==%s but %s is installed", m.package, m.pinned,
                        m.installed or "nothing")
        return spec, None, {}, mismatched
    spec = read_spec(model_path)
    warn_untrusted(spec, trusted=settings.trust_model)
    built = ensure_environment(read_environment(spec), settings.env_manager, settings.env_cache)
    log.info("model environment %s: %s in %.1fs", built.key[:12],
             "reused from the cache" if built.reused else f"built with {built.tool}",
             built.seconds)
    # Load the model once in its environment here: one that cannot load fails now, by name.
    started = time.perf_counter()
    probe = ModelProcess(model_path, built.site_packages)
    probe.close()
    record = {**built.record(), "probe_seconds": round(time.perf_counter() - started, 3),
              "loaded_with": probe.info["packages"], "python": probe.info["python"]}
    return spec, built, record, ()


def execute(spark: Spark, job: Job) -> dict[str, Any]:
    """Score the mini-batches not yet committed as Spark tasks, then account and summarize."""
    settings, layout, final, the_plan, scoring = (
        job.settings, job.layout, job.final, job.plan, job.scoring)
    committed, sha = job.committed, job.sha256
    out_fs = layout.filesystem()
    todo = [b for b in the_plan.batches if b.index not in committed]
    fresh: list[dict[str, Any]] = []
    environment = job.environment_record
    if todo:
        shipped = ship_model(spark, job.model_path, sha, job.environment)
        if job.environment is not None and shipped.environment is not None:
            environment = {**environment,
                           **_shipping_record(job.environment, shipped.environment)}
        log.debug("model shipped as %s", shipped.archive)
        sc = context_of(spark)
        if sc is not None:
            forward_storage_env(sc)
        with Progress(sc, len(todo)) as progress:
            task = functools.partial(run_batches, shipped, layout, job.input_uri, scoring,
                                     settings.timeout, progress.counters)
            fresh = _run_tasks(spark, sc, todo, task, out_fs, layout)
    manifests = sorted([*committed.values(), *fresh], key=lambda m: m["batch"])
    sweep_temporary(out_fs, layout)
    manifests = fail_split_files(out_fs, layout, manifests, settings.bad_rows)
    summaries.check_invariant(manifests)

    staging = f"{layout.root}/_staging"
    if settings.output_format == "csv" and settings.output_action == "append_row":
        # A resumed run with nothing left to score keeps the CSV the earlier run consolidated:
        # that run removed the staged parts, so consolidating again would write only a header.
        if todo or out_fs.get_file_info(layout.csv).type != pa.fs.FileType.File:
            write_csv(out_fs, layout, [b.index for b in the_plan.batches],
                      [name for name, _ in scoring.passthrough])
        remove_dir(out_fs, staging)
    elif settings.output_action == "summary_only":
        remove_dir(out_fs, layout.predictions)
        remove_dir(out_fs, staging)

    counts = summaries.counts(manifests)
    exceeded = 0 <= settings.error_threshold < counts["files_failed"]
    threshold_error = ErrorThresholdExceeded(
        failed=counts["files_failed"], threshold=settings.error_threshold,
        total=len(the_plan.files),
    ) if exceeded else None
    record = summaries.build(
        job_id=job.job_id,
        status="failed" if exceeded else "succeeded",
        started=job.started,
        ended=summaries.now(),
        model={**job.model.record(), "path": job.model_uri, "sha256": sha, **job.located},
        input_record={"uri": job.input_uri, "files": len(the_plan.files),
                      "bytes": the_plan.total_bytes, "mini_batches": len(the_plan.batches),
                      "listing_digest": the_plan.listing_digest,
                      "unsupported_skipped": list(the_plan.skipped),
                      "broken_links_skipped": list(the_plan.broken_links)},
        output=job.output_uri,
        settings=settings.to_dict(),
        manifests=manifests,
        files_total=len(the_plan.files),
        files_skipped=len({f["file_name"] for m in committed.values() for f in m["files"]}),
        spark_version=spark.version,
        error=str(threshold_error) if threshold_error else None,
        extra={"environment": {"env_manager": settings.env_manager,
                               "mismatches": [m.to_dict() for m in job.mismatched],
                               **environment}},
    )
    record = redact_record(record)
    write_json(out_fs, layout.summary, record)
    if layout is not final:
        replace_dir(out_fs, layout.root, final.root)
    if threshold_error:
        raise threshold_error
    return record


def _run_tasks(spark: Spark, sc: SparkContext | None, todo: list[MiniBatch], task: Any,
               fs: Any, layout: OutputLayout) -> list[dict[str, Any]]:
    """Run the mini-batches as Spark tasks and return their manifests.

    When a mini-batch fails every attempt (a file that kills the Python worker), Spark aborts
    the job. What was committed stays committed; the mini-batch Spark names is run again in
    isolation (sparkscore.isolation: the file that kills its worker is found and recorded, the
    rest scored), the others as before. Should the job fail again, every mini-batch still left
    is isolated; a failure even then (not a file's fault: a full disk, a lost executor) is the
    run's error.
    """
    isolated: set[int] = set()
    pending, done = list(todo), []
    while True:
        try:
            return done + _launch(spark, sc, pending, task, frozenset(isolated))
        except Exception as e:
            text = _text(e)
            if _STAGE_FAILURE not in text:
                raise  # not a task that failed every attempt: the driver or Spark itself
            committed = read_manifests(fs, layout)
            done += [committed[b.index] for b in pending if b.index in committed]
            pending = [b for b in pending if b.index not in committed]
            suspects = {b.index for b in pending} - isolated
            failure = failure_line(e)
            if not suspects or ": OutputError: " in failure:
                raise  # not a file's fault: isolating its files cannot help
            named = _failed_batch(text, pending)
            if named is not None and named in suspects and not isolated:
                suspects = {named}
            isolated |= suspects
            log.warning("mini-batch(es) %s failed every attempt (%s); scoring them again with "
                        "their files isolated, so that a file that kills its worker fails alone",
                        ", ".join(map(str, sorted(suspects))), failure)


def _launch(spark: Spark, sc: SparkContext | None, todo: list[MiniBatch], task: Any,
            isolated: frozenset[int]) -> list[dict[str, Any]]:
    """One partition per mini-batch, each holding its position in `todo`. A classic session
    runs them as an RDD: no SQL session or query planning (seconds, at start). Spark Connect
    has no RDDs: a DataFrame carries the positions there."""
    run = functools.partial(task, isolated)
    if sc is not None:
        manifests_json = sc.parallelize(range(len(todo)), len(todo)).mapPartitions(
            functools.partial(positions_task, todo, run)).collect()
    else:
        manifests_json = [r.manifest for r in spark.range(  # type: ignore[union-attr]
            len(todo), numPartitions=len(todo)).mapInArrow(
            functools.partial(arrow_task, todo, run), "manifest string").collect()]
    return [json.loads(m) for m in manifests_json]


# How Spark says a task failed every attempt; a lost connection to the JVM (an interrupted run)
# or a driver-side error says something else, and is the run's error as it is.
_STAGE_FAILURE = "Job aborted due to stage failure"


def _text(error: BaseException) -> str:
    """An error's text; a Py4J error asks the JVM for it, and the JVM may be gone."""
    try:
        return str(error)
    except Exception:
        return ""


def _failed_batch(text: str, todo: list[MiniBatch]) -> int | None:
    """The mini-batch whose task made Spark abort the job, from Spark's message
    ("Task 3 in stage 0.0 failed 4 times"), when it says."""
    m = re.search(r"Task (\d+) in stage [\d.]+ failed", text)
    if m is None or int(m.group(1)) >= len(todo):
        return None
    return todo[int(m.group(1))].index


def _shipping_record(built: BuiltEnvironment, shipped: ShippedEnvironment) -> dict[str, Any]:
    if shipped.archive is None:
        return {"shipped": "in place"}
    return {"shipped": "archive", "archive_bytes": os.path.getsize(built.archive)}


def _scoring_spec(spec: ModelSpec, settings: Settings, the_plan: Plan) -> ScoringSpec:
    schema = spec.signature.inputs if spec.signature else None
    column_types = csv_column_types(schema)
    passthrough = []
    if settings.passthrough_columns:
        # A column the signature types is read as that type; any other takes one type from
        # every file (passthrough.common_type), or the job is refused here, naming the files.
        in_fs, _ = resolve(the_plan.uri)
        found = passthrough_types(in_fs, the_plan.files, [
            name for name in settings.passthrough_columns if name not in column_types],
            uri=the_plan.uri)
        passthrough = [(name, column_types.get(name) or found[name])
                       for name in settings.passthrough_columns]
        # A column written as text is read from CSV as text: `007` stays `007`.
        column_types = {**column_types, **{name: t for name, t in found.items()
                                           if pa.types.is_string(t)}}
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
        params=enforce_params(settings.params, spec.signature.params if spec.signature else None),
        read_columns=read_columns,
    )


# Settings that shape what a committed mini-batch holds: a resume must not change them.
_RESUME_SETTINGS = ("output_format", "output_action", "passthrough_columns", "bad_rows",
                    "result_type", "params")


def _previous_run(fs: Any, layout: OutputLayout) -> dict[str, Any]:
    path = f"{layout.root}/_run.json"
    return read_json(fs, path) if fs.get_file_info(path).type == pa.fs.FileType.File else {}


def _committed_batches(fs: Any, layout: OutputLayout, settings: Settings, sha: str,
                       the_plan: Plan, job_id: str, parallelism: int) -> dict[int, dict[str, Any]]:
    """On resume, the mini-batches an earlier run committed; else record this run's identity."""
    run_file = f"{layout.root}/_run.json"
    identity = {"model_sha256": sha, "listing_digest": the_plan.listing_digest,
                "mini_batches": len(the_plan.batches),
                "output": {k: settings.to_dict()[k] for k in _RESUME_SETTINGS}}
    if settings.resume and fs.get_file_info(run_file).type == pa.fs.FileType.File:
        previous = read_json(fs, run_file)
        for key, label in (("model_sha256", "model (sha256)"),
                           ("listing_digest", "input listing"),
                           ("mini_batches", "mini-batch plan"),
                           ("output", "output settings")):
            if previous.get(key) != identity[key]:
                raise ResumeError(
                    path=layout.uri,
                    reason=f"the {label} differs from the run that wrote it "
                    f"({previous.get(key)} then, {identity[key]} now); resume with the same model, "
                    "input and mini_batch_size, or use overwrite: true.",
                )
        return read_manifests(fs, layout)
    write_json(fs, run_file, {**identity, "job_id": job_id, "parallelism": parallelism})
    return {}


def parser(prog: str, *, with_master: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog,
                                description="Score an MLflow model over a folder of files.")
    p.add_argument("--model", required=True, help="MLflow model directory (holds MLmodel)")
    p.add_argument("--input", required=True, help="a folder, a file or a glob")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--config", help="YAML settings file (see conf/default.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting; the value is parsed as YAML")
    p.add_argument("--remote", help="a Spark Connect URL (sc://host:port) instead of a master")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan and check each file against the signature; score nothing")
    if with_master:
        p.add_argument("--master", default="local[*]", help="Spark master (default local[*])")
    return p


def main(argv: Sequence[str], *, prog: str = "score.py", master: str | None = None) -> int:
    """Run the job from command-line arguments; the exit status says whether it succeeded.

    However the run ends (done, refused, a task failed, Ctrl-C, SIGTERM), Spark is stopped
    before the last line is printed, so that this line is the last thing the run prints.
    """
    args = parser(prog, with_master=False).parse_args(list(argv))
    spark = JobSession()
    job: Job | None = None
    debug = False
    interrupted = 0  # the signal that stopped the run, if one did
    with _Signals(on_signal=spark.halt) as signals:
        try:
            try:
                settings = Settings.load(args.config, args.overrides)
                debug = settings.logging_level == "debug"
                spark.quiet = not debug
                _configure_logging(settings.logging_level)
                slots = None if args.remote else local_parallelism(master or submitted_master())
                if args.dry_run:
                    report, ok = preflight(args.model, args.input, settings,
                                           parallelism=slots or os.cpu_count() or 1)
                    print(redact(report), flush=True)
                    return 0 if ok else 2
                preload = daemon.preload_modules(args.model, settings.env_manager)
                # The session starts while the driver plans and loads the model: both take
                # seconds, and neither needs the other. On a cluster, the plan needs its slots.
                spark.start(functools.partial(session, master, settings, remote=args.remote,
                                              preload=preload))
                job = prepare(args.model, args.input, args.output, settings,
                              parallelism=slots or task_slots(spark.result()))
                line, status = _summary_line(execute(spark.result(), job)), 0
            finally:
                signals.disarm()
        except BaseException as e:
            if debug:
                traceback.print_exception(e)
            interrupted = signals.raised or (signal.SIGINT if isinstance(e, KeyboardInterrupt)
                                             else 0)
            if not interrupted:
                if not isinstance(e, Exception):
                    spark.stop()
                    raise
                # Before Spark stops: a Py4J error asks the JVM for its text.
                line, status = _error_line(e)
        spark.stop()
        if interrupted:
            line, status = _interrupted_line(
                signal.Signals(interrupted), args.output, dry_run=args.dry_run,
                staged=_staged(job)), 128 + interrupted
        print(redact(line), flush=True)
        return status


def _error_line(e: Exception) -> tuple[str, int]:
    """The last line and exit status of a run that failed."""
    if isinstance(e, SparkscoreError):
        return f"error: {e}", 3 if isinstance(e, ErrorThresholdExceeded) else 2
    return f"error: {failure_line(e)}", 1  # Spark or the model failed in a way we did not foresee


class _Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP, raised in the main thread as Ctrl-C is: Py4J then drops the
    connection of the call it interrupts, as it does for Ctrl-C."""


class _Signals:
    """While armed, the first signal that asks the run to stop calls `on_signal`, then raises
    _Interrupted in the main thread; any later one is ignored, so that stopping Spark and
    printing the last line are not cut short."""

    HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, *, on_signal: Callable[[], None]) -> None:
        self.raised = 0  # the signal that raised _Interrupted
        self._on_signal = on_signal
        self._armed = True
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.HANDLED:
                if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup, `cmd &`: still ignored
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def disarm(self) -> None:
        self._armed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self._armed and not self.raised:
            self.raised = signum
            self._on_signal()
            raise _Interrupted(signal.Signals(signum).name)


def _staged(job: Job | None) -> bool:
    """Whether the interrupted run was an overwrite run that wrote beside the output it was to
    replace (and had not yet swapped it in): resume finishes it."""
    if job is None or job.layout is job.final:
        return False
    fs = job.layout.filesystem()
    return fs.get_file_info(job.layout.root).type == pa.fs.FileType.Directory


def _interrupted_line(sig: signal.Signals, output: str, *, dry_run: bool, staged: bool) -> str:
    if dry_run:
        return f"error: interrupted by {sig.name}; nothing was scored."
    stopped = f"error: interrupted by {sig.name}; Spark was stopped"
    if staged:
        return (f"{stopped} and {output} is unchanged. The mini-batches this overwrite run "
                "committed beside it are kept: run the same command again with --set "
                "resume=true to finish it (its output then replaces the old one), or without "
                "resume to start over.")
    return (f"{stopped}. The mini-batches already committed to {output} are kept: run the same "
            "command again with --set resume=true to score the rest.")


def _configure_logging(level: str) -> None:
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    if level != "debug":
        handler.addFilter(_not_from_py4j)
    logging.basicConfig(handlers=[handler])
    log.setLevel(level.upper())


def _not_from_py4j(record: logging.LogRecord) -> bool:
    """Py4J logs a traceback when a call is interrupted or its JVM has gone; the job reports
    what happened in its own last line."""
    return os.path.basename(os.path.dirname(record.pathname)) != "py4j"


def _summary_line(result: dict[str, Any]) -> str:
    unknown = result.get("files_rows_unknown") or 0
    return (
        f"sparkscore: {result['status']}: {result['files_succeeded']} of {result['files_total']} "
        f"files scored, {result['rows_scored']} rows scored, {result['rows_failed']} rows failed"
        f"{f' (and {unknown} failed files whose rows could not be counted)' if unknown else ''}, "
        f"{result['files_skipped']} files skipped, {result['duration_s']}s "
        f"({result['rows_per_s']} rows/s); summary in {result['output']}/_summary.json"
    )
