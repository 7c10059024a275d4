"""Reading one file as bounded Arrow batches: signature types, exact batch sizes, errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import fs as pafs

import sparkscore
from sparkscore import csvfiles, readers
from sparkscore.csvfiles import CsvConversionError
from sparkscore.errors import ReadError
from sparkscore.listing import InputFile
from sparkscore.readers import (
    csv_column_types,
    peek_schema,
    read_batches,
    rebatch,
)
from sparkscore.signature import Schema

LOCAL = pafs.LocalFileSystem()


def input_file(path: Path, kind: str | None = None) -> InputFile:
    kind = kind or ("csv" if path.suffix == ".csv" else "parquet")
    return InputFile(path=str(path), name=path.name, size=path.stat().st_size, kind=kind)


def batches_of(path: Path, batch_rows: int, column_types=None) -> list[pa.RecordBatch]:
    return list(
        read_batches(LOCAL, input_file(path), batch_rows=batch_rows, column_types=column_types)
    )


@pytest.fixture(scope="module")
def lr_types(zoo) -> dict[str, pa.DataType]:
    return csv_column_types(sparkscore.load_model(zoo.lr_skops).input_schema)


def test_csv_column_types_follow_the_signature(lr_types):
    assert lr_types == {"a": pa.float64(), "b": pa.int64()}
    assert csv_column_types(None) == {}
    tensor = Schema.from_list(
        [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 2]}}]
    )
    assert csv_column_types(tensor) == {}


def test_read_batches_parses_csv_columns_with_signature_types(tmp_path, lr_types):
    path = tmp_path / "ints.csv"
    path.write_text("id,a,b\n1,2,3\n4,5,6\n")
    [inferred] = batches_of(path, 10)
    assert inferred.schema.field("a").type == pa.int64()  # what pyarrow guesses alone
    [typed] = batches_of(path, 10, lr_types)
    assert typed.schema.types == [pa.int64(), pa.float64(), pa.int64()]
    assert typed.to_pydict() == {"id": [1, 4], "a": [2.0, 5.0], "b": [3, 6]}


def test_read_batches_csv_in_batches_of_batch_rows(tmp_path, lr_types):
    path = tmp_path / "eight.csv"
    path.write_text("id,a,b\n" + "".join(f"{i},{i / 2},{i % 3}\n" for i in range(8)))
    got = batches_of(path, 3, lr_types)
    assert [b.num_rows for b in got] == [3, 3, 2]
    assert pa.Table.from_batches(got).column("id").to_pylist() == list(range(8))


# A small Parquet file is read whole into memory, a larger one by ranges: both ways, same result.
both_parquet_paths = pytest.mark.parametrize("whole_file_bytes", [1 << 20, 0])


def read_whole_up_to(monkeypatch: pytest.MonkeyPatch, whole_file_bytes: int) -> None:
    """Read Parquet and CSV files of up to `whole_file_bytes` whole (both readers' threshold)."""
    monkeypatch.setattr(readers, "WHOLE_FILE_BYTES", whole_file_bytes)
    monkeypatch.setattr(csvfiles, "WHOLE_FILE_BYTES", whole_file_bytes)


@both_parquet_paths
def test_read_batches_parquet_in_batches_of_batch_rows(tmp_path, monkeypatch, whole_file_bytes):
    read_whole_up_to(monkeypatch, whole_file_bytes)
    path = tmp_path / "seven.parquet"
    pq.write_table(
        pa.table({"a": [float(i) for i in range(7)], "b": list(range(7))}), path, row_group_size=2
    )
    got = batches_of(path, 3)
    assert [b.num_rows for b in got] == [3, 3, 1]
    assert pa.Table.from_batches(got).to_pydict() == {
        "a": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "b": [0, 1, 2, 3, 4, 5, 6],
    }


@both_parquet_paths
def test_read_batches_parquet_reads_only_the_named_columns_unless_one_is_missing(
    tmp_path, monkeypatch, whole_file_bytes
):
    read_whole_up_to(monkeypatch, whole_file_bytes)
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({"note": ["x", "y"], "b": [1, 2], "a": [0.5, 1.5], "c": [3, 4]}), path)

    def read(columns):
        got = read_batches(LOCAL, input_file(path), batch_rows=10, columns=columns)
        return pa.Table.from_batches(list(got)).to_pydict()

    assert read(["a", "b"]) == {"a": [0.5, 1.5], "b": [1, 2]}
    assert read(["a", "zz"]) == {"note": ["x", "y"], "b": [1, 2], "a": [0.5, 1.5], "c": [3, 4]}


