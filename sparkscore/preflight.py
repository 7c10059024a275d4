"""Before spending compute: what the job will do, and which files would fail, from metadata only.

The model is only read (its MLmodel file), never loaded: loading unpickles it or imports its
code, which runs code from the model, and a plan must be safe to ask of any model. Each file's
columns and types come from its Parquet footer or its CSV header and first block;
an image is decoded and shaped as the job would; nothing is scored. A file "would fail" when a
column the signature requires is missing or has a type that cannot hold the declared one, or
when an image cannot be decoded or does not fit the model's input tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
from pyarrow import fs as pafs

from sparkscore.errors import (
    PassthroughConflictError,
    ReadError,
    SchemaEnforcementError,
    one_line,
)
from sparkscore.images import ImageInput, read_bytes
from sparkscore.listing import InputFile
from sparkscore.model import read_spec
from sparkscore.passthrough import passthrough_types
from sparkscore.planner import Plan, plan
from sparkscore.readers import csv_column_types, peek_schema
from sparkscore.registry import local_model_dir
from sparkscore.script import ScoringScript, checked_script, script_model
from sparkscore.settings import Settings
from sparkscore.signature import ColSpec, DataType, Schema, Signature, TensorSpec
from sparkscore.storage import resolve

__all__ = [
    "SHOWN_FILES",
    "FileCheck",
    "check_file",
    "check_files",
    "check_image",
    "preflight",
    "render",
]

# Past this many files the plan names only the files with something to say: a landing folder of
# a hundred thousand files would otherwise print a hundred thousand "ok" lines.
SHOWN_FILES = 50
_CHECK_THREADS = 8


@dataclass(frozen=True)
class FileCheck:
    """One file's verdict: problems make it fail; notes are what may still fail on some values."""

    file: InputFile
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def check_files(
    fs: pafs.FileSystem, files: Sequence[InputFile], schema: Schema | None
) -> list[FileCheck]:
    """Each file checked, on threads: a check is a small read that mostly waits on storage
    (pyarrow releases the GIL), and a landing folder can hold a hundred thousand files."""
    if len(files) < 2:
        return [check_file(fs, f, schema) for f in files]
    with ThreadPoolExecutor(max_workers=_CHECK_THREADS) as pool:
        return list(pool.map(lambda f: check_file(fs, f, schema), files))


def check_file(fs: pafs.FileSystem, file: InputFile, schema: Schema | None) -> FileCheck:
    if file.kind == "image":
        return check_image(fs, file, schema)
    try:
        found = peek_schema(fs, file)
    except ReadError as e:
        return FileCheck(file, problems=(e.reason.rstrip("."),))
    except (pa.ArrowException, OSError) as e:
        return FileCheck(file, problems=(f"cannot be read: {one_line(e)}",))
    if schema is not None and schema.is_tensor and len(schema.specs) == 1:
        spec = schema.specs[0]
        assert isinstance(spec, TensorSpec)
        columns = len(found.names)
        if (
            len(spec.shape) == 2
            and spec.shape[1] not in (-1, columns)
            or len(spec.shape) > 2
            and columns != 1
        ):
            # mlflow makes a table of several columns one 2-D tensor (rows x columns).
            return FileCheck(
                file,
                problems=(
                    f"has {columns} columns, which cannot make the model's input tensor of shape "
                    f"{list(spec.shape)}",
                ),
            )
    if schema is None or schema.is_tensor or not schema.has_names:
        return FileCheck(file)
    problems, notes = [], []
    for spec in schema.specs:
        if not isinstance(spec, ColSpec) or not isinstance(spec.type, DataType):
            continue
        if spec.name not in found.names:
            if spec.required:
                problems.append(f"missing column '{spec.name}' ({spec.type.value})")
            continue
        verdict = _fits(found.field(spec.name).type, spec.type)
        if (
            verdict == "maybe"
            and file.kind == "csv"
            and _is_text(found.field(spec.name).type)
            and spec.type is not DataType.datetime
        ):
            # CSV types are inferred from the first block: text there means a value in it is
            # not a number (or a boolean), which will fail.
            verdict = "no"
        if verdict == "no":
            problems.append(
                f"column '{spec.name}' is {found.field(spec.name).type}, "
                f"which cannot hold {spec.type.value}"
            )
        elif verdict == "maybe":
            notes.append(
                f"column '{spec.name}' is {found.field(spec.name).type}; values must "
                f"convert to {spec.type.value} one by one"
            )
    return FileCheck(file, tuple(problems), tuple(notes))


