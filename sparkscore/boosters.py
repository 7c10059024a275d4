"""xgboost and lightgbm models loaded by their own library, without importing mlflow.

Importing mlflow costs each Python worker 1 to 3.5 s before its first prediction
(bench/flavors.py). These flavors' files are read here as mlflow's loaders read them, and
`predict` makes the calls mlflow's pyfunc wrappers make, so the predictions are the same to the
last bit. A model class other than xgboost's and lightgbm's own is left to mlflow's loader.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from sparkscore.errors import ModelFormatError
from sparkscore.estimators import deserialize
from sparkscore.model import ModelSpec
from sparkscore.modelfiles import is_inside

__all__ = ["BOOSTER_LOADERS", "load_booster", "library_modules", "runs_booster_code"]

XGBOOST_LOADER, LIGHTGBM_LOADER = "mlflow.xgboost", "mlflow.lightgbm"
BOOSTER_LOADERS = {XGBOOST_LOADER: "xgboost", LIGHTGBM_LOADER: "lightgbm"}
# The classes mlflow saves each flavor as (its model_class field), with mlflow's default.
XGBOOST_CLASSES = {
    "xgboost.core.Booster": "Booster",
    **{f"xgboost.sklearn.{c}": c for c in ("XGBModel", "XGBClassifier", "XGBRegressor")},
    **{f"xgboost.sklearn.{c}": c for c in ("XGBRanker", "XGBRFClassifier", "XGBRFRegressor")},
}
LIGHTGBM_BOOSTER = "lightgbm.basic.Booster"
LIGHTGBM_SKLEARN = ("LGBMModel", "LGBMClassifier", "LGBMRegressor", "LGBMRanker")
LIGHTGBM_CLASSES = {LIGHTGBM_BOOSTER, *(f"lightgbm.sklearn.{c}" for c in LIGHTGBM_SKLEARN)}
DEFAULT_CLASS = {"xgboost": "xgboost.core.Booster", "lightgbm": LIGHTGBM_BOOSTER}


def _flavor(spec: ModelSpec) -> tuple[str, Mapping[str, Any]] | None:
    """The flavor's name and configuration, when this module loads the model."""
    name = BOOSTER_LOADERS.get(spec.pyfunc.loader_module)
    conf = spec.flavors.get(name) if name else None
    if name is None or not isinstance(conf, Mapping) or not isinstance(conf.get("data"), str):
        return None
    known = XGBOOST_CLASSES if name == "xgboost" else LIGHTGBM_CLASSES
    return (name, conf) if conf.get("model_class", DEFAULT_CLASS[name]) in known else None


def runs_booster_code(spec: ModelSpec) -> str | None:
    """How loading this model runs code from it: only a pickled lightgbm estimator does
    (xgboost's and lightgbm's own files, and skops, hold data)."""
    found = _flavor(spec)
    fmt = _lightgbm_format(found[1]) if found and found[0] == "lightgbm" else None
    if fmt in ("pickle", "cloudpickle") and found:
        return f"its estimator {found[1]['data']} is unpickled with {fmt}"
    return None


def library_modules(spec: ModelSpec) -> tuple[str, ...] | None:
    """The modules loading this model imports, or None when mlflow's loader loads it."""
    found = _flavor(spec)
    if found is None:
        return None
    skops = found[0] == "lightgbm" and _lightgbm_format(found[1]) == "skops"
    return (found[0], *(("skops.io",) if skops else ()))


def load_booster(spec: ModelSpec) -> Callable[[], Any] | None:
    """A function that loads the model without mlflow, or None when this module does not."""
    found = _flavor(spec)
    if found is None:
        return None
    name, conf = found
    file = spec.file(conf["data"])
    if not is_inside(file, spec.path):
        raise ModelFormatError(
            path=spec.file("MLmodel"),
            field=f"flavors.{name}.data",
            reason=f"names {conf['data']!r}, which lies outside the model directory.",
        )
    if name == "xgboost":
        return lambda: _XGBoostPredictor(_load_xgboost(conf, file))
    return lambda: _LightGBMPredictor(_load_lightgbm(spec, conf, file))


def _lightgbm_format(conf: Mapping[str, Any]) -> str | None:
    if conf.get("model_class", LIGHTGBM_BOOSTER) == LIGHTGBM_BOOSTER:
        return None
    return str(conf.get("serialization_format") or "cloudpickle")  # mlflow's default


def _load_xgboost(conf: Mapping[str, Any], file: str) -> Any:
    import xgboost

    cls = getattr(xgboost, XGBOOST_CLASSES[conf.get("model_class", DEFAULT_CLASS["xgboost"])])
    model = cls()
    model.load_model(file)
    return model


def _load_lightgbm(spec: ModelSpec, conf: Mapping[str, Any], file: str) -> Any:
    fmt = _lightgbm_format(conf)
    if fmt is None:
        import lightgbm

        return lightgbm.Booster(model_file=file)
    trusted = conf.get("skops_trusted_types")
    return deserialize(
        file,
        fmt,
        path=spec.path,
        field="flavors.lightgbm.serialization_format",
        trusted=[str(t) for t in trusted] if isinstance(trusted, list) else None,
    )


class _XGBoostPredictor:
    """mlflow's xgboost wrapper: a Booster predicts on a DMatrix of the frame, the scikit-learn
    API on the frame; both validate feature names, and take the params their predict accepts."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, data: Any, params: Mapping[str, Any] | None = None) -> Any:
        import xgboost

        kwargs = _accepted(self.model.predict, params or {})
        if isinstance(self.model, xgboost.Booster):
            return self.model.predict(xgboost.DMatrix(data), validate_features=True, **kwargs)
        return self.model.predict(data, validate_features=True, **kwargs)


class _LightGBMPredictor:
    """mlflow's lightgbm wrapper: predict on the frame; params are not passed on."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, data: Any) -> Any:
        return self.model.predict(data)


def _accepted(fn: Callable[..., Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The params `fn` takes by name (all of them if it takes **kwargs), as mlflow filters."""
    accepted = inspect.signature(fn).parameters
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in accepted.values()):
        return dict(params)
    return {k: v for k, v in params.items() if k in accepted}
