"""Writing the output: part files committed whole per mini-batch, then their manifest, and the
driver's final files (JSON written whole, the consolidated CSV). Where each lives is
sparkscore.layout.

Parts are named by mini-batch, written under a hidden temporary name and moved into place, so a
retried or speculative attempt replaces the first attempt's file instead of adding a duplicate.
Pure pyarrow: it runs inside tasks as well as on the driver.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from sparkscore.csvtext import csv_header, csv_lines, csv_ready
from sparkscore.errors import OutputError, one_line
from sparkscore.failures import ERROR_SCHEMA
from sparkscore.layout import JOB_ID, OutputLayout
from sparkscore.manifest import FileRecord, Manifest, TaskRun
from sparkscore.profile import Profile
from sparkscore.scoring import BatchResult, FileResult
from sparkscore.spilling import SpillBuffer

__all__ = [
    "ROW_GROUP_BYTES",
    "ROW_GROUP_ROWS",
    "commit_batch",
    "commit_parts",
    "committed_manifests",
    "fail_split_files",
    "parquet_writer",
    "read_json",
    "read_manifests",
    "unwritable",
    "with_job_id",
    "write_csv",
    "write_json",
    "write_manifest",
    "write_part",
]


def write_part(
    fs: pafs.FileSystem, path: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]
) -> int:
    """Write batches to `path` whole or not at all; with no rows, make sure no stale part
    remains."""
    directory = path.rsplit("/", 1)[0]
    temporary = f"{directory}/.{path.rsplit('/', 1)[1]}.{uuid.uuid4().hex}.tmp"
    rows = 0
    writer: pq.ParquetWriter | None = None
    stream: pa.NativeFile | None = None
    try:
        for table in _row_groups(batches, schema):
            if writer is None:
                fs.create_dir(directory, recursive=True)
                stream = fs.open_output_stream(temporary)
                writer = parquet_writer(stream, schema)
            writer.write_table(table)
            rows += table.num_rows
        # The writer does not close a stream it was given; an object store's upload completes
        # only when the stream closes, and a full disk may only show then.
        _close(writer, stream)
        if writer is None:
            _delete_if_exists(fs, path)
            return 0
        fs.move(temporary, path)
    except BaseException as e:
        # Not at all: the half-written temporary goes, and any earlier part stays as it was.
        with contextlib.suppress(Exception):
            _close(writer, stream)
        with contextlib.suppress(Exception):
            _delete_if_exists(fs, temporary)
        if isinstance(e, OSError):
            raise unwritable(path, e) from e
        raise
    return rows


def unwritable(path: str, e: OSError) -> OutputError:
    """A write that failed (a full disk, a missing permission), naming the file it was for."""
    return OutputError(
        path=path,
        reason=f"cannot be written ({one_line(e)}). Check the space and "
        "permissions there, or choose another output.",
    )


# Each write is a row group: one-row batches (an image file, a tiny CSV) are gathered first, or
# a part with thousands of them is many times larger and slower to read than its rows need.
ROW_GROUP_ROWS = 1 << 17
ROW_GROUP_BYTES = 32 << 20


def _row_groups(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.Table]:
    """Batches gathered into tables of about ROW_GROUP_ROWS rows or ROW_GROUP_BYTES, in order."""
    pending: list[pa.RecordBatch] = []
    rows = nbytes = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        rows += batch.num_rows
        nbytes += batch.nbytes
        if rows >= ROW_GROUP_ROWS or nbytes >= ROW_GROUP_BYTES:
            yield pa.Table.from_batches(pending, schema=schema)
            pending, rows, nbytes = [], 0, 0
    if pending:
        yield pa.Table.from_batches(pending, schema=schema)


def parquet_writer(where: str | pa.NativeFile, schema: pa.Schema) -> pq.ParquetWriter:
    """A Parquet writer whose encodings suit prediction output.

    The writer's default tries a dictionary for every column. Each `row` value is unique and
    ascending: it builds a dictionary as large as the column, gives up, and still writes 8
    bytes a value, where delta packing writes a few bits. Float values rarely repeat either.
    Measured on 400,000 rows (file_name, row, int64 prediction): 53 ms and 1.9 MB with the
    default, 35 ms and 58 KB with these.
    """
    dictionary, encodings = [], {}
    for path, leaf in _leaves(schema):
        if path == "row" and pa.types.is_integer(leaf):
            encodings[path] = "DELTA_BINARY_PACKED"
        elif not pa.types.is_floating(leaf):
            dictionary.append(path)
    return pq.ParquetWriter(
        where, schema, use_dictionary=dictionary or False, column_encoding=encodings or None
    )


def _leaves(schema: pa.Schema) -> Iterator[tuple[str, pa.DataType]]:
    """Each leaf column's Parquet path and type (lists as name.list.element, maps as
    name.key_value.key and .value, the writer's own naming)."""

    def walk(path: str, t: pa.DataType) -> Iterator[tuple[str, pa.DataType]]:
        if pa.types.is_struct(t):
            for i in range(t.num_fields):
                yield from walk(f"{path}.{t.field(i).name}", t.field(i).type)
        elif pa.types.is_map(t):
            yield from walk(f"{path}.key_value.key", t.key_type)
            yield from walk(f"{path}.key_value.value", t.item_type)
        elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            yield from walk(f"{path}.list.element", t.value_type)
        else:
            yield path, t

    for field in schema:
        yield from walk(field.name, field.type)


