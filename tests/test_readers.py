"""Reading one file as bounded Arrow batches: signature types, exact batch sizes, errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import fs as pafs

import sparkscore
from sparkscore import readers
from sparkscore.errors import ReadError
from sparkscore.planner import InputFile
from sparkscore.readers import (
    CsvConversionError,
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
    return list(read_batches(LOCAL, input_file(path), batch_rows=batch_rows,
                             column_types=column_types))


@pytest.fixture(scope="module")
def lr_types(zoo) -> dict[str, pa.DataType]:
    return csv_column_types(sparkscore.load_model(zoo.lr_skops).input_schema)


def test_csv_column_types_follow_the_signature(lr_types):
    assert lr_types == {"a": pa.float64(), "b": pa.int64()}
    assert csv_column_types(None) == {}
    tensor = Schema.from_list([{"type": "tensor", "tensor-spec": {"dtype": "float64",
                                                                   "shape": [-1, 2]}}])
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


@both_parquet_paths
def test_read_batches_parquet_in_batches_of_batch_rows(tmp_path, monkeypatch, whole_file_bytes):
    monkeypatch.setattr(readers, "_WHOLE_FILE_BYTES", whole_file_bytes)
    path = tmp_path / "seven.parquet"
    pq.write_table(pa.table({"a": [float(i) for i in range(7)], "b": list(range(7))}), path,
                   row_group_size=2)
    got = batches_of(path, 3)
    assert [b.num_rows for b in got] == [3, 3, 1]
    assert pa.Table.from_batches(got).to_pydict() == {
        "a": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "b": [0, 1, 2, 3, 4, 5, 6]}


@both_parquet_paths
def test_read_batches_parquet_reads_only_the_named_columns_unless_one_is_missing(
        tmp_path, monkeypatch, whole_file_bytes):
    monkeypatch.setattr(readers, "_WHOLE_FILE_BYTES", whole_file_bytes)
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({"note": ["x", "y"], "b": [1, 2], "a": [0.5, 1.5], "c": [3, 4]}), path)

    def read(columns):
        got = read_batches(LOCAL, input_file(path), batch_rows=10, columns=columns)
        return pa.Table.from_batches(list(got)).to_pydict()

    assert read(["a", "b"]) == {"a": [0.5, 1.5], "b": [1, 2]}
    assert read(["a", "zz"]) == {"note": ["x", "y"], "b": [1, 2], "a": [0.5, 1.5], "c": [3, 4]}


def test_read_batches_csv_converts_only_the_named_columns_unless_one_is_missing(tmp_path):
    path = tmp_path / "wide.csv"
    # `note` would not even convert: a CSV column that is not asked for is never converted.
    path.write_bytes(b"note,b,a,c\n\xff,1,0.5,3\nx,2,1.5,4\n")

    def read(columns):
        got = read_batches(LOCAL, input_file(path), batch_rows=10, columns=columns,
                           column_types={"a": pa.float64(), "b": pa.int64()})
        return pa.Table.from_batches(list(got)).to_pydict()

    assert read(["a", "b"]) == {"a": [0.5, 1.5], "b": [1, 2]}
    with pytest.raises(ReadError, match="wide.csv: the file is not valid UTF-8 text .column 'note'"):
        read(["a", "zz"])  # read whole, every column converted


def test_rebatch_regroups_any_sizes_into_exact_batches():
    values = list(range(15))
    sizes = [1, 5, 0, 2, 7]
    parts, start = [], 0
    for n in sizes:
        parts.append(pa.record_batch({"v": pa.array(values[start:start + n], pa.int64())}))
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
    monkeypatch.setattr(readers, "_CSV_BLOCK_BYTES", 64)
    path = tmp_path / "late.csv"
    path.write_text("id,a,b\n" + "".join(f"{i},0.5,1\n" for i in range(20)) + "20,abc,1\n")
    with pytest.raises(CsvConversionError, match="invalid value 'abc'"):
        batches_of(path, 10, lr_types)


def test_a_csv_of_many_blocks_is_read_once_whole_in_order(tmp_path, lr_types, monkeypatch):
    monkeypatch.setattr(readers, "_CSV_BLOCK_BYTES", 64)
    path = tmp_path / "long.csv"
    path.write_text("id,a,b,note\n" + "".join(f"{i},{i / 4},{i},n{i}\n" for i in range(300)))
    batches = batches_of(path, 1000, lr_types)
    table = pa.Table.from_batches(batches)
    assert table.schema == pa.schema([("id", pa.int64()), ("a", pa.float64()),
                                      ("b", pa.int64()), ("note", pa.string())])
    assert table.column("id").to_pylist() == list(range(300))
    assert table.column("a").to_pylist() == [i / 4 for i in range(300)]
    assert table.column("note").to_pylist() == [f"n{i}" for i in range(300)]
    assert len(batches) == 1  # rebatched to batch_rows from about 100 blocks


@both_parquet_paths
def test_read_batches_names_the_file_that_cannot_be_read(tmp_path, monkeypatch, whole_file_bytes):
    monkeypatch.setattr(readers, "_WHOLE_FILE_BYTES", whole_file_bytes)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ReadError) as info:
        batches_of(empty, 10)
    assert (info.value.file, str(info.value)) == ("empty.csv",
                                                  "empty.csv: the file is empty (0 bytes).")

    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0]}), whole)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole.read_bytes()[:20])
    with pytest.raises(ReadError) as info:
        batches_of(cut, 10)
    assert str(info.value).startswith(
        "cut.parquet: the file is not a readable Parquet file; it may be truncated or corrupt (")

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
    from sparkscore.planner import list_input
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
