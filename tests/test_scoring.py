"""One task's work without Spark: read, enforce, predict, sort rows into predictions or errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import fs as pafs

import sparkscore
from sparkscore import readers
from sparkscore.planner import InputFile, MiniBatch
from sparkscore.readers import csv_column_types
from sparkscore.scoring import ScoringSpec, score_batch, score_file
from sparkscore.writers import SpillBuffer

LOCAL = pafs.LocalFileSystem()
BAD_ROW = 7


@pytest.fixture(scope="module")
def model(zoo):
    return sparkscore.load_model(zoo.lr_skops)


@pytest.fixture(scope="module")
def mlflow_model(zoo):
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(zoo.lr_skops))


def spec_for(model, *, batch_rows: int = 3, bad_rows: str = "fail_file",
             passthrough=(("id", pa.int64()),)) -> ScoringSpec:
    return ScoringSpec(prediction_type=pa.int64(), passthrough=tuple(passthrough),
                       column_types=csv_column_types(model.input_schema), batch_rows=batch_rows,
                       bad_rows=bad_rows)


def input_file(path: Path) -> InputFile:
    kind = "csv" if path.suffix == ".csv" else "parquet"
    return InputFile(path=str(path), name=path.name, size=path.stat().st_size, kind=kind)


def data(n: int, first_id: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(first_id)
    return pd.DataFrame({"id": np.arange(first_id, first_id + n), "a": rng.normal(size=n).round(3),
                         "b": np.arange(n) % 3})


def write_csv(path: Path, df: pd.DataFrame, bad_row: int | None = None) -> Path:
    lines = df.to_csv(index=False).splitlines()
    if bad_row is not None:
        cells = lines[1 + bad_row].split(",")
        lines[1 + bad_row] = ",".join([cells[0], "abc", cells[2]])
    path.write_text("\n".join(lines) + "\n")
    return path


def score(model, path: Path, **kwargs):
    spec = spec_for(model, **kwargs)
    sink = SpillBuffer(spec.output_schema)
    result = score_file(LOCAL, input_file(path), model, spec, sink)
    rows = pa.Table.from_batches(list(sink.batches()), schema=spec.output_schema).to_pylist()
    return result, rows


def bad_value_record(name: str) -> dict:
    return {"file_name": name, "row": BAD_ROW, "stage": "validate",
            "error_type": "SchemaEnforcementError",
            "message": f"{name}, row {BAD_ROW}: column 'a' has value 'abc', which cannot be "
                       "converted safely to double."}


def test_score_file_keeps_row_numbers_across_batches(model, mlflow_model, tmp_path):
    df = data(8)
    path = write_csv(tmp_path / "eight.csv", df)
    result, rows = score(model, path, batch_rows=3)
    want = [int(v) for v in mlflow_model.predict(pd.read_csv(path))]
    assert rows == [{"file_name": "eight.csv", "row": i, "prediction": want[i], "id": i}
                    for i in range(8)]
    assert result.record() == {"file_name": "eight.csv", "status": "succeeded", "rows_read": 8,
                               "rows_scored": 8, "rows_failed": 0}
    assert result.errors == []


def test_score_file_parquet_matches_mlflow(model, mlflow_model, tmp_path):
    df = data(5, first_id=50)
    path = tmp_path / "five.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=2)
    result, rows = score(model, path, batch_rows=2)
    want = [int(v) for v in mlflow_model.predict(df)]
    assert [(r["row"], r["prediction"], r["id"]) for r in rows] == [
        (i, want[i], 50 + i) for i in range(5)]
    assert result.rows_scored == 5


def test_score_file_csv_integers_stay_int64_per_signature(model, tmp_path):
    path = tmp_path / "ints.csv"
    path.write_text("id,a,b\n1,2,0\n2,-3,1\n")
    spec = spec_for(model, passthrough=(("a", pa.float64()), ("b", pa.int64())))
    sink = SpillBuffer(spec.output_schema)
    result = score_file(LOCAL, input_file(path), model, spec, sink)
    table = pa.Table.from_batches(list(sink.batches()))
    assert result.rows_scored == 2
    assert table.select(["a", "b"]).to_pydict() == {"a": [2.0, -3.0], "b": [0, 1]}
    assert table.schema.field("b").type == pa.int64()


def test_score_file_bad_value_fails_the_file_naming_row_column_and_value(model, tmp_path):
    path = write_csv(tmp_path / "bad.csv", data(10), bad_row=BAD_ROW)
    result, rows = score(model, path, batch_rows=3)
    assert rows == []
    assert result.errors == [bad_value_record("bad.csv")]
    assert result.record() == {"file_name": "bad.csv", "status": "failed", "rows_read": 10,
                               "rows_scored": 0, "rows_failed": 10}


def test_score_file_fail_file_scores_nothing_after_the_bad_batch(model, tmp_path):
    path = write_csv(tmp_path / "bad.csv", data(10), bad_row=BAD_ROW)
    spec = spec_for(model, batch_rows=3)
    sink = SpillBuffer(spec.output_schema)
    calls = []
    original = model.predict_conformed

    class Counting:
        input_schema = model.input_schema

        def predict_conformed(self, frame, params):
            calls.append(len(frame))
            return original(frame, params)

    score_file(LOCAL, input_file(path), Counting(), spec, sink)
    assert calls == [3, 3]  # rows 0-5; the batch with row 7 fails the file, row 9 is not scored
    assert sink.rows == 0


def test_score_file_skip_scores_other_rows_with_original_numbers(model, mlflow_model, tmp_path):
    df = data(10)
    path = write_csv(tmp_path / "bad.csv", df, bad_row=BAD_ROW)
    result, rows = score(model, path, batch_rows=3, bad_rows="skip")
    kept = [i for i in range(10) if i != BAD_ROW]
    want = [int(v) for v in mlflow_model.predict(df.iloc[kept])]
    assert [(r["row"], r["prediction"], r["id"]) for r in rows] == list(zip(kept, want, kept))
    assert result.errors == [bad_value_record("bad.csv")]
    assert result.record() == {"file_name": "bad.csv", "status": "succeeded", "rows_read": 10,
                               "rows_scored": 9, "rows_failed": 1}


def test_score_file_whole_file_failures_have_null_row(model, tmp_path):
    (tmp_path / "header.csv").write_text("id,a,b\n")
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "nob.csv").write_text("id,a\n1,0.5\n2,0.7\n")
    (tmp_path / "noid.csv").write_text("a,b\n0.5,1\n")
    got = {}
    for name in ("header.csv", "empty.csv", "nob.csv", "noid.csv"):
        result, rows = score(model, tmp_path / name)
        assert rows == [] and result.failed
        [record] = result.errors
        assert record["row"] is None and record["file_name"] == name
        got[name] = (record["stage"], record["error_type"], record["message"],
                     result.rows_read, result.rows_failed)
    assert got == {
        "header.csv": ("read", "ReadError", "header.csv: the file has no rows.", 0, 0),
        "empty.csv": ("read", "ReadError", "empty.csv: the file is empty (0 bytes).", 0, 0),
        "nob.csv": ("validate", "MissingColumnError",
                    "nob.csv: the input is missing the column 'b', which the model signature "
                    "requires (columns present: id, a).", 2, 2),
        "noid.csv": ("validate", "MissingPassthroughError",
                     "noid.csv: the passthrough column 'id' is not in this file (columns "
                     "present: a, b); fix passthrough_columns or the file.", 1, 1),
    }


def test_score_file_passthrough_value_of_another_type_fails_the_file(model, tmp_path):
    path = tmp_path / "strid.csv"
    path.write_text("id,a,b\nx1,0.5,1\n")
    result, rows = score(model, path)
    assert rows == []
    [record] = result.errors
    assert (record["row"], record["stage"], record["error_type"]) == (
        None, "validate", "PassthroughTypeError")
    assert record["message"].startswith(
        "strid.csv: the passthrough column 'id' cannot be written as int64")
    assert result.record()["rows_failed"] == 1


def test_score_file_passthrough_is_never_truncated(model, tmp_path):
    path = tmp_path / "fraction.parquet"
    pq.write_table(pa.table({"id": [1.0, 2.5], "a": [0.1, 0.2], "b": [0, 1]}), path)
    result, rows = score(model, path)
    assert rows == [] and result.errors[0]["error_type"] == "PassthroughTypeError"


def test_score_file_undeclared_column_changing_type_is_a_read_error(model, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setattr(readers, "_CSV_BLOCK_BYTES", 64)
    path = tmp_path / "mixed.csv"
    path.write_text("note,a,b\n" + "".join(f"{i},0.5,1\n" for i in range(20)) + "zz,0.5,1\n")
    result, rows = score(model, path, passthrough=())
    assert rows == []
    [record] = result.errors
    assert (record["row"], record["stage"], record["error_type"]) == (None, "read", "ReadError")
    assert "invalid value 'zz'" in record["message"]


def test_score_batch_scores_each_file_into_its_own_sink(model, tmp_path):
    good = write_csv(tmp_path / "a.csv", data(4))
    bad = write_csv(tmp_path / "b.csv", data(9), bad_row=BAD_ROW)
    spec = spec_for(model, batch_rows=4, bad_rows="skip")
    sinks: list[SpillBuffer] = []

    def sink_for(file: InputFile) -> SpillBuffer:
        sinks.append(SpillBuffer(spec.output_schema))
        return sinks[-1]

    batch = MiniBatch(index=3, files=(input_file(good), input_file(bad)))
    result = score_batch(LOCAL, batch, model, spec, sink_for)
    assert result.index == 3
    assert [f.record() for f in result.files] == [
        {"file_name": "a.csv", "status": "succeeded", "rows_read": 4, "rows_scored": 4,
         "rows_failed": 0},
        {"file_name": "b.csv", "status": "succeeded", "rows_read": 9, "rows_scored": 8,
         "rows_failed": 1},
    ]
    assert [s.rows for s in sinks] == [4, 8]
    assert result.errors == [bad_value_record("b.csv")]
