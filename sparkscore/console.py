"""A command-line run, from parsed arguments to its last line and exit status.

sparkscore.cli parses the arguments (once) and imports this module lazily, since it imports
pyspark; here the session starts while the driver plans, signals stop Spark in order, and
however the run ends, one line says how, after Spark has stopped:

    sparkscore: succeeded: 4 of 4 files scored, 22 rows scored, 0 rows failed, ...
    error: <what was refused or failed>                  (exit 2, 3 or 1)
    error: interrupted by SIGINT; Spark was stopped. ...  (exit 128 + the signal)
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyspark
from pyspark import SparkConf

from sparkscore import azureconfig, daemon
from sparkscore.errors import DriftError, ErrorThresholdExceeded, SparkscoreError
from sparkscore.job import execute, nothing_new
from sparkscore.ledger import pending
from sparkscore.preflight import preflight
from sparkscore.preparation import Job, prepare
from sparkscore.session import (
    JobSession,
    local_parallelism,
    session,
    sized,
    submitted_master,
    task_slots,
)
from sparkscore.settings import Settings
from sparkscore.sparkerrors import failure_line
from sparkscore.storage import redact

__all__ = ["Command", "nothing_new_line", "run", "summary_line"]

log = logging.getLogger("sparkscore")


@dataclass(frozen=True, kw_only=True)
class Command:
    """What the command line asked for."""

    model: str
    input: str
    output: str
    config: str | None = None
    overrides: tuple[str, ...] = ()
    remote: str | None = None  # a Spark Connect URL
    dry_run: bool = False  # plan and check each file; score nothing
    master: str | None = None  # None: the one spark-submit was given (else local[*])
    submitted: bool = False  # under spark-submit, whose master is chosen already


def run(command: Command) -> int:
    """Run the job as the command asks; the exit status says whether it succeeded.

    However the run ends (done, refused, a task failed, Ctrl-C, SIGTERM), Spark is stopped
    before the last line is printed, so that this line is the last thing the run prints.
    """
    spark = JobSession()
    state = _State()
    interrupted = 0  # the signal that stopped the run, if one did
    with _Signals(on_signal=spark.halt) as signals:
        try:
            try:
                line, status = _run(command, spark, state)
            finally:
                signals.disarm()
        except BaseException as e:
            if state.debug:
                traceback.print_exception(e)
            interrupted = signals.raised or (
                signal.SIGINT if isinstance(e, KeyboardInterrupt) else 0
            )
            if not interrupted:
                if not isinstance(e, Exception):
                    spark.stop()
                    raise
                # Before Spark stops: a Py4J error asks the JVM for its text.
                line, status = _error_line(e)
        spark.stop()
        if interrupted:
            line, status = (
                _interrupted_line(
                    signal.Signals(interrupted),
                    command.output,
                    dry_run=command.dry_run,
                    staged=_staged(state.job),
                ),
                128 + interrupted,
            )
        print(redact(line), flush=True)
        return status


@dataclass
class _State:
    """What a run had reached when it stopped: what its last line needs to know."""

    debug: bool = False
    job: Job | None = None


def _run(command: Command, spark: JobSession, state: _State) -> tuple[str, int]:
    """The run itself: its last line and exit status when it ends without an exception."""
    settings = Settings.load(command.config, command.overrides)
    state.debug = settings.logging_level == "debug"
    spark.quiet = not state.debug
    _configure_logging(settings.logging_level)
    sizing = sized(
        azureconfig.instances(command.config),
        master=submitted_master() if command.submitted else command.master,
        remote=command.remote is not None,
        given=lambda key: SparkConf().get(key, None),
    )
    for level, line in [*azureconfig.notes(command.config), *filter(None, [sizing.line])]:
        log.log(level, line)
    master = sizing.master or command.master
    slots = None if command.remote else local_parallelism(master or submitted_master())
    if command.dry_run:
        report, ok = preflight(
            command.model, command.input, settings, parallelism=slots or os.cpu_count() or 1
        )
        return report, 0 if ok else 2
    if settings.incremental and not pending(command.input, command.output, settings):
        # Nothing new by the ledger: the model is still checked against it, with no session.
        state.job = prepare(
            command.model, command.input, command.output, settings, parallelism=slots or 1
        )
        if state.job.nothing_new:
            return nothing_new_line(nothing_new(state.job, pyspark.__version__)), 0
        # A file arrived since the ledger was read: this job scores it, as planned.
    preload = daemon.preload_modules(command.model, settings.env_manager)
    # The session starts while the driver plans and loads the model: both take seconds, and
    # neither needs the other. On a cluster, the plan needs its slots.
    spark.start(
        functools.partial(
            session,
            master,
            settings,
            remote=command.remote,
            preload=preload,
            executors=sizing.executors,
        )
    )
    if state.job is None:
        state.job = prepare(
            command.model,
            command.input,
            command.output,
            settings,
            parallelism=slots or task_slots(spark.result()),
        )
    return summary_line(execute(spark.result(), state.job)), 0


def _error_line(e: Exception) -> tuple[str, int]:
    """The last line and exit status of a run that failed."""
    if isinstance(e, SparkscoreError):
        # 3: the run failed after writing its output; 2: it was refused
        failed_after = isinstance(e, (ErrorThresholdExceeded, DriftError))
        return f"error: {e}", 3 if failed_after else 2
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
    if job is None or job.layout is job.final or job.layout.run:
        return False
    fs = job.layout.filesystem()
    return bool(fs.get_file_info(job.layout.root).type == pa.fs.FileType.Directory)


def _interrupted_line(sig: signal.Signals, output: str, *, dry_run: bool, staged: bool) -> str:
    if dry_run:
        return f"error: interrupted by {sig.name}; nothing was scored."
    stopped = f"error: interrupted by {sig.name}; Spark was stopped"
    if staged:
        return (
            f"{stopped} and {output} is unchanged. The mini-batches this overwrite run "
            "committed beside it are kept: run the same command again with --set "
            "resume=true to finish it (its output then replaces the old one), or without "
            "resume to start over."
        )
    return (
        f"{stopped}. The mini-batches already committed to {output} are kept: run the same "
        "command again with --set resume=true to score the rest."
    )


def _configure_logging(level: str) -> None:
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    handler = _StdoutHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    if level != "debug":
        handler.addFilter(_not_from_py4j)
    logging.basicConfig(handlers=[handler])
    log.setLevel(level.upper())


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to sys.stdout as it is at each line: while the live progress bar shows, rich has
    it print above the bar rather than through it."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        """StreamHandler sets its stream once; this one has none of its own."""


def _not_from_py4j(record: logging.LogRecord) -> bool:
    """Py4J logs a traceback when a call is interrupted or its JVM has gone; the job reports
    what happened in its own last line."""
    return os.path.basename(os.path.dirname(record.pathname)) != "py4j"


def summary_line(result: dict[str, Any]) -> str:
    """The last line of a run that ended: what `_summary.json` says, in one line."""
    unknown = result.get("files_rows_unknown") or 0
    records = result["output"]
    rows = ""
    table = result.get("table")
    if table:
        records = f"{result['output']}/_sparkscore/{result['job_id']}"
        rows = (
            f"; rows in the {table['format']} tables {table['predictions']['uri']} (version "
            f"{table['predictions']['version']}) and {table['errors']['uri']}"
        )
    incremental = result.get("incremental")
    unchanged = f", {incremental['files_unchanged']} unchanged" if incremental else ""
    counted = f"{result['rows_scored']} rows scored, {result['rows_failed']} rows failed"
    reported = result.get("settings", {}).get("report", True)  # a record of an older version
    rate = f"{result['rows_per_s']} rows/s"
    if "items_succeeded" in result:  # a scoring script: Azure counts the elements run returned
        items, duration = result["items_succeeded"], result["duration_s"]
        counted = f"{items} items returned by run"
        rate = f"{round(items / duration, 1) if duration > 0 else None} items/s"
    return (
        f"sparkscore: {result['status']}: {result['files_succeeded']} of {result['files_total']} "
        f"files scored, {counted}"
        f"{f' (and {unknown} failed files whose rows could not be counted)' if unknown else ''}, "
        f"{result['files_skipped']} files skipped{unchanged}, {result['duration_s']}s "
        f"({rate}); summary in {records}/_summary.json"
        f"{f', report in {records}/report.html' if reported else ''}{rows}"
    )


def nothing_new_line(result: dict[str, Any]) -> str:
    """The last line of an incremental run that found every file unchanged."""
    unchanged = result["incremental"]["files_unchanged"]
    return (
        f"sparkscore: nothing new: the {unchanged} files of {result['input']['uri']} are "
        f"unchanged since they were scored into {result['output']}; no Spark task ran."
    )