def test_read_batches_reads_named_columns_after_a_nested_one_by_name(tmp_path):
    # A struct spans two Parquet columns, so field positions are not column positions.
    path = tmp_path / "nested.parquet"
    table = pa.table({"s": [{"x": 1, "y": "p"}, {"x": 2, "y": "q"}], "b": [1, 2], "a": [0.5, 1.5]})
    pq.write_table(table, path)
    got = read_batches(LOCAL, input_file(path), batch_rows=10, columns=["a", "s"])
    assert pa.Table.from_batches(list(got)).to_pydict() == {
        "a": [0.5, 1.5],
        "s": [{"x": 1, "y": "p"}, {"x": 2, "y": "q"}],
    }


def test_read_batches_csv_converts_only_the_named_columns_unless_one_is_missing(tmp_path):
    path = tmp_path / "wide.csv"
    # `note` would not even convert: a CSV column that is not asked for is never converted.
    path.write_bytes(b"note,b,a,c\n\xff,1,0.5,3\nx,2,1.5,4\n")

    def read(columns):
        got = read_batches(
            LOCAL,
            input_file(path),
            batch_rows=10,
            columns=columns,
            column_types={"a": pa.float64(), "b": pa.int64()},
        )
        return pa.Table.from_batches(list(got)).to_pydict()

    assert read(["a", "b"]) == {"a": [0.5, 1.5], "b": [1, 2]}
    with pytest.raises(
        ReadError, match="wide.csv: the file is not valid UTF-8 text .column 'note'"
    ):
        read(["a", "zz"])  # read whole, every column converted


def test_rebatch_regroups_any_sizes_into_exact_batches():
    values = list(range(15))
    sizes = [1, 5, 0, 2, 7]
    parts, start = [], 0
    for n in sizes:
        parts.append(pa.record_batch({"v": pa.array(values[start : start + n], pa.int64())}))
        start += n
    got = list(rebatch(iter(parts), 4))
    assert [b.num_rows for b in got] == [4, 4, 4, 3]
    assert [v for b in got for v in b.column(0).to_pylist()] == values
    assert [b.num_rows for b in rebatch(iter(parts), 100)] == [15]
    assert [b.num_rows for b in rebatch(iter(parts), 5)] == [5, 5, 5]
    assert list(rebatch(iter([]), 4)) == []


def test_read_batches_raises_conversion_error_for_a_bad_value_in_the_first_block(
    tmp_path, lr_types
):
    path = tmp_path / "bad.csv"
    path.write_text("id,a,b\n1,0.5,1\n2,abc,1\n")
    with pytest.raises(CsvConversionError, match="invalid value 'abc'"):
        batches_of(path, 10, lr_types)


def test_read_batches_raises_conversion_error_for_a_bad_value_in_a_later_block(
    tmp_path, lr_types, monkeypatch
):
    monkeypatch.setattr(csvfiles, "_CSV_BLOCK_BYTES", 64)
    path = tmp_path / "late.csv"
    path.write_text("id,a,b\n" + "".join(f"{i},0.5,1\n" for i in range(20)) + "20,abc,1\n")
    with pytest.raises(CsvConversionError, match="invalid value 'abc'"):
        batches_of(path, 10, lr_types)


