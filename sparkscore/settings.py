"""The knobs of a scoring run: defaults < settings file < ``--set key=value`` < arguments.

Every value is checked where it enters, so an error names the setting, the value and where it
came from (``mini_batch_size must be >= 1, got 0 (from --set mini_batch_size=0)``) before any Spark
work starts.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from dataclasses import replace as _dataclass_replace
from pathlib import Path
from typing import Any, Literal

import yaml

from sparkscore import settingchecks as checks
from sparkscore.azureconfig import is_deployment, read_deployment
from sparkscore.errors import SettingsError
from sparkscore.settingchecks import (
    BadRows,
    Check,
    EnvManager,
    LoggingLevel,
    OutputAction,
    OutputFormat,
    SchemaMode,
)

__all__ = [
    "SETTING_NAMES",
    "BadRows",
    "EnvManager",
    "LoggingLevel",
    "OutputAction",
    "OutputFormat",
    "SchemaMode",
    "Settings",
]

# One check per field, used by direct construction and by every loader alike.
_CHECKS: dict[str, Check] = {
    "mini_batch_size": checks.or_auto(checks.integer(minimum=1)),
    "error_threshold": checks.integer(minimum=-1),
    "max_retries": checks.integer(minimum=0),
    "timeout": checks.positive_seconds,
    "output_action": checks.choice(OutputAction),
    "output_format": checks.choice(OutputFormat),
    "output_file_name": checks.file_name,
    "passthrough_columns": checks.columns,
    "result_type": checks.spark_type,
    "params": checks.params,
    "batch_rows": checks.or_auto(checks.integer(minimum=1)),
    "recursive": checks.flag,
    "ignore_unsupported": checks.flag,
    "logging_level": checks.choice(LoggingLevel),
    "bad_rows": checks.choice(BadRows),
    "resume": checks.flag,
    "overwrite": checks.flag,
    "incremental": checks.flag,
    "rescore": checks.flag,
    "env_manager": checks.choice(EnvManager),
    "env_cache": checks.directory,
    "trust_model": checks.flag,
    "schema_mode": checks.choice(SchemaMode),
    "iceberg_catalog": checks.catalog,
    "iceberg_table": checks.table_name,
    "profile": checks.flag,
    "report": checks.flag,
    "reference": checks.reference,
    "drift_psi_threshold": checks.positive_number,
    "drift_null_threshold": checks.share,
    "fail_on_drift": checks.flag,
    "threads": checks.threads,
    "spark_output_columns": checks.output_columns,
    "scoring_script": checks.script,
    "code": checks.directory,
    "environment_variables": checks.variables,
}

SETTING_NAMES: tuple[str, ...] = tuple(sorted(_CHECKS))


def _checked(key: str, value: Any, source: str | None) -> Any:
    """Run the field's check and turn its verdict into an error naming key, value and source."""
    if key not in _CHECKS:
        close = difflib.get_close_matches(key, SETTING_NAMES, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise SettingsError(
            key=key,
            value=value,
            reason=f"is not a setting{hint}; valid settings: {', '.join(SETTING_NAMES)}",
            source=source,
        )
    try:
        return _CHECKS[key](value)
    except checks.Invalid as verdict:
        raise SettingsError(key=key, value=value, reason=str(verdict), source=source) from None


def _checked_layers(entries: Iterable[tuple[Any, Any, str | None]]) -> dict[str, Any]:
    """Check every value of every layer: a bad file value fails even when --set overrides it."""
    merged: dict[str, Any] = {}
    for key, value, source in entries:
        name = str(key)
        merged[name] = _checked(name, value, source)
    return merged


def _read_file(path: str | os.PathLike[str]) -> Mapping[Any, Any]:
    """Read a settings file: empty means no settings, anything but a mapping is an error."""
    name = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(
            key="settings file", value=name, reason=f"cannot be read ({exc.strerror or exc})"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        if mark is None:
            raise SettingsError(
                key="settings file",
                value=text,
                reason=f"is not valid YAML ({problem})",
                source=name,
            ) from None
        lines = text.splitlines()
        line = lines[mark.line] if mark.line < len(lines) else ""
        raise SettingsError(
            key="settings file",
            value=line,
            reason=(
                f"is not valid YAML ({problem} at line {mark.line + 1}, column {mark.column + 1})"
            ),
            source=name,
        ) from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise SettingsError(
            key="settings file",
            value=data,
            reason="must hold a mapping of setting: value",
            source=name,
        )
    return data


def _parse_override(text: Any) -> tuple[str, Any, str]:
    """Split ``key=value``; YAML types the value, so ``4``, ``true``, ``[id, ts]`` arrive typed."""
    if not isinstance(text, str) or "=" not in text:
        raise SettingsError(key="--set", value=text, reason="must look like key=value")
    key, _, raw = text.partition("=")
    key, source = key.strip(), f"--set {text}"
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise SettingsError(
            key=key, value=raw, reason=f"is not a valid YAML value ({problem})", source=source
        ) from None
    return key, value, source


@dataclass(frozen=True)
class Settings:
    """Every knob of a run, immutable and valid once built; names follow Azure ML batch jobs."""

    # files per Spark task (Azure's meaning), or auto: tasks of equal bytes, a few per core,
    # large Parquet files split at row groups and small files packed together
    mini_batch_size: int | Literal["auto"] = "auto"
    error_threshold: int = -1  # failed files tolerated before the run fails; -1 = any number
    max_retries: int = 3  # retries of a failed Spark task before its files count as failed
    timeout: float | None = None  # seconds one mini-batch may run; None = no limit
    output_action: OutputAction = "append_row"  # write prediction rows, or only the summary
    # parquet keeps types and tensors; csv reads anywhere; delta and iceberg append to
    # a Delta Lake or Iceberg table
    output_format: OutputFormat = "parquet"
    output_file_name: str = "predictions.csv"  # name for appended rows, inside the output dir
    passthrough_columns: tuple[str, ...] = ()  # input columns copied next to each prediction
    result_type: str | None = None  # Spark DDL type of predictions; None = from the signature
    params: dict[str, Any] | None = field(default=None, hash=False)  # inference params for predict
    # rows per streamed batch and predict call, or auto: about 32 MiB of input, at most 200,000
    # rows: memory per task vs. per-call cost of predict
    batch_rows: int | Literal["auto"] = "auto"
    recursive: bool = False  # also score files in subdirectories of the input
    ignore_unsupported: bool = False  # skip files of unsupported types instead of failing
    logging_level: LoggingLevel = "info"  # verbosity of sparkscore's own logs
    bad_rows: BadRows = "fail_file"  # a row failing the signature fails its file, or is skipped
    resume: bool = False  # score only the files an earlier run into this output did not finish
    overwrite: bool = False  # replace existing output instead of refusing to write
    # score only the input files the output's ledger does not hold unchanged, and add their rows
    # to the output, superseding a changed file's earlier rows (sparkscore.ledger)
    incremental: bool = False
    # incremental: rescore every file, with a model the ledger has not seen, instead of refusing
    rescore: bool = False
    env_manager: EnvManager = "local"  # run the model here, or in an env built from its pins
    env_cache: str | None = None  # where built model envs are kept; None = ~/.cache/sparkscore/envs
    # loading a pickled model runs its code: true says the model is trusted (no warning)
    trust_model: bool = False
    # appending to a table: strict refuses a run whose columns differ from the table's; merge
    # adds the run's new columns and casts its values to the table's types where that is safe
    schema_mode: SchemaMode = "strict"
    # output_format: iceberg: the pyiceberg catalog's properties; None = a SQLite catalog at
    # OUT/catalog.db with its warehouse at OUT/warehouse
    iceberg_catalog: dict[str, str] | None = field(default=None, hash=False)
    iceberg_table: str | None = None  # namespace.table; None = sparkscore.predictions
    # profile the scored rows into _profile.json (sparkscore.profile); a run with a reference
    # profiles whatever this says (Settings.profiling)
    profile: bool = True
    # write OUT/report.html at the end of the run (sparkscore.report); `sparkscore report OUT`
    # writes it later whatever this says
    report: bool = True
    # an earlier run's output folder or _profile.json to compare with (sparkscore.drift)
    reference: str | None = None
    drift_psi_threshold: float = 0.25  # PSI that flags a column: the rule of thumb's "major"
    drift_null_threshold: float = 0.05  # change in a column's null share that flags it
    fail_on_drift: bool = False  # a flagged column fails the run (after writing everything)
    # native threads per Python worker (OpenMP, BLAS, a model's n_jobs/nthread): auto = the
    # cores Spark gives each task (spark.task.cpus), off = each library's own default
    threads: int | Literal["auto", "off"] = "auto"
    # a Spark MLlib model's pipeline columns to write, as a struct (e.g. [prediction,
    # probability]; vectors as arrays of doubles); None = its prediction alone
    spark_output_columns: tuple[str, ...] | None = None
    # Azure's batch driver: a .py file defining init() and run(mini_batch), relative to `code`
    # when that is set; None: the model is scored without code (sparkscore.script)
    scoring_script: str | None = None
    code: str | None = None  # a folder shipped with the script to every executor
    # set in each Python worker before the scoring script is imported (Azure's deployment key)
    environment_variables: dict[str, str] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        """Validate direct construction too, so an invalid Settings cannot exist."""
        for name in _CHECKS:
            # Normalised values (tuple, float, dict copy) are stored despite frozen=True.
            object.__setattr__(self, name, _checked(name, getattr(self, name), None))

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        overrides: Sequence[str] = (),
        **kwargs: Any,
    ) -> Settings:
        """Build a run's effective settings: defaults < file < ``--set`` < keyword arguments.

        The file may be an Azure ML batch deployment YAML (sparkscore.azureconfig).
        """
        entries: list[tuple[Any, Any, str | None]] = []
        if path is not None:
            source = os.fspath(path)
            data = _read_file(path)
            if is_deployment(data):  # Azure's deployment YAML, read as it is
                folder = os.path.dirname(os.path.abspath(source))
                data = read_deployment(data, folder).settings
            entries += [(key, value, source) for key, value in data.items()]
        if isinstance(overrides, str):
            overrides = (overrides,)
        entries += [_parse_override(text) for text in overrides]
        # explicit kwargs always win
        entries += [(key, value, f"argument {key}") for key, value in kwargs.items()]
        return cls(**_checked_layers(entries))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], source: str | None = None) -> Settings:
        """Build from an already parsed mapping, such as a run summary's recorded settings."""
        if not isinstance(mapping, Mapping):
            raise SettingsError(
                key="settings",
                value=mapping,
                reason="must be a mapping of setting: value",
                source=source,
            )
        return cls(**_checked_layers((key, value, source) for key, value in mapping.items()))

    @property
    def profiling(self) -> bool:
        """Whether the run profiles its rows: asked for, or needed to compare with a reference;
        never with a scoring script, which calls the model itself (sparkscore sees no rows)."""
        return (self.profile or self.reference is not None) and self.scoring_script is None

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some settings changed, checked like any other argument."""
        entries = ((key, value, f"argument {key}") for key, value in changes.items())
        checked = _checked_layers(entries)
        return _dataclass_replace(self, **checked)

    def to_dict(self) -> dict[str, Any]:
        """Return plain JSON types, to record the effective settings in a run summary."""
        return {item.name: _json_value(getattr(self, item.name)) for item in fields(self)}


def _json_value(value: Any) -> Any:
    """Tuples as lists and mappings as dicts, recursively: a setting as JSON and YAML write it,
    and as it reads back."""
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _json_value(item) for key, item in value.items()}
    return value
