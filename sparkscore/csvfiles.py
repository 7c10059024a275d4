"""CSV files: sniffed, parsed by pyarrow in bounded blocks, and their bad rows named.

A CSV is checked before pyarrow parses it (compressed, UTF-16, binary, a column named twice),
because pyarrow would turn each into a confusing error or a silent choice. A value that does not
parse as its declared type, and a row with the wrong number of values, are signalled to the
caller (CsvConversionError, CsvRaggedRowError), which reads the file again to name each bad row.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv
from pyarrow import fs as pafs

from sparkscore.errors import ReadError
from sparkscore.listing import InputFile
from sparkscore.prefetch import WHOLE_FILE_BYTES
from sparkscore.unreadable import duplicates, printable, read_error, repeated_column

__all__ = [
    "CsvConversionError",
    "CsvRaggedRowError",
    "RaggedRow",
    "count_csv_rows",
    "csv_schema",
    "read_csv",
]

# Arrow's streaming CSV reader reads up to 32 blocks ahead of its consumer: measured on a 2 GB
# file, 285 MB held in 8 MiB blocks, 35 MB in 1 MiB blocks (Arrow's default), at the same speed.
# A column the signature does not type is typed from the first block's values.
_CSV_BLOCK_BYTES = 1 << 20
# A CSV file of WHOLE_FILE_BYTES or less is read whole and parsed from memory, and a larger
# one's first _HEAD_BYTES once more: its first bytes say whether it is text, and its header
# whether a column name repeats (pyarrow reads only the first of two columns of one name,
# silently).
_HEAD_BYTES = 64 << 10
# Arrow cuts CSV blocks at newlines; without newlines_in_values a newline inside a quoted value
# that falls on a block boundary fails the file. Measured by bench/csv_newlines.py: no cost on
# a file without quotes (pyarrow 26, 1 MiB blocks).
_NEWLINES_IN_VALUES = True


class CsvConversionError(Exception):
    """A CSV value did not parse as its declared type; the caller re-reads the file as text.

    An exception outside errors.py on purpose: a signal between the reader and the scoring
    loop, which always catches it, never an error a user sees.
    """


class CsvRaggedRowError(Exception):
    """A CSV row has more or fewer values than the header names columns; the caller re-reads the
    file with `ragged` to learn which rows.

    An exception outside errors.py on purpose: a signal between the reader and the scoring
    loop, which always catches it, never an error a user sees.
    """


@dataclass(frozen=True)
class RaggedRow:
    """A CSV row skipped because its values do not match the header's columns."""

    row: int  # 0-based among the file's data rows, as output rows are numbered
    values: int
    columns: int
    text: str

    def error(self, file: str) -> ReadError:
        return ReadError(
            file=file,
            row=self.row,
            reason=f"the row has {self.values} values but the header names {self.columns} "
            f"columns ({printable(self.text, 80)}); quote values that hold a comma, and give "
            "every row one value per column.",
        )


def read_csv(
    fs: pafs.FileSystem,
    file: InputFile,
    column_types: Mapping[str, pa.DataType],
    columns: Sequence[str] | None,
    ragged: list[RaggedRow] | None,
) -> Iterator[pa.RecordBatch]:
    """A CSV file's batches, as pyarrow parses them; see `readers.read_batches`."""
    if file.size == 0:
        raise ReadError(file=file.name, reason="the file is empty (0 bytes).")
    source, head = _open_csv(fs, file)
    try:
        _check_csv_head(file, head)
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES, use_threads=ragged is None),
            parse_options=_parse_options(ragged),
            convert_options=pacsv.ConvertOptions(
                column_types=dict(column_types), include_columns=list(columns or ())
            ),
        )
    except pa.ArrowKeyError:  # a column of `columns` is not in the header
        source.close()
        if ragged is not None:
            ragged.clear()  # the first block is parsed again
        yield from read_csv(fs, file, column_types, None, ragged)
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
            reason=f"the file is not valid UTF-8 text (column '{printable(binary[0], 80)}'); "
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
        ragged.append(RaggedRow(row.number - 2, row.actual_columns, row.expected_columns, row.text))
        return "skip"

    return pacsv.ParseOptions(newlines_in_values=_NEWLINES_IN_VALUES, invalid_row_handler=skip)


