"""The Spark edge of a run: starting and stopping the session, and its task slots.

A classic job needs only a SparkContext; a console run starts it on a thread while the driver
plans, and stops it (and the JVM it launched) before the last line is printed. Spark's own
INFO and WARN lines are off unless `logging_level: debug`: a JVM launched here reads
log4j2-quiet.properties from its first line, and every session logs errors only. An Azure
deployment's size (`resources.instance_count` x `max_concurrency_per_instance`) becomes the task
slots of a session started here (`sized`). What a failed Spark job says is read in
sparkscore.failures.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pyspark import SparkConf, SparkContext
from pyspark.java_gateway import launch_gateway
from pyspark.sql import SparkSession

from sparkscore import daemon
from sparkscore.azureconfig import Instances
from sparkscore.settings import Settings
from sparkscore.shipping import (
    Spark,
    context_of,
)

__all__ = [
    "JobSession",
    "Sizing",
    "forward_storage_env",
    "ignored",
    "local_parallelism",
    "quiet",
    "session",
    "sized",
    "submitted_master",
    "task_cpus",
    "task_slots",
    "task_attempts",
    "with_retries",
]

log = logging.getLogger("sparkscore")

# errors only, for a JVM this module launches (see quiet)
QUIET_LOG4J = os.path.join(os.path.dirname(os.path.abspath(__file__)), "log4j2-quiet.properties")


_STORAGE_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)


def forward_storage_env(sc: SparkContext) -> None:
    """Where the driver reads storage with these (a local S3 endpoint, credentials), its tasks
    must too."""
    for key in _STORAGE_ENV:
        if key in os.environ:
            sc.environment.setdefault(key, os.environ[key])


# How long stopping waits: for the JVM to finish starting, and then to exit.
_STOP_SECONDS = 120.0


# How long a signal waits for Spark to cancel its jobs.
_HALT_SECONDS = 10.0


class _Abandoned(Exception):
    """The job gave up while its session was starting."""


class JobSession:
    """The job's Spark session: started on a daemon thread while the driver plans, and stopped
    (with the JVM this process launched) before the job's last line is printed."""

    def __init__(self) -> None:
        self.quiet = True  # silence Spark while it stops (not when debugging)
        self._abandoned = threading.Event()
        self._thread: threading.Thread | None = None
        self._value: Spark | None = None
        self._error: BaseException | None = None

    def start(self, start: Callable[..., Spark]) -> None:
        """Run `start(abandoned=event)` on a daemon thread."""
        self._thread = threading.Thread(
            target=self._run, args=(start,), name="sparkscore-session", daemon=True
        )
        self._thread.start()

    def _run(self, start: Callable[..., Spark]) -> None:
        try:
            self._value = start(abandoned=self._abandoned)
        except BaseException as e:  # handed to the caller of result()
            self._error = e

    def result(self) -> Spark:
        assert self._thread is not None, "start() first"
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value

    def halt(self) -> None:
        """Silence Spark and cancel its jobs now, before an interrupted action's tasks are
        killed and logged; from a thread of its own, as the main thread may be inside a Py4J
        call, whose connection is not to be used meanwhile."""
        if self._value is not None:
            helper = threading.Thread(
                target=_halt,
                args=(self._value,),
                kwargs={"quiet": self.quiet},
                name="sparkscore-halt",
                daemon=True,
            )
            helper.start()
            helper.join(_HALT_SECONDS)

    def stop(self) -> None:
        """Stop Spark, so that nothing it prints comes after the job's last line.

        A JVM still starting prints as it starts, and a SparkContext abandoned half-way prints
        a stack trace: wait until the JVM is up (the start ends there, with no SparkContext, once
        this is called) and stop what there is.
        """
        if self._thread is None:
            return
        self._abandoned.set()
        self._thread.join(_STOP_SECONDS)
        if self._value is not None:
            _stop_spark(self._value, quiet=self.quiet)
        _end_launched_jvm()


def _halt(spark: Spark, *, quiet: bool) -> None:
    """Silence Spark (what it logs while its tasks are killed is no news to the user) and
    cancel its jobs (on Spark Connect, this session's operations)."""
    sc = context_of(spark)
    try:
        if sc is None:
            spark.interruptAll()  # type: ignore[union-attr]
            return
        if quiet:
            sc.setLogLevel("OFF")
        sc.cancelAllJobs()
    except Exception as e:  # Spark is gone already: nothing is left to cancel
        log.debug("cancelling spark jobs: %s", e)