def test_a_csv_of_many_blocks_is_read_once_whole_in_order(tmp_path, lr_types, monkeypatch):
    monkeypatch.setattr(csvfiles, "_CSV_BLOCK_BYTES", 64)
    path = tmp_path / "long.csv"
    path.write_text("id,a,b,note\n" + "".join(f"{i},{i / 4},{i},n{i}\n" for i in range(300)))
    batches = batches_of(path, 1000, lr_types)
    table = pa.Table.from_batches(batches)
    assert table.schema == pa.schema(
        [("id", pa.int64()), ("a", pa.float64()), ("b", pa.int64()), ("note", pa.string())]
    )
    assert table.column("id").to_pylist() == list(range(300))
    assert table.column("a").to_pylist() == [i / 4 for i in range(300)]
    assert table.column("note").to_pylist() == [f"n{i}" for i in range(300)]
    assert len(batches) == 1  # rebatched to batch_rows from about 100 blocks


@both_parquet_paths
def test_read_batches_names_the_file_that_cannot_be_read(tmp_path, monkeypatch, whole_file_bytes):
    read_whole_up_to(monkeypatch, whole_file_bytes)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ReadError) as info:
        batches_of(empty, 10)
    assert (info.value.file, str(info.value)) == (
        "empty.csv",
        "empty.csv: the file is empty (0 bytes).",
    )

    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0]}), whole)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole.read_bytes()[:20])
    with pytest.raises(ReadError) as info:
        batches_of(cut, 10)
    assert str(info.value).startswith(
        "cut.parquet: the file is not a readable Parquet file; it may be truncated or corrupt ("
    )

    with pytest.raises(ReadError, match="files of kind 'image' are not tables"):
        list(read_batches(LOCAL, input_file(whole, "image"), batch_rows=10))


def test_read_batches_of_a_header_only_csv_yields_nothing(tmp_path, lr_types):
    path = tmp_path / "header.csv"
    path.write_text("id,a,b\n")
    assert batches_of(path, 10, lr_types) == []


def test_peek_schema_reads_header_or_footer(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"id": pa.array([1], pa.int32()), "a": [1.0]}), path)
    assert peek_schema(LOCAL, input_file(path)).types == [pa.int32(), pa.float64()]
    csv = tmp_path / "c.csv"
    csv.write_text("id,name\n1,x\n")
    assert peek_schema(LOCAL, input_file(csv)).names == ["id", "name"]


def test_readers_refuse_a_csv_that_is_not_utf8_even_in_an_undeclared_column(tmp_path):
    from sparkscore.errors import ReadError
    from sparkscore.listing import list_input
    from sparkscore.readers import read_batches

    (tmp_path / "latin1.csv").write_bytes(b"a,b,note\n1.0,2,caf\xe9\n")
    listing = list_input(str(tmp_path))
    fs = listing.fs
    files = listing.files
    with pytest.raises(ReadError) as err:
        list(read_batches(fs, files[0], batch_rows=10))
    assert str(err.value) == (
        "latin1.csv: the file is not valid UTF-8 text (column 'note'); save it as UTF-8."
    )


def test_readers_an_image_has_no_columns_and_counts_as_one_row(tmp_path):
    from sparkscore.readers import count_rows

    path = tmp_path / "digit.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")  # never opened: an image's row count is 1
    image = input_file(path, kind="image")
    with pytest.raises(pa.ArrowInvalid) as err:
        peek_schema(LOCAL, image)
    assert str(err.value) == "digit.png is an image; it has no columns"
    assert count_rows(LOCAL, image) == 1
    with pytest.raises(ReadError) as err:
        list(read_batches(LOCAL, image, batch_rows=10))
    assert str(err.value) == "digit.png: files of kind 'image' are not tables."


# ---------------------------------------------------------------------------------------------
# Files that are not what their name says, duplicate columns, quoted newlines, ragged rows


def csv_file(path: Path) -> InputFile:
    return input_file(path, "csv")


def read_error(path: Path, kind: str | None = None) -> str:
    with pytest.raises(ReadError) as info:
        list(read_batches(LOCAL, input_file(path, kind), batch_rows=10))
    assert info.value.file == path.name
    return str(info.value)


