"""Azure ML's batch deployment YAML read as a settings file: `--config deployment.yml`, as it is.

Both of Azure's layouts are read: the deployment's knobs under `settings:` (CLI 1.7 and later,
`type: model`) or at the top level (the older layout). `code_configuration.code` is relative
to the YAML file's folder, as Azure resolves it. Azure's resources (`model`, `compute`,
`environment`, the endpoint and the deployment's own name) mean nothing on your Spark: they are
ignored with one info line. A key sparkscore cannot honour is named in a warning with why; any
other key must be a sparkscore setting, or the file is refused like any settings file. Pure:
settings.py calls `settings_of` while it reads a file, and the command and `score()` log
`notes` once logging is set up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["RESOURCES", "UNHONOURED", "Deployment", "is_deployment", "notes", "read_deployment"]

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
# Keys sparkscore reads but cannot honour, and why.
UNHONOURED = {
    "max_concurrency_per_instance": "Spark's task slots per executor come from the master "
    "(local[N]) or spark.executor.cores, not from the deployment",
    "resources.instance_count": "Spark's executors come from the cluster (spark.executor."
    "instances, or the master), not from the deployment",
    "resources.instance_type": "the machines are the Spark cluster's",
}
_NESTED = ("retry_settings", "code_configuration", "resources")


@dataclass(frozen=True)
class Deployment:
    """What an Azure deployment file says, as sparkscore settings, and what it leaves out."""

    settings: dict[str, Any]
    resources: tuple[str, ...]  # ignored: Azure's resources and labels
    unhonoured: tuple[str, ...]  # read but not honoured (UNHONOURED says why)


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
    resources, unhonoured = [], []
    for key, value in flat.items():
        top = key.split(".", 1)[0]
        if top in RESOURCES:
            resources.append(top)
        elif key in UNHONOURED:
            unhonoured.append(key)
        elif key in _SETTINGS:
            settings[_SETTINGS[key]] = value
        else:
            settings[key] = value
    code = settings.get("code")
    if isinstance(code, str) and not os.path.isabs(os.path.expanduser(code)):
        settings["code"] = os.path.normpath(os.path.join(folder, code))
    return Deployment(settings, tuple(dict.fromkeys(resources)), tuple(unhonoured))


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


def notes(path: str | os.PathLike[str] | None) -> list[tuple[int, str]]:
    """The log lines a run from the settings file `path` starts with, when it is an Azure
    deployment: one info line for Azure's resources, a warning per key it cannot honour."""
    if path is None:
        return []
    name = os.fspath(path)
    try:
        doc = yaml.safe_load(Path(name).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []  # the settings were read from it already: this cannot be
    if not isinstance(doc, Mapping) or not is_deployment(doc):
        return []
    deployment = read_deployment(doc, os.path.dirname(os.path.abspath(name)))
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