def _stop_spark(spark: Spark, *, quiet: bool) -> None:
    """Cancel what runs and stop the context (or leave the Connect session)."""
    _halt(spark, quiet=quiet)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyspark's, when its JVM is already gone
            spark.stop()
    except Exception as e:  # Spark is gone already: nothing is left to stop
        log.debug("stopping spark: %s", e)


def _end_launched_jvm() -> None:
    """End the JVM this process launched, and wait until it has. (Under spark-submit the JVM is
    this process's parent, and ends once the driver has.)"""
    gateway = SparkContext._gateway
    if gateway is None:
        return
    # launch_gateway's Popen, or None when it attached to a running JVM (`getattr` would ask
    # the JVM for an attribute called proc).
    proc = gateway.__dict__.get("proc")
    if proc is None:
        return
    with SparkContext._lock:
        SparkContext._gateway = SparkContext._jvm = None
    with contextlib.suppress(Exception):
        gateway.shutdown()
    with contextlib.suppress(OSError):
        proc.stdin.close()  # PythonGatewayServer exits at the end of its stdin
    try:
        proc.wait(_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own process group: see _launch_jvm
        proc.wait()


def submitted_master() -> str:
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


@dataclass(frozen=True)
class Sizing:
    """An Azure deployment's size, made Spark's: the master to start (None: the one given),
    executor settings to start it with, and the line that says what was done, or why not."""

    master: str | None = None
    executors: Mapping[str, str] = field(default_factory=dict)
    line: tuple[int, str] | None = None


def sized(
    instances: Instances | None,
    *,
    master: str | None,
    remote: bool = False,
    given: Callable[[str], str | None] = lambda key: None,
) -> Sizing:
    """The task slots Azure's size asks for, where sparkscore starts the session: with no
    master chosen, `local[instance_count x max_concurrency_per_instance]`; on a cluster master,
    that many executors of that many cores (`spark.cores.max` on a standalone master, which
    has no executor count), unless the session's own settings (`given`) set them. A master
    chosen as local[N], or a Spark Connect server, keeps its own slots: a warning says so.
    """
    if instances is None:
        return Sizing()
    what = _what(instances)
    if remote:
        return _unsized(instances, "the Spark Connect server has its own executors")
    if master is None:
        local = f"local[{instances.slots}]"
        return Sizing(
            master=local,
            line=(logging.INFO, f"{instances.source}: {what}: {local} (--master overrides it)"),
        )
    if local_parallelism(master) is not None:
        return _unsized(instances, f"the master {master} you chose decides the task slots")
    executors = {"spark.executor.cores": str(instances.concurrency)}
    if master.startswith("spark://"):
        executors["spark.cores.max"] = str(instances.slots)
    else:
        executors["spark.executor.instances"] = str(instances.count)
    taken = [f"{key}={given(key)}" for key in executors if given(key) is not None]
    if taken:
        return _unsized(instances, f"the session's own {', '.join(taken)} decide")
    chosen = ", ".join(f"{key}={value}" for key, value in executors.items())
    return Sizing(
        executors=executors,
        line=(logging.INFO, f"{instances.source}: {what}: {chosen} on {master}"),
    )


def ignored(instances: Instances, why: str) -> str:
    """The warning that Azure's size is left to the session, and why."""
    return f"{instances.source}: ignored {_what(instances)}: {why}"


def _unsized(instances: Instances, why: str) -> Sizing:
    return Sizing(line=(logging.WARNING, ignored(instances, why)))


def _what(instances: Instances) -> str:
    return (
        f"resources.instance_count {instances.count} x max_concurrency_per_instance "
        f"{instances.concurrency}"
    )


def task_slots(spark: Spark) -> int:
    """How many tasks run at once: sizes `mini_batch_size: auto`."""
    sc = context_of(spark)
    if sc is not None:
        return sc.defaultParallelism
    configured = spark.conf.get("spark.default.parallelism", None)  # type: ignore[union-attr]
    return int(configured) if configured else os.cpu_count() or 1


def task_cpus(spark: Spark) -> int:
    """The cores Spark gives each task (`spark.task.cpus`): a worker's thread budget."""
    sc = context_of(spark)
    if sc is not None:
        configured = sc.getConf().get("spark.task.cpus", None)
    else:
        configured = spark.conf.get("spark.task.cpus", None)  # type: ignore[union-attr]
    return int(configured) if configured else 1


def session(
    master: str | None,
    settings: Settings,
    *,
    remote: str | None = None,
    preload: Sequence[str] = (),
    abandoned: threading.Event | None = None,
    executors: Mapping[str, str] | None = None,
) -> Spark:
    """What the job runs on: a Spark Connect session, or the active SparkContext (started here,
    with task retries set, if there is none).

    A classic job needs no SQL session: creating one and planning a first query costs seconds
    of every short job. A context started here runs sparkscore's worker daemon, which imports
    `preload` while the driver still plans (see sparkscore.daemon). When `abandoned` is set
    by the time the JVM is up, the context is not started: _Abandoned is raised. `executors`
    (a deployment's size, `sized`) are set on a context started here.
    """
    if remote:
        # The Connect server owns its master and retries; we only attach to it.
        return SparkSession.builder.remote(remote).getOrCreate()
    current = master or submitted_master()
    if current.startswith("local"):
        # Local Python workers should run the interpreter the driver runs, with its packages.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = (
        SparkConf()
        .setAppName("sparkscore")
        .setMaster(with_retries(current, settings.max_retries))
        .set("spark.task.maxFailures", str(settings.max_retries + 1))
        .set("spark.ui.showConsoleProgress", "false")
    )
    fresh = SparkContext._active_spark_context is None
    if fresh:
        conf = daemon.configure(conf, preload).setAll(list((executors or {}).items()))
        if settings.logging_level != "debug" and SparkContext._gateway is None:
            conf = quiet(conf)
        _launch_jvm(conf)
        if abandoned is not None and abandoned.is_set():
            raise _Abandoned()
    sc = SparkContext.getOrCreate(conf)
    sc.setLogLevel("ERROR" if settings.logging_level != "debug" else "INFO")
    if fresh:
        # Before the warm-up: workers are pooled by their environment.
        forward_storage_env(sc)
        daemon.warm_up(sc)
    return sc


