"""The batch job: plan the input, score each mini-batch as one Spark task, write and account.

`score()` is the Python entry point; `main()` is what `spark-submit jobs/score.py` and the
`sparkscore score` console command call.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from dataclasses import dataclass
from datetime import datetime
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
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa
from pyspark import SparkConf, SparkContext, TaskContext
from pyspark.sql import SparkSession

from sparkscore import daemon, summary as summaries
from sparkscore.errors import (
    BatchTimeoutError,
    ErrorThresholdExceeded,
    ResumeError,
    SparkscoreError,
)
from sparkscore.environment import BuiltEnvironment, ensure_environment, read_environment
from sparkscore.loader import LOADS, load_model, warn_untrusted
from sparkscore.model import ModelSpec, directory_sha256, read_spec
from sparkscore.modelprocess import ModelProcess
from sparkscore.planner import MiniBatch, Plan, plan, resolve
from sparkscore.registry import local_model_dir
from sparkscore.requirements import Mismatch, mismatches, read_pins
from sparkscore.preflight import preflight
from sparkscore.progress import Counters, Progress
from sparkscore.readers import csv_column_types, peek_schema
from sparkscore.scoring import ScoringSpec, score_batch
from sparkscore.settings import Settings
from sparkscore.shipping import (
    ShippedEnvironment, ShippedModel, Spark, context_of, ship_model,
)
from sparkscore.signature import enforce_params
from sparkscore.sparktypes import arrow_type, output_type
from sparkscore.writers import (
    OutputLayout,
    SpillBuffer,
    commit_batch,
    fail_split_files,
    prepare_output,
    read_json,
    read_manifests,
    is_empty,
    remove_dir,
    replace_dir,
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
    >>> summary = sparkscore.score(spark, "model", "in/", "out/", passthrough_columns=["id"])  # doctest: +SKIP
    >>> summary["rows_scored"]                                                                # doctest: +SKIP
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
    model_path, located = local_model_dir(model_uri)
    spec, environment, record, mismatched = _model_environment(model_path, settings)
    sha = directory_sha256(model_path)
    final = OutputLayout.at(output_uri, settings.output_format, settings.output_file_name)
    out_fs = final.filesystem()
    if settings.resume:
        parallelism = _previous_run(out_fs, final).get("parallelism", parallelism)
    the_plan = plan(input_uri, mini_batch_size=settings.mini_batch_size,
                    recursive=settings.recursive, ignore_unsupported=settings.ignore_unsupported,
                    parallelism=parallelism)
    scoring = _scoring_spec(spec, settings, the_plan)
    prepare_output(out_fs, final, overwrite=settings.overwrite, resume=settings.resume)
    layout = final
    if settings.overwrite and not settings.resume and not is_empty(out_fs, final.root):
        # Write beside the old output and swap at the end, so a failed run leaves it intact.
        parent, name = final.root.rsplit("/", 1)
        layout = dataclasses.replace(final, root=f"{parent}/.{name}.sparkscore-{job_id}")
        out_fs.create_dir(layout.root, recursive=True)
    committed = _committed_batches(out_fs, layout, settings, sha, the_plan, job_id, parallelism)
    log.info("planned %d files (%d bytes) into %d mini-batches; %d already committed",
             len(the_plan.files), the_plan.total_bytes, len(the_plan.batches), len(committed))
    return Job(job_id, started, model_uri, model_path, spec, sha, input_uri, output_uri,
               the_plan, final, layout, settings, scoring, committed, mismatched, located,
               environment, record)


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
            _forward_storage_env(sc)
        with Progress(sc, len(todo)) as progress:
            task = functools.partial(_run_batches, shipped, layout, job.input_uri, scoring,
                                     settings.timeout, progress.counters)
            # One partition per mini-batch, each holding its position in `todo`. A classic
            # session runs them as an RDD: no SQL session or query planning (seconds, at start).
            # Spark Connect has no RDDs: a DataFrame carries the positions there.
            if sc is not None:
                manifests_json = sc.parallelize(range(len(todo)), len(todo)).mapPartitions(
                    functools.partial(_positions_task, todo, task)).collect()
            else:
                manifests_json = [r.manifest for r in spark.range(  # type: ignore[union-attr]
                    len(todo), numPartitions=len(todo)).mapInArrow(
                    functools.partial(_arrow_task, todo, task), "manifest string").collect()]
        fresh = [json.loads(m) for m in manifests_json]
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
                      "unsupported_skipped": list(the_plan.skipped)},
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
    write_json(out_fs, layout.summary, record)
    if layout is not final:
        replace_dir(out_fs, layout.root, final.root)
    if threshold_error:
        raise threshold_error
    return record


def _shipping_record(built: BuiltEnvironment, shipped: ShippedEnvironment) -> dict[str, Any]:
    if shipped.archive is None:
        return {"shipped": "in place"}
    return {"shipped": "archive", "archive_bytes": os.path.getsize(built.archive)}


def _scoring_spec(spec: ModelSpec, settings: Settings, the_plan: Plan) -> ScoringSpec:
    schema = spec.signature.inputs if spec.signature else None
    column_types = csv_column_types(schema)
    passthrough = []
    if settings.passthrough_columns:
        in_fs, _ = resolve(the_plan.uri)
        sample = _first_schema(in_fs, the_plan)
        for name in settings.passthrough_columns:
            if name in column_types:
                passthrough.append((name, column_types[name]))
            elif sample is not None and name in sample.names:
                passthrough.append((name, sample.field(name).type))
            else:
                passthrough.append((name, pa.string()))
    read_columns = None
    if schema is not None and schema.has_names and not schema.is_tensor:
        # As mlflow, predict sees only the signature's columns: no other needs decoding.
        read_columns = tuple(dict.fromkeys([*schema.names(), *(n for n, _ in passthrough)]))
    return ScoringSpec(
        prediction_type=arrow_type(output_type(spec.signature, settings.result_type)),
        passthrough=tuple(passthrough),
        column_types=column_types,
        batch_rows=None if settings.batch_rows == "auto" else settings.batch_rows,
        bad_rows=settings.bad_rows,
        params=enforce_params(settings.params, spec.signature.params if spec.signature else None),
        read_columns=read_columns,
    )


def _first_schema(fs: Any, the_plan: Plan) -> pa.Schema | None:
    for file in the_plan.files:
        try:
            return peek_schema(fs, file)
        except (pa.ArrowException, OSError):
            continue
    return None


_STORAGE_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION")


def _forward_storage_env(sc: SparkContext) -> None:
    """Where the driver reads storage with these (a local S3 endpoint, credentials), its tasks
    must too."""
    for key in _STORAGE_ENV:
        if key in os.environ:
            sc.environment.setdefault(key, os.environ[key])


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


def _positions_task(todo: list[MiniBatch], task: Any, positions: Iterable[int]) -> Iterator[str]:
    """Run the mini-batches at `positions` in `todo`; yield each one's manifest as JSON."""
    for i in positions:
        for manifest in task([(todo[i].index, todo[i])]):
            yield json.dumps(manifest, default=str)