def _close(writer: pq.ParquetWriter | None, stream: pa.NativeFile | None) -> None:
    if writer is not None:
        writer.close()
    if stream is not None and not stream.closed:
        stream.close()


def commit_batch(
    fs: pafs.FileSystem,
    layout: OutputLayout,
    result: BatchResult,
    buffers: list[SpillBuffer],
    schema: pa.Schema,
    task: TaskRun,
) -> Manifest:
    """Commit a mini-batch sparkscore scored: its good files' predictions, its errors, then its
    manifest; the buffers are discarded whatever happens."""
    kept = [b for f, b in zip(result.files, buffers) if not f.failed]
    try:
        return commit_parts(
            fs,
            layout,
            schema,
            (batch for b in kept for batch in b.batches()),
            index=result.index,
            files=result.files,
            errors=result.errors,
            task=task,
            profile=None if result.profile is None else replace(result.profile, batches=1),
        )
    finally:
        for b in buffers:
            b.discard()


def commit_parts(
    fs: pafs.FileSystem,
    layout: OutputLayout,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    *,
    index: int,
    files: Sequence[FileResult],
    errors: list[dict[str, Any]],
    task: TaskRun,
    profile: Profile | None = None,
    items: int | None = None,
    script_output: str | None = None,
) -> Manifest:
    """The commit protocol of a mini-batch, whoever scored it: its predictions part, its errors
    part (none: no part), then its manifest, last because it is what commits the parts: a
    mini-batch without one is not done, and its retry writes the parts again over them."""
    rows = write_part(
        fs, layout.part(layout.predictions, index), *with_job_id(layout, schema, batches)
    )
    records = [pa.RecordBatch.from_pylist(errors, schema=ERROR_SCHEMA)] if errors else []
    write_part(fs, layout.part(layout.errors, index), *with_job_id(layout, ERROR_SCHEMA, records))
    manifest = Manifest(
        batch=index,
        files=tuple(FileRecord.of(f) for f in files),
        prediction_rows=rows,
        error_records=len(errors),
        task=task,
        profile=profile,
        items=items,
        script_output=script_output,
    )
    write_manifest(fs, layout, manifest)
    return manifest