def quiet(conf: SparkConf) -> SparkConf:
    """Spark's INFO and WARN lines off from the JVM's first line: the JVM we launch reads our
    log4j2 file (a JVM spark-submit started before us has logged already; only setLogLevel
    reaches it)."""
    option = f"-Dlog4j2.configurationFile=file:{QUIET_LOG4J}"
    given = conf.get("spark.driver.extraJavaOptions", None)
    return conf.set("spark.driver.extraJavaOptions", f"{given} {option}" if given else option)


def _launch_jvm(conf: SparkConf) -> None:
    """Start the JVM as pyspark does, but in its own process group, unless one runs already
    (spark-submit's, or an earlier session's).

    A signal to the job's process group (Ctrl-C, `kill -TERM -PGID`, a container stopping) then
    reaches the driver alone, which stops Spark in order; the JVM still exits when the driver
    dies (at the end of its stdin).
    """
    with SparkContext._lock:
        if SparkContext._gateway is None:
            SparkContext._gateway = launch_gateway(  # type: ignore[no-untyped-call]
                conf, popen_kwargs={"start_new_session": True}
            )
            SparkContext._jvm = SparkContext._gateway.jvm


def task_attempts(sc: SparkContext | None, default: int) -> int:
    """How many attempts Spark gives a failed task in this session (`default` on Spark Connect,
    whose server decides): local mode's `local[N,F]` (1 without F), else spark.task.maxFailures."""
    if sc is None:
        return default
    m = re.fullmatch(r"local(?:\[(?:\*|\d+)(?:,(\d+))?\])?", (sc.master or "").strip())
    if m:
        return int(m.group(1) or 1)
    return int(sc.getConf().get("spark.task.maxFailures", "4") or 4)


def with_retries(master: str, max_retries: int) -> str:
    """Local mode ignores spark.task.maxFailures; `local[N,F]` is how it retries a failed task."""
    m = re.fullmatch(r"local(?:\[(\*|\d+)\])?", master.strip())
    if m:
        return f"local[{m.group(1) or 1},{max_retries + 1}]"
    return master