def check_image(fs: pafs.FileSystem, file: InputFile, schema: Schema | None) -> FileCheck:
    """Decode the image and shape it as the job would: the same verdict, without the model."""
    try:
        ImageInput.for_schema(schema).model_input(read_bytes(fs, file), name=file.name)
    except (ReadError, SchemaEnforcementError) as e:
        return FileCheck(file, problems=((getattr(e, "reason", None) or str(e)).rstrip("."),))
    return FileCheck(file)


def _is_text(actual: pa.DataType) -> bool:
    return bool(pa.types.is_string(actual) or pa.types.is_large_string(actual))  # pyarrow: untyped


def _fits(actual: pa.DataType, declared: DataType) -> str:
    """'yes', 'maybe' (depends on the values) or 'no'."""
    t = pa.types
    if t.is_null(actual):
        return "maybe"  # a CSV column empty in its first block
    if t.is_decimal(actual) and declared in (
        DataType.double,
        DataType.float,
        DataType.long,
        DataType.integer,
    ):
        return "maybe"  # each value converts only when the number reads back unchanged
    if declared in (DataType.double, DataType.float):
        if t.is_floating(actual) or t.is_integer(actual):
            return "yes" if not (declared is DataType.float and t.is_float64(actual)) else "maybe"
        return "maybe" if _is_text(actual) else "no"
    if declared in (DataType.long, DataType.integer):
        if t.is_integer(actual):
            return "yes" if declared is DataType.long or actual.bit_width <= 32 else "maybe"
        return "maybe" if t.is_floating(actual) or _is_text(actual) else "no"
    if declared is DataType.string:
        return "yes" if _is_text(actual) else "no"
    if declared is DataType.boolean:
        return "yes" if t.is_boolean(actual) else "no"
    if declared is DataType.datetime:
        if t.is_timestamp(actual) and actual.tz is not None:
            return "no"  # as mlflow: a datetime spec takes timezone-naive values only
        if t.is_timestamp(actual) and actual.unit == "ns":
            return "yes"
        if t.is_timestamp(actual) or t.is_date(actual):
            return "maybe"  # a unit that reaches past datetime64[ns]'s years 1677 to 2262
        return "maybe" if _is_text(actual) else "no"
    if declared is DataType.binary:
        return "yes" if t.is_binary(actual) or t.is_large_binary(actual) else "maybe"
    return "maybe"


def _part(f: InputFile) -> str:
    if f.row_groups is None:
        return f.name
    return f"{f.name} [row groups {f.row_groups[0]}-{f.row_groups[-1]}, from row {f.first_row}]"


def _type_label(spec: ColSpec | TensorSpec) -> str:
    """A spec's type as the signature names it (`double`, `array`, `tensor`)."""
    if isinstance(spec, ColSpec) and isinstance(spec.type, DataType):
        return spec.type.value
    return str(spec.to_dict().get("type"))


def _plan_lines(plan: Plan) -> list[str]:
    """The input and its mini-batches: file by file up to SHOWN_FILES files; past that, each
    mini-batch by its first and last file and how many."""
    lines = [f"input: {plan.uri} ({len(plan.files)} files, {plan.total_bytes:,} bytes)"]
    if plan.skipped:
        lines.append(f"unsupported files skipped: {', '.join(plan.skipped)}")
    if plan.broken_links:
        lines.append(f"symbolic links to nothing skipped: {', '.join(plan.broken_links)}")
    lines.append(f"mini-batches (Spark tasks): {len(plan.batches)}")
    many = len(plan.files) > SHOWN_FILES
    for batch in plan.batches:
        parts = [_part(f) for f in batch.files]
        if many and len(parts) > 2:
            parts = [parts[0], f"... {parts[-1]} ({len(parts):,} files)"]
        lines.append(f"  {batch.index}: {batch.bytes:,} bytes: {', '.join(parts)}")
    return lines


