"""The batch job end to end on the shared local[2] session: exact rows, lineage, errors, summary.

Each Spark run costs seconds, so a module fixture runs each job once and several tests read its
output. Inputs are tiny files written into tmp folders; predictions are checked against
`mlflow.pyfunc.load_model(path).predict(df)` on the same file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparkscore.errors import (
    ErrorThresholdExceeded,
    OutputError,
    ResumeError,
    UnsupportedInputError,
)
from sparkscore.job import score

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# The keys other tools read from _summary.json (issue 4): keep the names.
SUMMARY_KEYS = {
    "job_id",
    "status",
    "started",
    "ended",
    "duration_s",
    "rows_per_s",
    "model",
    "settings",
    "files_total",
    "files_succeeded",
    "files_failed",
    "files_skipped",
    "rows_scored",
    "rows_failed",
    "spark_version",
    "python_version",
}
MODEL_KEYS = {"path", "sha256", "flavor", "signature", "mlflow_version", "run_id"}


# ---------------------------------------------------------------------------------------------
# Inputs


def frame(first_id: int, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(first_id, first_id + n, dtype=np.int64),
            "a": rng.normal(size=n).round(3),
            "b": (np.arange(n) % 3).astype(np.int64),
        }
    )


# file name -> rows, for the mixed folder; `sub/x.csv` is read only with recursive: true.
MIXED = {
    "one.csv": frame(0, 6, 1),
    "two.csv": frame(100, 5, 2),
    "three.parquet": frame(200, 7, 3),
    "four.pqt": frame(300, 4, 4),
    "sub/x.csv": frame(400, 3, 5),
}
TOP = sorted(name for name in MIXED if "/" not in name)  # the plan's (sorted) order


def write(folder: Path, name: str, df: pd.DataFrame) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".csv"):
        df.to_csv(path, index=False)
    else:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)


def read_input(folder: Path, name: str) -> pd.DataFrame:
    path = folder / name
    return pd.read_csv(path) if name.endswith(".csv") else pd.read_parquet(path)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mixed")
    for name, df in MIXED.items():
        write(folder, name, df)
    (folder / "_SUCCESS").write_text("")
    write(folder, ".x.csv", frame(900, 2, 9))  # hidden: never data
    return folder


@pytest.fixture(scope="module")
def mlflow_predictions(zoo, mixed) -> dict[str, list[int]]:
    """What mlflow itself predicts on each file of the mixed folder."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(zoo.lr_skops))
    return {name: [int(v) for v in model.predict(read_input(mixed, name))] for name in MIXED}


def predictions(out: Path) -> pd.DataFrame:
    table = pq.read_table(out / "predictions")
    return table.to_pandas().sort_values(["file_name", "row"]).reset_index(drop=True)


def errors(out: Path) -> list[dict[str, Any]]:
    rows = pq.read_table(out / "errors").to_pylist()
    return sorted(rows, key=lambda r: (r["file_name"], -1 if r["row"] is None else r["row"]))


def expected_rows(names: list[str], preds: dict[str, list[int]], folder: Path) -> list[tuple]:
    """(file_name, row, prediction, id) for every row of every named file, by file then row."""
    out = []
    for name in sorted(names):
        ids = read_input(folder, name)["id"].tolist()
        out += [(name, i, preds[name][i], ids[i]) for i in range(len(ids))]
    return out


def tasks_of(spark, group: str) -> list[int]:
    """Number of tasks of each stage the jobs of `group` ran."""
    tracker = spark.sparkContext.statusTracker()
    counts = []
    for job in tracker.getJobIdsForGroup(group):
        for stage in tracker.getJobInfo(job).stageIds:
            counts.append(tracker.getStageInfo(stage).numTasks)
    return counts


def run_in_group(spark, group: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    spark.sparkContext.setJobGroup(group, group)
    try:
        return score(spark, *args, **kwargs)
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)


# ---------------------------------------------------------------------------------------------
# The mixed folder: parquet output with passthrough, 2 files per task


