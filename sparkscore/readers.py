"""Read one input file as a stream of bounded Arrow record batches, inside the task.

Each task opens its own files with pyarrow (no JVM read), so memory per task is bounded by
`batch_rows` however large a file is, and a file that cannot be read fails alone.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from sparkscore.errors import PassthroughConflictError, ReadError
from sparkscore.listing import InputFile
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
# for a 100-row, 11-column file. A CSV file this small is read whole too, and a larger one's first
# _HEAD_BYTES once more: its first bytes say whether it is text, and its header whether a column
# name repeats (pyarrow reads only the first of two columns of one name, silently).
_WHOLE_FILE_BYTES = 1 << 20
# Legacy INT96 timestamps (Spark's and Hive's old default) are read at microseconds, the unit
# they are written from: read at pyarrow's default of nanoseconds, a year-9999 value silently
# wraps around to 1816.
INT96_UNIT = "us"
_HEAD_BYTES = 64 << 10
# Arrow cuts CSV blocks at newlines; without newlines_in_values a newline inside a quoted value
# that falls on a block boundary fails the file. Measured by bench/csv_newlines.py: no cost on
# a file without quotes (pyarrow 26, 1 MiB blocks).
_NEWLINES_IN_VALUES = True


class CsvConversionError(Exception):
    """A CSV value did not parse as its declared type; the caller re-reads the file as text."""


class CsvRaggedRowError(Exception):
    """A CSV row has more or fewer values than the header names columns; the caller re-reads the
    file with `ragged` to learn which rows."""


@dataclass(frozen=True)
class RaggedRow:
    """A CSV row skipped because its values do not match the header's columns."""

    row: int  # 0-based among the file's data rows, as output rows are numbered
    values: int
    columns: int
    text: str

    def error(self, file: str) -> ReadError:
        return ReadError(
            file=file, row=self.row,
            reason=f"the row has {self.values} values but the header names {self.columns} "
            f"columns ({_printable(self.text, 80)}); quote values that hold a comma, and give "
            "every row one value per column.",
        )


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
        batches = _csv(fs, file, column_types or {}, columns, ragged)
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
    columns: Sequence[str] | None, ragged: list[RaggedRow] | None,
) -> Iterator[pa.RecordBatch]:
    if file.size == 0:
        raise ReadError(file=file.name, reason="the file is empty (0 bytes).")
    source, head = _open_csv(fs, file)
    try:
        _check_csv_head(file, head)
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES,
                                           use_threads=ragged is None),
            parse_options=_parse_options(ragged),
            convert_options=pacsv.ConvertOptions(column_types=dict(column_types),
                                                 include_columns=list(columns or ())),
        )
    except pa.ArrowKeyError:  # a column of `columns` is not in the header
        source.close()
        if ragged is not None:
            ragged.clear()  # the first block is parsed again
        yield from _csv(fs, file, column_types, None, ragged)
        return
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as e:
        source.close()
        # open_csv already reads and converts the first block, so a bad value there lands here.
        raise _csv_failure(fs, file, e, ragged) from None
    except ReadError:
        source.close()
        raise
    binary = [f.name for f in reader.schema if pa.types.is_binary(f.type)]
    if binary:
        # pyarrow infers binary only for text that is not valid UTF-8.
        source.close()
        raise ReadError(
            file=file.name,
            reason=f"the file is not valid UTF-8 text (column '{_printable(binary[0], 80)}'); "
            "save it as UTF-8.",
        )
    with source:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as e:
                raise _csv_failure(fs, file, e, ragged) from None
            yield batch


def _parse_options(ragged: list[RaggedRow] | None) -> pacsv.ParseOptions:
    """Newlines in quoted values; with `ragged`, rows of the wrong width skipped into it.

    Only a reader on one thread knows row numbers; without `ragged` there is no handler at all:
    a handler that fails a threaded read (returns "error") crashed or hung the next threaded read
    in the same process (pyarrow 26).
    """
    if ragged is None:
        return pacsv.ParseOptions(newlines_in_values=_NEWLINES_IN_VALUES)

    def skip(row: pacsv.InvalidRow) -> str:
        if row.number is None:
            return "error"
        # pyarrow numbers rows from 1, the header first.
        ragged.append(RaggedRow(row.number - 2, row.actual_columns, row.expected_columns,
                                row.text))
        return "skip"

    return pacsv.ParseOptions(newlines_in_values=_NEWLINES_IN_VALUES, invalid_row_handler=skip)


def _open_csv(fs: pafs.FileSystem, file: InputFile) -> tuple[pa.NativeFile, bytes]:
    """A stream of the file's bytes for pyarrow, and its first bytes (the whole of a small file,
    which is then parsed from memory)."""
    try:
        if file.size <= _WHOLE_FILE_BYTES:
            with fs.open_input_stream(file.path) as f:
                data = f.read_buffer()
            return pa.BufferReader(data), data[:_HEAD_BYTES].to_pybytes()
        with fs.open_input_stream(file.path) as f:
            head = f.read(_HEAD_BYTES)
        return fs.open_input_stream(file.path), head
    except OSError as e:
        raise _read_error(fs, file, e) from None