def render(plan: Plan, checks: Sequence[FileCheck], signature: Signature | None) -> str:
    """The plan as a user reads it before running the job; past SHOWN_FILES files, only the
    files with something to say are listed."""
    lines = _plan_lines(plan)
    many = len(plan.files) > SHOWN_FILES
    inputs = signature.inputs if signature else None
    if inputs is None:
        lines.append("signature: none (inputs are not checked)")
    else:
        described = ", ".join(
            f"{s.name or i}: {_type_label(s)}"
            + (f" {s.dtype} {list(s.shape)}" if isinstance(s, TensorSpec) else "")
            + ("" if not isinstance(s, ColSpec) or s.required else " (optional)")
            for i, s in enumerate(inputs.specs)
        )
        lines.append(f"signature inputs: {described}")
    lines.append("files:")
    said = [c for c in checks if not c.ok or c.notes] if many else list(checks)
    for c in said:
        verdict = "ok" if c.ok else "WOULD FAIL"
        lines.append(f"  {c.file.name} ({c.file.size:,} bytes): {verdict}")
        lines.extend(f"    - {p}" for p in c.problems)
        lines.extend(f"    - note: {n}" for n in c.notes)
    if len(said) < len(checks):
        lines.append(f"  {len(checks) - len(said):,} {'other ' if said else ''}files: ok")
    failing = [c for c in checks if not c.ok]
    if failing:
        named = "; ".join(f"{c.file.name}: {c.problems[0]}" for c in failing[:SHOWN_FILES])
        more = f"; and {len(failing) - SHOWN_FILES:,} more" if len(failing) > SHOWN_FILES else ""
        lines.append(f"{len(failing)} of {len(checks)} files would fail: {named}{more}")
    else:
        lines.append(f"all {len(checks)} files satisfy the signature")
    return "\n".join(lines)


def preflight(
    model_uri: str, input_uri: str, settings: Settings, *, parallelism: int
) -> tuple[str, bool]:
    """Read the model, plan the input and check each file: (the report, whether all is well).

    With a scoring script, the script is imported and checked to define init and run (neither
    is called) instead: it, not the signature, decides what a file must hold.
    """
    script = checked_script(settings)
    if script is not None:
        return _script_plan(model_uri, input_uri, script, settings, parallelism), True
    spec = read_spec(local_model_dir(model_uri)[0])
    the_plan = _planned(input_uri, settings, parallelism, any_type=False)
    fs, _ = resolve(input_uri)
    checks = check_files(fs, the_plan.files, spec.signature.inputs if spec.signature else None)
    report = render(the_plan, checks, spec.signature)
    declared = csv_column_types(spec.signature.inputs if spec.signature else None)
    try:
        passthrough_types(
            fs,
            the_plan.files,
            [c for c in settings.passthrough_columns if c not in declared],
            uri=input_uri,
        )
    except PassthroughConflictError as e:
        return f"{report}\nthe job would be refused: {e.reason}", False
    return report, all(c.ok for c in checks)


def _script_plan(
    model_uri: str, input_uri: str, script: ScoringScript, settings: Settings, parallelism: int
) -> str:
    """The plan of a run with a scoring script (checked already)."""
    script_model(local_model_dir(model_uri, mlmodel=False)[0])
    the_plan = _planned(input_uri, settings, parallelism, any_type=True)
    shipped = script.folder or script.path
    return "\n".join(
        [
            *_plan_lines(the_plan),
            f"scoring script: {script.path} (shipped: {shipped}): imports, and defines init "
            "and run (neither was called)",
        ]
    )


def _planned(input_uri: str, settings: Settings, parallelism: int, *, any_type: bool) -> Plan:
    return plan(
        input_uri,
        mini_batch_size=settings.mini_batch_size,
        recursive=settings.recursive,
        ignore_unsupported=settings.ignore_unsupported,
        parallelism=parallelism,
        any_type=any_type,
    )
