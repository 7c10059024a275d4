"""Every failure sparkscore reports on purpose.

Our exception hierarchy:

* SparkscoreError
  * ModelFormatError        - the model directory or its MLmodel file is unusable
  * ModelLoadError          - the model's code or pickle cannot be loaded here
    * MissingDependencyError  - a package the model or its loader needs is not installed
    * UntrustedTypeError      - a skops file holds a type the model does not declare trusted
  * SchemaEnforcementError  - input data does not satisfy the model signature
    * MissingColumnError      - a required column is absent
    * TensorShapeError        - a tensor input has the wrong shape
      * ImageShapeError         - an image cannot be reshaped to the tensor the signature takes
  * ParamError              - an inference parameter is unknown or mistyped
  * SettingsError           - a setting is unknown or has a bad value
  * InputError              - the input location is unusable
    * UnsupportedInputError   - the input holds files of types we cannot score
    * PassthroughConflictError - files give a passthrough column types no one type holds
  * ReadError               - one input file cannot be read
  * MissingPassthroughError - a column named in passthrough_columns is absent from a file
  * PassthroughTypeError    - a file's passthrough values cannot take the column's output type
  * PredictError            - the model's predict raised
  * BatchTimeoutError       - a mini-batch ran longer than `timeout`
  * WorkerDiedError         - scoring one file killed its Python worker, every time
  * OutputError             - the output location cannot be written as asked
  * ResumeError             - a resume does not match the run it resumes
  * ErrorThresholdExceeded  - more files failed than `error_threshold` tolerates
  * ModelEnvironmentError   - the model's own environment cannot be had (env_manager)
    * PythonVersionError      - the model was saved with another Python than the job's
    * EnvironmentBuildError   - installing the model's pinned packages failed
  * ModelProcessError       - the process scoring in the model's environment died
  * AccountingError         - the rows written do not add up to the rows read (a bug, reported)
  * TableSchemaError        - a run's columns do not fit the table it appends to
  * ReferenceProfileError   - the `reference` run's profile cannot be read
  * DriftError              - columns drifted from the reference, with `fail_on_drift: true`
  * NoRunError              - `sparkscore report`/`show` pointed at a folder with no run
  * LedgerModelError        - an incremental output was scored by another model (`rescore`)
  * SparkPipelineError      - a Spark MLlib model cannot be scored as asked
  * ScoringScriptError      - the scoring script cannot be imported, or lacks init or run
  * ScriptWorkerDiedError   - the scoring script killed its worker on a mini-batch, every time

Fields are attributes so that error records and tests read them, not the prose.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

__all__ = [
    "AccountingError",
    "BatchTimeoutError",
    "DriftError",
    "EnvironmentBuildError",
    "ErrorThresholdExceeded",
    "ImageShapeError",
    "InputError",
    "LedgerModelError",
    "MissingColumnError",
    "MissingDependencyError",
    "MissingPassthroughError",
    "ModelEnvironmentError",
    "ModelFormatError",
    "ModelLoadError",
    "ModelProcessError",
    "NoRunError",
    "OutputError",
    "ParamError",
    "PassthroughConflictError",
    "PassthroughTypeError",
    "PredictError",
    "PythonVersionError",
    "ReadError",
    "ReferenceProfileError",
    "ResumeError",
    "SchemaEnforcementError",
    "ScoringScriptError",
    "ScriptWorkerDiedError",
    "SettingsError",
    "SparkPipelineError",
    "SparkscoreError",
    "TableSchemaError",
    "TensorShapeError",
    "UnsupportedInputError",
    "UntrustedTypeError",
    "WorkerDiedError",
]


class SparkscoreError(Exception):
    """Base class: catch this to catch every sparkscore failure."""


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


class SchemaEnforcementError(SparkscoreError):
    """A value cannot be converted safely to the type the signature declares."""

    def __init__(
        self,
        *,
        file: str | None,
        row: int | None,
        column: str,
        value: object,
        expected: str,
        reason: str | None = None,
    ) -> None:
        self.file, self.row, self.column = file, row, column
        self.value, self.expected, self.reason = value, expected, reason
        where = ", ".join(p for p in (file, None if row is None else f"row {row}") if p)
        prefix = f"{where}: " if where else ""
        text = reason or (
            f"column '{column}' has value {value!r}, "
            f"which cannot be converted safely to {expected}."
        )
        super().__init__(prefix + text)


class MissingColumnError(SchemaEnforcementError):
    """A column the signature requires is absent from the input."""

    def __init__(
        self,
        *,
        file: str | None,
        column: str,
        present: Sequence[str],
        missing: Sequence[str] = (),
    ) -> None:
        """`column` is the first missing column; `missing` all of them, when more than one."""
        self.present = list(present)
        self.missing = list(missing) or [column]
        what = (
            f"the column '{column}'"
            if len(self.missing) == 1
            else f"the columns {', '.join(repr(c) for c in self.missing)}"
        )
        super().__init__(
            file=file,
            row=None,
            column=column,
            value=None,
            expected="a required column",
            reason=(
                f"the input is missing {what}, which the model signature requires "
                f"(columns present: {', '.join(map(str, self.present)) or 'none'})."
            ),
        )


class TensorShapeError(SchemaEnforcementError):
    """A tensor input cannot be given the shape the signature declares."""

    def __init__(
        self, *, file: str | None, column: str, shape: Sequence[int], expected: Sequence[int]
    ) -> None:
        self.shape, self.expected_shape = tuple(shape), tuple(expected)
        super().__init__(
            file=file,
            row=None,
            column=column,
            value=self.shape,
            expected=str(list(expected)),
            reason=(
                f"input '{column}' has shape {list(self.shape)}, which does not fit the "
                f"signature's tensor shape {list(expected)} (-1 is any size)."
            ),
        )


class ImageShapeError(TensorShapeError):
    """An image (a decoded file, or one row of an array column) does not fit the input tensor."""

    def __init__(
        self,
        *,
        file: str | None,
        column: str,
        shape: Sequence[int],
        expected: Sequence[int],
        mode: str | None = None,
    ) -> None:
        self.shape, self.expected_shape, self.mode = tuple(shape), tuple(expected), mode
        subject = "the image" if file else f"an image in column '{column}'"
        pixels = f" (Pillow mode {mode})" if mode else ""
        SchemaEnforcementError.__init__(
            self,
            file=file,
            row=None,
            column=column,
            value=self.shape,
            expected=str(list(expected)),
            reason=(
                f"{subject} has shape {list(self.shape)}{pixels}, which cannot be reshaped to the "
                f"signature's tensor shape {list(expected)} (-1 is any size); convert the images "
                "to that shape, or save the model with a signature that takes this one."
            ),
        )


class ParamError(SparkscoreError):
    """An inference parameter is not declared by the model or has the wrong type."""

    def __init__(self, *, name: str, reason: str) -> None:
        self.name, self.reason = name, reason
        super().__init__(f"Parameter '{name}': {reason}")


class SettingsError(SparkscoreError):
    """A setting is unknown or its value is not allowed."""

    def __init__(self, *, key: str, value: object, reason: str, source: str | None = None) -> None:
        self.key, self.value, self.reason, self.source = key, value, reason, source
        origin = f" (from {source})" if source else ""
        super().__init__(f"{key} {reason}, got {value!r}{origin}")


class InputError(SparkscoreError):
    """The input location cannot be listed or holds nothing to score."""

    def __init__(self, *, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


class UnsupportedInputError(InputError):
    """Files whose type we cannot score; named all at once, before any task starts."""

    def __init__(self, *, path: str, files: Sequence[str], supported: Sequence[str]) -> None:
        self.files, self.supported = list(files), list(supported)
        super().__init__(
            path=path,
            reason=(
                f"{len(self.files)} unsupported file(s): {', '.join(self.files)}. "
                f"Supported types are {', '.join(self.supported)}; remove the others "
                "or set ignore_unsupported: true to skip them."
            ),
        )


class ReadError(SparkscoreError):
    """One input file cannot be read or parsed."""

    def __init__(self, *, file: str, reason: str, row: int | None = None) -> None:
        self.file, self.reason, self.row = file, reason, row
        where = file if row is None else f"{file}, row {row}"
        super().__init__(f"{where}: {reason}")


class PredictError(SparkscoreError):
    """The model's predict raised on a batch of rows."""

    def __init__(self, *, file: str | None, first_row: int | None, rows: int, cause: str) -> None:
        self.file, self.first_row, self.rows, self.cause = file, first_row, rows, cause
        where = ""
        if file is not None:
            where = f"{file}, rows {first_row}-{(first_row or 0) + rows - 1}: "
        super().__init__(f"{where}the model's predict failed: {cause}")