def with_job_id(
    layout: OutputLayout, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """A part's columns and rows, with the run's job id as a last column where the layout's
    parts carry it (an Iceberg table's: sparkscore.iceberg adds them as they are)."""
    if not layout.job_column:
        return schema, iter(batches)
    field = pa.field(JOB_ID, pa.string())
    return schema.append(field), (
        pa.RecordBatch.from_arrays(
            [*b.columns, pa.repeat(pa.scalar(layout.run, pa.string()), b.num_rows)],
            schema=b.schema.append(field),
        )
        for b in batches
    )


def fail_split_files(
    fs: pafs.FileSystem, layout: OutputLayout, manifests: Sequence[Manifest], bad_rows: str
) -> list[Manifest]:
    """A file split over several mini-batches fails as a whole when one of its slices failed.

    Under `bad_rows: fail_file` the other slices' rows leave predictions/ and count as failed;
    the manifests are rewritten to say so, so a resumed run sees the same outcome.
    """
    if bad_rows != "fail_file":
        return list(manifests)
    failed = {f.file_name for m in manifests for f in m.files if f.failed}
    return [_fail_slices(fs, layout, m, failed) for m in manifests]


def _fail_slices(
    fs: pafs.FileSystem, layout: OutputLayout, manifest: Manifest, failed: set[str]
) -> Manifest:
    """`manifest` with its succeeded slices of `failed` files failed, their rows removed."""
    stale = {f.file_name for f in manifest.files if not f.failed} & failed
    if not stale:
        return manifest
    part = layout.part(layout.predictions, manifest.batch)
    rows = 0
    if fs.get_file_info(part).type == pafs.FileType.File:
        import pyarrow.compute as pc

        table = pq.read_table(part, filesystem=fs)
        table = table.filter(pc.invert(pc.is_in(table["file_name"], pa.array(sorted(stale)))))
        rows = write_part(fs, part, table.schema, iter(table.to_batches()))
    fixed = replace(
        manifest,
        prediction_rows=rows,
        files=tuple(f.failed_whole() if f.file_name in stale else f for f in manifest.files),
    )
    write_manifest(fs, layout, fixed)
    return fixed


def write_manifest(fs: pafs.FileSystem, layout: OutputLayout, manifest: Manifest) -> None:
    """Commit a mini-batch: its manifest is written last, whole, on one line."""
    write_json(fs, layout.manifest(manifest.batch), manifest.to_json(), indent=None)


def write_json(fs: pafs.FileSystem, path: str, doc: Any, *, indent: int | None = 2) -> None:
    """Write JSON whole or not at all; `indent` None writes one line, 10x faster for a
    manifest of thousands of files (json's indenting encoder is pure Python)."""
    directory = path.rsplit("/", 1)[0]
    temporary = f"{directory}/.{path.rsplit('/', 1)[1]}.{uuid.uuid4().hex}.tmp"
    try:
        fs.create_dir(directory, recursive=True)
        with fs.open_output_stream(temporary) as f:
            f.write(json.dumps(doc, indent=indent, default=str).encode())
        fs.move(temporary, path)
    except OSError as e:
        with contextlib.suppress(Exception):
            _delete_if_exists(fs, temporary)
        raise unwritable(path, e) from e


def read_json(fs: pafs.FileSystem, path: str) -> Any:
    with fs.open_input_stream(path) as f:
        return json.loads(f.read().decode())


def read_manifests(fs: pafs.FileSystem, layout: OutputLayout) -> dict[int, Any]:
    """The committed mini-batches' manifest documents, by index, as they are on disk."""
    info = fs.get_file_info(layout.manifests)
    if info.type != pafs.FileType.Directory:
        return {}
    found = {}
    for entry in fs.get_file_info(pafs.FileSelector(layout.manifests)):
        name = entry.base_name
        if name.startswith("batch-") and name.endswith(".json"):
            doc = read_json(fs, entry.path)
            found[int(doc["batch"])] = doc
    return found


def committed_manifests(fs: pafs.FileSystem, layout: OutputLayout) -> dict[int, Manifest]:
    """The committed mini-batches, by index: what a resume skips and what a failed job kept."""
    return {index: Manifest.from_json(doc) for index, doc in read_manifests(fs, layout).items()}


def write_csv(
    fs: pafs.FileSystem, layout: OutputLayout, indexes: list[int], passthrough: list[str]
) -> int:
    """Seed 002's predictions.csv: `row,prediction,file_name` (+ passthrough), by file then row,
    each value quoted only where needed (sparkscore.csvtext).

    Parts are read in mini-batch order, and the plan orders files by name, so concatenating
    them streams rows in the documented order without a sort.
    """
    temporary = f"{layout.root}/.{layout.output_file_name}.{uuid.uuid4().hex}.tmp"
    columns = ["row", "prediction", "file_name", *passthrough]
    rows = 0
    with fs.open_output_stream(temporary) as out:
        out.write(csv_header(columns))
        for index in indexes:
            part = layout.part(layout.predictions, index)
            if fs.get_file_info(part).type != pafs.FileType.File:
                continue
            with fs.open_input_file(part) as f:
                for batch in pq.ParquetFile(f).iter_batches():
                    table = csv_ready(pa.Table.from_batches([batch]).select(columns))
                    out.write(csv_lines(table))
                    rows += table.num_rows
    fs.move(temporary, layout.csv)
    return rows


def _delete_if_exists(fs: pafs.FileSystem, path: str) -> None:
    if fs.get_file_info(path).type == pafs.FileType.File:
        fs.delete_file(path)
