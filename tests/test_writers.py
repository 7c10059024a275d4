"""The output folder: spill buffers, whole-or-nothing parts, manifests, the consolidated CSV."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import fs as pafs

from sparkscore.errors import OutputError
from sparkscore.failures import ERROR_SCHEMA
from sparkscore.layout import OutputLayout, is_empty, prepare_output
from sparkscore.manifest import TaskRun
from sparkscore.scoring import BatchResult, FileResult
from sparkscore.spilling import SpillBuffer, SpillFile, spill_buffers
from sparkscore.writers import (
    commit_batch,
    read_manifests,
    write_csv,
    write_json,
    write_part,
)

LOCAL = pafs.LocalFileSystem()
SCHEMA = pa.schema(
    [
        pa.field("file_name", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("prediction", pa.int64()),
    ]
)


def batch(name: str, rows: list[int], schema: pa.Schema = SCHEMA) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(
        [{"file_name": name, "row": r, "prediction": r % 2} for r in rows], schema=schema
    )


def rows_of(path: Path | str) -> list[dict]:
    return pq.read_table(str(path)).to_pylist()


@pytest.fixture
def spill_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "spill"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_spill_buffer_keeps_small_output_in_memory(spill_dir):
    buffer = SpillBuffer()
    buffer.add(batch("a.csv", [0, 1]))
    buffer.add(batch("a.csv", [2]))
    assert list(spill_dir.iterdir()) == []
    assert buffer.rows == 3
    assert pa.Table.from_batches(list(buffer.batches())).column("row").to_pylist() == [0, 1, 2]


def test_spill_buffer_spills_beyond_spill_bytes_and_keeps_order(spill_dir):
    buffer = SpillBuffer(SpillFile(limit=1))
    for start in (0, 3, 6):
        buffer.add(batch("a.csv", [start, start + 1, start + 2]))
    [spilled] = list(spill_dir.iterdir())
    assert spilled.name.startswith("sparkscore-spill-") and spilled.suffix == ".arrows"
    assert buffer.rows == 9
    table = pa.Table.from_batches(list(buffer.batches()))
    assert table.column("row").to_pylist() == list(range(9))
    buffer.discard()
    assert list(spill_dir.iterdir()) == []
    assert buffer.rows == 0 and list(buffer.batches()) == []


def test_spill_buffer_spills_what_it_held_first(spill_dir):
    first = batch("a.csv", [0, 1])
    buffer = SpillBuffer(SpillFile(limit=first.nbytes))
    buffer.add(first)
    assert list(spill_dir.iterdir()) == []
    buffer.add(batch("a.csv", [2]))
    assert len(list(spill_dir.iterdir())) == 1
    assert [r["row"] for b in buffer.batches() for r in b.to_pylist()] == [0, 1, 2]


def test_spill_buffers_of_a_mini_batch_share_one_budget_and_one_spill_file(spill_dir):
    one = batch("a.csv", [0, 1])
    spill = SpillFile(limit=2 * one.nbytes)
    a, b, c, d = (SpillBuffer(spill) for _ in range(4))
    a.add(one)
    b.add(batch("b.csv", [0, 1]))
    assert list(spill_dir.iterdir()) == []  # the budget holds two files' batches
    c.add(batch("c.csv", [0, 1]))  # the third spills, though it alone is small
    d.add(batch("d.csv", [0]))
    d.add(batch("d.csv", [1, 2]))
    [spilled] = list(spill_dir.iterdir())
    assert spilled.name.startswith("sparkscore-spill-") and spilled.suffix == ".arrows"
    c.discard()  # a failed file: its spilled batches are never read
    assert list(spill_dir.iterdir()) == [spilled]
    rows = [
        (r["file_name"], r["row"]) for x in (a, b, c, d) for t in x.batches() for r in t.to_pylist()
    ]
    assert rows == [("a.csv", 0), ("a.csv", 1), ("b.csv", 0), ("b.csv", 1)] + [
        ("d.csv", 0),
        ("d.csv", 1),
        ("d.csv", 2),
    ]
    assert spill.held == 2 * one.nbytes
    for x in (a, b, d):
        x.discard()
    assert list(spill_dir.iterdir()) == []  # the last buffer with batches in it deletes it
    assert spill.held == 0


def test_spill_buffers_after_a_discard_hold_again_and_spill_to_a_new_file(spill_dir):
    one = batch("a.csv", [0, 1])
    buffers, sink_for = spill_buffers()
    buffers_made = [sink_for(None) for _ in range(3)]
    assert buffers == buffers_made
    a, b, c = buffers
    a.spill.limit = one.nbytes
    a.add(one)
    b.add(batch("b.csv", [5]))
    assert len(list(spill_dir.iterdir())) == 1
    a.discard()
    b.discard()
    assert list(spill_dir.iterdir()) == []
    c.add(batch("c.csv", [7, 8]))  # the memory a discarded file held is free again
    assert list(spill_dir.iterdir()) == []
    assert [r["row"] for t in c.batches() for r in t.to_pylist()] == [7, 8]


def test_write_part_replaces_a_previous_attempt_whole(tmp_path):
    path = f"{tmp_path}/predictions/part-00003.parquet"
    assert write_part(LOCAL, path, SCHEMA, iter([batch("a.csv", [0, 1]), batch("a.csv", [2])])) == 3
    assert write_part(LOCAL, path, SCHEMA, iter([batch("b.csv", [7])])) == 1
    assert rows_of(path) == [{"file_name": "b.csv", "row": 7, "prediction": 1}]
    assert [p.name for p in (tmp_path / "predictions").iterdir()] == ["part-00003.parquet"]


def test_write_part_with_no_rows_deletes_a_stale_part(tmp_path):
    path = f"{tmp_path}/predictions/part-00000.parquet"
    write_part(LOCAL, path, SCHEMA, iter([batch("a.csv", [0])]))
    assert write_part(LOCAL, path, SCHEMA, iter([batch("a.csv", [])])) == 0
    assert list((tmp_path / "predictions").iterdir()) == []
    # and with nothing to write, no folder is made
    assert write_part(LOCAL, f"{tmp_path}/errors/part-00000.parquet", SCHEMA, iter([])) == 0
    assert not (tmp_path / "errors").exists()


def test_write_part_gathers_one_row_batches_into_one_row_group(tmp_path, monkeypatch):
    path = f"{tmp_path}/predictions/part-00000.parquet"
    images = [batch(f"img-{i:04d}.png", [0]) for i in range(2500)]  # one row per image file
    assert write_part(LOCAL, path, SCHEMA, iter(images)) == 2500
    assert pq.ParquetFile(path).metadata.num_row_groups == 1
    assert [r["file_name"] for r in rows_of(path)] == [f"img-{i:04d}.png" for i in range(2500)]

    from sparkscore import writers

    monkeypatch.setattr(writers, "ROW_GROUP_ROWS", 1000)
    write_part(LOCAL, path, SCHEMA, iter(images))
    assert [pq.ParquetFile(path).metadata.row_group(i).num_rows for i in range(3)] == [
        1000,
        1000,
        500,
    ]


def test_write_part_that_fails_midway_leaves_the_old_part_and_no_temporary(tmp_path):
    path = f"{tmp_path}/predictions/part-00000.parquet"
    write_part(LOCAL, path, SCHEMA, iter([batch("a.csv", [0])]))

    def failing():
        yield batch("b.csv", [0, 1])
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError):
        write_part(LOCAL, path, SCHEMA, failing())
    assert rows_of(path) == [{"file_name": "a.csv", "row": 0, "prediction": 0}]
    assert [p.name for p in (tmp_path / "predictions").iterdir()] == ["part-00000.parquet"]


ERROR = {
    "file_name": "b.csv",
    "row": 4,
    "stage": "validate",
    "error_type": "SchemaEnforcementError",
    "message": "b.csv, row 4: ...",
}


def good_and_failed() -> tuple[BatchResult, list[SpillBuffer]]:
    """Mini-batch 2: a.csv scored (rows 0 and 1), b.csv failed (ERROR); their buffers."""
    good, bad = SpillBuffer(), SpillBuffer()
    good.add(batch("a.csv", [0, 1]))
    bad.add(batch("b.csv", [0]))
    result = BatchResult(
        2,
        [
            FileResult("a.csv", rows_read=2, rows_scored=2),
            FileResult("b.csv", rows_read=5, rows_failed=5, failed=True, errors=[ERROR]),
        ],
    )
    return result, [good, bad]


def test_commit_batch_of_spilled_files_writes_the_good_ones_in_order_and_cleans_up(
    tmp_path, spill_dir
):
    layout = OutputLayout.at(str(tmp_path / "out"))
    buffers, sink_for = spill_buffers()
    a, b, c = (sink_for(None) for _ in range(3))
    first = batch("a.csv", [0, 1])
    a.spill.limit = first.nbytes  # a.csv held, b.csv and c.csv spilled to one file
    a.add(first)
    b.add(batch("b.csv", [0]))
    for row in (0, 1, 2):
        c.add(batch("c.csv", [row]))
    assert len(list(spill_dir.iterdir())) == 1
    result = BatchResult(
        0,
        [
            FileResult("a.csv", rows_read=2, rows_scored=2),
            FileResult("b.csv", rows_read=1, rows_failed=1, failed=True, errors=[ERROR]),
            FileResult("c.csv", rows_read=3, rows_scored=3),
        ],
    )
    commit_batch(LOCAL, layout, result, buffers, SCHEMA, TaskRun())
    rows = rows_of(tmp_path / "out" / "predictions" / "part-00000.parquet")
    assert [(r["file_name"], r["row"]) for r in rows] == [
        ("a.csv", 0),
        ("a.csv", 1),
        ("c.csv", 0),
        ("c.csv", 1),
        ("c.csv", 2),
    ]
    assert list(spill_dir.iterdir()) == []


def test_commit_batch_writes_good_files_errors_then_manifest(tmp_path):
    layout = OutputLayout.at(str(tmp_path / "out"))
    result, buffers = good_and_failed()
    manifest = commit_batch(LOCAL, layout, result, buffers, SCHEMA, TaskRun(attempt=1)).to_json()
    out = tmp_path / "out"
    assert rows_of(out / "predictions" / "part-00002.parquet") == [
        {"file_name": "a.csv", "row": 0, "prediction": 0},
        {"file_name": "a.csv", "row": 1, "prediction": 1},
    ]
    assert rows_of(out / "errors" / "part-00002.parquet") == [ERROR]
    assert pq.read_schema(out / "errors" / "part-00002.parquet").names == ERROR_SCHEMA.names
    assert manifest == {
        "batch": 2,
        "files": [
            {
                "file_name": "a.csv",
                "status": "succeeded",
                "rows_read": 2,
                "rows_scored": 2,
                "rows_failed": 0,
            },
            {
                "file_name": "b.csv",
                "status": "failed",
                "rows_read": 5,
                "rows_scored": 0,
                "rows_failed": 5,
            },
        ],
        "prediction_rows": 2,
        "error_records": 1,
        "attempt": 1,
    }
    assert json.loads((out / "_manifest" / "batch-00002.json").read_text()) == manifest
    assert [b.rows for b in buffers] == [0, 0]  # discarded once written


def test_commit_batch_writes_no_manifest_when_its_errors_cannot_be_written(tmp_path):
    """The manifest is the commit marker: written last, so a part that fails leaves the
    mini-batch uncommitted (its retry writes the parts again)."""
    layout = OutputLayout.at(str(tmp_path / "out"))
    blocked = tmp_path / "out" / "errors" / "part-00002.parquet"
    (blocked / "a directory in the way").mkdir(parents=True)
    result, buffers = good_and_failed()
    with pytest.raises(OutputError) as raised:
        commit_batch(LOCAL, layout, result, buffers, SCHEMA, TaskRun(attempt=0))
    assert raised.value.path == str(blocked)
    assert rows_of(tmp_path / "out" / "predictions" / "part-00002.parquet") == [
        {"file_name": "a.csv", "row": 0, "prediction": 0},
        {"file_name": "a.csv", "row": 1, "prediction": 1},
    ]
    assert not (tmp_path / "out" / "_manifest").exists()
    assert read_manifests(LOCAL, layout) == {}
    assert [b.rows for b in buffers] == [0, 0]  # discarded though the commit failed


def test_read_manifests_returns_committed_batches_by_index(tmp_path):
    layout = OutputLayout.at(str(tmp_path / "out"))
    assert read_manifests(LOCAL, layout) == {}
    for index in (0, 11):
        write_json(LOCAL, layout.manifest(index), {"batch": index, "files": []})
    (tmp_path / "out" / "_manifest" / ".batch-00003.json.abc.tmp").write_text("{")
    (tmp_path / "out" / "_manifest" / "notes.json").write_text("{}")
    assert read_manifests(LOCAL, layout) == {
        0: {"batch": 0, "files": []},
        11: {"batch": 11, "files": []},
    }


def test_write_csv_orders_columns_and_writes_nested_predictions_as_json(tmp_path):
    layout = OutputLayout.at(str(tmp_path / "out"), "csv", "scores.csv")
    assert layout.predictions == f"{tmp_path}/out/_staging/predictions"
    schema = pa.schema(
        [
            pa.field("file_name", pa.string()),
            pa.field("row", pa.int64()),
            pa.field(
                "prediction", pa.struct([("label", pa.string()), ("p", pa.list_(pa.float64()))])
            ),
            pa.field("id", pa.int64()),
        ]
    )

    def part(index: int, name: str, rows: list[int]) -> None:
        records = [
            {
                "file_name": name,
                "row": r,
                "id": 10 * index + r,
                "prediction": {"label": f"c{r}", "p": [0.25, 0.75]},
            }
            for r in rows
        ]
        write_part(
            LOCAL,
            layout.part(layout.predictions, index),
            schema,
            iter([pa.RecordBatch.from_pylist(records, schema=schema)]),
        )

    part(0, "a.csv", [0, 1])
    part(2, "c.csv", [0])  # mini-batch 1 had no predictions
    assert write_csv(LOCAL, layout, [0, 1, 2], ["id"]) == 3
    assert (tmp_path / "out" / "scores.csv").read_text().splitlines() == [
        "row,prediction,file_name,id",
        '0,"{""label"": ""c0"", ""p"": [0.25, 0.75]}",a.csv,0',
        '1,"{""label"": ""c1"", ""p"": [0.25, 0.75]}",a.csv,1',
        '0,"{""label"": ""c0"", ""p"": [0.25, 0.75]}",c.csv,20',
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["_staging", "scores.csv"]


def test_write_csv_with_no_predictions_writes_the_same_header(tmp_path):
    layout = OutputLayout.at(str(tmp_path / "out"), "csv")
    (tmp_path / "out").mkdir()
    assert write_csv(LOCAL, layout, [0], ["id"]) == 0
    assert (tmp_path / "out" / "predictions.csv").read_text() == "row,prediction,file_name,id\n"


def test_prepare_output_refuses_a_non_empty_folder_or_a_file(tmp_path):
    out = tmp_path / "out"
    layout = OutputLayout.at(str(out))
    assert is_empty(LOCAL, str(out))
    prepare_output(LOCAL, layout, overwrite=False, resume=False)
    assert out.is_dir() and is_empty(LOCAL, str(out))
    (out / "x").write_text("")
    with pytest.raises(OutputError, match="already exists and is not empty; nothing was touched"):
        prepare_output(LOCAL, layout, overwrite=False, resume=False)
    prepare_output(LOCAL, layout, overwrite=True, resume=False)
    prepare_output(LOCAL, layout, overwrite=False, resume=True)
    assert (out / "x").exists()
    with pytest.raises(OutputError, match="is a file; --output must be a folder"):
        prepare_output(LOCAL, OutputLayout.at(str(out / "x")), overwrite=True, resume=False)