@pytest.fixture(scope="module")
def parquet_run(spark, zoo, mixed, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "parquet"
    summary = run_in_group(
        spark,
        "parquet_run",
        zoo.lr_skops,
        mixed,
        out,
        passthrough_columns=["id"],
        mini_batch_size=2,
    )
    return out, summary


def test_job_scores_every_row_once_with_lineage_and_mlflow_predictions(
    parquet_run, mixed, mlflow_predictions
):
    out, _ = parquet_run
    got = predictions(out)
    assert list(got.columns) == ["file_name", "row", "prediction", "id"]
    rows = list(got.itertuples(index=False, name=None))
    assert rows == expected_rows(TOP, mlflow_predictions, mixed)
    assert len(rows) == 6 + 5 + 7 + 4
    # neither the nested folder, nor `_SUCCESS`, nor the hidden file were read
    assert set(got["file_name"]) == set(TOP)


def test_job_writes_signature_typed_columns(parquet_run):
    out, _ = parquet_run
    schema = pq.read_schema(next((out / "predictions").glob("part-*.parquet")))
    assert schema.field("file_name").type == pa.string()
    assert schema.field("row").type == pa.int64()
    assert schema.field("prediction").type == pa.int64()  # tensor int64 [-1] -> long
    assert schema.field("id").type == pa.int64()


def test_job_runs_one_task_per_mini_batch(spark, parquet_run):
    out, summary = parquet_run
    assert summary["input"]["mini_batches"] == 2  # 4 files, 2 per task
    assert sorted(p.name for p in (out / "_manifest").glob("batch-*.json")) == [
        "batch-00000.json",
        "batch-00001.json",
    ]
    assert sorted(p.name for p in (out / "predictions").glob("part-*.parquet")) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    assert tasks_of(spark, "parquet_run") == [2]
    manifests = [json.loads(p.read_text()) for p in sorted((out / "_manifest").glob("*.json"))]
    assert [[f["file_name"] for f in m["files"]] for m in manifests] == [
        ["four.pqt", "one.csv"],
        ["three.parquet", "two.csv"],
    ]


def test_job_summary_counts_and_keys(parquet_run, zoo, mixed):
    out, summary = parquet_run
    assert SUMMARY_KEYS <= set(summary)
    assert MODEL_KEYS <= set(summary["model"])
    assert json.loads((out / "_summary.json").read_text()) == summary
    assert {
        k: summary[k]
        for k in (
            "status",
            "files_total",
            "files_succeeded",
            "files_failed",
            "files_skipped",
            "rows_read",
            "rows_scored",
            "rows_failed",
            "error",
        )
    } == {
        "status": "succeeded",
        "files_total": 4,
        "files_succeeded": 4,
        "files_failed": 0,
        "files_skipped": 0,
        "rows_read": 22,
        "rows_scored": 22,
        "rows_failed": 0,
        "error": None,
    }
    assert summary["model"]["path"] == os.fspath(zoo.lr_skops)
    assert summary["model"]["flavor"] == "sklearn"
    assert len(summary["model"]["sha256"]) == 64
    assert summary["model"]["signature"]["inputs"] == [
        {"type": "double", "name": "a", "required": True},
        {"type": "long", "name": "b", "required": True},
    ]
    assert summary["settings"]["passthrough_columns"] == ["id"]
    assert summary["settings"]["mini_batch_size"] == 2
    assert summary["input"]["files"] == 4
    assert summary["input"]["unsupported_skipped"] == []
    assert not (out / "errors").exists()


# ---------------------------------------------------------------------------------------------
# recursive: true, output_format: csv


@pytest.fixture(scope="module")
def csv_run(spark, zoo, mixed, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "csv"
    summary = score(
        spark,
        zoo.lr_skops,
        mixed,
        out,
        recursive=True,
        output_format="csv",
        passthrough_columns=["id"],
        mini_batch_size=2,
    )
    return out, summary


def test_job_csv_output_has_azure_column_order_sorted_by_file_then_row(
    csv_run, mixed, mlflow_predictions
):
    out, summary = csv_run
    text = (out / "predictions.csv").read_text()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["row", "prediction", "file_name", "id"]
    want = expected_rows(list(MIXED), mlflow_predictions, mixed)
    assert [(r[2], int(r[0]), int(r[1]), int(r[3])) for r in rows[1:]] == want
    # sub/x.csv sorts between one.csv and three.parquet ('/' sorts before letters)
    assert [r[2] for r in rows[1:]][9:13] == ["one.csv", "sub/x.csv", "sub/x.csv", "sub/x.csv"]
    p = mlflow_predictions["four.pqt"]
    assert text.splitlines()[:3] == [
        "row,prediction,file_name,id",
        f"0,{p[0]},four.pqt,300",
        f"1,{p[1]},four.pqt,301",
    ]
    assert summary["files_total"] == 5 and summary["rows_scored"] == 25
    assert summary["input"]["mini_batches"] == 3


def test_job_csv_output_leaves_no_parquet_or_staging(csv_run):
    out, _ = csv_run
    assert sorted(p.name for p in out.iterdir()) == [
        "_manifest",
        "_profile.json",
        "_run.json",
        "_summary.json",
        "predictions.csv",
        "report.html",
    ]


def test_job_resume_of_finished_csv_run_keeps_predictions_csv(spark, zoo, mixed, csv_run, tmp_path):
    out, _ = csv_run
    copy = tmp_path / "csv"
    shutil.copytree(out, copy)
    before = (copy / "predictions.csv").read_text()
    summary = score(
        spark,
        zoo.lr_skops,
        mixed,
        copy,
        recursive=True,
        output_format="csv",
        passthrough_columns=["id"],
        mini_batch_size=2,
        resume=True,
    )
    assert summary["files_skipped"] == summary["files_total"] == 5
    assert (copy / "predictions.csv").read_text() == before


# ---------------------------------------------------------------------------------------------
# Unsupported files, summary_only


@pytest.fixture(scope="module")
def with_unsupported(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("unsupported")
    write(folder, "good.csv", frame(0, 5, 11))
    (folder / "notes.txt").write_text("not data\n")
    (folder / "data.avro").write_bytes(b"Obj\x01")
    return folder


def test_job_refuses_unsupported_files_naming_each_and_writes_nothing(
    spark, zoo, with_unsupported, tmp_path
):
    out = tmp_path / "out"
    with pytest.raises(UnsupportedInputError) as info:
        score(spark, zoo.lr_skops, with_unsupported, out)
    assert info.value.files == ["data.avro", "notes.txt"]
    assert "data.avro, notes.txt" in str(info.value)
    assert "ignore_unsupported: true" in str(info.value)
    assert not out.exists()


def test_job_summary_only_with_ignored_unsupported_files(spark, zoo, with_unsupported, tmp_path):
    out = tmp_path / "out"
    summary = score(
        spark,
        zoo.lr_skops,
        with_unsupported,
        out,
        ignore_unsupported=True,
        output_action="summary_only",
    )
    assert summary["input"]["unsupported_skipped"] == ["data.avro", "notes.txt"]
    assert (summary["files_total"], summary["rows_scored"]) == (1, 5)
    assert not (out / "predictions").exists()
    assert json.loads((out / "_summary.json").read_text())["status"] == "succeeded"


def test_job_summary_only_csv_writes_no_predictions_at_all(spark, zoo, with_unsupported, tmp_path):
    out = tmp_path / "out"
    summary = score(
        spark,
        zoo.lr_skops,
        with_unsupported / "good.csv",
        out,
        output_format="csv",
        output_action="summary_only",
    )
    assert summary["rows_scored"] == 5
    assert sorted(p.name for p in out.iterdir()) == [
        "_manifest",
        "_profile.json",
        "_run.json",
        "_summary.json",
        "report.html",
    ]


# ---------------------------------------------------------------------------------------------
# Existing output, overwrite, resume


def test_job_refuses_existing_output_and_leaves_it_untouched(
    spark, zoo, with_unsupported, tmp_path
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(OutputError) as info:
        score(spark, zoo.lr_skops, with_unsupported / "good.csv", out)
    assert "already exists and is not empty" in str(info.value)
    assert "overwrite: true" in str(info.value)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "precious"


def test_job_overwrite_replaces_existing_output(spark, zoo, with_unsupported, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    summary = score(spark, zoo.lr_skops, with_unsupported / "good.csv", out, overwrite=True)
    assert summary["rows_scored"] == 5
    assert not (out / "keep.txt").exists()
    assert predictions(out)["row"].tolist() == [0, 1, 2, 3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging sibling left


def test_job_resume_after_finished_run_skips_every_batch(spark, zoo, mixed, parquet_run, tmp_path):
    out, _ = parquet_run
    copy = tmp_path / "resumed"
    shutil.copytree(out, copy)
    summary = score(
        spark, zoo.lr_skops, mixed, copy, passthrough_columns=["id"], mini_batch_size=2, resume=True
    )
    assert summary["files_skipped"] == summary["files_total"] == 4
    assert (summary["rows_scored"], summary["status"]) == (22, "succeeded")
    pd.testing.assert_frame_equal(predictions(copy), predictions(out))


def test_job_resume_with_another_model_is_refused(spark, zoo, mixed, parquet_run, tmp_path):
    out, _ = parquet_run
    copy = tmp_path / "resumed"
    shutil.copytree(out, copy)
    with pytest.raises(ResumeError) as info:
        score(
            spark,
            zoo.lr_pickle,
            mixed,
            copy,
            passthrough_columns=["id"],
            mini_batch_size=2,
            resume=True,
        )
    assert "model (sha256) differs" in str(info.value)
    pd.testing.assert_frame_equal(predictions(copy), predictions(out))


@pytest.mark.parametrize("where", ["same", "parent", "recursive-inside"])
def test_job_never_overwrites_or_rereads_its_input_whatever_overwrite_says(
    spark, zoo, tmp_path, where
):
    data = tmp_path / "p" / "data"
    for name in TOP:
        write(data, name, MIXED[name])
    before = {p: p.read_bytes() for p in data.rglob("*")}
    output = {"same": data, "parent": tmp_path / "p", "recursive-inside": data / "scored"}[where]
    for overwrite, resume in ((True, False), (False, True), (False, False)):
        with pytest.raises(OutputError) as info:
            score(
                spark,
                zoo.lr_skops,
                data,
                output,
                overwrite=overwrite,
                resume=resume,
                recursive=where == "recursive-inside",
            )
        assert f"the input {data}" in str(info.value)
        assert {p: p.read_bytes() for p in data.rglob("*")} == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_job_may_write_inside_its_input_when_listing_never_goes_there(spark, zoo, tmp_path):
    data = tmp_path / "data"
    write(data, "one.csv", MIXED["one.csv"])
    score(spark, zoo.lr_skops, data, data / "scored")
    again = score(spark, zoo.lr_skops, data, data / "scored", overwrite=True)
    assert (again["files_total"], again["rows_scored"]) == (1, 6)


def interrupted_overwrite(spark, zoo, mixed, tmp_path) -> tuple[Path, Path, dict]:
    """An output, and beside it the staging folder of an overwrite run killed after its first
    mini-batch committed (as a kill leaves it: no summary, later manifests missing)."""
    out = tmp_path / "out"
    old = score(spark, zoo.lr_skops, mixed / "one.csv", out)
    staged = tmp_path / ".out.sparkscore-20240101T000000-0badcafe"
    score(spark, zoo.lr_skops, mixed, staged, passthrough_columns=["id"], mini_batch_size=1)
    for manifest in sorted((staged / "_manifest").iterdir())[1:]:
        manifest.unlink()
    (staged / "_summary.json").unlink()
    return out, staged, old


def test_job_resume_finishes_an_interrupted_overwrite_run_and_says_so(
    spark, zoo, mixed, mlflow_predictions, tmp_path, caplog
):
    out, staged, _ = interrupted_overwrite(spark, zoo, mixed, tmp_path)
    with caplog.at_level("WARNING", logger="sparkscore"):
        summary = score(
            spark,
            zoo.lr_skops,
            mixed,
            out,
            passthrough_columns=["id"],
            mini_batch_size=1,
            resume=True,
        )
    assert (
        f"resuming the overwrite run that was interrupted in {staged}; its output "
        f"replaces {out} when it succeeds" in caplog.messages
    )
    assert (summary["files_skipped"], summary["files_total"]) == (1, 4)
    rows = list(predictions(out).itertuples(index=False, name=None))
    assert rows == expected_rows(TOP, mlflow_predictions, mixed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_job_overwrite_removes_an_abandoned_staging_folder_and_says_so(
    spark, zoo, mixed, tmp_path, caplog
):
    out, staged, _ = interrupted_overwrite(spark, zoo, mixed, tmp_path)
    with pytest.raises(OutputError) as info:
        score(spark, zoo.lr_skops, mixed, out)
    assert "set resume: true to finish the overwrite run into it that was interrupted" in str(
        info.value
    )
    with caplog.at_level("WARNING", logger="sparkscore"):
        summary = score(spark, zoo.lr_skops, mixed / "two.csv", out, overwrite=True)
    assert (
        f"removed {staged}: the staging folder of an overwrite run that did not finish"
        in caplog.messages
    )
    assert summary["rows_scored"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_job_summary_never_records_credentials_of_a_uri(spark, zoo, mixed, tmp_path):
    out = tmp_path / "out"
    summary = score(
        spark,
        zoo.lr_skops,
        f"file://user:hunter2@{mixed}/one.csv".replace("file://user:hunter2@", "file://"),
        f"{out}",
    )
    assert summary["rows_scored"] == 6
    from sparkscore.storage import redact_record

    record = {"input": {"uri": "s3://AKIA:hunter2@bucket/in?secret_key=hunter2&region=x"}}
    assert redact_record(record) == {"input": {"uri": "s3://***@bucket/in?secret_key=***&region=x"}}
    catalog = {
        "iceberg_catalog": {
            "uri": "postgresql://scorer:hunter2@db/catalog",
            "password": "hunter2",
            "s3.secret-access-key": "hunter2",
            "s3.access-key-id": "AKIA",
            "warehouse": "s3://bucket/wh",
        },
        "model": {"signature": {"inputs": [{"type": "double", "name": "a"}]}},
        "environment": {"key": "5f1c0e", "signature": "abc"},
    }
    assert redact_record(catalog) == {
        "iceberg_catalog": {
            "uri": "postgresql://***@db/catalog",
            "password": "***",
            "s3.secret-access-key": "***",
            "s3.access-key-id": "***",
            "warehouse": "s3://bucket/wh",
        },
        "model": {"signature": {"inputs": [{"type": "double", "name": "a"}]}},
        "environment": {"key": "5f1c0e", "signature": "abc"},
    }


# ---------------------------------------------------------------------------------------------
# Bad inputs become error records


BAD_A_ROW = 7


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("broken")
    write(folder, "good.csv", frame(0, 5, 21))
    lines = frame(10, 10, 22).to_csv(index=False).splitlines()
    cells = lines[1 + BAD_A_ROW].split(",")
    lines[1 + BAD_A_ROW] = ",".join([cells[0], "abc", cells[2]])
    (folder / "bad.csv").write_text("\n".join(lines) + "\n")
    (folder / "header.csv").write_text("id,a,b\n")
    (folder / "empty.csv").write_bytes(b"")
    write(folder, "whole.parquet", frame(50, 4, 23))
    data = (folder / "whole.parquet").read_bytes()
    (folder / "trunc.parquet").write_bytes(data[: len(data) // 2])
    (folder / "whole.parquet").unlink()
    write(folder, "nob.csv", frame(60, 3, 24).drop(columns=["b"]))
    return folder


BROKEN_FILE_ERRORS = [
    ("empty.csv", None, "read", "ReadError", "empty.csv: the file is empty (0 bytes)."),
    ("header.csv", None, "read", "ReadError", "header.csv: the file has no rows."),
    (
        "nob.csv",
        None,
        "validate",
        "MissingColumnError",
        "nob.csv: the input is missing the column 'b', which the model signature requires "
        "(columns present: id, a).",
    ),
]
BAD_ROW_ERROR = (
    "bad.csv",
    BAD_A_ROW,
    "validate",
    "SchemaEnforcementError",
    f"bad.csv, row {BAD_A_ROW}: column 'a' has value 'abc', which cannot be "
    "converted safely to double.",
)


def as_tuples(records: list[dict[str, Any]]) -> list[tuple]:
    return [(r["file_name"], r["row"], r["stage"], r["error_type"], r["message"]) for r in records]


@pytest.fixture(scope="module")
def fail_file_run(spark, zoo, broken, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "fail_file"
    return out, score(spark, zoo.lr_skops, broken, out, passthrough_columns=["id"], batch_rows=3)


@pytest.fixture(scope="module")
def skip_run(spark, zoo, broken, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "skip"
    return out, score(
        spark, zoo.lr_skops, broken, out, passthrough_columns=["id"], batch_rows=4, bad_rows="skip"
    )


def check_trunc(record: dict[str, Any]) -> None:
    assert (record["file_name"], record["row"], record["stage"], record["error_type"]) == (
        "trunc.parquet",
        None,
        "read",
        "ReadError",
    )
    assert record["message"].startswith(
        "trunc.parquet: the file is not a readable Parquet file; it may be truncated or corrupt"
    )


def test_job_bad_value_fails_its_file_with_one_record_per_problem(fail_file_run):
    out, summary = fail_file_run
    records = errors(out)
    check_trunc(records.pop())
    assert as_tuples(records) == [BAD_ROW_ERROR, *BROKEN_FILE_ERRORS]
    assert set(predictions(out)["file_name"]) == {"good.csv"}
    assert predictions(out)["row"].tolist() == [0, 1, 2, 3, 4]
    assert {
        k: summary[k]
        for k in (
            "status",
            "files_total",
            "files_succeeded",
            "files_failed",
            "rows_read",
            "rows_scored",
            "rows_failed",
            "error_records",
        )
    } == {
        "status": "succeeded",
        "files_total": 6,
        "files_succeeded": 1,
        "files_failed": 5,
        "rows_read": 5 + 10 + 3,
        "rows_scored": 5,
        "rows_failed": 10 + 3,
        "error_records": 5,
    }
    assert summary["rows_scored"] + summary["rows_failed"] == summary["rows_read"]


def test_job_bad_rows_skip_scores_the_rest_with_original_row_numbers(skip_run, broken, zoo):
    import mlflow.pyfunc

    out, summary = skip_run
    records = errors(out)
    check_trunc(records.pop())
    assert as_tuples(records) == [BAD_ROW_ERROR, *BROKEN_FILE_ERRORS]
    got = predictions(out)
    bad = got[got["file_name"] == "bad.csv"]
    kept = [r for r in range(10) if r != BAD_A_ROW]
    assert bad["row"].tolist() == kept
    assert bad["id"].tolist() == [10 + r for r in kept]
    source = pd.read_csv(broken / "bad.csv").drop(index=BAD_A_ROW)
    source["a"] = source["a"].astype(float)
    want = mlflow.pyfunc.load_model(str(zoo.lr_skops)).predict(source)
    assert bad["prediction"].tolist() == [int(v) for v in want]
    assert {
        k: summary[k]
        for k in ("files_succeeded", "files_failed", "rows_read", "rows_scored", "rows_failed")
    } == {
        "files_succeeded": 2,
        "files_failed": 4,
        "rows_read": 18,
        "rows_scored": 5 + 9,
        "rows_failed": 1 + 3,
    }
    assert summary["rows_scored"] + summary["rows_failed"] == summary["rows_read"]


def test_job_error_threshold_exceeded_still_writes_what_was_scored(spark, zoo, broken, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("good.csv", "trunc.parquet"):
        shutil.copy(broken / name, folder / name)
    out = tmp_path / "out"
    with pytest.raises(ErrorThresholdExceeded) as info:
        score(spark, zoo.lr_skops, folder, out, error_threshold=0)
    assert (info.value.failed, info.value.threshold, info.value.total) == (1, 0, 2)
    assert str(info.value).startswith(
        "error_threshold exceeded: 1 of 2 files failed, error_threshold is 0."
    )
    summary = json.loads((out / "_summary.json").read_text())
    assert (summary["status"], summary["error"]) == ("failed", str(info.value))
    assert (summary["files_failed"], summary["rows_scored"]) == (1, 5)
    got = predictions(out)
    assert got["file_name"].tolist() == ["good.csv"] * 5
    assert got["row"].tolist() == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------------------------
# The command line, in real processes


def job_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    return env


def start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=job_env()
    )


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory) -> Path:
    """Twelve 8x8 digit PNGs, an RGB image the digit models cannot take, and a truncated PNG."""
    from model_zoo import digit_images, write_pngs
    from PIL import Image

    folder = tmp_path_factory.mktemp("digits")
    paths = write_pngs(folder, digit_images(12))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "color.png")
    (folder / "cut.png").write_bytes(paths[0].read_bytes()[:60])
    return folder


def digit_pixels(folder: Path) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("digit-*.png"))])


DIGIT_ERRORS = [
    {"file_name": "color.png", "row": None, "stage": "validate", "error_type": "ImageShapeError"},
    {"file_name": "cut.png", "row": None, "stage": "read", "error_type": "ReadError"},
]


def test_job_scores_a_folder_of_images_one_row_per_file(spark, zoo, digit_folder, tmp_path):
    import mlflow.pyfunc

    out = tmp_path / "out"
    summary = score(spark, zoo.digit_scores, digit_folder, out)
    table = pq.read_table(out / "predictions")
    assert table.schema.field("prediction").type == pa.list_(pa.float32())
    want = mlflow.pyfunc.load_model(str(zoo.digit_scores)).predict(
        digit_pixels(digit_folder).astype(np.float32)
    )
    assert sorted(table.to_pylist(), key=lambda r: r["file_name"]) == [
        {"file_name": f"digit-{i:02d}.png", "row": 0, "prediction": want[i].tolist()}
        for i in range(12)
    ]
    assert [{k: e[k] for k in DIGIT_ERRORS[0]} for e in errors(out)] == DIGIT_ERRORS
    assert {
        k: summary[k]
        for k in (
            "status",
            "files_total",
            "files_succeeded",
            "files_failed",
            "rows_read",
            "rows_scored",
            "rows_failed",
        )
    } == {
        "status": "succeeded",
        "files_total": 14,
        "files_succeeded": 12,
        "files_failed": 2,
        "rows_read": 14,
        "rows_scored": 12,
        "rows_failed": 2,
    }


@pytest.fixture(scope="module")
def commands(zoo, mixed, with_unsupported, digit_folder, tmp_path_factory):
    """Four real command runs started together (JVM start-up dominates), then awaited."""
    root = tmp_path_factory.mktemp("commands")
    submit = [str(BIN / "spark-submit"), "--master", "local[2]", str(REPO / "jobs" / "score.py")]
    model = ["--model", str(zoo.lr_skops)]
    runs = {
        "submit": (
            root / "submit",
            submit
            + model
            + [
                "--input",
                str(mixed),
                "--output",
                str(root / "submit"),
                "--set",
                "passthrough_columns=[id]",
                "--set",
                "mini_batch_size=2",
            ],
        ),
        "unsupported": (
            root / "unsupported",
            submit
            + model
            + ["--input", str(with_unsupported), "--output", str(root / "unsupported")],
        ),
        "console": (
            root / "console",
            [
                str(BIN / "sparkscore"),
                "score",
                *model,
                "--input",
                str(with_unsupported / "good.csv"),
                "--output",
                str(root / "console"),
                "--master",
                "local[1]",
            ],
        ),
        "images": (
            root / "images",
            [
                str(BIN / "sparkscore"),
                "score",
                "--model",
                str(zoo.digit_labels),
                "--input",
                str(digit_folder),
                "--output",
                str(root / "images"),
                "--set",
                "output_format=csv",
                "--master",
                "local[1]",
            ],
        ),
    }
    procs = {name: (out, start(args)) for name, (out, args) in runs.items()}
    done = {}
    for name, (out, proc) in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        done[name] = (out, proc.returncode, stdout, stderr)
    return done


def test_spark_submit_scores_the_folder(commands, mixed, mlflow_predictions):
    out, code, stdout, stderr = commands["submit"]
    assert code == 0, stdout + stderr
    assert last_line(stdout).startswith(
        "sparkscore: succeeded: 4 of 4 files scored, 22 rows scored, 0 rows failed"
    )
    assert "Traceback" not in stdout + stderr
    rows = list(predictions(out).itertuples(index=False, name=None))
    assert rows == expected_rows(TOP, mlflow_predictions, mixed)


def test_spark_submit_unsupported_input_ends_with_one_error_line(commands):
    out, code, stdout, stderr = commands["unsupported"]
    assert code == 2, stdout + stderr
    line = last_line(stdout)
    assert line.startswith("error: ")
    assert "2 unsupported file(s): data.avro, notes.txt" in line
    assert "Traceback" not in stdout + stderr
    assert not out.exists()


def test_console_command_scores_a_file(commands):
    out, code, stdout, stderr = commands["console"]
    assert code == 0, stdout + stderr
    assert last_line(stdout).startswith("sparkscore: succeeded: 1 of 1 files scored, 5 rows scored")
    assert predictions(out)["row"].tolist() == [0, 1, 2, 3, 4]
    # The command line's session is a bare SparkContext: the budget is read from it too.
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["threads"] == {"budget": 1, "native_pool_max": 1}


def test_job_splits_a_large_parquet_file_with_exact_lineage(spark, zoo, tmp_path, monkeypatch):
    import sparkscore.planner as planner

    df = frame(5000, 900, seed=11)
    (tmp_path / "in").mkdir()
    pq.write_table(
        pa.Table.from_pandas(df, preserve_index=False),
        tmp_path / "in" / "big.parquet",
        row_group_size=100,
    )
    monkeypatch.setattr(planner, "MIN_TASK_BYTES", 1)
    summary = score(
        spark, zoo.lr_skops, tmp_path / "in", tmp_path / "out", passthrough_columns=["id"]
    )
    assert summary["input"]["mini_batches"] > 1
    out = predictions(tmp_path / "out")
    assert out["row"].tolist() == list(range(900))
    assert out["id"].tolist() == df["id"].tolist()
    import mlflow.pyfunc

    expected = mlflow.pyfunc.load_model(str(zoo.lr_skops)).predict(df)
    assert out["prediction"].tolist() == expected.tolist()
    assert (summary["files_total"], summary["files_succeeded"], summary["rows_scored"]) == (
        1,
        1,
        900,
    )


def test_job_fails_every_slice_of_a_split_file_when_one_slice_has_a_bad_value(
    spark, zoo, tmp_path, monkeypatch
):
    import sparkscore.planner as planner

    df = frame(5000, 400, seed=12)
    df["a"] = df["a"].astype(object)
    df.loc[350, "a"] = "abc"
    (tmp_path / "in").mkdir()
    table = pa.Table.from_pandas(df.astype({"a": str}), preserve_index=False)
    pq.write_table(table, tmp_path / "in" / "big.parquet", row_group_size=100)
    monkeypatch.setattr(planner, "MIN_TASK_BYTES", 1)
    summary = score(spark, zoo.lr_skops, tmp_path / "in", tmp_path / "out")
    assert summary["input"]["mini_batches"] > 1
    assert list((tmp_path / "out" / "predictions").iterdir()) == []
    assert [(e["row"], e["stage"]) for e in errors(tmp_path / "out")] == [(350, "validate")]
    assert (summary["files_failed"], summary["rows_failed"], summary["rows_scored"]) == (1, 400, 0)


def test_console_command_scores_a_folder_of_images_into_azure_csv(commands, zoo, digit_folder):
    import mlflow.pyfunc

    out, code, stdout, stderr = commands["images"]
    assert code == 0, stdout + stderr
    assert last_line(stdout).startswith(
        "sparkscore: succeeded: 12 of 14 files scored, 12 rows scored, 2 rows failed"
    )
    labels = mlflow.pyfunc.load_model(str(zoo.digit_labels)).predict(
        digit_pixels(digit_folder).reshape(12, 64)
    )
    assert (out / "predictions.csv").read_text().splitlines() == [
        "row,prediction,file_name",
        *(f"0,{labels[i]},digit-{i:02d}.png" for i in range(12)),
    ]
    assert [{k: e[k] for k in DIGIT_ERRORS[0]} for e in errors(out)] == DIGIT_ERRORS
