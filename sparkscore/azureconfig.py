"""Azure ML's batch deployment YAML read as a settings file: `--config deployment.yml`, as it is.

Both of Azure's layouts are read: the deployment's knobs under `settings:` (CLI 1.7 and later,
`type: model`) or at the top level (the older layout). `code_configuration.code` is relative
to the YAML file's folder, as Azure resolves it. Azure's resources (`model`, `compute`,
`environment`, the endpoint and the deployment's own name) mean nothing on your Spark: they are
ignored with one info line. `resources.instance_count` and `max_concurrency_per_instance` are
Azure's size of the job (`Instances`): where sparkscore starts the session they become its task
slots (sparkscore.session.sized), else a warning says why not. A key sparkscore cannot honour is
named in a warning with why; any other key must be a sparkscore setting, or the file is refused
like any settings file. Pure: settings.py calls `read_deployment` while it reads a file, and the
command and `score()` log `notes` (and read `instances`) once logging is set up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from sparkscore.errors import SettingsError

__all__ = [
    "RESOURCES",
    "SIZE",
    "UNHONOURED",
    "Deployment",
    "Instances",
    "instances",
    "is_deployment",
    "notes",
    "read_deployment",
]

# Azure's deployment knobs, by their path in the YAML, and the sparkscore setting each one is.
_SETTINGS = {
    "mini_batch_size": "mini_batch_size",
    "output_action": "output_action",
    "output_file_name": "output_file_name",
    "retry_settings.max_retries": "max_retries",
    "retry_settings.timeout": "timeout",
    "error_threshold": "error_threshold",
    "logging_level": "logging_level",
    "environment_variables": "environment_variables",
    "code_configuration.scoring_script": "scoring_script",
    "code_configuration.code": "code",
}
# Azure resources and labels: where the deployment runs and what it is called there.
RESOURCES = (
    "$schema",
    "name",
    "description",
    "tags",
    "properties",
    "endpoint_name",
    "type",
    "model",
    "compute",
    "environment",
)
# Azure's size of the job: instances, and mini-batches each runs at once (Azure's defaults: 1).
SIZE = ("resources.instance_count", "max_concurrency_per_instance")
# Keys sparkscore reads but cannot honour, and why.
UNHONOURED = {
    "resources.instance_type": "the machines are the Spark cluster's",
}
_NESTED = ("retry_settings", "code_configuration", "resources")


@dataclass(frozen=True)
class Instances:
    """Azure's size of a job: `count` instances, each running `concurrency` mini-batches at
    once; `source` is the deployment file, for the log line that says what became of it."""

    count: int
    concurrency: int
    source: str = ""

    @property
    def slots(self) -> int:
        return self.count * self.concurrency


@dataclass(frozen=True)
class Deployment:
    """What an Azure deployment file says, as sparkscore settings, and what it leaves out."""

    settings: dict[str, Any]
    resources: tuple[str, ...]  # ignored: Azure's resources and labels
    unhonoured: tuple[str, ...]  # read but not honoured (UNHONOURED says why)
    instances: Instances | None = None  # None: the file sizes nothing (SIZE)


def is_deployment(doc: Mapping[Any, Any]) -> bool:
    """An Azure batch deployment, not a sparkscore settings file: it has Azure's own keys."""
    return any(key in doc for key in ("$schema", "endpoint_name", *_NESTED)) or isinstance(
        doc.get("settings"), Mapping
    )


def read_deployment(doc: Mapping[Any, Any], folder: str) -> Deployment:
    """The deployment `doc` (parsed from a file in `folder`) as sparkscore settings.

    Its CSV output is Azure's: `output_format: csv` unless the file says otherwise. Keys that
    are neither Azure's nor sparkscore's pass through, for the settings check to refuse by name.
    """
    flat = _flatten(doc)
    block = doc.get("settings")
    if isinstance(block, Mapping):
        flat.pop("settings")
        flat.update(_flatten(block))
    settings: dict[str, Any] = {"output_format": "csv"}
    resources, unhonoured, size = [], [], {}
    for key, value in flat.items():
        top = key.split(".", 1)[0]
        if top in RESOURCES:
            resources.append(top)
        elif key in SIZE:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SettingsError(key=key, value=value, reason="must be a whole number >= 1")
            size[key] = value
        elif key in UNHONOURED:
            unhonoured.append(key)
        elif key in _SETTINGS:
            settings[_SETTINGS[key]] = value
        else:
            settings[key] = value
    code = settings.get("code")
    if isinstance(code, str) and not os.path.isabs(os.path.expanduser(code)):
        settings["code"] = os.path.normpath(os.path.join(folder, code))
    sized = None
    if size:
        count, concurrency = (size.get(key, 1) for key in SIZE)
        sized = Instances(count, concurrency)
    return Deployment(settings, tuple(dict.fromkeys(resources)), tuple(unhonoured), sized)


def _flatten(doc: Mapping[Any, Any]) -> dict[str, Any]:
    """Azure's nested knobs (`retry_settings.timeout`) as dotted keys; other values as they are."""
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        name = str(key)
        if name in _NESTED and isinstance(value, Mapping):
            flat.update({f"{name}.{inner}": item for inner, item in value.items()})
        else:
            flat[name] = value
    return flat


def _deployment(path: str | os.PathLike[str] | None) -> Deployment | None:
    """The settings file `path` read as an Azure deployment (None: it is not one)."""
    if path is None:
        return None
    name = os.fspath(path)
    try:
        doc = yaml.safe_load(Path(name).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None  # the settings were read from it already: this cannot be
    if not isinstance(doc, Mapping) or not is_deployment(doc):
        return None
    return read_deployment(doc, os.path.dirname(os.path.abspath(name)))


def instances(path: str | os.PathLike[str] | None) -> Instances | None:
    """The size the settings file `path` gives the job, when it is an Azure deployment that
    sets `resources.instance_count` or `max_concurrency_per_instance`."""
    deployment = _deployment(path)
    if deployment is None or deployment.instances is None:
        return None
    return replace(deployment.instances, source=os.fspath(path or ""))


def notes(path: str | os.PathLike[str] | None) -> list[tuple[int, str]]:
    """The log lines a run from the settings file `path` starts with, when it is an Azure
    deployment: one info line for Azure's resources, a warning per key it cannot honour (what
    became of its size is sparkscore.session.sized's line)."""
    deployment = _deployment(path)
    if deployment is None:
        return []
    name = os.fspath(path or "")
    lines = []
    if deployment.resources:
        lines.append(
            (
                logging.INFO,
                f"{name}: ignored Azure's {', '.join(deployment.resources)}: sparkscore runs on "
                "your Spark, with --model and the master you give it",
            )
        )
    lines += [
        (logging.WARNING, f"{name}: ignored {key}: {UNHONOURED[key]}")
        for key in deployment.unhonoured
    ]
    return lines
