"""Every row once, in predictions or errors, whatever dies: real processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from model_zoo import chaos_model

import sparkscore

ROOT = Path(__file__).resolve().parents[1]
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"


def write_inputs(
    folder: Path, files: int, rows: int, special: dict[int, float] | None = None
) -> dict:
    """CSV files whose column `a` is unique per row; `special` puts a value at file i, row 3."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for i in range(files):
        a = [float(i * 100 + r) for r in range(rows)]
        if special and i in special:
            a[3] = special[i]
        frame = pd.DataFrame({"a": a, "b": list(range(rows))})
        name = f"part-{i:02d}.csv"
        frame.to_csv(folder / name, index=False)
        for r in range(rows):
            expected[(name, r)] = frame.a[r] * 2 + frame.b[r]
    return expected


def submit(*args: str, master: str = "local[2]", wait: bool = True, **popen: object):
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    cmd = [str(SPARK_SUBMIT), "--master", master, str(ROOT / "jobs" / "score.py"), *args]
    if not wait:
        return subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
        )
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def predictions(out: Path) -> dict:
    table = pq.read_table(out / "predictions").to_pylist()
    keys = [(r["file_name"], r["row"]) for r in table]
    assert len(keys) == len(set(keys)), "a row was written twice"
    return {(r["file_name"], r["row"]): r["prediction"] for r in table}


def test_job_survives_a_python_worker_that_dies_mid_task(tmp_path):
    expected = write_inputs(tmp_path / "in", files=4, rows=10, special={2: 666.0})
    expected[("part-02.csv", 3)] = 666.0 * 2 + 3
    marker = tmp_path / "died-once"
    model = chaos_model(tmp_path, die_on=666.0, marker=str(marker))
    done = submit(
        "--model",
        str(model),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
        "--set",
        "mini_batch_size=1",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert marker.exists(), "the model never killed its worker"
    assert predictions(tmp_path / "out") == expected
    manifest = json.loads((tmp_path / "out" / "_manifest" / "batch-00002.json").read_text())
    assert manifest["attempt"] >= 1
    summary = json.loads((tmp_path / "out" / "_summary.json").read_text())
    assert (summary["status"], summary["rows_scored"], summary["rows_failed"]) == (
        "succeeded",
        40,
        0,
    )


def test_resume_after_the_driver_was_killed_scores_each_row_once(tmp_path):
    expected = write_inputs(tmp_path / "in", files=8, rows=5)
    model = chaos_model(tmp_path, sleep=1.5)
    out = tmp_path / "out"
    args = [
        "--model",
        str(model),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(out),
        "--set",
        "mini_batch_size=1",
    ]
    job = submit(*args, master="local[1]", wait=False, start_new_session=True)
    manifests = out / "_manifest"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(manifests.glob("batch-*.json"))) < 2:
        assert job.poll() is None, job.stdout.read()
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(timeout=30)
    committed = len(list(manifests.glob("batch-*.json")))
    assert 2 <= committed < 8, "the kill came too late to test resume"
    assert not (out / "_summary.json").exists()

    refused = submit(*args)
    assert refused.returncode != 0
    assert refused.stdout.strip().splitlines()[-1].startswith(f"error: {out}: already exists")

    resumed = submit(*args, "--set", "resume=true")
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert predictions(out) == expected
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["files_skipped"] >= committed
    assert summary["files_total"] == 8
    assert summary["rows_read"] == summary["rows_scored"] == 40
    assert not list(out.rglob("*.tmp")), "temporary files were left behind"


def test_timeout_fails_the_mini_batch_and_the_job_goes_on(spark, tmp_path):
    expected = write_inputs(tmp_path / "in", files=3, rows=6, special={1: 13.0})
    model = chaos_model(tmp_path, hang_on=13.0)
    summary = sparkscore.score(
        spark, model, tmp_path / "in", tmp_path / "out", mini_batch_size=1, timeout=3
    )
    assert predictions(tmp_path / "out") == {
        k: v for k, v in expected.items() if k[0] != "part-01.csv"
    }
    errors = pq.read_table(tmp_path / "out" / "errors").to_pylist()
    assert errors == [
        {
            "file_name": "part-01.csv",
            "row": None,
            "stage": "timeout",
            "error_type": "BatchTimeoutError",
            "message": "the mini-batch with part-01.csv ran longer than timeout=3s; raise the "
            "timeout setting or lower mini_batch_size.",
        }
    ]
    assert (summary["files_failed"], summary["rows_failed"], summary["status"]) == (
        1,
        6,
        "succeeded",
    )


