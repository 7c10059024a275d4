"""One task's work without Spark: read, enforce, predict, sort rows into predictions or errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import fs as pafs

import sparkscore
from sparkscore import csvfiles
from sparkscore.listing import InputFile
from sparkscore.manifest import FileRecord
from sparkscore.planner import MiniBatch
from sparkscore.readers import csv_column_types
from sparkscore.scoring import FileResult, ScoringSpec, score_batch
from sparkscore.spilling import SpillBuffer

LOCAL = pafs.LocalFileSystem()
BAD_ROW = 7


@pytest.fixture(scope="module")
def model(zoo):
    return sparkscore.load_model(zoo.lr_skops)


@pytest.fixture(scope="module")
def mlflow_model(zoo):
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(zoo.lr_skops))


def spec_for(
    model, *, batch_rows: int = 3, bad_rows: str = "fail_file", passthrough=(("id", pa.int64()),)
) -> ScoringSpec:
    return ScoringSpec(
        prediction_type=pa.int64(),
        passthrough=tuple(passthrough),
        column_types=csv_column_types(model.input_schema),
        batch_rows=batch_rows,
        bad_rows=bad_rows,
    )


def input_file(path: Path) -> InputFile:
    kind = "csv" if path.suffix == ".csv" else "parquet"
    return InputFile(path=str(path), name=path.name, size=path.stat().st_size, kind=kind)


def data(n: int, first_id: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(first_id)
    return pd.DataFrame(
        {
            "id": np.arange(first_id, first_id + n),
            "a": rng.normal(size=n).round(3),
            "b": np.arange(n) % 3,
        }
    )


def write_csv(path: Path, df: pd.DataFrame, bad_row: int | None = None) -> Path:
    lines = df.to_csv(index=False).splitlines()
    if bad_row is not None:
        cells = lines[1 + bad_row].split(",")
        lines[1 + bad_row] = ",".join([cells[0], "abc", cells[2]])
    path.write_text("\n".join(lines) + "\n")
    return path


def score_alone(file: InputFile, model, spec: ScoringSpec, sink: SpillBuffer) -> FileResult:
    """One file scored as a mini-batch of its own, into `sink`."""
    [result] = score_batch(
        LOCAL, MiniBatch(index=0, files=(file,)), model, spec, lambda _: sink
    ).files
    return result


def score(model, path: Path, **kwargs):
    spec = spec_for(model, **kwargs)
    sink = SpillBuffer()
    result = score_alone(input_file(path), model, spec, sink)
    rows = pa.Table.from_batches(list(sink.batches()), schema=spec.output_schema).to_pylist()
    return result, rows


def bad_value_record(name: str) -> dict:
    return {
        "file_name": name,
        "row": BAD_ROW,
        "stage": "validate",
        "error_type": "SchemaEnforcementError",
        "message": f"{name}, row {BAD_ROW}: column 'a' has value 'abc', which cannot be "
        "converted safely to double.",
    }


def test_score_file_keeps_row_numbers_across_batches(model, mlflow_model, tmp_path):
    df = data(8)
    path = write_csv(tmp_path / "eight.csv", df)
    result, rows = score(model, path, batch_rows=3)
    want = [int(v) for v in mlflow_model.predict(pd.read_csv(path))]
    assert rows == [
        {"file_name": "eight.csv", "row": i, "prediction": want[i], "id": i} for i in range(8)
    ]
    assert FileRecord.of(result).to_json() == {
        "file_name": "eight.csv",
        "status": "succeeded",
        "rows_read": 8,
        "rows_scored": 8,
        "rows_failed": 0,
    }
    assert result.errors == []


def test_score_file_parquet_matches_mlflow(model, mlflow_model, tmp_path):
    df = data(5, first_id=50)
    path = tmp_path / "five.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=2)
    result, rows = score(model, path, batch_rows=2)
    want = [int(v) for v in mlflow_model.predict(df)]
    assert [(r["row"], r["prediction"], r["id"]) for r in rows] == [
        (i, want[i], 50 + i) for i in range(5)
    ]
    assert result.rows_scored == 5


def test_score_file_csv_integers_stay_int64_per_signature(model, tmp_path):
    path = tmp_path / "ints.csv"
    path.write_text("id,a,b\n1,2,0\n2,-3,1\n")
    spec = spec_for(model, passthrough=(("a", pa.float64()), ("b", pa.int64())))
    sink = SpillBuffer()
    result = score_alone(input_file(path), model, spec, sink)
    table = pa.Table.from_batches(list(sink.batches()))
    assert result.rows_scored == 2
    assert table.select(["a", "b"]).to_pydict() == {"a": [2.0, -3.0], "b": [0, 1]}
    assert table.schema.field("b").type == pa.int64()


def test_score_file_bad_value_fails_the_file_naming_row_column_and_value(model, tmp_path):
    path = write_csv(tmp_path / "bad.csv", data(10), bad_row=BAD_ROW)
    result, rows = score(model, path, batch_rows=3)
    assert rows == []
    assert result.errors == [bad_value_record("bad.csv")]
    assert FileRecord.of(result).to_json() == {
        "file_name": "bad.csv",
        "status": "failed",
        "rows_read": 10,
        "rows_scored": 0,
        "rows_failed": 10,
    }


def test_score_file_fail_file_scores_nothing_after_the_bad_batch(model, tmp_path):
    path = write_csv(tmp_path / "bad.csv", data(10), bad_row=BAD_ROW)
    spec = spec_for(model, batch_rows=3)
    sink = SpillBuffer()
    calls = []
    original = model.predict_conformed

    class Counting:
        input_schema = model.input_schema

        def predict_conformed(self, frame, params):
            calls.append(len(frame))
            return original(frame, params)

    score_alone(input_file(path), Counting(), spec, sink)
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
    assert FileRecord.of(result).to_json() == {
        "file_name": "bad.csv",
        "status": "succeeded",
        "rows_read": 10,
        "rows_scored": 9,
        "rows_failed": 1,
    }


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
        got[name] = (
            record["stage"],
            record["error_type"],
            record["message"],
            result.rows_read,
            result.rows_failed,
        )
    assert got == {
        "header.csv": ("read", "ReadError", "header.csv: the file has no rows.", 0, 0),
        "empty.csv": ("read", "ReadError", "empty.csv: the file is empty (0 bytes).", 0, 0),
        "nob.csv": (
            "validate",
            "MissingColumnError",
            "nob.csv: the input is missing the column 'b', which the model signature "
            "requires (columns present: id, a).",
            2,
            2,
        ),
        "noid.csv": (
            "validate",
            "MissingPassthroughError",
            "noid.csv: the passthrough column 'id' is not in this file (columns "
            "present: a, b); fix passthrough_columns or the file.",
            1,
            1,
        ),
    }


def test_score_file_wide_parquet_decodes_only_signature_and_passthrough_columns(
    model, mlflow_model, tmp_path
):
    df = data(6)
    wide = pa.Table.from_pandas(df, preserve_index=False).append_column(
        "extra", pa.array([{"k": [i] * i} for i in range(6)])
    )
    path = tmp_path / "wide.parquet"
    pq.write_table(wide, path)
    spec = dataclasses.replace(spec_for(model), read_columns=("a", "b", "id"))
    sink = SpillBuffer()
    result = score_alone(input_file(path), model, spec, sink)
    rows = pa.Table.from_batches(list(sink.batches()), schema=spec.output_schema).to_pylist()
    assert FileRecord.of(result).to_json()["rows_scored"] == 6
    preds = [int(v) for v in mlflow_model.predict(df)]
    assert rows == [
        {"file_name": "wide.parquet", "row": i, "prediction": preds[i], "id": i} for i in range(6)
    ]

    nob = tmp_path / "nob.parquet"
    pq.write_table(wide.drop_columns(["b"]), nob)
    result = score_alone(input_file(nob), model, spec, SpillBuffer())
    assert [e["message"] for e in result.errors] == [
        "nob.parquet: the input is missing the column 'b', which the model signature requires "
        "(columns present: id, a, extra)."
    ]


def test_score_file_passthrough_value_of_another_type_fails_the_file(model, tmp_path):
    path = tmp_path / "strid.csv"
    path.write_text("id,a,b\nx1,0.5,1\n")
    result, rows = score(model, path)
    assert rows == []
    [record] = result.errors
    assert (record["row"], record["stage"], record["error_type"]) == (
        None,
        "validate",
        "PassthroughTypeError",
    )
    assert record["message"].startswith(
        "strid.csv: the passthrough column 'id' cannot be written as int64"
    )
    assert FileRecord.of(result).to_json()["rows_failed"] == 1


def test_score_file_passthrough_is_never_truncated(model, tmp_path):
    path = tmp_path / "fraction.parquet"
    pq.write_table(pa.table({"id": [1.0, 2.5], "a": [0.1, 0.2], "b": [0, 1]}), path)
    result, rows = score(model, path)
    assert rows == [] and result.errors[0]["error_type"] == "PassthroughTypeError"


def test_score_file_undeclared_column_changing_type_is_a_read_error(model, tmp_path, monkeypatch):
    monkeypatch.setattr(csvfiles, "_CSV_BLOCK_BYTES", 64)
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
        sinks.append(SpillBuffer())
        return sinks[-1]

    batch = MiniBatch(index=3, files=(input_file(good), input_file(bad)))
    result = score_batch(LOCAL, batch, model, spec, sink_for)
    assert result.index == 3
    assert [FileRecord.of(f).to_json() for f in result.files] == [
        {
            "file_name": "a.csv",
            "status": "succeeded",
            "rows_read": 4,
            "rows_scored": 4,
            "rows_failed": 0,
        },
        {
            "file_name": "b.csv",
            "status": "succeeded",
            "rows_read": 9,
            "rows_scored": 8,
            "rows_failed": 1,
        },
    ]
    assert [s.rows for s in sinks] == [4, 8]
    assert result.errors == [bad_value_record("b.csv")]


# ---------------------------------------------------------------------------------------------
# Small files: checked together, outcomes charged to each file and row as if scored alone


class CallSizes:
    """A loaded model that records how many rows each predict call got."""

    def __init__(self, model) -> None:
        self.model, self.calls = model, []
        self.input_schema = model.input_schema

    def predict_conformed(self, frame, params):
        self.calls.append(len(frame))
        return self.model.predict_conformed(frame, params)


def small_files(tmp_path: Path, count: int = 12, rows: int = 5, bad_in: int = 7) -> list[Path]:
    """`count` Parquet files of `rows` rows, ids unique across files; file `bad_in` has row 3 bad.

    Column `a` is text in every file, so that the files share one schema (and are checked
    together) while one value is not a number.
    """
    paths = []
    for i in range(count):
        df = data(rows, first_id=i * rows).astype({"a": str})
        if i == bad_in:
            df.loc[3, "a"] = "abc"
        path = tmp_path / f"s{i:02d}.parquet"
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
        paths.append(path)
    return paths


def score_many(model, paths: list[Path], **kwargs):
    spec = spec_for(model, **kwargs)
    sinks: list[SpillBuffer] = []

    def sink_for(file: InputFile) -> SpillBuffer:
        sinks.append(SpillBuffer())
        return sinks[-1]

    batch = MiniBatch(index=0, files=tuple(input_file(p) for p in paths))
    result = score_batch(LOCAL, batch, model, spec, sink_for)
    rows = [
        r
        for f, s in zip(result.files, sinks)
        if not f.failed
        for r in pa.Table.from_batches(list(s.batches()), schema=spec.output_schema).to_pylist()
    ]
    return result, rows


def scored_alone(model, paths: list[Path], **kwargs):
    results, rows = [], []
    for path in paths:
        result, got = score(model, path, **kwargs)
        results.append(result)
        rows += [] if result.failed else got
    return results, rows


@pytest.mark.parametrize("bad_rows", ["fail_file", "skip"])
def test_score_batch_small_files_share_calls_and_keep_each_file_row_and_error(
    model, mlflow_model, tmp_path, bad_rows
):
    paths = small_files(tmp_path)
    counting = CallSizes(model)
    result, rows = score_many(counting, paths, batch_rows=None, bad_rows=bad_rows)
    assert counting.calls == [59 if bad_rows == "skip" else 55]  # one call for every file
    bad_name = "s07.parquet"
    assert result.errors == [
        {
            "file_name": bad_name,
            "row": 3,
            "stage": "validate",
            "error_type": "SchemaEnforcementError",
            "message": f"{bad_name}, row 3: column 'a' has value 'abc', which cannot be converted "
            "safely to double.",
        }
    ]
    want = []
    for path in paths:
        df = pd.read_parquet(path)
        keep = [i for i in range(5) if df["a"][i] != "abc"]
        if path.name == bad_name and bad_rows == "fail_file":
            continue
        good = df.iloc[keep].astype({"a": float})
        preds = [int(v) for v in mlflow_model.predict(good)]
        want += [
            {"file_name": path.name, "row": i, "prediction": p, "id": int(good["id"][i])}
            for i, p in zip(keep, preds)
        ]
    assert rows == want
    records = {f.name: FileRecord.of(f).to_json() for f in result.files}
    bad_record = (
        {"status": "failed", "rows_scored": 0, "rows_failed": 5}
        if bad_rows == "fail_file"
        else {"status": "succeeded", "rows_scored": 4, "rows_failed": 1}
    )
    assert records[bad_name] == {"file_name": bad_name, "rows_read": 5, **bad_record}
    assert all(
        r
        == {
            "file_name": n,
            "status": "succeeded",
            "rows_read": 5,
            "rows_scored": 5,
            "rows_failed": 0,
        }
        for n, r in records.items()
        if n != bad_name
    )


@pytest.mark.parametrize("batch_rows", [None, 4, 7, 23])
@pytest.mark.parametrize("bad_rows", ["fail_file", "skip"])
def test_score_batch_small_files_same_outcome_as_each_file_alone(
    model, tmp_path, batch_rows, bad_rows
):
    paths = small_files(tmp_path, count=9, rows=6, bad_in=4)
    (tmp_path / "nob.csv").write_text("id,a\n900,0.5\n901,0.7\n")  # a missing column
    (tmp_path / "strid.csv").write_text("id,a,b\nx1,0.5,1\n")  # a passthrough of another type
    (tmp_path / "nulls.csv").write_text("id,a,b\n950,0.5,\n951,,1\n")  # b has a null
    paths[2:2] = [tmp_path / "nob.csv", tmp_path / "strid.csv"]
    paths.insert(8, tmp_path / "nulls.csv")
    # Read in several batches unless batch_rows is None: checked alone, between gathered files,
    # and still written in its place.
    big = tmp_path / "big.parquet"
    pq.write_table(
        pa.Table.from_pandas(data(30, first_id=500).astype({"a": str}), preserve_index=False), big
    )
    paths.insert(6, big)
    result, rows = score_many(model, paths, batch_rows=batch_rows, bad_rows=bad_rows)
    alone, alone_rows = scored_alone(model, paths, batch_rows=batch_rows, bad_rows=bad_rows)
    assert rows == alone_rows
    assert [FileRecord.of(f).to_json() for f in result.files] == [
        FileRecord.of(r).to_json() for r in alone
    ]
    assert result.errors == [e for r in alone for e in r.errors]
    assert len(rows) + sum(f.rows_failed for f in result.files) == sum(
        f.rows_read for f in result.files
    )


def test_score_batch_small_files_failed_shared_call_is_charged_per_file(model, tmp_path):
    paths = small_files(tmp_path, count=4, rows=3, bad_in=-1)

    class RefusesRow7:
        """Fails every call holding id 7 (file s02.parquet, row 1)."""

        input_schema = model.input_schema
        calls: list[int] = []

        def predict_conformed(self, frame, params):
            self.calls.append(len(frame))
            if np.isclose(frame["a"].to_numpy(), float(data(3, first_id=6)["a"][1])).any():
                raise ValueError("id 7 refused")
            return model.predict_conformed(frame, params)

    refusing = RefusesRow7()
    result, rows = score_many(refusing, paths, batch_rows=None)
    assert refusing.calls == [12, 3, 3, 3, 3]  # the shared call, then each file alone
    assert [FileRecord.of(f).to_json()["status"] for f in result.files] == [
        "succeeded",
        "succeeded",
        "failed",
        "succeeded",
    ]
    [error] = result.errors
    assert (error["file_name"], error["row"], error["stage"]) == ("s02.parquet", None, "predict")
    assert [(r["file_name"], r["row"]) for r in rows] == [
        (f"s{i:02d}.parquet", j) for i in (0, 1, 3) for j in range(3)
    ]


# ---------------------------------------------------------------------------------------------
# Image files: one row per file, several files per predict call, failures charged per file


def image_spec(model, *, batch_rows: int | None = None, passthrough=()) -> ScoringSpec:
    from sparkscore.sparktypes import arrow_type, output_type

    return ScoringSpec(
        prediction_type=arrow_type(output_type(model.spec.signature)),
        passthrough=tuple(passthrough),
        batch_rows=batch_rows,
    )


class CountingModel:
    """A loaded model that records the shape of each predict call, and may fail on a pixel."""

    def __init__(self, model, fail_on: int | None = None) -> None:
        self.model, self.fail_on, self.calls = model, fail_on, []
        self.input_schema = model.input_schema
        self.spec = model.spec

    def predict_conformed(self, data, params):
        self.calls.append(tuple(np.shape(data)))
        if self.fail_on is not None and (np.asarray(data) == self.fail_on).all(axis=(1, 2)).any():
            raise ValueError(f"an image is all {self.fail_on}")
        return self.model.predict_conformed(data, params)


def score_folder(model, folder: Path, **kwargs):
    from sparkscore.planner import plan

    spec = image_spec(model, **kwargs)
    sinks: dict[str, SpillBuffer] = {}

    def sink_for(file: InputFile) -> SpillBuffer:
        sinks[file.name] = SpillBuffer()
        return sinks[file.name]

    [batch] = plan(str(folder), mini_batch_size=100).batches
    result = score_batch(LOCAL, batch, model, spec, sink_for)
    rows = [
        r
        for name in sorted(sinks)
        for r in pa.Table.from_batches(
            list(sinks[name].batches()), schema=spec.output_schema
        ).to_pylist()
    ]
    return result, rows


def pillow_arrays(paths) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(p)) for p in paths])


def test_score_batch_images_one_row_per_file_in_one_predict_call_equal_mlflow(zoo, tmp_path):
    import mlflow.pyfunc
    from model_zoo import digit_images, write_pngs

    paths = write_pngs(tmp_path / "in", digit_images(12))
    model = CountingModel(sparkscore.load_model(zoo.digit_scores))
    result, rows = score_folder(model, tmp_path / "in")

    theirs = mlflow.pyfunc.load_model(str(zoo.digit_scores))
    pixels = pillow_arrays(paths).astype(np.float32)
    want = theirs.predict(pixels)
    assert rows == [
        {"file_name": p.name, "row": 0, "prediction": want[i].tolist()} for i, p in enumerate(paths)
    ]
    # seed 002 predicts each file alone; the batched call gives the same scores
    assert [theirs.predict(pixels[i : i + 1])[0].tolist() for i in range(12)] == want.tolist()
    assert model.calls == [(12, 8, 8)]
    assert [FileRecord.of(f).to_json() for f in result.files] == [
        {
            "file_name": p.name,
            "status": "succeeded",
            "rows_read": 1,
            "rows_scored": 1,
            "rows_failed": 0,
        }
        for p in paths
    ]


def test_score_batch_images_bounded_by_batch_rows_and_labels_equal_mlflow(zoo, tmp_path):
    import mlflow.pyfunc
    from model_zoo import digit_images, write_pngs

    paths = write_pngs(tmp_path / "in", digit_images(12))
    model = CountingModel(sparkscore.load_model(zoo.digit_labels))
    _, rows = score_folder(model, tmp_path / "in", batch_rows=5)
    assert model.calls == [(5, 64), (5, 64), (2, 64)]
    want = mlflow.pyfunc.load_model(str(zoo.digit_labels)).predict(
        pillow_arrays(paths).reshape(12, 64)
    )
    assert [(r["file_name"], r["row"], r["prediction"]) for r in rows] == [
        (p.name, 0, want[i]) for i, p in enumerate(paths)
    ]
    assert list(want[:4]) == ["zero", "one", "two", "three"]


def test_score_batch_image_failures_are_records_and_other_images_are_scored(zoo, tmp_path):
    from model_zoo import digit_images, write_pngs
    from PIL import Image

    folder = tmp_path / "in"
    good = write_pngs(folder, digit_images(3))
    whole = (folder / "digit-00.png").read_bytes()
    big = folder / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(big)
    (folder / "cut.png").write_bytes(big.read_bytes()[: big.stat().st_size // 2])
    big.unlink()
    (folder / "empty.bmp").write_bytes(b"")
    (folder / "notes.gif").write_text("not an image")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "color.png")
    (folder / "copy.jpeg").write_bytes(whole)  # a PNG named .jpeg: Pillow reads what it is

    model = CountingModel(sparkscore.load_model(zoo.digit_labels))
    result, rows = score_folder(model, folder)
    assert [(r["file_name"], r["prediction"]) for r in rows] == [
        ("copy.jpeg", "zero"),
        ("digit-00.png", "zero"),
        ("digit-01.png", "one"),
        ("digit-02.png", "two"),
    ]
    assert model.calls == [(4, 64)]
    assert sorted(
        (e["file_name"], e["row"], e["stage"], e["error_type"], e["message"]) for e in result.errors
    ) == [
        (
            "color.png",
            None,
            "validate",
            "ImageShapeError",
            "color.png: the image has shape [8, 8, 3] (Pillow mode RGB), which cannot be reshaped "
            "to the signature's tensor shape [-1, 64] (-1 is any size); convert the images to "
            "that shape, or save the model with a signature that takes this one.",
        ),
        (
            "cut.png",
            None,
            "read",
            "ReadError",
            "cut.png: the file is not a readable PNG image; it may be truncated or corrupt (image "
            "file is truncated).",
        ),
        ("empty.bmp", None, "read", "ReadError", "empty.bmp: the file is empty (0 bytes)."),
        (
            "notes.gif",
            None,
            "read",
            "ReadError",
            "notes.gif: the file is not a readable GIF image: Pillow recognizes no image format "
            "in it.",
        ),
    ]
    records = {f.name: FileRecord.of(f).to_json() for f in result.files}
    assert records["cut.png"] == {
        "file_name": "cut.png",
        "status": "failed",
        "rows_read": 1,
        "rows_scored": 0,
        "rows_failed": 1,
    }
    assert sum(r["rows_read"] for r in records.values()) == 8 == len(good) + 5


def test_score_batch_shared_image_predict_failure_is_charged_to_its_file(zoo, tmp_path):
    from model_zoo import digit_images, write_pngs

    images = digit_images(4)
    images[2] = 0  # all black: the model below raises on it
    paths = write_pngs(tmp_path / "in", images)
    model = CountingModel(sparkscore.load_model(zoo.digit_scores), fail_on=0)
    result, rows = score_folder(model, tmp_path / "in")
    assert model.calls == [(4, 8, 8), (1, 8, 8), (1, 8, 8), (1, 8, 8), (1, 8, 8)]
    assert [r["file_name"] for r in rows] == [paths[i].name for i in (0, 1, 3)]
    assert result.errors == [
        {
            "file_name": "digit-02.png",
            "row": None,
            "stage": "predict",
            "error_type": "PredictError",
            "message": "digit-02.png, rows 0-0: the model's predict failed: ValueError: an "
            "image is all 0",
        }
    ]


def test_score_batch_images_of_several_sizes_share_calls_by_shape(zoo, tmp_path):
    import mlflow.pyfunc
    from PIL import Image

    rng = np.random.default_rng(3)
    sizes = {"a.png": (4, 6), "b.png": (4, 6), "c.png": (5, 5), "d.png": (4, 6)}
    folder = tmp_path / "in"
    folder.mkdir()
    for name, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / name)
    model = CountingModel(sparkscore.load_model(zoo.channel_means))
    _, rows = score_folder(model, folder)
    assert model.calls == [(2, 4, 6, 3), (1, 5, 5, 3), (1, 4, 6, 3)]
    theirs = mlflow.pyfunc.load_model(str(zoo.channel_means))
    assert rows == [
        {
            "file_name": name,
            "row": 0,
            "prediction": theirs.predict(pillow_arrays([folder / name]))[0].tolist(),
        }
        for name in sizes
    ]


def test_score_batch_images_without_signature_are_uint8(zoo, tmp_path):
    import mlflow.pyfunc
    from model_zoo import digit_images, write_pngs

    paths = write_pngs(tmp_path / "in", digit_images(3))
    model = CountingModel(sparkscore.load_model(zoo.pixel_mean_nosig))
    _, rows = score_folder(model, tmp_path / "in", passthrough=(("id", pa.int64()),))
    want = mlflow.pyfunc.load_model(str(zoo.pixel_mean_nosig)).predict(pillow_arrays(paths))
    assert rows == [
        {"file_name": p.name, "row": 0, "prediction": want[i], "id": None}
        for i, p in enumerate(paths)
    ]
    assert model.calls == [(3, 8, 8)]


def test_score_batch_binary_column_model_gets_each_file_bytes(zoo, tmp_path):
    import mlflow.pyfunc
    from model_zoo import digit_images, write_pngs

    paths = write_pngs(tmp_path / "in", digit_images(2))
    (tmp_path / "in" / "junk.png").write_bytes(b"junk")  # bytes are the model's to judge
    _, rows = score_folder(sparkscore.load_model(zoo.image_bytes), tmp_path / "in")
    theirs = mlflow.pyfunc.load_model(str(zoo.image_bytes))
    names = [p.name for p in paths] + ["junk.png"]
    data = [(tmp_path / "in" / n).read_bytes() for n in names]
    want = theirs.predict(pd.DataFrame({"image": data})).tolist()
    assert [(r["file_name"], r["prediction"]) for r in rows] == list(zip(names, want))
    assert want[-1] == 4


def test_score_batch_mixed_folder_fails_each_file_the_model_cannot_take(zoo, tmp_path):
    from model_zoo import digit_images, write_pngs

    folder = tmp_path / "in"
    write_pngs(folder, digit_images(1))
    write_csv(folder / "rows.csv", data(3))
    table_model = sparkscore.load_model(zoo.lr_skops)
    result, rows = score_folder(table_model, folder)
    assert [(r["file_name"], r["row"]) for r in rows] == [("rows.csv", i) for i in range(3)]
    assert result.errors == [
        {
            "file_name": "digit-00.png",
            "row": None,
            "stage": "validate",
            "error_type": "SchemaEnforcementError",
            "message": "digit-00.png: this is an image file, but the model's signature takes "
            "columns (a: double, b: long), not images; image files need a model whose "
            "input is one tensor (TensorSpec) or one binary column. Leave the image "
            "files out of the input, or score them with a model that takes images.",
        }
    ]

    image_model = sparkscore.load_model(zoo.digit_labels)
    result, rows = score_folder(image_model, folder)
    assert [(r["file_name"], r["prediction"]) for r in rows] == [("digit-00.png", "zero")]
    assert result.errors == [
        {
            "file_name": "rows.csv",
            "row": None,
            "stage": "validate",
            "error_type": "TensorShapeError",
            "message": "rows.csv: input 'the unnamed input' has shape [3, 3], which does not fit "
            "the signature's tensor shape [-1, 64] (-1 is any size).",
        }
    ]
    assert [FileRecord.of(f).to_json()["rows_failed"] for f in result.files] == [0, 3]


def test_score_batch_table_rows_reach_a_tensor_model_as_that_tensor(zoo, tmp_path):
    import mlflow.pyfunc
    from model_zoo import digit_images

    pixels = digit_images(4).reshape(4, 64)
    frame = pd.DataFrame(pixels, columns=[f"p{i}" for i in range(64)])
    frame.to_csv(tmp_path / "pixels.csv", index=False)
    model = CountingModel(sparkscore.load_model(zoo.digit_labels))
    result, rows = score_folder(model, tmp_path)
    want = mlflow.pyfunc.load_model(str(zoo.digit_labels)).predict(frame)
    assert [(r["row"], r["prediction"]) for r in rows] == list(enumerate(want))
    assert model.calls == [(4, 64)]
    assert result.errors == []


# ---------------------------------------------------------------------------------------------
# Reading at the edges: every row of every file accounted, ragged rows as bad rows, files that
# cannot be read say why (and whether their rows are known), passthrough as Arrow read it


def ragged_csv(path: Path, n: int = 10, short=(2, 6), long=(9,), bad_value=()) -> list[str]:
    """A CSV of data(n) with rows missing their last value (`short`), rows with one value too
    many (`long`) and rows whose `a` is 'abc'; returns the data lines as written."""
    lines = data(n).to_csv(index=False).splitlines()
    for i in short:
        lines[1 + i] = ",".join(lines[1 + i].split(",")[:2])
    for i in long:
        lines[1 + i] += ",7"
    for i in bad_value:
        cells = lines[1 + i].split(",")
        lines[1 + i] = ",".join([cells[0], "abc", cells[2]])
    path.write_text("\n".join(lines) + "\n")
    return lines[1:]


def ragged_record(name: str, row: int, text: str, values: int) -> dict:
    return {
        "file_name": name,
        "row": row,
        "stage": "read",
        "error_type": "ReadError",
        "message": f"{name}, row {row}: the row has {values} values but the header names 3 "
        f"columns ({text}); quote values that hold a comma, and give every row "
        "one value per column.",
    }


def test_score_file_ragged_rows_fail_the_file_naming_each_row(model, tmp_path):
    lines = ragged_csv(tmp_path / "ragged.csv")
    result, rows = score(model, tmp_path / "ragged.csv", batch_rows=3)
    assert rows == []
    assert result.errors == [
        ragged_record("ragged.csv", 2, lines[2], 2),
        ragged_record("ragged.csv", 6, lines[6], 2),
        ragged_record("ragged.csv", 9, lines[9], 4),
    ]
    assert FileRecord.of(result).to_json() == {
        "file_name": "ragged.csv",
        "status": "failed",
        "rows_read": 10,
        "rows_scored": 0,
        "rows_failed": 10,
    }


@pytest.mark.parametrize("batch_rows", [3, 100])
def test_score_file_ragged_rows_are_bad_rows_under_skip(model, mlflow_model, tmp_path, batch_rows):
    lines = ragged_csv(tmp_path / "ragged.csv", bad_value=(4,))
    result, rows = score(model, tmp_path / "ragged.csv", batch_rows=batch_rows, bad_rows="skip")
    kept = [0, 1, 3, 5, 7, 8]
    source = data(10).iloc[kept]
    want = [int(v) for v in mlflow_model.predict(source)]
    assert rows == [
        {"file_name": "ragged.csv", "row": r, "prediction": p, "id": r} for r, p in zip(kept, want)
    ]
    assert result.errors == [
        ragged_record("ragged.csv", 2, lines[2], 2),
        {
            "file_name": "ragged.csv",
            "row": 4,
            "stage": "validate",
            "error_type": "SchemaEnforcementError",
            "message": "ragged.csv, row 4: column 'a' has value 'abc', which cannot be converted "
            "safely to double.",
        },
        ragged_record("ragged.csv", 6, lines[6], 2),
        ragged_record("ragged.csv", 9, lines[9], 4),
    ]
    assert FileRecord.of(result).to_json() == {
        "file_name": "ragged.csv",
        "status": "succeeded",
        "rows_read": 10,
        "rows_scored": 6,
        "rows_failed": 4,
    }


def test_score_file_ragged_rows_across_many_blocks_keep_every_row_number(
    model, tmp_path, monkeypatch
):
    monkeypatch.setattr(csvfiles, "_CSV_BLOCK_BYTES", 64)
    short = (0, 3, 4, 17, 39)
    ragged_csv(tmp_path / "long.csv", n=40, short=short, long=(20,))
    result, rows = score(model, tmp_path / "long.csv", batch_rows=7, bad_rows="skip")
    kept = [i for i in range(40) if i not in (*short, 20)]
    assert [(r["row"], r["id"]) for r in rows] == [(i, i) for i in kept]
    assert [e["row"] for e in result.errors] == [0, 3, 4, 17, 20, 39]
    assert FileRecord.of(result).to_json() == {
        "file_name": "long.csv",
        "status": "succeeded",
        "rows_read": 40,
        "rows_scored": 34,
        "rows_failed": 6,
    }


def test_score_file_column_changing_type_after_the_first_block_counts_its_rows(
    model, tmp_path, monkeypatch
):
    monkeypatch.setattr(csvfiles, "_CSV_BLOCK_BYTES", 64)
    path = tmp_path / "mixed.csv"
    path.write_text("note,a,b\n" + "".join(f"{i},0.5,1\n" for i in range(40)) + "zz,0.5,1\n")
    result, rows = score(model, path, passthrough=(), batch_rows=1000)
    assert rows == []
    assert FileRecord.of(result).to_json() == {
        "file_name": "mixed.csv",
        "status": "failed",
        "rows_read": 41,
        "rows_scored": 0,
        "rows_failed": 41,
    }


def test_score_file_failing_in_its_first_batch_still_counts_every_row(model, tmp_path):
    path = write_csv(tmp_path / "noid.csv", data(10).drop(columns="id"))
    result, _ = score(model, path, batch_rows=3)
    assert [e["error_type"] for e in result.errors] == ["MissingPassthroughError"]
    assert FileRecord.of(result).to_json() == {
        "file_name": "noid.csv",
        "status": "failed",
        "rows_read": 10,
        "rows_scored": 0,
        "rows_failed": 10,
    }


def test_score_file_quoted_newlines_in_a_csv_larger_than_a_block(model, mlflow_model, tmp_path):
    import pyarrow.csv as pacsv

    n = 60_000
    df = data(n)
    table = pa.Table.from_pandas(df, preserve_index=False).append_column(
        "note", pa.array([f"line {i}\nnext" for i in range(n)])
    )
    pacsv.write_csv(table.select(["id", "note", "a", "b"]), tmp_path / "notes.csv")
    assert (tmp_path / "notes.csv").stat().st_size > csvfiles._CSV_BLOCK_BYTES
    result, rows = score(model, tmp_path / "notes.csv", batch_rows=None)
    want = [int(v) for v in mlflow_model.predict(df)]
    assert [(r["row"], r["prediction"], r["id"]) for r in rows] == [
        (i, want[i], i) for i in range(n)
    ]
    assert FileRecord.of(result).to_json() == {
        "file_name": "notes.csv",
        "status": "succeeded",
        "rows_read": n,
        "rows_scored": n,
        "rows_failed": 0,
    }


def test_score_batch_files_that_fail_while_read_say_why_and_account_their_rows(model, tmp_path):
    import gzip

    folder = tmp_path / "in"
    folder.mkdir()
    write_csv(folder / "a_good.csv", data(4))
    (folder / "dup.csv").write_text("id,a,b,a\n1,0.5,1,0.7\n2,0.5,1,0.7\n3,0.5,1,0.7\n")
    pq.write_table(
        pa.Table.from_arrays(
            [pa.array([1, 2, 3]), pa.array([0.5] * 3), pa.array([1] * 3), pa.array([0.7] * 3)],
            names=["id", "a", "b", "a"],
        ),
        folder / "dup.parquet",
    )
    (folder / "gz.csv").write_bytes(gzip.compress((folder / "a_good.csv").read_bytes()))
    write_csv(folder / "gone.csv", data(5))
    pq.write_table(pa.Table.from_pandas(data(5), preserve_index=False), folder / "gone.parquet")
    files = tuple(input_file(p) for p in sorted(folder.iterdir()))
    (folder / "gone.csv").unlink()
    (folder / "gone.parquet").unlink()
    spec = spec_for(model, batch_rows=None)
    sinks: list[SpillBuffer] = []

    def sink_for(file: InputFile) -> SpillBuffer:
        sinks.append(SpillBuffer())
        return sinks[-1]

    result = score_batch(LOCAL, MiniBatch(index=0, files=files), model, spec, sink_for)
    twice = (
        "appears twice in the file's {}, so which one to read is ambiguous; give each "
        "column its own name."
    )
    removed = "the file no longer exists: it was removed after the job was planned."
    assert [
        (e["file_name"], e["row"], e["stage"], e["error_type"], e["message"]) for e in result.errors
    ] == [
        ("dup.csv", None, "read", "ReadError", "dup.csv: the column 'a' " + twice.format("header")),
        (
            "dup.parquet",
            None,
            "read",
            "ReadError",
            "dup.parquet: the column 'a' " + twice.format("schema"),
        ),
        ("gone.csv", None, "read", "ReadError", f"gone.csv: {removed}"),
        ("gone.parquet", None, "read", "ReadError", f"gone.parquet: {removed}"),
        (
            "gz.csv",
            None,
            "read",
            "ReadError",
            "gz.csv: the file is not CSV text: it looks gzip-compressed; decompress it before "
            "scoring it.",
        ),
    ]
    failed = {"status": "failed", "rows_scored": 0}
    unknown = {**failed, "rows_read": 0, "rows_failed": 0, "rows_unknown": True}
    assert [FileRecord.of(f).to_json() for f in result.files] == [
        {
            "file_name": "a_good.csv",
            "status": "succeeded",
            "rows_read": 4,
            "rows_scored": 4,
            "rows_failed": 0,
        },
        {"file_name": "dup.csv", **failed, "rows_read": 3, "rows_failed": 3},
        {"file_name": "dup.parquet", **failed, "rows_read": 3, "rows_failed": 3},
        {"file_name": "gone.csv", **unknown},
        {"file_name": "gone.parquet", **unknown},
        {"file_name": "gz.csv", **unknown},
    ]
    assert [s.rows for s in sinks] == [4, 0, 0, 0, 0, 0]


def test_score_batch_timed_out_files_count_their_rows_or_say_they_are_unknown(model, tmp_path):
    import gzip

    from sparkscore.errors import BatchTimeoutError

    good = write_csv(tmp_path / "good.csv", data(4))
    (tmp_path / "gz.csv").write_bytes(gzip.compress(good.read_bytes()))

    class Stuck:
        input_schema = model.input_schema

        def predict_conformed(self, frame, params):
            raise BatchTimeoutError(seconds=1, files=["good.csv", "gz.csv"])

    spec = spec_for(model, batch_rows=None)
    batch = MiniBatch(index=0, files=(input_file(good), input_file(tmp_path / "gz.csv")))
    result = score_batch(LOCAL, batch, Stuck(), spec, lambda f: SpillBuffer())
    assert [FileRecord.of(f).to_json() for f in result.files] == [
        {
            "file_name": "good.csv",
            "status": "failed",
            "rows_read": 4,
            "rows_scored": 0,
            "rows_failed": 4,
        },
        {
            "file_name": "gz.csv",
            "status": "failed",
            "rows_read": 0,
            "rows_scored": 0,
            "rows_failed": 0,
            "rows_unknown": True,
        },
    ]
    assert [(e["file_name"], e["stage"]) for e in result.errors] == [
        ("good.csv", "timeout"),
        ("gz.csv", "timeout"),
    ]


def test_score_file_passthrough_keeps_nested_types_and_writes_ints_as_text(model, tmp_path):
    df = data(3)
    table = (
        pa.Table.from_pandas(df, preserve_index=False)
        .append_column(
            "tags",
            pa.array([[("k", i)] for i in range(3)], pa.map_(pa.string(), pa.int64())),
        )
        .append_column(
            "meta",
            pa.array([{"site": f"s{i}", "n": i} for i in range(3)]),
        )
        .append_column("codes", pa.array([[i, i + 1] for i in range(3)]))
    )
    path = tmp_path / "nested.parquet"
    pq.write_table(table, path)
    passthrough = (
        ("tags", pa.map_(pa.string(), pa.int64())),
        ("meta", pa.struct([("site", pa.string()), ("n", pa.int64())])),
        ("codes", pa.list_(pa.int64())),
        ("id", pa.string()),
    )
    result, rows = score(model, path, passthrough=passthrough, bad_rows="skip")
    assert FileRecord.of(result).to_json()["rows_scored"] == 3
    assert [{k: r[k] for k in ("row", "tags", "meta", "codes", "id")} for r in rows] == [
        {
            "row": i,
            "tags": [("k", i)],
            "meta": {"site": f"s{i}", "n": i},
            "codes": [i, i + 1],
            "id": str(i),
        }
        for i in range(3)
    ]


def test_skipped_csv_rows_leave_gaps_in_the_file_rows_of_every_batch():
    from sparkscore.csvfiles import RaggedRow
    from sparkscore.scoring import _Skipped

    rng = np.random.default_rng(7)
    for _ in range(50):
        total = int(rng.integers(1, 200))
        skipped = sorted(rng.choice(total, size=int(rng.integers(0, total)), replace=False))
        kept = [r for r in range(total) if r not in set(skipped)]
        rows = _Skipped([RaggedRow(int(r), 2, 3, "x") for r in skipped])
        got, good = [], 0
        while good < len(kept):
            n = int(rng.integers(1, 30))
            n = min(n, len(kept) - good)
            got += rows.file_rows(good, n).tolist()
            good += n
        assert got == kept


# ---------------------------------------------------------------------------------------------
# Values a float64 or datetime64[ns] cannot hold, from real Parquet files: judged row by row


def _save_python_model(where: Path, python_model, inputs, output: str | None) -> Path:
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = (
        None
        if inputs is None
        else ModelSignature(
            inputs=Schema([ColSpec(t, name) for name, t in inputs]),
            outputs=Schema([ColSpec(output)]),
        )
    )
    mlflow.pyfunc.save_model(
        str(where), python_model=python_model, signature=signature, pip_requirements=["pandas"]
    )
    return where


@pytest.fixture(scope="module")
def ledger_model(tmp_path_factory):
    """Inputs id: long and amount: double; predicts what it was handed, spelled exactly
    ('9007199254740993:12.34'), so a test sees each value the model got."""
    import mlflow.pyfunc

    class Ledger(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return np.array(
                [
                    f"{i!r}:{a!r}"
                    for i, a in zip(model_input["id"].tolist(), model_input["amount"].tolist())
                ],
                dtype=object,
            )

    path = _save_python_model(
        tmp_path_factory.mktemp("ledger") / "m",
        Ledger(),
        [("id", "long"), ("amount", "double")],
        "string",
    )
    return sparkscore.load_model(path)


@pytest.fixture(scope="module")
def clock_model(tmp_path_factory):
    """Input ts: datetime; predicts the int64 it holds: nanoseconds since 1970 only if the model
    was handed datetime64[ns], as mlflow hands it."""
    import mlflow.pyfunc

    class Clock(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input["ts"].to_numpy().view(np.int64)

    path = _save_python_model(
        tmp_path_factory.mktemp("clock") / "m", Clock(), [("ts", "datetime")], "long"
    )
    return sparkscore.load_model(path)


def score_parquet(model, spec: ScoringSpec, tables: dict[str, pa.Table], folder: Path):
    """Write each table as a Parquet file and score them all as one mini-batch."""
    paths = []
    for name, table in tables.items():
        pq.write_table(table, folder / name)
        paths.append(folder / name)
    sinks: list[SpillBuffer] = []

    def sink_for(file: InputFile) -> SpillBuffer:
        sinks.append(SpillBuffer())
        return sinks[-1]

    result = score_batch(
        LOCAL, MiniBatch(0, tuple(input_file(p) for p in paths)), model, spec, sink_for
    )
    schema = spec.output_schema
    rows = [
        r
        for f, s in zip(result.files, sinks)
        if not f.failed
        for r in pa.Table.from_batches(list(s.batches()), schema=schema).to_pylist()
    ]
    return result, rows


def file_record(name: str, status: str, read: int, scored: int) -> dict:
    return {
        "file_name": name,
        "status": status,
        "rows_read": read,
        "rows_scored": scored,
        "rows_failed": read - scored,
    }


def value_error(name: str, row: int, text: str) -> dict:
    return {
        "file_name": name,
        "row": row,
        "stage": "validate",
        "error_type": "SchemaEnforcementError",
        "message": f"{name}, row {row}: {text}",
    }


@pytest.mark.parametrize("bad_rows", ["fail_file", "skip"])
def test_score_batch_decimals_reach_the_model_exactly_or_fail_their_row(
    ledger_model, tmp_path, bad_rows
):
    def dec(values, arrow_type):
        return pa.array([None if v is None else Decimal(v) for v in values], arrow_type)

    ledger = pa.table(
        {
            "id": dec(
                ["1.00", "9007199254740993.00", "2.50", "4.00", "-5.00"], pa.decimal128(20, 2)
            ),
            "amount": dec(
                ["12.34", None, "-0.10", "9007199254740993", "-12.34"], pa.decimal128(38, 20)
            ),
        }
    )
    good = pa.table(
        {"id": dec(["7"], pa.decimal256(40, 0)), "amount": dec(["0.1"], pa.decimal256(40, 20))}
    )
    spec = ScoringSpec(prediction_type=pa.string(), bad_rows=bad_rows)

    result, rows = score_parquet(
        ledger_model, spec, {"ledger.parquet": ledger, "more.parquet": good}, tmp_path
    )

    assert result.errors == [
        value_error(
            "ledger.parquet",
            2,
            "column 'id' has value Decimal('2.50'), which cannot be converted safely to long.",
        ),
        value_error(
            "ledger.parquet",
            3,
            "column 'amount' has value "
            "Decimal('9007199254740993.00000000000000000000'), which cannot be "
            "converted safely to double.",
        ),
    ]
    scored = (
        [
            ("ledger.parquet", 0, "1:12.34"),
            ("ledger.parquet", 1, "9007199254740993:nan"),
            ("ledger.parquet", 4, "-5:-12.34"),
        ]
        if bad_rows == "skip"
        else []
    )
    assert [(r["file_name"], r["row"], r["prediction"]) for r in rows] == scored + [
        ("more.parquet", 0, "7:0.1")
    ]
    ledger_record = (
        file_record("ledger.parquet", "succeeded", 5, 3)
        if bad_rows == "skip"
        else file_record("ledger.parquet", "failed", 5, 0)
    )
    assert [FileRecord.of(f).to_json() for f in result.files] == [
        ledger_record,
        file_record("more.parquet", "succeeded", 1, 1),
    ]


@pytest.mark.parametrize("bad_rows", ["fail_file", "skip"])
def test_score_batch_timestamp_beyond_nanoseconds_fails_only_its_row(
    clock_model, tmp_path, bad_rows
):
    stamps = [
        dt.datetime(2024, 1, 1),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        dt.datetime(2024, 1, 2, 3, 4, 5, 6),
    ]
    events = pa.table({"ts": pa.array(stamps, pa.timestamp("us"))})
    later = pa.table(
        {"ts": pa.array([dt.datetime(2262, 4, 11), dt.datetime(2262, 4, 12)], pa.timestamp("ms"))}
    )
    spec = ScoringSpec(
        prediction_type=pa.int64(), bad_rows=bad_rows, passthrough=(("ts", pa.timestamp("us")),)
    )

    result, rows = score_parquet(
        clock_model, spec, {"events.parquet": events, "later.parquet": later}, tmp_path
    )

    beyond = (
        "which is outside the range of the signature's datetime type (datetime64[ns]: "
        "1677-09-21 00:12:43.145224193 to 2262-04-11 23:47:16.854775807)."
    )
    assert result.errors == [
        value_error(
            "events.parquet",
            1,
            f"column 'ts' has value Timestamp('9999-12-31 23:59:59.999999'), {beyond}",
        ),
        value_error(
            "later.parquet", 1, f"column 'ts' has value Timestamp('2262-04-12 00:00:00'), {beyond}"
        ),
    ]
    if bad_rows == "skip":
        assert rows == [
            {
                "file_name": "events.parquet",
                "row": 0,
                "prediction": 1704067200000000000,
                "ts": dt.datetime(2024, 1, 1),
            },
            {
                "file_name": "events.parquet",
                "row": 2,
                "prediction": 1704164645000006000,
                "ts": dt.datetime(2024, 1, 2, 3, 4, 5, 6),
            },
            {
                "file_name": "later.parquet",
                "row": 0,
                "prediction": 9223286400000000000,
                "ts": dt.datetime(2262, 4, 11),
            },
        ]
        assert [FileRecord.of(f).to_json() for f in result.files] == [
            file_record("events.parquet", "succeeded", 3, 2),
            file_record("later.parquet", "succeeded", 2, 1),
        ]
    else:
        assert rows == []
        assert [FileRecord.of(f).to_json() for f in result.files] == [
            file_record("events.parquet", "failed", 3, 0),
            file_record("later.parquet", "failed", 2, 0),
        ]


def test_score_batch_timestamps_the_signature_does_not_type_pass_as_they_are(model, tmp_path):
    import mlflow.pyfunc

    class Iso(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return np.array([t.isoformat() for t in model_input["ts"]], dtype=object)

    nosig = sparkscore.load_model(_save_python_model(tmp_path / "nosig", Iso(), None, None))
    when = [dt.datetime(2024, 1, 2, 3, 4, 5, 6), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)]
    table = pa.table({"a": [0.5, -1.0], "b": [1, 2], "ts": pa.array(when, pa.timestamp("us"))})
    folder = tmp_path / "in"
    folder.mkdir()

    # no signature: nothing is enforced, and no value is bent to pandas' nanoseconds
    result, rows = score_parquet(
        nosig, ScoringSpec(prediction_type=pa.string()), {"t.parquet": table}, folder
    )
    assert [r["prediction"] for r in rows] == [
        "2024-01-02T03:04:05.000006",
        "9999-12-31T23:59:59.999999",
    ]
    assert result.errors == []

    # a signature without the column: it only passes through, exactly
    spec = ScoringSpec(prediction_type=pa.int64(), passthrough=(("ts", pa.timestamp("us")),))
    result, rows = score_parquet(model, spec, {"t.parquet": table}, folder)
    assert [r["ts"] for r in rows] == when
    assert [FileRecord.of(f).to_json() for f in result.files] == [
        file_record("t.parquet", "succeeded", 2, 2)
    ]