def test_read_batches_csv_with_quoted_newlines_larger_than_a_block(tmp_path):
    # Every value of `note` holds a newline: one falls on a 1 MiB block boundary.
    n = 60_000
    table = pa.table(
        {
            "id": list(range(n)),
            "note": [f"line {i}\nnext, {i}" for i in range(n)],
            "a": [i / 4 for i in range(n)],
            "b": [i % 3 for i in range(n)],
        }
    )
    path = tmp_path / "notes.csv"
    import pyarrow.csv as pacsv

    pacsv.write_csv(table, path)
    assert path.stat().st_size > 2 * csvfiles._CSV_BLOCK_BYTES
    got = pa.Table.from_batches(list(read_batches(LOCAL, csv_file(path), batch_rows=7_000)))
    assert got.to_pydict() == table.to_pydict()
    assert readers.count_rows(LOCAL, csv_file(path)) == n


@both_parquet_paths
def test_read_batches_refuses_a_column_name_that_appears_twice(
    tmp_path, monkeypatch, whole_file_bytes
):
    read_whole_up_to(monkeypatch, whole_file_bytes)
    (tmp_path / "twice.csv").write_text("a,b,a\n1,2,3\n4,5,6\n")
    (tmp_path / "thrice.csv").write_text('id,"x",x,b,x\n1,2,3,4,5\n')
    pq.write_table(
        pa.Table.from_arrays([pa.array([1]), pa.array([2]), pa.array([3])], names=["a", "b", "a"]),
        tmp_path / "twice.parquet",
    )
    assert read_error(tmp_path / "twice.csv") == (
        "twice.csv: the column 'a' appears twice in the file's header, so which one to read "
        "is ambiguous; give each column its own name."
    )
    assert read_error(tmp_path / "thrice.csv") == (
        "thrice.csv: the column 'x' appears 3 times in the file's header, so which one to read "
        "is ambiguous; give each column its own name."
    )
    assert read_error(tmp_path / "twice.parquet") == (
        "twice.parquet: the column 'a' appears twice in the file's schema, so which one to read "
        "is ambiguous; give each column its own name."
    )
    # even when the columns read are named: pyarrow would read the first 'a' alone
    with pytest.raises(ReadError, match="the column 'a' appears twice"):
        list(
            read_batches(LOCAL, csv_file(tmp_path / "twice.csv"), batch_rows=10, columns=["a", "b"])
        )
    for name in ("twice.csv", "twice.parquet"):
        with pytest.raises(ReadError, match="the column 'a' appears twice"):
            peek_schema(LOCAL, input_file(tmp_path / name))
    assert readers.count_rows(LOCAL, csv_file(tmp_path / "twice.csv")) == 2


