"""Each Python worker's thread budget: the cores its task was given, not every core it sees.

Spark runs one Python worker per task slot and gives each task `spark.task.cpus` cores, but
OpenMP (lightgbm, xgboost), BLAS (numpy, scikit-learn's linear models) and the flavors' own
`n_jobs`/`nthread` start one thread per core of the machine: two workers on two cores ran four
threads, and on a 32-core executor 32 workers would run 1,024, each slowing the others. A worker
therefore limits, once per model it loads, the thread pools of the native libraries loaded in
it (through threadpoolctl, which knows OpenMP's and each BLAS's own calls) and the thread
settings of the models it holds: scikit-learn's `n_jobs` (also inside a Pipeline, and the
xgboost and lightgbm estimators'), an xgboost Booster's `nthread`.
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["ThreadBudget", "apply_budget", "budget_for", "pool_threads"]

ThreadBudget = int | None  # threads per worker; None leaves the libraries' own defaults


def budget_for(setting: int | Literal["auto", "off"], task_cpus: int) -> ThreadBudget:
    """The `threads` setting made a number: `auto` is the cores Spark gives each task."""
    if setting == "off":
        return None
    return max(1, task_cpus) if setting == "auto" else setting


def apply_budget(impl: Any, threads: int) -> None:
    """Hold this process's native thread pools and `impl`'s own thread settings to `threads`.

    Called after the model loaded, so that the OpenMP runtime its library brought is among the
    pools limited; the limit lasts for the life of the worker.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    for model in _models_in(impl):
        _limit_model(model, threads)


def pool_threads() -> int | None:
    """The most threads any native pool of this process may start (None: no pool loaded)."""
    from threadpoolctl import threadpool_info

    counts = [int(pool["num_threads"]) for pool in threadpool_info()]
    return max(counts) if counts else None


def _models_in(impl: Any) -> list[Any]:
    """The model objects a loaded impl wraps: sparkscore's predictors keep theirs in `model` or
    `estimator`; anything else is the model itself."""
    inner = [getattr(impl, name) for name in ("model", "estimator") if hasattr(impl, name)]
    return inner or [impl]


def _limit_model(model: Any, threads: int) -> None:
    """A model's own thread setting; a lightgbm Booster has none past OpenMP's limit."""
    if type(model).__module__.startswith("xgboost") and hasattr(model, "set_param"):
        model.set_param({"nthread": threads})  # an xgboost Booster
        return
    get_params = getattr(model, "get_params", None)
    if callable(get_params):  # scikit-learn's API, also xgboost's and lightgbm's estimators
        knobs = {k: threads for k in get_params(deep=True) if k.rsplit("__", 1)[-1] == "n_jobs"}
        if knobs:
            model.set_params(**knobs)
