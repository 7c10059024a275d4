"""The MLflow model format: parse a model directory's `MLmodel` file without importing mlflow.

Parsing is kept apart from loading so that the driver can read a model's signature, flavor and
metadata (to plan, type the output and write the run record) without unpickling anything.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sparkscore.errors import ModelFormatError, one_line
from sparkscore.modelfiles import check_link, is_inside, model_files
from sparkscore.signature import Signature, enforce_params

__all__ = [
    "MLMODEL",
    "ModelSpec",
    "PyFuncFlavor",
    "SklearnFlavor",
    "bare_record",
    "read_spec",
]

MLMODEL = "MLmodel"
PYFUNC = "python_function"
SKLEARN = "sklearn"
SPARK = "spark"
# The flavor a run record gives a model without MLmodel: files a scoring script loads itself.
NO_FLAVOR = "none"


@dataclass(frozen=True)
class PyFuncFlavor:
    """`flavors.python_function`: how to load the model as a generic Python function."""

    loader_module: str
    code: str | None = None
    data: str | None = None
    model_path: str | None = None
    env: str | Mapping[str, str] | None = None
    predict_fn: str = "predict"
    python_version: str | None = None
    model_config: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SklearnFlavor:
    """`flavors.sklearn`: where the estimator is and how it was serialized."""

    pickled_model: str
    serialization_format: str = "pickle"
    sklearn_version: str | None = None
    skops_trusted_types: tuple[str, ...] | None = None
    code: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """Everything `MLmodel` says about a model, with every relative path checked to stay inside."""

    path: str
    pyfunc: PyFuncFlavor
    flavors: Mapping[str, Mapping[str, Any]]
    signature: Signature | None
    sklearn: SklearnFlavor | None = None
    mlflow_version: str | None = None
    model_uuid: str | None = None
    run_id: str | None = None
    utc_time_created: str | None = None
    artifact_path: str | None = None
    metadata: Mapping[str, Any] | None = None
    # flavors.spark.model_data: the Spark MLlib pipeline folder (relative) of a model saved by
    # mlflow.spark, which the job scores in Spark's JVM (sparkscore.sparkml); None otherwise
    sparkml: str | None = None

    @property
    def flavor(self) -> str:
        """The flavor that produced the model: the loader module's library (sklearn, pyfunc...)."""
        if self.pyfunc.loader_module == "mlflow.sklearn":
            return SKLEARN
        non_pyfunc = [name for name in self.flavors if name != PYFUNC]
        return non_pyfunc[0] if non_pyfunc else PYFUNC

    def file(self, relative: str) -> str:
        """The absolute path of a file that MLmodel names, relative to the model directory."""
        return os.path.join(self.path, relative)

    def env_files(self) -> dict[str, str]:
        """Dependency files saved beside MLmodel, by name, that exist."""
        names = ["requirements.txt", "conda.yaml", "python_env.yaml"]
        env = self.pyfunc.env
        if isinstance(env, str):
            names.append(env)
        elif isinstance(env, Mapping):
            names.extend(str(v) for v in env.values())
        return {n: self.file(n) for n in dict.fromkeys(names) if os.path.isfile(self.file(n))}

    def params(self, values: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """Params checked against the signature, defaults filled: once per job, not per batch."""
        return enforce_params(values, self.signature.params if self.signature else None)

    def record(self) -> dict[str, Any]:
        """The model's identity for a run record."""
        return {
            "path": self.path,
            "flavor": self.flavor,
            "loader_module": self.pyfunc.loader_module,
            "signature": self.signature.to_dict() if self.signature else None,
            "mlflow_version": self.mlflow_version,
            "model_uuid": self.model_uuid,
            "run_id": self.run_id,
            "utc_time_created": self.utc_time_created,
            "python_version": self.pyfunc.python_version,
        }


def bare_record(path: str) -> dict[str, Any]:
    """A model without MLmodel (files a scoring script's init() loads) in a run record: the keys
    `ModelSpec.record` writes, so readers of `_summary.json` find them all, flavor `none`."""
    return {
        "path": path,
        "flavor": NO_FLAVOR,
        "loader_module": None,
        "signature": None,
        "mlflow_version": None,
        "model_uuid": None,
        "run_id": None,
        "utc_time_created": None,
        "python_version": None,
    }


def read_spec(path: str | os.PathLike[str]) -> ModelSpec:
    """Parse the MLmodel file of the model directory at `path`.

    Nothing in the directory may lead outside it (see `model_files`). The parsed file is kept
    per process, keyed by the MLmodel file's identity and modification time, so that a process
    parses a large MLmodel once however many callers ask.

    Examples
    --------
    >>> spec = read_spec("model_dir")  # doctest: +SKIP
    >>> spec.pyfunc.loader_module       # doctest: +SKIP
    'mlflow.sklearn'
    """
    root = os.path.abspath(os.fspath(path))
    if not os.path.exists(root):
        raise ModelFormatError(
            path=root,
            field=None,
            reason="does not exist; point --model at an MLflow model "
            "directory (the folder that holds the MLmodel file).",
        )
    if not os.path.isdir(root):
        raise ModelFormatError(
            path=root,
            field=None,
            reason="is not a directory; point --model at an MLflow model "
            "directory (the folder that holds the MLmodel file).",
        )
    mlmodel = os.path.join(root, MLMODEL)
    if not os.path.isfile(mlmodel):
        raise ModelFormatError(
            path=root,
            field=None,
            reason="has no MLmodel file, so it is not an MLflow model "
            "directory; point --model at the folder that holds MLmodel.",
        )
    if os.path.islink(mlmodel):
        check_link(mlmodel, os.path.realpath(mlmodel), os.path.realpath(root), root, frozenset())
    found = os.stat(mlmodel)
    key = (root, found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)
    with _SPECS_LOCK:
        spec = _SPECS.get(key)
    if spec is None:
        doc = _read_yaml(mlmodel)
        if not isinstance(doc, dict):
            raise ModelFormatError(path=mlmodel, field=None, reason="must be a YAML mapping.")
        spec = _parse(root, mlmodel, doc)
        with _SPECS_LOCK:
            for stale in [k for k in _SPECS if k[0] == root]:
                del _SPECS[stale]
            while len(_SPECS) >= _SPECS_KEPT:
                del _SPECS[next(iter(_SPECS))]
            _SPECS[key] = spec
    # After parsing, so that a path MLmodel names is refused naming its field; every time,
    # since the folder may have changed while MLmodel did not.
    model_files(root)
    return spec


# Parsed MLmodel files of this process: (directory, device, inode, size, mtime) -> spec.
_SPECS: dict[tuple[str, int, int, int, int], ModelSpec] = {}
_SPECS_LOCK = threading.Lock()
_SPECS_KEPT = 8
# libyaml parses a large MLmodel (a 30 MB metadata field) many times faster than pure Python.
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(mlmodel: str) -> Any:
    try:
        with open(mlmodel, encoding="utf-8") as f:
            return yaml.load(f, Loader=_FAST_LOADER)
    except (yaml.YAMLError, UnicodeDecodeError):
        pass  # reported below, in the pure parser's words, the same with or without libyaml
    try:
        with open(mlmodel, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ModelFormatError(
            path=mlmodel, field=None, reason=f"is not valid YAML ({one_line(e)})."
        ) from None


def _parse(root: str, mlmodel: str, doc: Mapping[str, Any]) -> ModelSpec:
    flavors = doc.get("flavors")
    if not isinstance(flavors, dict) or not flavors:
        raise ModelFormatError(
            path=mlmodel,
            field="flavors",
            reason="is missing or empty; an MLflow model lists its flavors there.",
        )
    checker = _PathChecker(os.path.realpath(root), mlmodel)
    pyfunc = _pyfunc(flavors, checker, mlmodel)
    sklearn = _sklearn(flavors, checker)
    return ModelSpec(
        path=root,
        pyfunc=pyfunc,
        flavors=flavors,
        signature=_signature(mlmodel, doc.get("signature")),
        sklearn=sklearn,
        mlflow_version=_str_or_none(doc.get("mlflow_version")),
        model_uuid=_str_or_none(doc.get("model_uuid")),
        run_id=_str_or_none(doc.get("run_id")),
        utc_time_created=_str_or_none(doc.get("utc_time_created")),
        artifact_path=_str_or_none(doc.get("artifact_path")),
        metadata=doc.get("metadata"),
        sparkml=_sparkml(flavors, checker),
    )


_PYFUNC_KEYS = {
    "loader_module",
    "code",
    "data",
    "model_path",
    "env",
    "predict_fn",
    "python_version",
    "model_config",
}


def _pyfunc(flavors: Mapping[str, Any], checker: _PathChecker, mlmodel: str) -> PyFuncFlavor:
    conf = flavors.get(PYFUNC)
    if conf is not None and not isinstance(conf, dict):
        raise ModelFormatError(
            path=mlmodel,
            field=f"flavors.{PYFUNC}",
            reason=f"must be a mapping of the flavor's "
            f"settings (loader_module, ...), got {conf!r}.",
        )
    if not isinstance(conf, dict):
        raise ModelFormatError(
            path=mlmodel,
            field=f"flavors.{PYFUNC}",
            reason="is missing: sparkscore scores "
            f"models through their python_function flavor, and this one only has "
            f"{', '.join(map(str, flavors))}.",
        )
    loader = conf.get("loader_module")
    if not isinstance(loader, str) or not loader:
        raise ModelFormatError(
            path=mlmodel,
            field=f"flavors.{PYFUNC}.loader_module",
            reason="is required and must name the Python module that loads the model.",
        )
    env = conf.get("env")
    if isinstance(env, dict):
        env = {str(k): checker(f"flavors.{PYFUNC}.env.{k}", v) for k, v in env.items() if v}
    elif env is not None:
        env = checker(f"flavors.{PYFUNC}.env", env)
    return PyFuncFlavor(
        loader_module=loader,
        code=checker(f"flavors.{PYFUNC}.code", conf.get("code")),
        data=checker(f"flavors.{PYFUNC}.data", conf.get("data")),
        model_path=checker(f"flavors.{PYFUNC}.model_path", conf.get("model_path")),
        env=env,
        predict_fn=str(conf.get("predict_fn") or "predict"),
        python_version=_str_or_none(conf.get("python_version")),
        model_config=conf.get("model_config"),
        extra={k: v for k, v in conf.items() if k not in _PYFUNC_KEYS},
    )


def _sklearn(flavors: Mapping[str, Any], checker: _PathChecker) -> SklearnFlavor | None:
    sk = flavors.get(SKLEARN)
    if not (isinstance(sk, dict) and sk.get("pickled_model")):
        return None
    trusted = sk.get("skops_trusted_types")
    return SklearnFlavor(
        pickled_model=checker.path(f"flavors.{SKLEARN}.pickled_model", sk["pickled_model"]),
        serialization_format=str(sk.get("serialization_format") or "pickle"),
        sklearn_version=_str_or_none(sk.get("sklearn_version")),
        skops_trusted_types=tuple(map(str, trusted)) if trusted else None,
        code=checker(f"flavors.{SKLEARN}.code", sk.get("code")),
    )


def _sparkml(flavors: Mapping[str, Any], checker: _PathChecker) -> str | None:
    conf = flavors.get(SPARK)
    if not isinstance(conf, dict):
        return None
    return checker.path(f"flavors.{SPARK}.model_data", conf.get("model_data") or "sparkml")


class _PathChecker:
    """Refuses MLmodel paths that leave the model directory (`..`, absolute, symlinks out)."""

    def __init__(self, root: str, mlmodel: str) -> None:
        self.root, self.mlmodel = root, mlmodel

    def __call__(self, field_name: str, value: Any) -> str | None:
        """`value`, checked; None when MLmodel leaves the field out."""
        return None if value is None else self.path(field_name, value)

    def path(self, field_name: str, value: Any) -> str:
        """`value`, a path that must be there, checked."""
        if not isinstance(value, str):
            raise ModelFormatError(
                path=self.mlmodel,
                field=field_name,
                reason=f"must be a relative path string, got {value!r}.",
            )
        if os.path.isabs(value) or Path(value).drive:
            raise ModelFormatError(
                path=self.mlmodel,
                field=field_name,
                reason=f"is the absolute path {value!r}; "
                "paths in MLmodel must be relative to the model directory.",
            )
        resolved = os.path.realpath(os.path.join(self.root, value))
        if not is_inside(resolved, self.root):
            raise ModelFormatError(
                path=self.mlmodel,
                field=field_name,
                reason=f"path {value!r} points outside the "
                f"model directory ({resolved}); paths in MLmodel must stay inside it.",
            )
        return value


def _signature(mlmodel: str, raw: Any) -> Signature | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ModelFormatError(path=mlmodel, field="signature", reason="must be a mapping.")
    parsed: dict[str, Any] = {}
    for key in ("inputs", "outputs", "params"):
        value = raw.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                raise ModelFormatError(
                    path=mlmodel, field=f"signature.{key}", reason=f"is not valid JSON ({e})."
                ) from None
        parsed[key] = value
    try:
        return Signature.from_dict(parsed)
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # a spec that is no dict
        raise ModelFormatError(
            path=mlmodel, field="signature", reason=f"is not a valid MLflow signature ({e})."
        ) from None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
