"""What a scoring script produced, committed exactly once: its rows, its errors and its files.

A task commits a mini-batch as a no-code one does (`writers.commit_parts`: parts named by
mini-batch, then the manifest), and stages the files the script wrote to
`AZUREML_BI_OUTPUT_PATH` under `OUT/_script_output/<batch>-<attempt>/` before it: the manifest
names the one folder that counts. The driver then moves the files of committed mini-batches into
OUT (`land_outputs`) and removes the folder with whatever failed or retried attempts staged, so
a file lands once, and only with its mini-batch. A resumed run lands what a killed one committed
but did not land.
Pure pyarrow: tasks and the driver both use it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from sparkscore.csvtext import csv_header, csv_lines, csv_ready
from sparkscore.layout import OutputLayout, remove_dir
from sparkscore.manifest import Manifest, TaskRun
from sparkscore.scriptrun import ScriptResult
from sparkscore.writers import commit_parts, unwritable

__all__ = ["STAGED", "commit_script_batch", "land_outputs", "write_script_csv"]

STAGED = "_script_output"


def commit_script_batch(
    fs: pafs.FileSystem, layout: OutputLayout, result: ScriptResult, task: TaskRun
) -> Manifest:
    """Stage the script's files, then commit the rows run returned, the errors and the manifest
    that names the staged folder."""
    table = result.table
    return commit_parts(
        fs,
        layout,
        table.schema if table is not None else pa.schema([]),
        table.to_batches() if table is not None else [],
        index=result.index,
        files=result.files,
        errors=result.errors,
        task=task,
        items=result.items,
        script_output=_stage(fs, layout, result) if table is not None else None,
    )


def _stage(fs: pafs.FileSystem, layout: OutputLayout, result: ScriptResult) -> str | None:
    """Copy the files the script wrote into this attempt's own staging folder; its name, or
    None when it wrote none."""
    found = [
        os.path.join(folder, name)
        for folder, _, names in os.walk(result.outputs)
        for name in sorted(names)
    ]
    if not found:
        return None
    name = f"batch-{result.index:05d}-{uuid.uuid4().hex[:12]}"
    staged = f"{layout.root}/{STAGED}/{name}"
    for path in found:
        relative = os.path.relpath(path, result.outputs).replace(os.sep, "/")
        target = f"{staged}/{relative}"
        try:
            fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            with open(path, "rb") as source, fs.open_output_stream(target) as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
        except OSError as e:
            raise unwritable(target, e) from e
    return name


def land_outputs(fs: pafs.FileSystem, layout: OutputLayout, manifests: Sequence[Manifest]) -> int:
    """Move the staged files of committed mini-batches into the output; drop all other staging.

    Returns the number of files landed. Idempotent: a folder already landed is gone.
    """
    staging = f"{layout.root}/{STAGED}"
    landed = 0
    for manifest in manifests:
        if manifest.script_output is None:
            continue
        folder = f"{staging}/{manifest.script_output}"
        if fs.get_file_info(folder).type != pafs.FileType.Directory:
            continue
        for entry in fs.get_file_info(pafs.FileSelector(folder, recursive=True)):
            if entry.type != pafs.FileType.File:
                continue
            target = f"{layout.root}/{entry.path[len(folder) + 1 :]}"
            fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            if fs.get_file_info(target).type == pafs.FileType.File:
                fs.delete_file(target)
            fs.move(entry.path, target)
            landed += 1
    remove_dir(fs, staging)
    return landed


def write_script_csv(fs: pafs.FileSystem, layout: OutputLayout, indexes: list[int]) -> int:
    """The rows scripts returned as one CSV, in mini-batch order, with every column any
    mini-batch returned (a column another did not return is empty there), quoted only where
    needed; nested values as JSON text, as the no-code CSV writes them."""
    parts = [layout.part(layout.predictions, i) for i in indexes]
    parts = [p for p in parts if fs.get_file_info(p).type == pafs.FileType.File]
    schemas = [pq.read_schema(p, filesystem=fs) for p in parts]
    schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else pa.schema([])
    temporary = f"{layout.root}/.{layout.output_file_name}.{uuid.uuid4().hex}.tmp"
    rows = 0
    with fs.open_output_stream(temporary) as out:
        out.write(csv_header(schema.names))
        for part in parts:
            table = pq.read_table(part, filesystem=fs)
            for field in schema:
                if field.name not in table.column_names:
                    table = table.append_column(field, pa.nulls(table.num_rows, field.type))
            out.write(csv_lines(csv_ready(table.select(schema.names).cast(schema))))
            rows += table.num_rows
    fs.move(temporary, layout.csv)
    return rows
