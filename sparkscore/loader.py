"""Turn a parsed model directory into something that predicts, as mlflow.pyfunc does.

scikit-learn models load here without importing mlflow (pickle, cloudpickle and skops), and
xgboost and lightgbm models in `boosters.py`; any other `loader_module` is imported after
putting the model's `code` on `sys.path`, and its `_load_pyfunc(data_path)` is called, which is
how custom flavors and mlflow's own load.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sparkscore.boosters import library_modules, load_booster, runs_booster_code
from sparkscore.enforcement import enforce
from sparkscore.errors import (
    MissingDependencyError,
    ModelFormatError,
    ModelLoadError,
    one_line,
)
from sparkscore.estimators import deserialize
from sparkscore.model import ModelSpec, read_spec
from sparkscore.modelfiles import is_inside
from sparkscore.requirements import (
    describe_pins,
    distribution_of,
    installed_version,
    read_pins,
)
from sparkscore.signature import Schema

__all__ = [
    "Model",
    "SKLEARN_LOADER",
    "defined_by_model",
    "load_model",
    "load_parsed",
    "runs_model_code",
    "warn_untrusted",
]

SKLEARN_LOADER = "mlflow.sklearn"
SKLEARN_PREDICT_FNS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "predict_joint_log_proba",
    "score",
)
MLFLOW_EXTRA_ADVICE = "Install it with: pip install 'sparkscore[mlflow]'."

log = logging.getLogger("sparkscore")


@dataclass(frozen=True)
class Model:
    """A loaded model: its spec and the function that predicts."""

    spec: ModelSpec
    impl: Any

    @property
    def input_schema(self) -> Schema | None:
        return self.spec.signature.inputs if self.spec.signature else None

    def predict(self, data: Any, params: Mapping[str, Any] | None = None) -> Any:
        """Enforce the signature, then predict: the value `mlflow.pyfunc` would return.

        Examples
        --------
        >>> model = load_model("model_dir")            # doctest: +SKIP
        >>> model.predict(pd.DataFrame({"a": [1.0]}))   # doctest: +SKIP
        array([0.5])
        """
        return self.predict_conformed(enforce(data, self.input_schema), self.params(params))

    def params(self, params: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """Params checked against the signature, defaults filled; once per job, not per batch."""
        return self.spec.params(params)

    def predict_conformed(self, data: Any, params: dict[str, Any] | None) -> Any:
        """Predict on data that already satisfies the signature."""
        schema = self.input_schema
        if schema is not None and schema.is_tensor and schema.has_names and len(schema.specs) == 1:
            # The job and the UDF stack image tensors as arrays; a named tensor reaches the model
            # by name wherever it came from, as mlflow hands it.
            name = schema.specs[0].name
            if not isinstance(data, Mapping) and name is not None:
                data = {name: data}
        fn = getattr(self.impl, self.spec.pyfunc.predict_fn, None)
        if fn is None:
            raise ModelLoadError(
                path=self.spec.path,
                reason=f"the loaded model has no method '{self.spec.pyfunc.predict_fn}' "
                "(flavors.python_function.predict_fn).",
            )
        if _accepts_params(fn):
            return fn(data, params=params)
        return fn(data)


def _accepts_params(fn: Any) -> bool:
    try:
        p = inspect.signature(fn).parameters.get("params")
    except (TypeError, ValueError):
        return False
    return p is not None and p.kind != inspect.Parameter.VAR_KEYWORD


def load_model(path: str | os.PathLike[str], *, trust_model: bool = False) -> Model:
    """Load the MLflow model at `path` (a local directory).

    Loading a pickled model, or one whose loader is Python code, runs code from the model: the
    first such load of a model in this process logs one warning saying so, unless
    `trust_model` is true.

    Examples
    --------
    >>> import sparkscore
    >>> model = sparkscore.load_model("model_dir")   # doctest: +SKIP
    >>> model.predict(df)                              # doctest: +SKIP
    """
    spec = read_spec(path)
    warn_untrusted(spec, trusted=trust_model)
    return load_parsed(spec)


def load_parsed(spec: ModelSpec) -> Model:
    """Load the model that `spec` (MLmodel, parsed already) describes, without a warning: for
    a worker loading what the driver parsed and warned of."""
    return Model(spec=spec, impl=_load_impl(spec))


def runs_model_code(spec: ModelSpec) -> str | None:
    """How loading this model runs code from it, or None when it does not (skops loads only
    the types the model declares trusted)."""
    loader = spec.pyfunc.loader_module
    if spec.sparkml is not None:
        # Spark loads a pipeline's JVM stages from their data; a Python stage is imported by
        # its class name, from the model's code folder when it has one.
        code = spec.pyfunc.code
        return f"its pipeline's Python stages may come from its {code} folder" if code else None
    if loader == SKLEARN_LOADER:
        fmt = spec.sklearn.serialization_format if spec.sklearn else "pickle"
        if fmt == "skops":
            return None
        file = spec.pyfunc.model_path or (spec.sklearn.pickled_model if spec.sklearn else None)
        return f"its estimator{f' {file}' if file else ''} is unpickled with {fmt}"
    if library_modules(spec) is not None:
        return runs_booster_code(spec)
    if defined_by_model(spec, loader):
        where = f"its {spec.pyfunc.code} folder" if spec.pyfunc.code else "the model directory"
        return f"its loader module {loader!r} is Python code from {where}"
    return f"its loader module {loader!r} unpickles or imports the model's files"


def defined_by_model(spec: ModelSpec, module: str) -> bool:
    """Whether importing `module` could run the model's own code: its code folder (put first on
    sys.path when it loads) holds the module's top-level package, or the package found on the
    path now lies inside the model directory."""
    top = module.split(".")[0]
    for code in (spec.pyfunc.code, spec.sklearn.code if spec.sklearn else None):
        if code and any(
            os.path.exists(os.path.join(spec.file(code), name)) for name in (top, f"{top}.py")
        ):
            return True
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    where = found.origin if found and found.has_location else None
    return where is not None and is_inside(where, spec.path)


_WARNED: set[str] = set()


def warn_untrusted(spec: ModelSpec, *, trusted: bool) -> None:
    """One warning line per model and process, on the driver, unless the user trusts it."""
    how = runs_model_code(spec)
    key = os.path.realpath(spec.path)
    if trusted or how is None or key in _WARNED:
        return
    _WARNED.add(key)
    log.warning(
        "loading the model at %s runs code from it (%s); load only models you trust "
        "(trust_model: true says you do, and silences this warning)",
        spec.path,
        how,
    )


def _load_impl(spec: ModelSpec) -> Any:
    if spec.pyfunc.loader_module == SKLEARN_LOADER:
        return _load_sklearn(spec)
    booster = load_booster(spec)
    if booster is not None:
        return _explained(spec, booster)
    return _load_module(spec)


def _explained(spec: ModelSpec, load: Callable[[], Any]) -> Any:
    """Run `load`; a failure names the package behind it (see `_explain_load_failure`)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return load()
        except (ModelLoadError, ModelFormatError):
            raise
        except Exception as e:
            raise _explain_load_failure(spec, e, caught) from None