def _open_csv(fs: pafs.FileSystem, file: InputFile) -> tuple[pa.NativeFile, bytes]:
    """A stream of the file's bytes for pyarrow, and its first bytes (the whole of a small file,
    which is then parsed from memory)."""
    try:
        if file.size <= WHOLE_FILE_BYTES:
            with fs.open_input_stream(file.path) as f:
                data = f.read_buffer()
            return pa.BufferReader(data), data[:_HEAD_BYTES].to_pybytes()
        with fs.open_input_stream(file.path) as f:
            head = f.read(_HEAD_BYTES)
        return fs.open_input_stream(file.path), head
    except OSError as e:
        raise read_error(fs, file, e) from None


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
        raise ReadError(
            file=file.name,
            reason=f"the file is not valid UTF-8 text (column "
            f"'{printable(broken[0], 80)}'); save it as UTF-8.",
        )
    repeated = duplicates(names)
    if repeated:
        raise ReadError(file=file.name, reason=repeated_column(repeated, names, "header"))


# How compressed files start; a CSV file is checked for these before it is parsed.
_COMPRESSED = tuple(
    (re.compile(magic), kind)
    for magic, kind in (
        (rb"\x1f\x8b", "gzip"),
        (rb"PK\x03\x04", "zip"),
        (rb"BZh[1-9]1AY&SY", "bzip2"),
        (rb"\xfd7zXZ\x00", "xz"),
        (rb"\x28\xb5\x2f\xfd", "zstd"),
    )
)


def _not_text(head: bytes) -> str | None:
    """Why a file that starts with `head` is not CSV text, or None when it may be."""
    for magic, kind in _COMPRESSED:
        if magic.match(head):
            return (
                f"the file is not CSV text: it looks {kind}-compressed; decompress it before "
                "scoring it."
            )
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return (
            "the file is UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8."
        )
    if b"\0" in head:
        if head.startswith(b"PAR1"):
            return "the file is not CSV text: it is a Parquet file; name it .parquet."
        return (
            "the file is not CSV text: it holds NUL bytes, so it is binary (or UTF-16 text "
            "without a byte-order mark); save it as UTF-8 CSV text."
        )
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


def _csv_failure(
    fs: pafs.FileSystem, file: InputFile, e: BaseException, ragged: list[RaggedRow] | None
) -> Exception:
    """What a pyarrow error while reading a CSV means to the caller."""
    if _is_conversion_error(e):
        return CsvConversionError(str(e))
    if ragged is None and isinstance(e, pa.ArrowInvalid) and _RAGGED.search(str(e)):
        return CsvRaggedRowError(str(e))
    return read_error(fs, file, e)


_RAGGED = re.compile(r"Expected \d+ columns, got \d+")


def _is_conversion_error(e: BaseException) -> bool:
    """A value that does not parse as its declared type (not text that is not UTF-8)."""
    text = str(e).lower()
    return isinstance(e, pa.ArrowInvalid) and "conversion error" in text and "utf8" not in text


def csv_schema(fs: pafs.FileSystem, file: InputFile) -> pa.Schema:
    """A CSV file's columns and types, from its header and first block."""
    source, head = _open_csv(fs, file)
    with source:
        _check_csv_head(file, head)
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
            parse_options=_parse_options(None),
        )
        return reader.schema


def count_csv_rows(fs: pafs.FileSystem, file: InputFile) -> int:
    """How many rows a CSV file holds, with no type parsing: a row with too few or too many
    values is a row, and a quoted newline is part of its row."""
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
            source,
            read_options=options,
            parse_options=parse,
            convert_options=pacsv.ConvertOptions(column_types=first, include_columns=list(first)),
        )
        return int(sum(batch.num_rows for batch in reader)) + len(invalid)
