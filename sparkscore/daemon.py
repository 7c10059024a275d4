"""PySpark's Python worker daemon, with the job's libraries imported before it forks workers.

Each Python worker imports sparkscore, pandas, pyarrow and the model's libraries before its first
mini-batch: about 4 s for a scikit-learn model saved with skops (scikit-learn imports scipy.stats;
skops imports every estimator module), on every worker, after the first task has started.

A session that sparkscore starts itself (spark-submit, the CLI) runs this module as PySpark's
daemon (`spark.python.daemon.module`): it imports the modules named in SPARKSCORE_PRELOAD once,
then forks every worker from there, as `multiprocessing` forks after a program's imports. `warm_up`
starts it by a small job as soon as the SparkContext exists, so the imports overlap the driver's
own work (loading the model to check it, planning, shipping it).
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from pyspark import SparkConf, SparkContext

__all__ = ["configure", "main", "preload", "preload_modules", "warm_up"]

log = logging.getLogger("sparkscore")

PRELOAD_ENV = "SPARKSCORE_PRELOAD"
DAEMON_MODULE = "sparkscore.daemon"
# What every scoring task imports: the task function's module and, through it, pandas and pyarrow.
BASE_MODULES = ("sparkscore.tasks",)


def preload_modules(model_uri: str, env_manager: str) -> tuple[str, ...]:
    """The modules a worker will import to load this model, from its MLmodel file alone.

    A model scored in its own environment runs in a child process: the worker itself imports
    only sparkscore. A model that is not a local directory (a registry URI) is looked at later.
    Only libraries installed for the job are named, never a module the model brings itself
    (its code folder): the daemon imports them before the driver has even warned that loading
    the model runs its code, and `sparkscore plan` starts no daemon at all.
    """
    # Imported here, not at the top: the daemon imports this module before it forks, and must
    # start without sparkscore's dependencies when there is nothing to preload.
    from sparkscore.boosters import library_modules
    from sparkscore.errors import SparkscoreError
    from sparkscore.loader import SKLEARN_LOADER, defined_by_model
    from sparkscore.model import read_spec

    if env_manager != "local" or not os.path.isdir(model_uri):
        return BASE_MODULES
    try:
        spec = read_spec(model_uri)
    except (SparkscoreError, OSError):
        return BASE_MODULES  # prepare() reports it, by name
    loader = spec.pyfunc.loader_module
    if loader == SKLEARN_LOADER:
        if defined_by_model(spec, "sklearn") or defined_by_model(spec, "skops"):
            return BASE_MODULES
        skops = spec.sklearn is not None and spec.sklearn.serialization_format == "skops"
        return (*BASE_MODULES, "sklearn", *(("skops.io",) if skops else ()))
    libraries = library_modules(spec)
    if libraries is not None:
        if any(defined_by_model(spec, m) for m in libraries):
            return BASE_MODULES
        return (*BASE_MODULES, *libraries)
    if not loader.startswith("mlflow.") or defined_by_model(spec, loader):
        return BASE_MODULES
    return (*BASE_MODULES, loader)


def configure(conf: SparkConf, modules: Sequence[str]) -> SparkConf:
    """Run this daemon, preloading `modules`, in the session `conf` starts (unless the user chose
    another daemon module)."""
    if conf.get("spark.python.daemon.module", None) or not modules:
        return conf
    conf.set("spark.python.daemon.module", DAEMON_MODULE)
    return conf.set(f"spark.executorEnv.{PRELOAD_ENV}", ",".join(modules))


def warm_up(sc: SparkContext) -> threading.Thread | None:
    """Start the workers' daemon now, in the background, with a one-task-per-slot job.

    Workers are pooled by their environment: `sc.environment` must be final by now, so that the
    scoring tasks' RDD job finds this daemon and its idle workers.
    """
    if sc.getConf().get("spark.python.daemon.module", None) != DAEMON_MODULE:
        return None
    slots = max(1, sc.defaultParallelism)
    thread = threading.Thread(
        target=_warm, args=(sc, slots), name="sparkscore-warm-up", daemon=True
    )
    thread.start()
    return thread


def _warm(sc: SparkContext, slots: int) -> None:
    try:
        sc.parallelize(range(slots), slots).foreachPartition(_started)
    except Exception as e:  # only time is lost: the job's own tasks start workers themselves
        log.debug("warming up the Python workers failed: %s", e)


def _started(_rows: Iterable[Any]) -> None:
    """A task that needs nothing but a worker (top level, so workers import it by name)."""


def preload(names: Iterable[str]) -> None:
    """Import `names`, each failure left for the task that needs the module to report.

    The daemon hands the JVM its port on stdout, so anything an import prints goes to stderr.
    """
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception as e:  # the task imports it again and fails with the real error
                print(f"sparkscore: could not preload {name}: {e}", file=sys.stderr)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main() -> None:
    preload(filter(None, os.environ.get(PRELOAD_ENV, "").split(",")))
    # Every worker is forked from here: frozen, the preloaded modules' objects stay out of each
    # worker's garbage collections (and their pages are not copied by the collector touching them).
    gc.freeze()
    from pyspark.daemon import manager

    manager()


if __name__ == "__main__":
    main()