class _SklearnPredictor:
    """The estimator with its configured predict function, as mlflow's sklearn wrapper has it."""

    def __init__(self, estimator: Any, predict_fn: str) -> None:
        self.estimator = estimator
        setattr(self, predict_fn, getattr(estimator, predict_fn))


def _load_sklearn(spec: ModelSpec) -> Any:
    relative = spec.pyfunc.model_path or (spec.sklearn.pickled_model if spec.sklearn else None)
    if relative is None:
        raise ModelFormatError(
            path=spec.file("MLmodel"),
            field="flavors.python_function.model_path",
            reason="is required for mlflow.sklearn models and names the serialized estimator.",
        )
    file = spec.file(relative)
    if not os.path.isfile(file):
        raise ModelFormatError(
            path=spec.file("MLmodel"),
            field="flavors.python_function.model_path",
            reason=f"names {relative!r}, which does not exist in the model directory.",
        )
    fmt = spec.sklearn.serialization_format if spec.sklearn else "pickle"
    if spec.sklearn and spec.sklearn.code:
        _add_to_path(spec.file(spec.sklearn.code))
    trusted = spec.sklearn.skops_trusted_types if spec.sklearn else None
    field = "flavors.sklearn.serialization_format"
    estimator = _explained(
        spec, lambda: deserialize(file, fmt, path=spec.path, field=field, trusted=trusted)
    )
    predict_fn = spec.pyfunc.predict_fn
    if predict_fn not in SKLEARN_PREDICT_FNS or not hasattr(estimator, predict_fn):
        raise ModelLoadError(
            path=spec.path,
            reason=f"flavors.python_function.predict_fn is {predict_fn!r}, which the "
            f"{type(estimator).__name__} estimator does not offer; use one of "
            f"{', '.join(f for f in SKLEARN_PREDICT_FNS if hasattr(estimator, f))}.",
        )
    return _SklearnPredictor(estimator, predict_fn)