class BatchTimeoutError(SparkscoreError):
    """A mini-batch ran longer than the `timeout` setting allows."""

    def __init__(self, *, seconds: float, files: Sequence[str]) -> None:
        self.seconds, self.files = seconds, list(files)
        super().__init__(
            f"the mini-batch with {', '.join(self.files)} ran longer than timeout={seconds:g}s; "
            "raise the timeout setting or lower mini_batch_size."
        )


class WorkerDiedError(SparkscoreError):
    """Scoring one file killed the Python worker (a crash in native code, an out-of-memory kill,
    `os._exit`) in every attempt of its mini-batch, and again when the file was scored alone."""

    def __init__(self, *, file: str, how: str) -> None:
        self.file, self.how = file, how
        super().__init__(
            f"{file}: the Python worker scoring this file died ({how}) in every attempt of its "
            "mini-batch and again when the file was scored alone; the file is left out and the "
            "rest of its mini-batch was scored. Check the model's predict on this file's rows "
            "(memory, native code)."
        )


class OutputError(SparkscoreError):
    """The output location cannot be used as asked."""

    def __init__(self, *, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


class ResumeError(SparkscoreError):
    """A resumed run does not match the run whose output it would complete."""

    def __init__(self, *, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"Cannot resume into {path}: {reason}")


class ErrorThresholdExceeded(SparkscoreError):
    """More files failed than `error_threshold` tolerates."""

    def __init__(self, *, failed: int, threshold: int, total: int) -> None:
        self.failed, self.threshold, self.total = failed, threshold, total
        super().__init__(
            f"error_threshold exceeded: {failed} of {total} files failed, "
            f"error_threshold is {threshold}. See errors/ in the output for each failure."
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


class PassthroughConflictError(InputError):
    """Files give a passthrough column types that no one output column can hold; refused before
    any task starts, so the outcome does not depend on which file a task reads first."""

    def __init__(self, *, path: str, column: str, types: Mapping[str, Sequence[str]]) -> None:
        self.column = column
        self.types = {t: list(files) for t, files in types.items()}
        listed = "; ".join(f"{t} in {_some(files)}" for t, files in self.types.items())
        super().__init__(
            path=path,
            reason=f"the passthrough column '{column}' has types that no one column can hold: "
            f"{listed}. Give the column one type in every file, or leave it out of "
            "passthrough_columns.",
        )


def _some(names: Sequence[str], shown: int = 5) -> str:
    """'a.csv, b.csv and 3 more': a list of files short enough for one error line."""
    head = ", ".join(names[:shown])
    return head if len(names) <= shown else f"{head} and {len(names) - shown} more"


def python_version() -> str:
    """This interpreter's version as MLmodel files write it ('3.11.9'), for comparing the two."""
    return ".".join(map(str, sys.version_info[:3]))


def one_line(error: BaseException) -> str:
    """An exception's text on one line, for a one-line error record or message."""
    return " ".join(str(error).split())


class MissingPassthroughError(SparkscoreError):
    """A column named in passthrough_columns is absent from a file."""

    def __init__(self, *, file: str, column: str, present: Sequence[str]) -> None:
        self.file, self.column, self.present = file, column, list(present)
        super().__init__(
            f"{file}: the passthrough column '{column}' is not in this file (columns present: "
            f"{', '.join(map(str, present))}); fix passthrough_columns or the file."
        )


class PassthroughTypeError(SparkscoreError):
    """A passthrough column's values cannot be written with the type the column has elsewhere."""

    def __init__(self, *, file: str, column: str, expected: object, detail: str) -> None:
        self.file, self.column, self.expected, self.detail = file, column, expected, detail
        super().__init__(
            f"{file}: the passthrough column '{column}' cannot be written as {expected}, its type "
            f"in the output ({detail}); give the column one type in every file."
        )


class AccountingError(SparkscoreError):
    """The committed output does not account for every row read exactly once. Never the user's
    input: a defect of sparkscore, stopped before the run reports success."""

    def __init__(self, *, where: str, detail: str) -> None:
        self.where, self.detail = where, detail
        super().__init__(
            f"{where}: {detail}; the output is inconsistent, so the run is not "
            "reported as succeeded. Run again with overwrite: true, and report it."
        )


class TableSchemaError(SparkscoreError):
    """A run's output columns do not fit the table it would append to (Delta or Iceberg)."""

    def __init__(self, *, table: str, column: str, in_table: str, in_run: str, fix: str) -> None:
        self.table, self.column, self.in_table, self.in_run = table, column, in_table, in_run
        super().__init__(
            f"{table}: column '{column}' is {in_table} in the table but {in_run} in this run; "
            f"nothing was committed. {fix}"
        )


class ReferenceProfileError(SparkscoreError):
    """The `reference` setting names no profile that can be read."""

    def __init__(self, *, reference: str, reason: str) -> None:
        self.reference, self.reason = reference, reason
        super().__init__(
            f"reference {reference}: {reason}; set reference to an earlier run's output folder "
            "or to its _profile.json."
        )


class DriftError(SparkscoreError):
    """Columns drifted from the reference, and `fail_on_drift` makes that a failed run."""

    def __init__(self, *, columns: Sequence[str], reference: str) -> None:
        self.columns, self.reference = list(columns), reference
        super().__init__(
            f"fail_on_drift: {len(self.columns)} column(s) drifted from the reference "
            f"{reference}: {', '.join(self.columns)}. The output is written; see the drift "
            "section of _summary.json."
        )


class NoRunError(SparkscoreError):
    """`sparkscore report` or `show` was pointed at a folder that holds no run."""

    def __init__(self, *, path: str) -> None:
        self.path = path
        super().__init__(
            f"{path}: no sparkscore run here (no _summary.json, _run.json or _manifest/); give "
            "the --output folder of a run (or the location of a table output)."
        )


class LedgerModelError(SparkscoreError):
    """An incremental run's model is not the one its output's ledger says scored the files."""

    def __init__(self, *, output: str, ledger_sha256: str, model_sha256: str) -> None:
        self.output, self.ledger_sha256, self.model_sha256 = output, ledger_sha256, model_sha256
        super().__init__(
            f"{output}: its ledger says its files were scored by the model with sha256 "
            f"{ledger_sha256}, but this model's sha256 is {model_sha256}; nothing was scored. "
            "Score with that model, or set rescore: true to score every file again with this "
            "one (its rows then supersede the earlier ones)."
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


class ScriptWorkerDiedError(SparkscoreError):
    """The scoring script killed its Python worker (a crash in native code, an out-of-memory
    kill, `os._exit`) in every attempt of a mini-batch, and again in a last one on its own."""

    def __init__(self, *, files: Sequence[str], how: str) -> None:
        self.files, self.how = list(files), how
        super().__init__(
            f"the Python worker running the scoring script on the mini-batch of "
            f"{', '.join(self.files)} died ({how}) in every attempt and again in a last one, "
            "run alone; its files are left out and the other mini-batches were scored. Check "
            "init() and run() on these files (memory, native code)."
        )
