"""The model's own Python environment (env_manager: virtualenv or uv): what it must hold.

MLflow saves what a model needs beside it (`python_env.yaml` naming the Python version and
`requirements.txt` the pins; `conda.yaml` for older models). This module reads those files into
an `EnvironmentSpec` and refuses, before anything is installed, what cannot be built here: a
pin that is not a package name (a local path, a URL), or a model saved with another Python
minor version than the job's (executors run the model's packages with their own Python).
Building, caching and packing the environment is `envbuild.py`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from sparkscore.errors import (
    ModelEnvironmentError,
    PythonVersionError,
    python_version,
)
from sparkscore.model import ModelSpec
from sparkscore.requirements import (
    RequirementLine,
    normalize,
    parse_requirement,
    requirement_lines,
)

__all__ = ["EnvironmentSpec", "check_python", "read_environment"]

log = logging.getLogger("sparkscore")

# What the scoring process itself imports in the model's environment (sparkscore.loader and the
# Arrow pipe), added unpinned unless the model pins them: the model's pins always win.
RUNTIME_PACKAGES = ("pandas", "pyarrow", "pyyaml")
FORMAT_PACKAGES = {"cloudpickle": "cloudpickle", "skops": "skops"}
# Bumped when the layout of a cached environment changes, so old caches are not reused.
CACHE_FORMAT = 1


@dataclass(frozen=True)
class EnvironmentSpec:
    """What the model's environment must hold, read from the files MLflow saved with it."""

    model_path: str
    python: str | None  # the model's Python version, e.g. "3.11.7"; None when not recorded
    source: str  # the file the requirements came from
    requirements: tuple[str, ...]  # requirement lines, as the model pins them
    constraints: tuple[str, ...] = ()
    runtime: tuple[str, ...] = ()  # what the scoring process needs that the model does not pin

    @property
    def key(self) -> str:
        """The cache key: everything that decides what gets installed, and for which Python."""
        identity = {
            "format": CACHE_FORMAT,
            "python": _minor(self.python) or _minor(python_version()),
            "platform": sysconfig.get_platform(),
            "abi": sys.implementation.cache_tag,
            "requirements": list(self.requirements),
            "constraints": list(self.constraints),
            "runtime": list(self.runtime),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def install_lines(self) -> list[str]:
        return [*self.requirements, *self.runtime]


def _minor(version: str | None) -> str | None:
    if not version:
        return None
    parts = version.strip().split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else parts[0]


def read_environment(spec: ModelSpec) -> EnvironmentSpec:
    """The model's requirements: python_env.yaml, else requirements.txt, else conda.yaml's pip."""
    files = spec.env_files()
    python: str | None = spec.pyfunc.python_version
    lines: list[RequirementLine] = []
    if "python_env.yaml" in files:
        source = "python_env.yaml"
        doc = _yaml(files[source], spec)
        python = str(doc.get("python") or python or "") or None
        lines = requirement_lines(spec.path, files[source], _listed(doc, source, spec))
    elif "requirements.txt" in files:
        source = "requirements.txt"
        lines = requirement_lines(spec.path, files[source])
    elif "conda.yaml" in files:
        source = "conda.yaml"
        doc = _yaml(files[source], spec)
        for dep in _listed(doc, source, spec):
            if isinstance(dep, str) and re.match(r"python\s*[=<>]", dep):
                python = re.sub(r"^python\s*=*", "", dep).strip() or python
            elif isinstance(dep, Mapping):
                lines += requirement_lines(spec.path, files[source], dep.get("pip") or [])
    else:
        raise ModelEnvironmentError(
            path=spec.path,
            reason="the model directory has no python_env.yaml, requirements.txt or conda.yaml "
            "to build its environment from; score it with env_manager: local.",
        )
    for line in lines:
        _check_installable(spec, line)
    requirements = [line.text for line in lines if not line.constraint]
    constraints = [line.text for line in lines if line.constraint]
    return EnvironmentSpec(
        model_path=spec.path,
        python=python,
        source=source,
        requirements=tuple(dict.fromkeys(requirements)),
        constraints=tuple(dict.fromkeys(constraints)),
        runtime=_runtime_packages(spec, requirements),
    )


def _yaml(path: str, spec: ModelSpec) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        try:
            doc = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ModelEnvironmentError(
                path=spec.path, reason=f"{os.path.basename(path)} is not valid YAML ({e})."
            ) from None
    if not isinstance(doc, dict):
        raise ModelEnvironmentError(
            path=spec.path, reason=f"{os.path.basename(path)} must be a mapping."
        )
    return doc


def _listed(doc: Mapping[str, Any], source: str, spec: ModelSpec) -> list[Any]:
    dependencies = doc.get("dependencies") or []
    if not isinstance(dependencies, list):
        raise ModelEnvironmentError(
            path=spec.path, reason=f"{source}'s dependencies must be a list, got {dependencies!r}."
        )
    return dependencies


# A requirement pip would take for a path or a URL, not a name from the package index.
_NOT_A_NAME = re.compile(r"^[.~]|[/\\@]|^file:", re.IGNORECASE)


def _check_installable(spec: ModelSpec, line: RequirementLine) -> None:
    """Only names from the package index: a pip option or a local path would be obeyed."""
    if line.text.startswith("-"):
        raise ModelEnvironmentError(
            path=spec.path,
            reason=f"{line.source} holds the pip option {line.text!r}; sparkscore installs plain "
            "requirements (name and version) from the default package index only.",
        )
    if _NOT_A_NAME.search(line.text.split(";", 1)[0]):
        raise ModelEnvironmentError(
            path=spec.path,
            reason=f"{line.source} holds {line.text!r}, a path or URL rather than a package "
            "name; sparkscore installs plain requirements (name and version) from the default "
            "package index only.",
        )


def _runtime_packages(spec: ModelSpec, requirements: list[str]) -> tuple[str, ...]:
    named = {normalize(p.name) for p in (parse_requirement(r, "") for r in requirements) if p}
    wanted = list(RUNTIME_PACKAGES)
    if spec.sklearn is not None and spec.pyfunc.loader_module == "mlflow.sklearn":
        fmt = spec.sklearn.serialization_format
        if fmt in FORMAT_PACKAGES:
            wanted.append(FORMAT_PACKAGES[fmt])
    return tuple(p for p in wanted if normalize(p) not in named)


def check_python(env: EnvironmentSpec) -> None:
    """Packages are installed for the job's Python; refuse a model saved with another minor."""
    if env.python and _minor(env.python) != _minor(python_version()):
        raise PythonVersionError(
            path=env.model_path,
            model_python=env.python,
            job_python=python_version(),
            source=env.source,
        )
