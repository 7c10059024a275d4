"""Read one input file as a stream of bounded Arrow record batches, inside the task.

Each task opens its own files with pyarrow (no JVM read), so memory per task is bounded by
`batch_rows` however large a file is, and a file that cannot be read fails alone. Here: the
dispatch by kind, Parquet, and regrouping into batches; CSV reading and sniffing is `csvfiles`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from sparkscore.csvfiles import RaggedRow, count_csv_rows, csv_schema, read_csv
from sparkscore.dtypes import TYPES
from sparkscore.errors import ReadError
from sparkscore.listing import InputFile
from sparkscore.prefetch import WHOLE_FILE_BYTES
from sparkscore.signature import ColSpec, DataType, Schema
from sparkscore.unreadable import duplicates, read_error, repeated_column

__all__ = [
    "BATCH_BYTES",
    "INT96_UNIT",
    "MAX_AUTO_ROWS",
    "auto_rows",
    "batch_bytes",
    "count_rows",
    "csv_column_types",
    "peek_schema",
    "read_batches",
    "rebatch",
]

_THREADED_BYTES = 8 << 20
# A Parquet file of WHOLE_FILE_BYTES or less is read in one request and parsed from memory: on
# object storage one GET instead of a footer read and a read per column chunk; on local disk
# 0.26 ms instead of 0.32 for a 100-row, 11-column file.
# Legacy INT96 timestamps (Spark's and Hive's old default) are read at microseconds, the unit
# they are written from: read at pyarrow's default of nanoseconds, a year-9999 value silently
# wraps around to 1816.
INT96_UNIT = "us"


def csv_column_types(schema: Schema | None) -> dict[str, pa.DataType]:
    """Arrow types to parse CSV columns with, so an integer column stays an integer."""
    if schema is None or schema.is_tensor or not schema.has_names:
        return {}
    return {
        s.name: TYPES[s.type].arrow
        for s in schema.specs
        if isinstance(s, ColSpec) and isinstance(s.type, DataType) and s.name is not None
    }


def read_batches(
    fs: pafs.FileSystem,
    file: InputFile,
    *,
    batch_rows: int | None,
    column_types: Mapping[str, pa.DataType] | None = None,
    columns: Sequence[str] | None = None,
    ragged: list[RaggedRow] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of at most `batch_rows` rows (None: about BATCH_BYTES each), in file order.

    `columns` limits a file to those columns when it has them all: the rest of a wide Parquet
    file is never decoded, the rest of a CSV never converted. A file without one of them is read
    whole, so that the error about the missing column can list every column the file has.

    Raises ReadError for a file that cannot be read, CsvConversionError when a CSV value does not
    parse as its `column_types` entry, and CsvRaggedRowError for a CSV row with too few or too
    many values. Given a `ragged` list, a CSV is read on one thread (so pyarrow knows each row's
    number) and such rows are skipped and appended to it, in file order, as they are parsed: at
    the latest before the batch that follows them.
    """
    if file.kind == "csv":
        batches = read_csv(fs, file, column_types or {}, columns, ragged)
    elif file.kind == "parquet":
        batches = _parquet(fs, file, batch_rows, columns)
    else:
        raise ReadError(file=file.name, reason=f"files of kind {file.kind!r} are not tables.")
    yield from rebatch(batches, batch_rows)


# `batch_rows: auto`: big enough that predict's per-call cost vanishes (a forest predicts ~30%
# faster per row in 200k-row calls than in 10k-row ones), small enough that memory stays flat.
BATCH_BYTES = 32 << 20
MAX_AUTO_ROWS = 200_000