def _check_csv_head(file: InputFile, head: bytes) -> None:
    """Refuse, naming the file, bytes that are not CSV text and a header that names a column
    twice, before pyarrow turns either into a confusing error or a silent choice."""
    what = _not_text(head)
    if what is not None:
        raise ReadError(file=file.name, reason=what)
    names = _header(head, whole=len(head) >= file.size)
    broken = [n for n in names if "\ufffd" in n]
    if broken and "\ufffd".encode() not in head:
        # pyarrow would take the name as it is, and fail only when it is read as text.
        raise ReadError(file=file.name, reason=f"the file is not valid UTF-8 text (column "
                        f"'{_printable(broken[0], 80)}'); save it as UTF-8.")
    repeated = duplicates(names)
    if repeated:
        raise ReadError(file=file.name, reason=_repeated(repeated, names, "header"))


# How compressed files start; a CSV file is checked for these before it is parsed.
_COMPRESSED = tuple((re.compile(magic), kind) for magic, kind in (
    (rb"\x1f\x8b", "gzip"), (rb"PK\x03\x04", "zip"), (rb"BZh[1-9]1AY&SY", "bzip2"),
    (rb"\xfd7zXZ\x00", "xz"), (rb"\x28\xb5\x2f\xfd", "zstd"),
))


def _not_text(head: bytes) -> str | None:
    """Why a file that starts with `head` is not CSV text, or None when it may be."""
    for magic, kind in _COMPRESSED:
        if magic.match(head):
            return (f"the file is not CSV text: it looks {kind}-compressed; decompress it before "
                    "scoring it.")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return ("the file is UTF-16 text (it starts with a UTF-16 byte-order mark); "
                "save it as UTF-8.")
    if b"\0" in head:
        if head.startswith(b"PAR1"):
            return "the file is not CSV text: it is a Parquet file; name it .parquet."
        return ("the file is not CSV text: it holds NUL bytes, so it is binary (or UTF-16 text "
                "without a byte-order mark); save it as UTF-8 CSV text.")
    return None


def _header(head: bytes, *, whole: bool) -> list[str]:
    """The column names of a CSV header, or [] when the header is not all within `head`."""
    first = head[: head.find(b"\n") + 1]
    if first and first.count(b'"') % 2 == 0:
        head = first  # one line holds the header: decode only that
    elif not whole:
        head = head[: max(head.rfind(b"\n"), head.rfind(b"\r")) + 1]
    text = head.decode("utf-8-sig", errors="replace")
    try:
        return next(csv.reader(io.StringIO(text)), [])
    except csv.Error:  # a field longer than Python's csv reads; pyarrow reports the file
        return []


def duplicates(names: Sequence[str]) -> list[str]:
    """Column names that appear more than once, in the order they first appear."""
    counts = Counter(names)
    return [name for name in dict.fromkeys(names) if counts[name] > 1]


def _repeated(repeated: list[str], names: Sequence[str], where: str) -> str:
    name = repeated[0]
    times = names.count(name)
    how = "twice" if times == 2 else f"{times} times"
    return (f"the column '{_printable(name, 80)}' appears {how} in the file's {where}, so which "
            "one to read is ambiguous; give each column its own name.")


def _csv_failure(fs: pafs.FileSystem, file: InputFile, e: BaseException,
                 ragged: list[RaggedRow] | None) -> Exception:
    """What a pyarrow error while reading a CSV means to the caller."""
    if _is_conversion_error(e):
        return CsvConversionError(str(e))
    if ragged is None and isinstance(e, pa.ArrowInvalid) and _RAGGED.search(str(e)):
        return CsvRaggedRowError(str(e))
    return _read_error(fs, file, e)


_RAGGED = re.compile(r"Expected \d+ columns, got \d+")


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
        parquet = pq.ParquetFile(source, coerce_int96_timestamp_unit=INT96_UNIT)
    except (pa.ArrowException, OSError) as e:
        raise _read_error(fs, file, e) from None
    with source:
        names = parquet.schema_arrow.names
        repeated = duplicates(names)
        if repeated:
            raise ReadError(file=file.name, reason=_repeated(repeated, names, "schema"))
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
            raise _read_error(fs, file, e) from None


def _read_error(fs: pafs.FileSystem, file: InputFile, e: BaseException) -> ReadError:
    text = _printable(" ".join(str(e).split()))
    lowered = text.lower()
    if _removed(fs, file, e):
        reason = "the file no longer exists: it was removed after the job was planned."
    elif isinstance(e, UnicodeDecodeError):
        reason = "the file is not valid UTF-8 text; save it as UTF-8."
    elif "utf8" in lowered or "utf-8" in lowered:
        reason = f"the file is not valid UTF-8 text ({text}); save it as UTF-8."
    elif "empty" in lowered:
        reason = "the file is empty."
    elif file.kind == "parquet":
        reason = (f"the file is not a readable Parquet file; it may be truncated or corrupt "
                  f"({text}).")
    else:
        reason = f"the file cannot be parsed as CSV ({text})."
    return ReadError(file=file.name, reason=reason)


