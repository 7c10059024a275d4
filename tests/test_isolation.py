"""A file that kills its worker is found among its mini-batch's files, in real forked children."""

from __future__ import annotations

import signal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from model_zoo import chaos_model
from pyarrow import fs as pafs

import sparkscore
from sparkscore.isolation import score_isolated
from sparkscore.listing import InputFile
from sparkscore.manifest import FileRecord
from sparkscore.planner import MiniBatch
from sparkscore.readers import csv_column_types
from sparkscore.scoring import ScoringSpec, score_batch
from sparkscore.spilling import SpillBuffer

LOCAL = pafs.LocalFileSystem()
POISON = 666.0


def write_files(folder: Path, count: int, rows: int, poison: set[int]) -> list[InputFile]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        a = [float(i * 100 + r) for r in range(rows)]
        if i in poison:
            a[1] = POISON
        path = folder / f"f{i:02d}.csv"
        pd.DataFrame({"a": a, "b": range(rows)}).to_csv(path, index=False)
        files.append(
            InputFile(path=str(path), name=path.name, size=path.stat().st_size, kind="csv")
        )
    return files


def run(model, files: list[InputFile], batch_rows: int | None = None):
    spec = ScoringSpec(
        prediction_type=pa.float64(),
        column_types=csv_column_types(model.input_schema),
        batch_rows=batch_rows,
    )
    sinks: list[SpillBuffer] = []

    def sink_for(_file):
        sinks.append(SpillBuffer())
        return sinks[-1]

    result = score_isolated(LOCAL, MiniBatch(4, tuple(files)), lambda: model, spec, sink_for)
    rows = sorted(
        (r["file_name"], r["row"], r["prediction"])
        for s in sinks
        for b in s.batches()
        for r in b.to_pylist()
    )
    return result, rows


@pytest.mark.parametrize("crash", [None, signal.SIGSEGV])
def test_isolation_records_the_file_that_kills_its_worker_and_scores_the_rest(tmp_path, crash):
    model = sparkscore.load_model(chaos_model(tmp_path, crash_on=POISON, crash_signal=crash))
    files = write_files(tmp_path / "in", count=7, rows=4, poison={4})

    result, rows = run(model, files)

    assert rows == sorted(
        (f"f{i:02d}.csv", r, (i * 100 + r) * 2.0 + r) for i in range(7) if i != 4 for r in range(4)
    )
    assert [
        (f.name, f.failed, f.rows_read, f.rows_scored, f.rows_failed) for f in result.files
    ] == [(f"f{i:02d}.csv", i == 4, 4, 0 if i == 4 else 4, 4 if i == 4 else 0) for i in range(7)]
    how = "killed by signal 11, SIGSEGV" if crash else "exit code 3"
    assert result.errors == [
        {
            "file_name": "f04.csv",
            "row": None,
            "stage": "predict",
            "error_type": "WorkerDiedError",
            "message": f"f04.csv: the Python worker scoring this file died ({how}) in every "
            "attempt of its mini-batch and again when the file was scored alone; the file is "
            "left out and the rest of its mini-batch was scored. Check the model's predict on "
            "this file's rows (memory, native code).",
        }
    ]


def test_isolation_finds_every_poison_file_among_gathered_small_files(tmp_path):
    model = sparkscore.load_model(chaos_model(tmp_path, crash_on=POISON))
    files = write_files(tmp_path / "in", count=9, rows=3, poison={0, 5, 8})

    result, rows = run(model, files, batch_rows=1000)  # all nine share one predict call

    assert [f.name for f in result.files if f.failed] == ["f00.csv", "f05.csv", "f08.csv"]
    assert [e["error_type"] for e in result.errors] == ["WorkerDiedError"] * 3
    assert len(rows) == 6 * 3


def test_isolation_gives_what_score_batch_gives_when_nothing_dies(tmp_path):
    model = sparkscore.load_model(chaos_model(tmp_path))
    files = write_files(tmp_path / "in", count=3, rows=5, poison=set())
    spec = ScoringSpec(
        prediction_type=pa.float64(), column_types=csv_column_types(model.input_schema)
    )
    sinks: list[SpillBuffer] = []
    expected = score_batch(
        LOCAL,
        MiniBatch(4, tuple(files)),
        model,
        spec,
        lambda _f: sinks.append(SpillBuffer()) or sinks[-1],
    )

    result, rows = run(model, files)

    assert [FileRecord.of(f).to_json() for f in result.files] == [
        FileRecord.of(f).to_json() for f in expected.files
    ]
    assert rows == sorted(
        (r["file_name"], r["row"], r["prediction"])
        for s in sinks
        for b in s.batches()
        for r in b.to_pylist()
    )