def auto_rows(nbytes: int, rows: int) -> int:
    """Rows per batch for data that takes `nbytes` in Arrow for `rows` rows."""
    return max(1, min(MAX_AUTO_ROWS, BATCH_BYTES * rows // max(1, nbytes)))


def batch_bytes(batch: pa.RecordBatch) -> int:
    """A batch's size in memory, for sizing decisions, at 1 µs where `nbytes` costs 30.

    `nbytes` walks every buffer to count only what a slice uses: for a 100-row file that is more
    than its share of predict. The total of its buffers is the same for a batch that a reader
    just made, which is where this is used; a slice would count its parent's buffers whole.
    """
    return int(batch.get_total_buffer_size())


def rebatch(batches: Iterator[pa.RecordBatch], rows: int | None) -> Iterator[pa.RecordBatch]:
    """Regroup a stream of batches of any size into batches of exactly `rows` (the last fewer).

    With `rows` None the size is chosen from the first batch's bytes per row.
    """
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if rows is None:
            rows = auto_rows(batch_bytes(batch), batch.num_rows)
        pending.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(pending)
            head, tail = table.slice(0, rows), table.slice(rows)
            yield head.combine_chunks().to_batches()[0]
            pending = tail.combine_chunks().to_batches() if tail.num_rows else []
            count = tail.num_rows
    if len(pending) == 1:
        yield pending[0]  # already one batch: a small file's whole content, no copy
    elif count:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def _parquet(
    fs: pafs.FileSystem,
    file: InputFile,
    batch_rows: int | None,
    columns: Sequence[str] | None,
) -> Iterator[pa.RecordBatch]:
    if file.size == 0:
        raise ReadError(file=file.name, reason="the file is empty (0 bytes).")
    try:
        source = fs.open_input_file(file.path)
        whole = file.size <= WHOLE_FILE_BYTES
        if whole:
            with source:
                source = pa.BufferReader(source.read_buffer())
        # Pre-buffering coalesces a remote file's column reads; from memory it only costs (0.01
        # ms of a small file's 0.17).
        parquet = pq.ParquetFile(
            source, coerce_int96_timestamp_unit=INT96_UNIT, pre_buffer=not whole
        )
    except (pa.ArrowException, OSError) as e:
        raise read_error(fs, file, e) from None
    with source:
        names = parquet.schema_arrow.names
        if len(set(names)) < len(names):  # 1 µs where counting names costs 2 a file
            repeated = duplicates(names)
            raise ReadError(file=file.name, reason=repeated_column(repeated, names, "schema"))
        wanted = None
        if columns is not None and set(columns) <= set(names):
            wanted = list(columns)
        try:
            if batch_rows is None:
                meta = parquet.metadata
                first = meta.row_group(0) if meta.num_row_groups else None
                batch_rows = (
                    auto_rows(first.total_byte_size, first.num_rows)
                    if first and first.num_rows
                    else MAX_AUTO_ROWS
                )
            # A small file decodes faster on this thread than handed to Arrow's pool; one task
            # runs per core anyway.
            yield from parquet.iter_batches(
                batch_size=batch_rows,
                columns=wanted,
                row_groups=file.row_groups,
                use_threads=file.size >= _THREADED_BYTES,
            )
        except (pa.ArrowException, OSError) as e:
            raise read_error(fs, file, e) from None


def peek_schema(fs: pafs.FileSystem, file: InputFile) -> pa.Schema:
    """A file's columns and types from its Parquet footer or its CSV header and first block.

    Raises ReadError for a file the job would refuse before reading a row (not CSV text, a column
    name twice). An image has no columns: it raises ArrowInvalid, as an unreadable table does, so
    that callers looking for a table's columns go on to the next file.
    """
    if file.kind == "image":
        raise pa.ArrowInvalid(f"{file.name} is an image; it has no columns")
    if file.kind == "parquet":
        with fs.open_input_file(file.path) as f:
            schema = pq.ParquetFile(f, coerce_int96_timestamp_unit=INT96_UNIT).schema_arrow
        repeated = duplicates(schema.names)
        if repeated:
            raise ReadError(
                file=file.name, reason=repeated_column(repeated, schema.names, "schema")
            )
        return schema
    return csv_schema(fs, file)


def count_rows(fs: pafs.FileSystem, file: InputFile) -> int:
    """How many rows a file holds, reading as little as its format allows (no type parsing).

    Counts the rows of a file that failed part way: a CSV row with too few or too many values is
    a row, and a quoted newline is part of its row. Raises ReadError, OSError or ArrowException
    when the file's rows cannot be told apart (gone, compressed, a Parquet footer unreadable).
    """
    if file.kind == "image":
        return 1  # one image, one output row
    if file.kind == "parquet":
        with fs.open_input_file(file.path) as f:
            meta = pq.ParquetFile(f).metadata
        groups = file.row_groups if file.row_groups is not None else range(meta.num_row_groups)
        return sum(meta.row_group(i).num_rows for i in groups)
    return count_csv_rows(fs, file)