def test_read_batches_says_what_a_csv_that_is_not_text_is_and_prints_no_binary(tmp_path):
    import bz2
    import gzip
    import zipfile

    text = b"id,a,b\n" + b"".join(b"%d,0.5,1\n" % i for i in range(300))
    (tmp_path / "gz.csv").write_bytes(gzip.compress(text))
    (tmp_path / "bz.csv").write_bytes(bz2.compress(text))
    with zipfile.ZipFile(tmp_path / "zip.csv", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("data.csv", text)
    (tmp_path / "utf16.csv").write_bytes(text.decode().encode("utf-16"))
    (tmp_path / "utf16le.csv").write_bytes(text.decode().encode("utf-16-le"))
    pq.write_table(pa.table({"a": [1.0]}), tmp_path / "pq.csv")
    got = {
        name: read_error(tmp_path / name)
        for name in ("gz.csv", "bz.csv", "zip.csv", "utf16.csv", "utf16le.csv", "pq.csv")
    }
    assert got == {
        "gz.csv": "gz.csv: the file is not CSV text: it looks gzip-compressed; decompress it "
        "before scoring it.",
        "bz.csv": "bz.csv: the file is not CSV text: it looks bzip2-compressed; decompress it "
        "before scoring it.",
        "zip.csv": "zip.csv: the file is not CSV text: it looks zip-compressed; decompress it "
        "before scoring it.",
        "utf16.csv": "utf16.csv: the file is UTF-16 text (it starts with a UTF-16 byte-order "
        "mark); save it as UTF-8.",
        "utf16le.csv": "utf16le.csv: the file is not CSV text: it holds NUL bytes, so it is "
        "binary (or UTF-16 text without a byte-order mark); save it as UTF-8 "
        "CSV text.",
        "pq.csv": "pq.csv: the file is not CSV text: it is a Parquet file; name it .parquet.",
    }
    with pytest.raises(ReadError, match="gzip-compressed"):
        readers.count_rows(LOCAL, csv_file(tmp_path / "gz.csv"))


def test_read_batches_error_text_from_a_file_is_printable(tmp_path):
    # Not UTF-8, and a control character in the header: the byte is replaced, the control
    # character escaped (pyarrow took this header as it is, and failed only on reading its name).
    (tmp_path / "latin.csv").write_bytes(b"a,b\x07\xe9\n1,2\n")
    message = read_error(tmp_path / "latin.csv")
    assert message == (
        "latin.csv: the file is not valid UTF-8 text (column 'b\\x07\ufffd'); save it as UTF-8."
    )
    assert message.isprintable()


@both_parquet_paths
def test_read_batches_file_removed_after_planning_says_so(tmp_path, monkeypatch, whole_file_bytes):
    read_whole_up_to(monkeypatch, whole_file_bytes)
    (tmp_path / "gone.csv").write_text("a,b\n1,2\n" * 3)
    pq.write_table(pa.table({"a": [1.0]}), tmp_path / "gone.parquet")
    planned = [input_file(tmp_path / name) for name in ("gone.csv", "gone.parquet")]
    for file in planned:
        Path(file.path).unlink()
        with pytest.raises(ReadError) as info:
            list(read_batches(LOCAL, file, batch_rows=10))
        assert str(info.value) == (
            f"{file.name}: the file no longer exists: it was removed after the job was planned."
        )
        with pytest.raises((ReadError, OSError)):  # its rows cannot be counted
            readers.count_rows(LOCAL, file)


def test_read_batches_ragged_rows_raise_or_are_skipped_into_a_list(tmp_path, monkeypatch):
    monkeypatch.setattr(csvfiles, "_CSV_BLOCK_BYTES", 64)  # rows in many blocks
    lines = ["id,a,b"] + [f"{i},0.5,1" for i in range(40)]
    lines[1 + 3] = "3,0.5"
    lines[1 + 20] = '20,"x\ny",1,9'  # four values, one with a newline
    lines[1 + 39] = "39"
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(csvfiles.CsvRaggedRowError, match="Expected 3 columns, got 2"):
        list(read_batches(LOCAL, csv_file(path), batch_rows=10))
    ragged: list[csvfiles.RaggedRow] = []
    got = pa.Table.from_batches(
        list(read_batches(LOCAL, csv_file(path), batch_rows=10, ragged=ragged))
    )
    assert got.column("id").to_pylist() == [i for i in range(40) if i not in (3, 20, 39)]
    assert ragged == [
        csvfiles.RaggedRow(3, 2, 3, "3,0.5"),
        csvfiles.RaggedRow(20, 4, 3, '20,"x\ny",1,9'),
        csvfiles.RaggedRow(39, 1, 3, "39"),
    ]
    assert str(ragged[1].error("ragged.csv")) == (
        "ragged.csv, row 20: the row has 4 values but the header names 3 columns "
        '(20,"x\\ny",1,9); quote values that hold a comma, and give every row one value per '
        "column."
    )
    assert readers.count_rows(LOCAL, csv_file(path)) == 40


# ---------------------------------------------------------------------------------------------
# A passthrough column's one output type, from every file


def test_common_type_widens_the_same_way_in_any_file_order():
    import itertools

    from sparkscore.passthrough import common_type

    cases = [
        ({"f1.csv": pa.int64(), "f2.csv": pa.string()}, pa.string()),
        (
            {"f1.csv": pa.int64(), "f2.csv": pa.large_string(), "f3.parquet": pa.int32()},
            pa.string(),
        ),
        ({"a": pa.int32(), "b": pa.int64()}, pa.int64()),
        ({"a": pa.int64(), "b": pa.float64()}, pa.float64()),
        ({"a": pa.timestamp("s"), "b": pa.timestamp("us")}, pa.timestamp("us")),
        ({"a": pa.dictionary(pa.int32(), pa.string()), "b": pa.string()}, pa.string()),
        ({"a": pa.null(), "b": pa.int64()}, pa.int64()),
        ({"a": pa.null()}, pa.string()),
        ({}, pa.string()),
        (
            {"a": pa.map_(pa.string(), pa.int64()), "b": pa.map_(pa.string(), pa.int64())},
            pa.map_(pa.string(), pa.int64()),
        ),
        ({"a": pa.list_(pa.int32()), "b": pa.list_(pa.int64())}, pa.list_(pa.int64())),
    ]
    for found, want in cases:
        for order in itertools.permutations(found.items()):
            assert common_type("id", dict(order), uri="in/") == want, (found, order)


def test_common_type_refuses_types_no_one_column_holds_naming_the_files():
    from sparkscore.errors import PassthroughConflictError
    from sparkscore.passthrough import common_type

    found = {f"s{i}.parquet": pa.struct([("x", pa.int64())]) for i in range(7)}
    found.update({"b.csv": pa.float64(), "a.csv": pa.string()})
    with pytest.raises(PassthroughConflictError) as info:
        common_type("meta", dict(reversed(list(found.items()))), uri="in/")
    assert (info.value.path, info.value.column) == ("in/", "meta")
    assert str(info.value) == (
        "in/: the passthrough column 'meta' has types that no one column can hold: string in "
        "a.csv; double in b.csv; struct<x: int64> in s0.parquet, s1.parquet, s2.parquet, "
        "s3.parquet, s4.parquet and 2 more. Give the column one type in every file, or leave it "
        "out of passthrough_columns."
    )


def test_passthrough_types_reads_every_table_file(tmp_path):
    from sparkscore.listing import list_input
    from sparkscore.passthrough import passthrough_types

    (tmp_path / "f1.csv").write_text("id,a\n1,0.5\n2,0.5\n")
    (tmp_path / "f2.csv").write_text("id,a\nx7,0.5\n")
    pq.write_table(
        pa.table({"id": pa.array([3], pa.int32()), "tags": [{"k": 1}]}), tmp_path / "f3.parquet"
    )
    (tmp_path / "f4.csv").write_bytes(b"\x1f\x8b junk")  # unreadable: its task says why
    listing = list_input(str(tmp_path))
    fs, files = listing.fs, listing.files
    assert passthrough_types(fs, files, ["id", "tags", "nowhere"], uri=str(tmp_path)) == {
        "id": pa.string(),
        "tags": pa.struct([("k", pa.int64())]),
        "nowhere": pa.string(),
    }
    assert passthrough_types(fs, files, [], uri=str(tmp_path)) == {}


def test_read_batches_int96_timestamps_keep_their_value_beyond_nanoseconds(tmp_path):
    import datetime as dt

    from sparkscore.listing import InputFile
    from sparkscore.readers import peek_schema, read_batches

    values = [dt.datetime(2024, 1, 1, 12, 30, 0, 123456), dt.datetime(9999, 12, 31, 23, 59, 59)]
    path = tmp_path / "spark.parquet"
    pq.write_table(
        pa.table({"ts": pa.array(values, pa.timestamp("us"))}),
        path,
        use_deprecated_int96_timestamps=True,
    )
    file = InputFile(path=str(path), name="spark.parquet", size=path.stat().st_size, kind="parquet")
    fs = pafs.LocalFileSystem()

    [batch] = list(read_batches(fs, file, batch_rows=10))

    assert batch.column("ts").to_pylist() == values
    assert peek_schema(fs, file).field("ts").type == pa.timestamp("us")
