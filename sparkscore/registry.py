"""Where a model is: a local directory, a folder on object storage, or a URI of an MLflow
tracking server or registry (`runs:/<run_id>/<path>`, `models:/<name>/<version>`,
`models:/<name>@<alias>`), made into a local directory once, on the driver.

Registry URIs need mlflow (the `mlflow` extra) and its tracking URI (MLFLOW_TRACKING_URI);
everything after resolution is a plain local model directory. What is copied here goes into a
`sparkscore-model-*` folder of the system temp folder that this process owns: it is removed
when the process ends, and swept by a later run when a killed one left it (sparkscore.scratch).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs

from sparkscore.errors import MissingDependencyError, ModelFormatError, one_line
from sparkscore.scratch import owned_dir
from sparkscore.storage import resolve

__all__ = ["ResolvedModel", "is_model_uri", "local_model_dir", "resolve_model_uri"]

_SCHEMES = ("runs:/", "models:/")
COPY_PREFIX = "sparkscore-model-"


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model URI pointed when the job ran, for the run record."""

    uri: str
    path: str
    version: str | None = None
    run_id: str | None = None

    def record(self) -> dict[str, str | None]:
        return {
            "uri": self.uri,
            "resolved_path": self.path,
            "version": self.version,
            "registry_run_id": self.run_id,
        }


def is_model_uri(uri: str) -> bool:
    return uri.startswith(_SCHEMES)


def resolve_model_uri(uri: str) -> ResolvedModel:
    """Download the model a `runs:/` or `models:/` URI names, and say which version it was."""
    try:
        import mlflow
        from mlflow.exceptions import MlflowException
    except ImportError:
        raise MissingDependencyError(
            path=uri,
            package="mlflow-skinny",
            pinned=None,
            installed=None,
            python_version=None,
            detail="runs:/ and models:/ URIs are resolved through mlflow",
            advice="Install it with: pip install 'sparkscore[mlflow]'.",
        ) from None
    version = run_id = None
    try:
        m = re.fullmatch(r"models:/([^/@]+)(?:/([^/]+)|@(.+))", uri)
        if m:
            client = mlflow.MlflowClient()
            name, number, alias = m.groups()
            if alias:
                mv = client.get_model_version_by_alias(name, alias)
            elif number.isdigit():
                mv = client.get_model_version(name, number)
            else:
                mv = None  # a stage such as Production: mlflow resolves it
            if mv is not None:
                version, run_id = str(mv.version), mv.run_id
        target = _copy_target()
        os.mkdir(target)
        path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=target)
    except MlflowException as e:
        raise ModelFormatError(
            path=uri,
            field=None,
            reason=f"cannot be resolved through mlflow (tracking URI "
            f"{mlflow.get_tracking_uri()}): {one_line(e)}",
        ) from None
    if run_id is None and uri.startswith("runs:/"):
        run_id = uri[len("runs:/") :].split("/", 1)[0]
    return ResolvedModel(uri=uri, path=os.path.abspath(path), version=version, run_id=run_id)


def _copy_target(name: str = "model") -> str:
    """Where to copy a model, `name` inside a folder this process owns (which holds the owner's
    lock file, so the model cannot be that folder itself)."""
    return os.path.join(owned_dir(COPY_PREFIX), name)


def local_model_dir(model_uri: str, *, mlmodel: bool = True) -> tuple[str, dict[str, Any]]:
    """A local directory for the model, and how it was found (for the run record).

    Registry URIs resolve through mlflow; a model on object storage is copied once to a
    local temporary directory on the driver, under its own name (it then ships to executors
    like any other). `mlmodel=False`: a scoring script's model, which may be any folder, or a
    single file, copied as it is.
    """
    if is_model_uri(model_uri):
        resolved = resolve_model_uri(model_uri)
        return resolved.path, resolved.record()
    fs, path = resolve(model_uri)
    if isinstance(fs, pa.fs.LocalFileSystem):
        return path, {}
    path = path.rstrip("/")
    if mlmodel and fs.get_file_info(f"{path}/MLmodel").type != pa.fs.FileType.File:
        raise ModelFormatError(
            path=model_uri,
            field=None,
            reason="has no MLmodel file, so it is not an MLflow "
            "model directory; point --model at the folder that holds MLmodel.",
        )
    found = fs.get_file_info(path).type
    if found == pa.fs.FileType.NotFound:
        raise ModelFormatError(
            path=model_uri,
            field=None,
            reason="does not exist; point --model at the model folder (or the single model "
            "file) that the scoring script's init() loads from AZUREML_MODEL_DIR.",
        )
    local = _copy_target(path.rsplit("/", 1)[-1])
    if found == pa.fs.FileType.Directory:
        os.mkdir(local)
    pa.fs.copy_files(
        path, local, source_filesystem=fs, destination_filesystem=pa.fs.LocalFileSystem()
    )
    return local, {"uri": model_uri, "resolved_path": local}