def test_error_threshold_exceeded_exits_non_zero_and_keeps_what_was_scored(tmp_path):
    write_inputs(tmp_path / "in", files=2, rows=4)
    (tmp_path / "in" / "part-02.csv").write_text("a,b\nx,1\n")
    model = chaos_model(tmp_path)
    done = submit(
        "--model",
        str(model),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
        "--set",
        "error_threshold=0",
    )
    assert done.returncode == 3
    last = done.stdout.strip().splitlines()[-1]
    assert last == (
        "error: error_threshold exceeded: 1 of 3 files failed, error_threshold is 0. "
        "See errors/ in the output for each failure."
    )
    assert "Traceback" not in done.stdout
    assert len(predictions(tmp_path / "out")) == 8
    summary = json.loads((tmp_path / "out" / "_summary.json").read_text())
    assert summary["status"] == "failed"


@pytest.mark.parametrize("bad", ["missing-model"])
def test_unusable_model_is_one_error_line(tmp_path, bad):
    write_inputs(tmp_path / "in", files=1, rows=2)
    done = submit(
        "--model",
        str(tmp_path / bad),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
    )
    assert done.returncode == 2
    assert done.stdout.strip().splitlines()[-1] == (
        f"error: {tmp_path / bad}: does not exist; point --model at an MLflow model "
        "directory (the folder that holds the MLmodel file)."
    )
    assert not (tmp_path / "out").exists()


def test_a_file_that_kills_its_worker_every_time_fails_alone_and_the_job_finishes(tmp_path):
    expected = write_inputs(tmp_path / "in", files=6, rows=10, special={3: 666.0})
    for r in range(10):
        del expected[("part-03.csv", r)]
    model = chaos_model(tmp_path, crash_on=666.0, crash_signal=int(signal.SIGSEGV))
    out = tmp_path / "out"
    args = [
        "--model",
        str(model),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(out),
        "--set",
        "mini_batch_size=3",
        "--set",
        "max_retries=1",
    ]

    done = submit(*args)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert predictions(out) == expected
    records = pq.read_table(out / "errors").to_pylist()
    assert [(e["file_name"], e["row"], e["stage"], e["error_type"]) for e in records] == [
        ("part-03.csv", None, "predict", "WorkerDiedError")
    ]
    assert "died (killed by signal 11, SIGSEGV)" in records[0]["message"]
    summary = json.loads((out / "_summary.json").read_text())
    assert (
        summary["status"],
        summary["files_failed"],
        summary["rows_scored"],
        summary["rows_failed"],
    ) == ("succeeded", 1, 50, 10)
    manifest = json.loads((out / "_manifest" / "batch-00001.json").read_text())
    assert manifest["isolated"] is True
    assert json.loads((out / "_manifest" / "batch-00000.json").read_text())["isolated"] is False

    again = submit(*args, "--set", "resume=true")
    assert again.returncode == 0, again.stdout[-3000:]
    assert predictions(out) == expected

    strict = submit(
        *args[:-6],
        "--output",
        str(tmp_path / "strict"),
        "--set",
        "error_threshold=0",
        "--set",
        "max_retries=0",
    )
    assert strict.returncode == 3
    assert strict.stdout.strip().splitlines()[-1].startswith("error: error_threshold exceeded")


# ---------------------------------------------------------------------------------------------
# Files that fail while read: every file's rows accounted through the real job (issue 15)


def id_frame(first_id: int, n: int, seed: int) -> pd.DataFrame:
    import numpy as np

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": list(range(first_id, first_id + n)),
            "a": rng.normal(size=n).round(3),
            "b": [i % 3 for i in range(n)],
        }
    )


