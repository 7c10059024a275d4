"""Read one input file as a stream of bounded Arrow record batches, inside the task.

Each task opens its own files with pyarrow (no JVM read), so memory per task is bounded by
`batch_rows` however large a file is, and a file that cannot be read fails alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from sparkscore.errors import ReadError
from sparkscore.planner import InputFile
from sparkscore.signature import ColSpec, DataType, Schema

_ARROW = {
    DataType.boolean: pa.bool_(),
    DataType.integer: pa.int32(),
    DataType.long: pa.int64(),
    DataType.float: pa.float32(),
    DataType.double: pa.float64(),
    DataType.string: pa.string(),
    DataType.binary: pa.binary(),
    DataType.datetime: pa.timestamp("ns"),
}
# Arrow's streaming CSV reader reads up to 32 blocks ahead of its consumer: measured on a 2 GB
# file, 285 MB held in 8 MiB blocks, 35 MB in 1 MiB blocks (Arrow's default), at the same speed.
# A column the signature does not type is typed from the first block's values.
_CSV_BLOCK_BYTES = 1 << 20
_THREADED_BYTES = 8 << 20
# A Parquet file this small is read in one request and parsed from memory: on object storage one
# GET instead of a footer read and a read per column chunk; on local disk 0.26 ms instead of 0.32
# for a 100-row, 11-column file.
_WHOLE_FILE_BYTES = 1 << 20


class CsvConversionError(Exception):
    """A CSV value did not parse as its declared type; the caller re-reads the file as text."""


def csv_column_types(schema: Schema | None) -> dict[str, pa.DataType]:
    """Arrow types to parse CSV columns with, so an integer column stays an integer."""
    if schema is None or schema.is_tensor or not schema.has_names:
        return {}
    return {
        s.name: _ARROW[s.type]
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
) -> Iterator[pa.RecordBatch]:
    """Record batches of at most `batch_rows` rows (None: about BATCH_BYTES each), in file order.

    `columns` limits a file to those columns when it has them all: the rest of a wide Parquet
    file is never decoded, the rest of a CSV never converted. A file without one of them is read
    whole, so that the error about the missing column can list every column the file has.

    Raises ReadError for a file that cannot be read, and CsvConversionError when a CSV value
    does not parse as its `column_types` entry.
    """
    if file.kind == "csv":
        batches = _csv(fs, file, column_types or {}, columns)
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
    return batch.get_total_buffer_size()


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


def _csv(
    fs: pafs.FileSystem, file: InputFile, column_types: Mapping[str, pa.DataType],
    columns: Sequence[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    if file.size == 0:
        raise ReadError(file=file.name, reason="the file is empty (0 bytes).")
    stream = None
    try:
        stream = fs.open_input_stream(file.path)
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
            convert_options=pacsv.ConvertOptions(column_types=dict(column_types),
                                                 include_columns=list(columns or ())),
        )
    except pa.ArrowKeyError:  # a column of `columns` is not in the header
        if stream is not None:
            stream.close()
        yield from _csv(fs, file, column_types)
        return
    except (pa.ArrowInvalid, OSError) as e:
        if stream is not None:
            stream.close()
        # open_csv already reads and converts the first block, so a bad value there lands here.
        if _is_conversion_error(e):
            raise CsvConversionError(str(e)) from None
        raise _read_error(file, e) from None
    binary = [f.name for f in reader.schema if pa.types.is_binary(f.type)]
    if binary:
        # pyarrow infers binary only for text that is not valid UTF-8.
        stream.close()
        raise ReadError(
            file=file.name,
            reason=f"the file is not valid UTF-8 text (column '{binary[0]}'); save it as UTF-8.",
        )
    with stream:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as e:
                if _is_conversion_error(e):
                    raise CsvConversionError(str(e)) from None
                raise _read_error(file, e) from None
            except OSError as e:
                raise _read_error(file, e) from None
            yield batch


def _is_conversion_error(e: BaseException) -> bool:
    """A value that does not parse as its declared type (not text that is not UTF-8)."""
    text = str(e).lower()
    return isinstance(e, pa.ArrowInvalid) and "conversion error" in text and "utf8" not in text


def _parquet(
    fs: pafs.FileSystem, file: InputFile, batch_rows: int | None,
    columns: Sequence[str] | None,
) -> Iterator[pa.RecordBatch]:
    if file.size == 0:
        raise ReadError(file=file.name, reason="the file is empty (0 bytes).")
    try:
        source = fs.open_input_file(file.path)
        if file.size <= _WHOLE_FILE_BYTES:
            with source:
                source = pa.BufferReader(source.read())
        parquet = pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as e:
        raise _read_error(file, e) from None
    with source:
        wanted = None
        if columns is not None and set(columns) <= set(parquet.schema_arrow.names):
            wanted = list(columns)
        try:
            if batch_rows is None:
                meta = parquet.metadata
                first = meta.row_group(0) if meta.num_row_groups else None
                batch_rows = auto_rows(first.total_byte_size, first.num_rows) if first and \
                    first.num_rows else MAX_AUTO_ROWS
            # A small file decodes faster on this thread than handed to Arrow's pool; one task
            # runs per core anyway.
            yield from parquet.iter_batches(batch_size=batch_rows, columns=wanted,
                                            row_groups=file.row_groups,
                                            use_threads=file.size >= _THREADED_BYTES)
        except (pa.ArrowException, OSError) as e:
            raise _read_error(file, e) from None


def _read_error(file: InputFile, e: BaseException) -> ReadError:
    text = " ".join(str(e).split())
    lowered = text.lower()
    if "utf8" in lowered or "utf-8" in lowered:
        reason = f"the file is not valid UTF-8 text ({text}); save it as UTF-8."
    elif "empty" in lowered:
        reason = "the file is empty."
    elif file.kind == "parquet":
        reason = f"the file is not a readable Parquet file; it may be truncated or corrupt ({text})."
    else:
        reason = f"the file cannot be parsed as CSV ({text})."
    return ReadError(file=file.name, reason=reason)


def peek_schema(fs: pafs.FileSystem, file: InputFile) -> pa.Schema:
    """A file's columns and types from its Parquet footer or its CSV header and first block.

    An image has no columns: it raises ArrowInvalid, as an unreadable table does, so that callers
    looking for a table's columns go on to the next file.
    """
    if file.kind == "image":
        raise pa.ArrowInvalid(f"{file.name} is an image; it has no columns")
    if file.kind == "parquet":
        with fs.open_input_file(file.path) as f:
            return pq.ParquetFile(f).schema_arrow
    with fs.open_input_stream(file.path) as f:
        reader = pacsv.open_csv(f, read_options=pacsv.ReadOptions(block_size=1 << 20))
        return reader.schema


def count_rows(fs: pafs.FileSystem, file: InputFile) -> int:
    """How many rows a file holds, reading as little as its format allows (no type parsing)."""
    if file.kind == "image":
        return 1  # one image, one output row
    if file.kind == "parquet":
        with fs.open_input_file(file.path) as f:
            meta = pq.ParquetFile(f).metadata
        groups = file.row_groups if file.row_groups is not None else range(meta.num_row_groups)
        return sum(meta.row_group(i).num_rows for i in groups)
    with fs.open_input_stream(file.path) as f:
        first = pacsv.open_csv(f, read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES))
        names = first.schema.names
    text = {name: pa.string() for name in names}
    with fs.open_input_stream(file.path) as f:
        reader = pacsv.open_csv(
            f, read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
            convert_options=pacsv.ConvertOptions(column_types=text, include_columns=names[:1]),
        )
        return sum(batch.num_rows for batch in reader)
