"""Small remote files fetched ahead: the bytes a reader opens are the file's, each outcome is the
one reading it from the store gives, and local disk is read as it is."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import fs as pafs
from test_scoring import data, input_file, spec_for, write_csv

import sparkscore
from sparkscore.listing import InputFile
from sparkscore.planner import MiniBatch
from sparkscore.prefetch import PREFETCH_FILES, WHOLE_FILE_BYTES, prefetching
from sparkscore.scoring import BatchResult, score_batch
from sparkscore.spilling import spill_buffers


def remote(root: Path) -> pafs.FileSystem:
    """A store that is not the local filesystem object, as S3's is not, over real files."""
    return pafs.SubTreeFileSystem(str(root), pafs.LocalFileSystem())


def listed(root: Path, names: list[str]) -> list[InputFile]:
    return [InputFile(path=n, name=n, size=(root / n).stat().st_size, kind="csv") for n in names]


def test_local_disk_and_a_single_file_are_read_as_they_are(tmp_path):
    for n in ("a", "b"):
        (tmp_path / n).write_bytes(b"x")
    local = pafs.LocalFileSystem()
    with prefetching(local, [input_file(tmp_path / "a"), input_file(tmp_path / "b")]) as fs:
        assert fs is local
    store = remote(tmp_path)
    with prefetching(store, listed(tmp_path, ["a"])) as fs:
        assert fs is store


def test_each_file_opens_with_its_own_bytes_in_any_order_and_again_from_the_store(tmp_path):
    names = [f"f{i:02d}.csv" for i in range(PREFETCH_FILES + 5)]
    for i, n in enumerate(names):
        (tmp_path / n).write_bytes(f"n\n{i}\n".encode())
    (tmp_path / "big.csv").write_bytes(b"n\n" + b"7\n" * (WHOLE_FILE_BYTES // 2 + 1))
    files = listed(tmp_path, [*names, "big.csv"])

    with prefetching(remote(tmp_path), files) as fs:
        assert fs.type_name == "py::prefetching+subtree"
        order = [names[3], names[0], *names[1:3], *names[4:]]
        got = {n: fs.open_input_file(n).read() for n in order}
        (tmp_path / names[0]).write_bytes(b"n\nchanged\n")
        again = fs.open_input_stream(names[0]).read()
        big = fs.open_input_stream("big.csv").read()
        info = fs.get_file_info(names[1])

    assert got == {n: f"n\n{i}\n".encode() for i, n in enumerate(names)}
    assert again == b"n\nchanged\n"  # opened once already: read from the store
    assert big == (tmp_path / "big.csv").read_bytes()  # too big to fetch ahead: the store's
    assert info.size == (tmp_path / names[1]).stat().st_size


def test_a_file_gone_before_it_is_fetched_fails_as_opening_it_would(tmp_path):
    for n in ("a.csv", "b.csv"):
        (tmp_path / n).write_bytes(b"n\n1\n")
    files = listed(tmp_path, ["a.csv", "b.csv"])
    (tmp_path / "b.csv").unlink()
    with pytest.raises(FileNotFoundError) as direct:
        remote(tmp_path).open_input_file("b.csv")

    with prefetching(remote(tmp_path), files) as fs:
        assert fs.open_input_file("a.csv").read() == b"n\n1\n"
        with pytest.raises(FileNotFoundError) as fetched:
            fs.open_input_file("b.csv")

    assert str(fetched.value) == str(direct.value)


def scored(fs: pafs.FileSystem, files: list[InputFile], model) -> tuple[BatchResult, list[dict]]:
    spec = spec_for(model, batch_rows=4)
    buffers, sink_for = spill_buffers()
    result = score_batch(fs, MiniBatch(index=0, files=tuple(files)), model, spec, sink_for)
    rows = [
        row
        for file, buffer in zip(result.files, buffers, strict=True)
        if not file.failed
        for batch in buffer.batches()
        for row in pa.Table.from_batches([batch]).to_pylist()
    ]
    return result, rows


def test_a_mini_batch_of_small_remote_files_scores_as_it_does_from_local_disk(zoo, tmp_path):
    model = sparkscore.load_model(zoo.lr_skops)
    write_csv(tmp_path / "good.csv", data(5))
    write_csv(tmp_path / "bad-value.csv", data(9, 100), bad_row=7)
    pq.write_table(pa.Table.from_pandas(data(6, 200)), tmp_path / "good.parquet")
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 not a parquet file PAR1")
    (tmp_path / "gone.parquet").write_bytes(b"soon removed")
    (tmp_path / "packed.csv.gz").write_bytes(
        gzip.compress(data(3, 300).to_csv(index=False).encode())
    )
    names = [
        "good.csv",
        "bad-value.csv",
        "good.parquet",
        "corrupt.parquet",
        "gone.parquet",
        "packed.csv.gz",
    ]
    files = [input_file(tmp_path / n) for n in names]
    (tmp_path / "gone.parquet").unlink()

    local = scored(pafs.LocalFileSystem(), files, model)
    store = remote(tmp_path)
    fetched = scored(store, [InputFile(n, n, f.size, f.kind) for n, f in zip(names, files)], model)

    assert [(f.name, f.failed, f.rows_read, f.rows_scored) for f in fetched[0].files] == [
        (f.name, f.failed, f.rows_read, f.rows_scored) for f in local[0].files
    ]
    assert [e["message"] for e in fetched[0].errors] == [e["message"] for e in local[0].errors]
    assert [(r["file_name"], r["row"], r["prediction"], r["id"]) for r in fetched[1]] == [
        (r["file_name"], r["row"], r["prediction"], r["id"]) for r in local[1]
    ]
    assert [f.failed for f in local[0].files] == [False, True, False, True, True, True]
    assert [(e["file_name"], e["row"], e["stage"]) for e in local[0].errors] == [
        ("bad-value.csv", 7, "validate"),
        ("corrupt.parquet", None, "read"),
        ("gone.parquet", None, "read"),
        ("packed.csv.gz", None, "read"),
    ]
    assert pd.Series([r["file_name"] for r in local[1]]).value_counts().to_dict() == {
        "good.csv": 5,
        "good.parquet": 6,
    }