@pytest.fixture(scope="module")
def edge_run(spark, zoo, tmp_path_factory):
    """One job over files that each fail (or used to) while read, with text and int ids."""
    import gzip

    import pyarrow as pa
    import pyarrow.csv as pacsv

    folder = tmp_path_factory.mktemp("edges")
    id_frame(0, 4, 1).to_csv(folder / "f1.csv", index=False)  # int ids
    f2 = id_frame(10, 3, 2)
    f2["id"] = ["A-10", "A-11", "007"]  # text ids
    f2.to_csv(folder / "f2.csv", index=False)
    id_frame(20, 3, 3).to_parquet(folder / "f3.parquet", index=False)  # int64 ids
    lines = id_frame(30, 5, 4).to_csv(index=False).splitlines()
    lines[1 + 2] = ",".join(lines[1 + 2].split(",")[:2])  # row 2 lacks its last value
    (folder / "ragged.csv").write_text("\n".join(lines) + "\n")
    notes = pa.Table.from_pandas(id_frame(100, 60_000, 5), preserve_index=False)
    notes = notes.append_column("note", pa.array([f"line {i}\nnext" for i in range(60_000)]))
    pacsv.write_csv(notes.select(["id", "note", "a", "b"]), folder / "notes.csv")
    (folder / "gz.csv").write_bytes(gzip.compress((folder / "f1.csv").read_bytes()))
    pa_dup = pa.Table.from_arrays(
        [pa.array([1, 2, 3]), pa.array([0.5] * 3), pa.array([1] * 3), pa.array([0.7] * 3)],
        names=["id", "a", "b", "a"],
    )
    pq.write_table(pa_dup, folder / "dup.parquet")
    out = tmp_path_factory.mktemp("runs") / "edges"
    summary = sparkscore.score(spark, zoo.lr_skops, folder, out, passthrough_columns=["id"])
    return folder, out, summary


def test_job_accounts_every_row_of_files_that_fail_while_read(edge_run):
    _, out, summary = edge_run
    assert {
        k: summary[k]
        for k in (
            "status",
            "files_total",
            "files_succeeded",
            "files_failed",
            "files_rows_unknown",
            "rows_read",
            "rows_scored",
            "rows_failed",
        )
    } == {
        "status": "succeeded",
        "files_total": 7,
        "files_succeeded": 4,
        "files_failed": 3,
        "files_rows_unknown": 1,
        "rows_read": 4 + 3 + 3 + 5 + 60_000 + 3,
        "rows_scored": 4 + 3 + 3 + 60_000,
        "rows_failed": 5 + 3,
    }
    records = {
        f["file_name"]: f
        for p in (out / "_manifest").glob("batch-*.json")
        for f in json.loads(p.read_text())["files"]
    }
    assert records["gz.csv"] == {
        "file_name": "gz.csv",
        "status": "failed",
        "rows_read": 0,
        "rows_scored": 0,
        "rows_failed": 0,
        "rows_unknown": True,
    }
    assert records["ragged.csv"]["rows_failed"] == 5
    errors = sorted(
        (e["file_name"], e["row"], e["stage"], e["message"])
        for e in pq.read_table(out / "errors").to_pylist()
    )
    assert errors == [
        (
            "dup.parquet",
            None,
            "read",
            "dup.parquet: the column 'a' appears twice in the file's schema, so which one to read "
            "is ambiguous; give each column its own name.",
        ),
        (
            "gz.csv",
            None,
            "read",
            "gz.csv: the file is not CSV text: it looks gzip-compressed; decompress it before "
            "scoring it.",
        ),
        ("ragged.csv", 2, "read", errors[2][3]),
    ]
    assert errors[2][3].startswith(
        "ragged.csv, row 2: the row has 2 values but the header names 3 columns (32,"
    )


