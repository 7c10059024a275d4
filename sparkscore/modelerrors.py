"""The model's errors: its directory and MLmodel file, loading it, its own environment, the
process that predicts in that environment, a Spark MLlib pipeline, and Azure ML's scoring script.

Re-exported by `sparkscore.errors`, where callers import them from and where the whole tree is
drawn; this module imports only `sparkscore.errorbase`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sparkscore.errorbase import SparkscoreError, python_version

__all__ = [
    "EnvironmentBuildError",
    "MissingDependencyError",
    "ModelEnvironmentError",
    "ModelFormatError",
    "ModelLoadError",
    "ModelProcessError",
    "PythonVersionError",
    "ScoringScriptError",
    "SparkPipelineError",
    "UntrustedTypeError",
]


class ModelFormatError(SparkscoreError):
    """The model directory or its MLmodel file cannot be used as an MLflow model."""

    def __init__(self, *, path: str, field: str | None, reason: str) -> None:
        self.path, self.field, self.reason = path, field, reason
        where = f"{path}, field '{field}'" if field else path
        super().__init__(f"{where}: {reason}")


class ModelLoadError(SparkscoreError):
    """The model's files are well formed but cannot be turned into a model here."""

    def __init__(self, *, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"Cannot load the model at {path}: {reason}")


class MissingDependencyError(ModelLoadError):
    """A package the model needs is missing or differs from the one it was saved with."""

    def __init__(
        self,
        *,
        path: str,
        package: str,
        pinned: str | None,
        installed: str | None,
        python_version: str | None,
        detail: str,
        advice: str | None = None,
    ) -> None:
        self.package, self.pinned, self.installed = package, pinned, installed
        self.python_version, self.detail = python_version, detail
        parts = [f"it needs the package '{package}'"]
        parts.append(f"the model pins {pinned}" if pinned else "the model does not pin it")
        parts.append(f"installed here: {installed}" if installed else "not installed here")
        if python_version:
            parts.append(f"the model was saved with Python {python_version}")
        if advice is None:
            advice = (
                "Install the version the model pins, or score it with env_manager: virtualenv "
                "so that sparkscore builds the model's own environment."
            )
        super().__init__(path=path, reason="; ".join(parts) + f" ({detail}). {advice}")


class UntrustedTypeError(ModelLoadError):
    """A skops file contains types that the model's MLmodel does not list as trusted."""

    def __init__(self, *, path: str, types: Sequence[str]) -> None:
        self.types = list(types)
        super().__init__(
            path=path,
            reason=(
                f"the skops file holds types that are not trusted: {', '.join(self.types)}. "
                "Save the model again with skops_trusted_types listing them if you trust them."
            ),
        )


class ModelEnvironmentError(SparkscoreError):
    """The environment a model was saved with cannot be built or used here."""

    def __init__(self, *, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"Cannot build the environment of the model at {path}: {reason}")


class PythonVersionError(ModelEnvironmentError):
    """The model pins a Python minor version other than the one the job runs."""

    def __init__(self, *, path: str, model_python: str, job_python: str, source: str) -> None:
        self.model_python, self.job_python, self.source = model_python, job_python, source
        super().__init__(
            path=path,
            reason=f"the model was saved with Python {model_python} ({source}) but the job runs "
            f"Python {job_python}; packages built for one do not load in the other. Run the job "
            f"with Python {'.'.join(model_python.split('.')[:2])}, or save the model again with "
            f"Python {job_python}.",
        )


class EnvironmentBuildError(ModelEnvironmentError):
    """Installing the model's pinned requirements failed; names the requirement at fault."""

    def __init__(self, *, path: str, requirement: str | None, tool: str, detail: str) -> None:
        self.requirement, self.tool, self.detail = requirement, tool, detail
        culprit = (
            f"the requirement '{requirement}' cannot be installed"
            if requirement
            else "its requirements cannot be installed"
        )
        super().__init__(
            path=path,
            reason=f"{culprit} for Python {python_version()} on this platform ({tool}: {detail}). "
            "Pin a version that publishes a wheel for this platform, or score with "
            "env_manager: local in an environment you prepared.",
        )


class ModelProcessError(SparkscoreError):
    """The process that scores in the model's environment exited or stopped answering."""

    def __init__(self, *, path: str, returncode: int | None, log_tail: str) -> None:
        self.path, self.returncode, self.log_tail = path, returncode, log_tail
        how = f"exited with status {returncode}" if returncode is not None else "stopped answering"
        tail = f"; its last output: {log_tail}" if log_tail else ""
        super().__init__(
            f"The process scoring the model at {path} in its own environment {how}{tail}"
        )


class SparkPipelineError(SparkscoreError):
    """A Spark MLlib model (mlflow.spark) cannot be scored as asked: through a Python face
    that cannot run its JVM pipeline, or with columns or rows its pipeline does not give."""

    def __init__(self, *, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}.")


class ScoringScriptError(SparkscoreError):
    """The scoring script (Azure's batch driver) cannot be used: it is missing, does not import,
    or does not define callable `init` and `run`."""

    def __init__(self, *, file: str, reason: str) -> None:
        self.file, self.reason = file, reason
        super().__init__(
            f"scoring script {file}: {reason}; a scoring script defines init() and "
            "run(mini_batch), as Azure ML's batch deployments call them."
        )
