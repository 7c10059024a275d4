"""The state a Python worker keeps between its tasks: the one place it lives.

A Spark task is short, a worker process lives for many (spark.python.worker.reuse), and loading
a model costs seconds: each worker loads the model once and keeps it. `WORKER`, the only
instance, holds all of it: the models loaded in this process, the models served by a child
process in their own environment (sparkscore.modelprocess), the scoring scripts imported here
(each one's `init()` called once: it loads the model), how many times each model was loaded
(or each script's init called) here, which each mini-batch's manifest reports
(`model_loads`), and the thread budget each model was held to (sparkscore.threads). No other
module of sparkscore keeps state for a worker; the driver uses none of this.

A fresh load also freezes what the worker holds then (its modules, the model) out of Python's
cyclic garbage collector. PySpark's daemon runs a full `gc.collect()` in a reused worker after
every task, and the worker's next task waits for it: with pandas, pyarrow and scikit-learn
loaded that took about 110 ms a task, 15 ms frozen. Frozen objects are still freed when their
last reference goes; only a reference cycle among them would stay, and these live as long as
the worker. Freezing once per load, not per task, leaves a task's own garbage collectable.
"""

from __future__ import annotations

import atexit
import gc
import os
import threading
from collections.abc import Callable
from types import ModuleType

from sparkscore.loader import Model, load_model, load_parsed
from sparkscore.model import ModelSpec, read_spec
from sparkscore.modelprocess import ModelProcess, RemoteImpl
from sparkscore.script import import_script
from sparkscore.threads import apply_budget, pool_threads

__all__ = ["WORKER", "WorkerState"]


class WorkerState:
    """The models this process loaded, in it or in their environment's process, and the count
    of loads per model key (its sha256)."""

    def __init__(self) -> None:
        self.loads: dict[str, int] = {}
        self._models: dict[str, Model] = {}
        self._served: dict[tuple[str, str], Model] = {}
        self._budgets: dict[str, int] = {}  # model key -> the thread budget applied to it
        self._scripts: dict[str, ModuleType] = {}
        self._lock = threading.Lock()

    def load_cached(
        self, path: str, key: str | None = None, spec: ModelSpec | None = None
    ) -> Model:
        """The model at `path`, loaded at most once per process (per `key`, e.g. its sha256).

        This is how workers load the model the driver shipped: the driver already warned, and,
        given the `spec` it parsed, the worker does not parse MLmodel again.
        """
        key = key or os.path.realpath(path)
        model = self._models.get(key)
        if model is not None:
            return model
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = load_model(path, trust_model=True) if spec is None else load_parsed(spec)
                self._models[key] = model
                self._loaded(key)
        return model

    def load_isolated(
        self, model_path: str, site_packages: str, key: str, spec: ModelSpec | None = None
    ) -> Model:
        """The model served by a child process in its environment, started once per process.

        `key` identifies the model (its sha256) in the load count. A child that died (or was
        stopped by a timeout) is replaced on the next call, which counts as another load.
        """
        with self._lock:
            model = self._served.get((key, site_packages))
            if (
                model is not None
                and isinstance(model.impl, RemoteImpl)
                and model.impl.process.alive
            ):
                return model
            spec = spec or read_spec(model_path)
            process = ModelProcess(model_path, site_packages)
            if not self._served:  # registered after the process's runtime folder: runs first
                atexit.register(self._close_processes)
            model = Model(spec=spec, impl=RemoteImpl(process, spec.pyfunc.predict_fn))
            self._served[(key, site_packages)] = model
            self._loaded(key)
        return model

    def hold_threads(self, model: Model, key: str, threads: int | None) -> int | None:
        """Hold this process and `model` to `threads` native threads (sparkscore.threads), once
        per model and budget; the most threads a native pool here may now start."""
        if threads is not None and self._budgets.get(key) != threads:
            apply_budget(model.impl, threads)
            self._budgets[key] = threads
        return pool_threads()

    def load_script(
        self, key: str, path: str, folder: str, prepare: Callable[[], object]
    ) -> ModuleType:
        """The scoring script at `path` (its code `folder` on sys.path), imported and its init()
        called once per process and `key`; `prepare` runs first (Azure's environment variables).

        An init() that raises leaves nothing kept: the next task imports and calls it again.
        """
        module = self._scripts.get(key)
        if module is not None:
            return module
        with self._lock:
            module = self._scripts.get(key)
            if module is None:
                prepare()
                module = import_script(path, folder, keep=True)
                module.init()
                self._scripts[key] = module
                self._loaded(key)
        return module

    def _loaded(self, key: str) -> None:
        self.loads[key] = self.loads.get(key, 0) + 1
        gc.freeze()

    def _close_processes(self) -> None:
        """At exit: close each model's process (it exits when its stdin closes)."""
        for model in list(self._served.values()):
            if isinstance(model.impl, RemoteImpl):
                model.impl.process.close()


WORKER = WorkerState()
