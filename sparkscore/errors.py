"""Every failure sparkscore reports on purpose: the one place callers import errors from.

Our exception hierarchy (the module holding each branch in brackets: [base] is
`errorbase.py`, [model] `modelerrors.py`, [input] `inputerrors.py`, the rest are here):

* SparkscoreError [base]
  * ModelFormatError        - the model directory or its MLmodel file is unusable [model]
  * ModelLoadError          - the model's code or pickle cannot be loaded here [model]
    * MissingDependencyError  - a package the model or its loader needs is not installed
    * UntrustedTypeError      - a skops file holds a type the model does not declare trusted
  * SchemaEnforcementError  - input data does not satisfy the model signature [input]
    * MissingColumnError      - a required column is absent
    * TensorShapeError        - a tensor input has the wrong shape
      * ImageShapeError         - an image cannot be reshaped to the tensor the signature takes
  * ParamError              - an inference parameter is unknown or mistyped [input]
  * SettingsError           - a setting is unknown or has a bad value
  * InputError              - the input location is unusable [input]
    * UnsupportedInputError   - the input holds files of types we cannot score
    * PassthroughConflictError - files give a passthrough column types no one type holds
  * ReadError               - one input file cannot be read [input]
  * MissingPassthroughError - a column named in passthrough_columns is absent from a file [input]
  * PassthroughTypeError    - a file's passthrough values cannot take the column's type [input]
  * PredictError            - the model's predict raised
  * BatchTimeoutError       - a mini-batch ran longer than `timeout`
  * WorkerDiedError         - scoring one file killed its Python worker, every time
  * OutputError             - the output location cannot be written as asked
  * ResumeError             - a resume does not match the run it resumes
  * ErrorThresholdExceeded  - more files failed than `error_threshold` tolerates
  * ModelEnvironmentError   - the model's own environment cannot be had (env_manager) [model]
    * PythonVersionError      - the model was saved with another Python than the job's
    * EnvironmentBuildError   - installing the model's pinned packages failed
  * ModelProcessError       - the process scoring in the model's environment died [model]
  * AccountingError         - the rows written do not add up to the rows read (a bug, reported)
  * TableSchemaError        - a run's columns do not fit the table it appends to
  * ReferenceProfileError   - the `reference` run's profile cannot be read
  * DriftError              - columns drifted from the reference, with `fail_on_drift: true`
  * NoRunError              - `sparkscore report`/`show` pointed at a folder with no run
  * LedgerModelError        - an incremental output was scored by another model (`rescore`)
  * SparkPipelineError      - a Spark MLlib model cannot be scored as asked [model]
  * ScoringScriptError      - the scoring script cannot be imported, or lacks init or run [model]
  * ScriptWorkerDiedError   - the scoring script killed its worker on a mini-batch, every time

Here are the run's own errors: a setting, a mini-batch that fails as a whole, the output, and
what a run is checked against. A new error goes in the module of its concept, in this tree, and
in the imports and `__all__` below, so that `from sparkscore.errors import X` reaches every one.
The concept modules import only `errorbase.py`, never this module. `one_line` and
`python_version` are re-exported for the callers that format errors.

Fields are attributes so that error records and tests read them, not the prose.
"""

from __future__ import annotations

from collections.abc import Sequence

from sparkscore.errorbase import SparkscoreError
from sparkscore.errorbase import one_line as one_line
from sparkscore.errorbase import python_version as python_version
from sparkscore.inputerrors import (
    ImageShapeError,
    InputError,
    MissingColumnError,
    MissingPassthroughError,
    ParamError,
    PassthroughConflictError,
    PassthroughTypeError,
    ReadError,
    SchemaEnforcementError,
    TensorShapeError,
    UnsupportedInputError,
)
from sparkscore.modelerrors import (
    EnvironmentBuildError,
    MissingDependencyError,
    ModelEnvironmentError,
    ModelFormatError,
    ModelLoadError,
    ModelProcessError,
    PythonVersionError,
    ScoringScriptError,
    SparkPipelineError,
    UntrustedTypeError,
)

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


class SettingsError(SparkscoreError):
    """A setting is unknown or its value is not allowed."""

    def __init__(self, *, key: str, value: object, reason: str, source: str | None = None) -> None:
        self.key, self.value, self.reason, self.source = key, value, reason, source
        origin = f" (from {source})" if source else ""
        super().__init__(f"{key} {reason}, got {value!r}{origin}")


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