def test_job_passthrough_type_comes_from_every_file_and_keeps_csv_text(edge_run):
    import pyarrow as pa

    _, out, _ = edge_run
    table = pq.read_table(out / "predictions")
    assert table.schema.field("id").type == pa.string()
    got = table.select(["file_name", "row", "id"]).to_pylist()
    ids = {}
    for r in got:
        ids.setdefault(r["file_name"], []).append((r["row"], r["id"]))
    assert sorted(ids) == ["f1.csv", "f2.csv", "f3.parquet", "notes.csv"]
    assert sorted(ids["f1.csv"]) == [(0, "0"), (1, "1"), (2, "2"), (3, "3")]
    assert sorted(ids["f2.csv"]) == [(0, "A-10"), (1, "A-11"), (2, "007")]
    assert sorted(ids["f3.parquet"]) == [(0, "20"), (1, "21"), (2, "22")]
    assert sorted(ids["notes.csv"]) == [(i, str(100 + i)) for i in range(60_000)]


def test_job_files_removed_after_planning_are_named_and_their_rows_unknown(spark, zoo, tmp_path):
    from sparkscore.job import execute
    from sparkscore.preparation import prepare
    from sparkscore.session import task_slots
    from sparkscore.settings import Settings

    folder = tmp_path / "in"
    folder.mkdir()
    id_frame(0, 4, 1).to_csv(folder / "keep.csv", index=False)
    id_frame(0, 5, 2).to_csv(folder / "gone.csv", index=False)
    id_frame(0, 6, 3).to_parquet(folder / "gone.parquet", index=False)
    job = prepare(
        str(zoo.lr_skops),
        str(folder),
        str(tmp_path / "out"),
        Settings(),
        parallelism=task_slots(spark),
    )
    (folder / "gone.csv").unlink()
    (folder / "gone.parquet").unlink()
    summary = execute(spark, job)
    assert (
        summary["files_failed"],
        summary["files_rows_unknown"],
        summary["rows_read"],
        summary["rows_scored"],
    ) == (2, 2, 4, 4)
    assert sorted(
        (e["file_name"], e["message"])
        for e in pq.read_table(tmp_path / "out" / "errors").to_pylist()
    ) == [
        (name, f"{name}: the file no longer exists: it was removed after the job was planned.")
        for name in ("gone.csv", "gone.parquet")
    ]
    from sparkscore.console import summary_line as _summary_line

    assert _summary_line(summary).startswith(
        "sparkscore: succeeded: 1 of 3 files scored, 4 rows scored, 0 rows failed (and 2 failed "
        "files whose rows could not be counted), 0 files skipped, "
    )


def test_job_passthrough_of_nested_types_and_refusal_of_types_that_disagree(spark, zoo, tmp_path):
    import pyarrow as pa

    from sparkscore.errors import PassthroughConflictError

    folder = tmp_path / "in"
    folder.mkdir()
    tags = pa.map_(pa.string(), pa.int64())
    for i in range(2):
        table = pa.Table.from_pandas(id_frame(10 * i, 2, i), preserve_index=False)
        table = table.append_column("tags", pa.array([[("k", 10 * i + j)] for j in range(2)], tags))
        pq.write_table(table, folder / f"m{i}.parquet")
    summary = sparkscore.score(
        spark, zoo.lr_skops, folder, tmp_path / "out", passthrough_columns=["tags"]
    )
    assert (summary["files_succeeded"], summary["rows_scored"]) == (2, 4)
    out = pq.read_table(tmp_path / "out" / "predictions")
    assert out.schema.field("tags").type == tags
    assert sorted((r["file_name"], r["row"], r["tags"]) for r in out.to_pylist()) == [
        ("m0.parquet", 0, [("k", 0)]),
        ("m0.parquet", 1, [("k", 1)]),
        ("m1.parquet", 0, [("k", 10)]),
        ("m1.parquet", 1, [("k", 11)]),
    ]

    id_frame(0, 2, 5).assign(tags=[1, 2]).to_csv(folder / "c.csv", index=False)
    with pytest.raises(PassthroughConflictError) as info:
        sparkscore.score(
            spark, zoo.lr_skops, folder, tmp_path / "refused", passthrough_columns=["tags"]
        )
    assert str(info.value) == (
        f"{folder}: the passthrough column 'tags' has types that no one column can hold: int64 "
        "in c.csv; map<string, int64 ('tags')> in m0.parquet, m1.parquet. Give the column one "
        "type in every file, or leave it out of passthrough_columns."
    )
    assert not (tmp_path / "refused").exists()