def _load_module(spec: ModelSpec) -> Any:
    conf = spec.pyfunc
    if conf.code:
        _add_to_path(spec.file(conf.code))
    data_path = spec.file(conf.data) if conf.data else spec.path
    if conf.loader_module.startswith("mlflow."):
        # Pointing sparkscore at a model is the user's decision to run it, as with our own
        # sklearn loader; an explicit MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false still wins.
        os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    try:
        module = importlib.import_module(conf.loader_module)
    except ModuleNotFoundError as e:
        raise _missing_module(spec, e) from None
    load = getattr(module, "_load_pyfunc", None) or getattr(module, "load_pyfunc", None)
    if load is None:
        raise ModelLoadError(
            path=spec.path,
            reason=f"the loader module {conf.loader_module!r} has neither _load_pyfunc nor "
            "load_pyfunc.",
        )
    if conf.model_config:
        config = dict(conf.model_config)
        return _explained(spec, lambda: load(data_path, config))
    return _explained(spec, lambda: load(data_path))


def _add_to_path(code_dir: str) -> None:
    """mlflow puts a model's `code` directory first on sys.path before importing its loader."""
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)


def _missing_module(spec: ModelSpec, e: ModuleNotFoundError) -> ModelLoadError:
    module = e.name or str(e)
    dist = distribution_of(module)
    advice = None
    if module.split(".")[0] == "mlflow":
        dist = "mlflow-skinny"
        advice = (
            f"The model's loader_module {spec.pyfunc.loader_module!r} comes from mlflow. "
            + MLFLOW_EXTRA_ADVICE
        )
    pins = read_pins(spec)
    return MissingDependencyError(
        path=spec.path,
        package=dist,
        pinned=describe_pins(dist, pins) or (describe_pins("mlflow", pins) if advice else None),
        installed=installed_version(dist),
        python_version=spec.pyfunc.python_version,
        detail=f"No module named {module!r}",
        advice=advice,
    )


def _explain_load_failure(
    spec: ModelSpec, e: BaseException, caught: list[warnings.WarningMessage]
) -> ModelLoadError:
    """Name the package behind a failed unpickle instead of surfacing pickle's internals."""
    if isinstance(e, ModuleNotFoundError):
        return _missing_module(spec, e)
    detail = f"{type(e).__name__}: {one_line(e)}"
    saved = spec.sklearn.sklearn_version if spec.sklearn else None
    installed = installed_version("scikit-learn")
    version_warned = any(type(w.message).__name__ == "InconsistentVersionWarning" for w in caught)
    if (saved and saved != installed) or version_warned:
        pins = read_pins(spec)
        pinned = describe_pins("scikit-learn", pins) or (
            f"scikit-learn=={saved}" if saved else None
        )
        return MissingDependencyError(
            path=spec.path,
            package="scikit-learn",
            pinned=pinned,
            installed=installed,
            python_version=spec.pyfunc.python_version,
            detail=f"the model was written by scikit-learn {saved or 'of another version'}; "
            f"loading it failed with {detail}",
        )
    return ModelLoadError(path=spec.path, reason=f"the loader raised {detail}")