def _removed(fs: pafs.FileSystem, file: InputFile, e: BaseException) -> bool:
    """Whether a failure to read is the file having gone since the job listed it."""
    if isinstance(e, FileNotFoundError):
        return True
    if not isinstance(e, OSError):
        return False
    try:
        return fs.get_file_info(file.path).type == pafs.FileType.NotFound
    except OSError:
        return False


def _printable(text: str, limit: int = 300) -> str:
    """Text from a file or from pyarrow, safe to print: control characters escaped, and cut at
    `limit` characters."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
            raise ReadError(file=file.name, reason=_repeated(repeated, schema.names, "schema"))
        return schema
    source, head = _open_csv(fs, file)
    with source:
        _check_csv_head(file, head)
        reader = pacsv.open_csv(source, read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
                                parse_options=_parse_options(None))
        return reader.schema


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
    if file.size == 0:
        return 0
    invalid = []

    def count(row: pacsv.InvalidRow) -> str:
        invalid.append(row.number)
        return "skip"

    options = pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES, use_threads=False)
    parse = pacsv.ParseOptions(newlines_in_values=_NEWLINES_IN_VALUES, invalid_row_handler=count)
    source, head = _open_csv(fs, file)
    with source:
        what = _not_text(head)
        if what is not None:
            raise ReadError(file=file.name, reason=what)
        names = pacsv.open_csv(source, read_options=options, parse_options=parse).schema.names
    # The first column alone, as bytes: no value fails to convert, whatever the file holds.
    first = {names[0]: pa.binary()}
    invalid.clear()
    source, _ = _open_csv(fs, file)
    with source:
        reader = pacsv.open_csv(
            source, read_options=options, parse_options=parse,
            convert_options=pacsv.ConvertOptions(column_types=first, include_columns=list(first)),
        )
        return sum(batch.num_rows for batch in reader) + len(invalid)


def passthrough_types(fs: pafs.FileSystem, files: Sequence[InputFile], columns: Sequence[str], *,
                      uri: str) -> dict[str, pa.DataType]:
    """The one output type of each passthrough column, from every table file's footer or header.

    Read on threads (footers and headers are small reads, mostly waiting on storage). A file that
    cannot be read is left out: its task records why. See `common_type` for the rule.
    """
    if not columns:
        return {}
    tables = [f for f in files if f.kind != "image"]
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(tables)))) as pool:
        schemas = list(pool.map(lambda f: _schema_or_none(fs, f), tables))
    types = {}
    for column in columns:
        found = {}
        for file, schema in zip(tables, schemas):
            index = -1 if schema is None else schema.get_field_index(column)
            if schema is not None and index >= 0:  # -1: absent, or twice (the file fails)
                found[file.name] = schema.field(index).type
        types[column] = common_type(column, found, uri=uri)
    return types


def _schema_or_none(fs: pafs.FileSystem, file: InputFile) -> pa.Schema | None:
    try:
        return peek_schema(fs, file)
    except (pa.ArrowException, OSError, UnicodeDecodeError, ReadError):
        return None


def common_type(column: str, found: Mapping[str, pa.DataType], *, uri: str) -> pa.DataType:
    """The type a passthrough column is written with, whatever order the files come in.

    Dictionary-encoded values count as their values' type, and a column that is all empty in a
    CSV's first block (null) counts as nothing. One type: that one. Text in some files and
    integers in others: text, the integers written as their decimal digits (a CSV column is then
    read as text, so `007` stays `007`). Otherwise Arrow's permissive promotion: integers widen
    (int32 and int64 to int64), integers and floats to float64 (a value a float64 cannot hold
    exactly then fails its file), timestamps to the finer unit, lists and structs field by field.
    Types none of these join are refused, naming the files of each type. No file has the
    column: string.
    """
    kinds: dict[pa.DataType, list[str]] = {}
    for name, t in sorted(found.items()):
        t = t.value_type if pa.types.is_dictionary(t) else t
        if not pa.types.is_null(t):
            kinds.setdefault(t, []).append(name)
    if not kinds:
        return pa.string()
    if len(kinds) == 1:
        return next(iter(kinds))
    text = [t for t in kinds if pa.types.is_string(t) or pa.types.is_large_string(t)]
    if text and all(t in text or pa.types.is_integer(t) for t in kinds):
        return pa.string()
    try:
        return pa.unify_schemas([pa.schema([(column, t)]) for t in kinds],
                                promote_options="permissive").field(0).type
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        types = {str(t): names for t, names in kinds.items()}
        raise PassthroughConflictError(path=uri, column=column, types=types) from None