def _arrow_task(todo: list[MiniBatch], task: Any,
                batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """_positions_task under mapInArrow (Spark Connect)."""
    for positions in batches:
        for manifest in _positions_task(todo, task, positions.column(0).to_pylist()):
            yield pa.RecordBatch.from_pydict({"manifest": [manifest]})


def _run_batches(shipped: ShippedModel, layout: OutputLayout, input_uri: str, spec: ScoringSpec,
                 timeout: float | None, counters: Counters | None,
                 items: Iterator[tuple[int, MiniBatch]]) -> Iterator[dict[str, Any]]:
    """What each Spark task runs over its one mini-batch (top level, so workers import it)."""
    in_fs, _ = resolve(input_uri)
    out_fs = layout.filesystem()
    for _, batch in items:
        model = shipped.load()
        buffers: list[SpillBuffer] = []

        def sink_for(_file: Any) -> SpillBuffer:
            buffers.append(SpillBuffer(spec.output_schema))
            return buffers[-1]

        with alarm(timeout, batch):
            result = score_batch(in_fs, batch, model, spec, sink_for)
        context = TaskContext.get()
        manifest = commit_batch(out_fs, layout, result, buffers, spec.output_schema, {
            "attempt": context.attemptNumber() if context else 0,
            "worker": f"{os.uname().nodename}:{os.getpid()}",
            "model_loads": LOADS.get(shipped.sha256, 0),
        })
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


# ---------------------------------------------------------------------------------------------
# Command line


def parser(prog: str, *, with_master: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Score an MLflow model over a folder of files.")
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
    """Run the job from command-line arguments; the exit status says whether it succeeded."""
    args = parser(prog, with_master=False).parse_args(list(argv))
    debug = False
    try:
        settings = Settings.load(args.config, args.overrides)
        debug = settings.logging_level == "debug"
        _configure_logging(settings.logging_level)
        slots = None if args.remote else local_parallelism(master or _submitted_master())
        if args.dry_run:
            report, ok = preflight(args.model, args.input, settings,
                                   parallelism=slots or os.cpu_count() or 1)
            print(report, flush=True)
            return 0 if ok else 2
        preload = daemon.preload_modules(args.model, settings.env_manager)
        if slots is None:  # a cluster: its task slots are known once the session is up
            spark = session(master, settings, remote=args.remote, preload=preload)
            job = prepare(args.model, args.input, args.output, settings,
                          parallelism=task_slots(spark))
        else:
            # The session starts while the driver plans and loads the model: both take
            # seconds, and neither needs the other. A refusal returns without waiting for it.
            starting = _Background(lambda: session(master, settings, preload=preload))
            job = prepare(args.model, args.input, args.output, settings, parallelism=slots)
            spark = starting.result()
        log.debug("spark session ready")
        result = execute(spark, job)
    except SparkscoreError as e:
        if debug:
            traceback.print_exc()
        print(f"error: {e}", flush=True)
        return 3 if isinstance(e, ErrorThresholdExceeded) else 2
    except Exception as e:  # Spark or the model failed in a way we did not foresee
        if debug:
            traceback.print_exc()
        print(f"error: the job failed: {_first_line(e)}", flush=True)
        return 1
    print(_summary_line(result), flush=True)
    return 0


class _Background:
    """Run one call on a daemon thread (so a process that gives up does not wait for it)."""

    def __init__(self, call: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Any) -> None:
        try:
            self._value = call()
        except BaseException as e:  # handed to the caller of result()
            self._error = e

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def _submitted_master() -> str:
    """The master spark-submit was given (or local[*] when run as plain Python).

    spark-submit hands `--master` to its JVM, not to Python: SparkConf sees it only once Python
    is connected to that JVM, which under spark-submit is already running.
    """
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        SparkContext._ensure_initialized()
    return SparkConf().get("spark.master", None) or "local[*]"


def local_parallelism(master: str) -> int | None:
    """Task slots of a local master (`local`, `local[4]`, `local[*]`, `local[2,3]`), else None."""
    m = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", master.strip())
    if not m:
        return None
    if m.group(1) in (None, ""):
        return 1
    return os.cpu_count() or 1 if m.group(1) == "*" else int(m.group(1))


def task_slots(spark: Spark) -> int:
    """How many tasks run at once: sizes `mini_batch_size: auto`."""
    sc = context_of(spark)
    if sc is not None:
        return sc.defaultParallelism
    configured = spark.conf.get("spark.default.parallelism", None)  # type: ignore[union-attr]
    return int(configured) if configured else os.cpu_count() or 1


def session(master: str | None, settings: Settings, *, remote: str | None = None,
            preload: Sequence[str] = ()) -> Spark:
    """What the job runs on: a Spark Connect session, or the active SparkContext (started here,
    with task retries set, if there is none).

    A classic job needs no SQL session: creating one and planning a first query costs seconds
    of every short job. A context started here runs sparkscore's worker daemon, which imports
    `preload` while the driver still plans (see sparkscore.daemon).
    """
    if remote:
        # The Connect server owns its master and retries; we only attach to it.
        return SparkSession.builder.remote(remote).getOrCreate()
    current = master or _submitted_master()
    if current.startswith("local"):
        # Local Python workers should run the interpreter the driver runs, with its packages.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = (SparkConf().setAppName("sparkscore")
            .setMaster(with_retries(current, settings.max_retries))
            .set("spark.task.maxFailures", str(settings.max_retries + 1))
            .set("spark.ui.showConsoleProgress", "false"))
    fresh = SparkContext._active_spark_context is None
    sc = SparkContext.getOrCreate(daemon.configure(conf, preload) if fresh else conf)
    sc.setLogLevel("ERROR" if settings.logging_level != "debug" else "INFO")
    if fresh:
        # Before the warm-up: workers are pooled by their environment.
        _forward_storage_env(sc)
        daemon.warm_up(sc)
    return sc


def with_retries(master: str, max_retries: int) -> str:
    """Local mode ignores spark.task.maxFailures; `local[N,F]` is how it retries a failed task."""
    m = re.fullmatch(r"local(?:\[(\*|\d+)\])?", master.strip())
    if m:
        return f"local[{m.group(1) or 1},{max_retries + 1}]"
    return master


def _configure_logging(level: str) -> None:
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    logging.basicConfig(stream=sys.stdout, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.setLevel(level.upper())


def _summary_line(result: dict[str, Any]) -> str:
    return (
        f"sparkscore: {result['status']}: {result['files_succeeded']} of {result['files_total']} "
        f"files scored, {result['rows_scored']} rows scored, {result['rows_failed']} rows failed, "
        f"{result['files_skipped']} files skipped, {result['duration_s']}s "
        f"({result['rows_per_s']} rows/s); summary in {result['output']}/_summary.json"
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"
