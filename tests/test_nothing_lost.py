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


def write_inputs(folder: Path, files: int, rows: int, special: dict[int, float] | None = None) -> dict:
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
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, **popen)
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
    done = submit("--model", str(model), "--input", str(tmp_path / "in"),
                  "--output", str(tmp_path / "out"), "--set", "mini_batch_size=1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert marker.exists(), "the model never killed its worker"
    assert predictions(tmp_path / "out") == expected
    manifest = json.loads((tmp_path / "out" / "_manifest" / "batch-00002.json").read_text())
    assert manifest["attempt"] >= 1
    summary = json.loads((tmp_path / "out" / "_summary.json").read_text())
    assert (summary["status"], summary["rows_scored"], summary["rows_failed"]) == ("succeeded", 40, 0)


def test_resume_after_the_driver_was_killed_scores_each_row_once(tmp_path):
    expected = write_inputs(tmp_path / "in", files=8, rows=5)
    model = chaos_model(tmp_path, sleep=1.5)
    out = tmp_path / "out"
    args = ["--model", str(model), "--input", str(tmp_path / "in"), "--output", str(out),
            "--set", "mini_batch_size=1"]
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
    assert not [p for p in out.rglob("*.tmp")], "temporary files were left behind"


def test_timeout_fails_the_mini_batch_and_the_job_goes_on(spark, tmp_path):
    expected = write_inputs(tmp_path / "in", files=3, rows=6, special={1: 13.0})
    model = chaos_model(tmp_path, hang_on=13.0)
    summary = sparkscore.score(spark, model, tmp_path / "in", tmp_path / "out",
                               mini_batch_size=1, timeout=3)
    assert predictions(tmp_path / "out") == {
        k: v for k, v in expected.items() if k[0] != "part-01.csv"
    }
    errors = pq.read_table(tmp_path / "out" / "errors").to_pylist()
    assert errors == [{
        "file_name": "part-01.csv", "row": None, "stage": "timeout",
        "error_type": "BatchTimeoutError",
        "message": "the mini-batch with part-01.csv ran longer than timeout=3s; raise the "
                   "timeout setting or lower mini_batch_size.",
    }]
    assert (summary["files_failed"], summary["rows_failed"], summary["status"]) == (1, 6, "succeeded")


def test_error_threshold_exceeded_exits_non_zero_and_keeps_what_was_scored(tmp_path):
    write_inputs(tmp_path / "in", files=2, rows=4)
    (tmp_path / "in" / "part-02.csv").write_text("a,b\nx,1\n")
    model = chaos_model(tmp_path)
    done = submit("--model", str(model), "--input", str(tmp_path / "in"),
                  "--output", str(tmp_path / "out"), "--set", "error_threshold=0")
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
    done = submit("--model", str(tmp_path / bad), "--input", str(tmp_path / "in"),
                  "--output", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stdout.strip().splitlines()[-1] == (
        f"error: {tmp_path / bad}: is not a directory; point --model at an MLflow model "
        "directory (the folder that holds the MLmodel file)."
    )
    assert not (tmp_path / "out").exists()


def test_a_file_that_kills_its_worker_every_time_fails_alone_and_the_job_finishes(tmp_path):
    expected = write_inputs(tmp_path / "in", files=6, rows=10, special={3: 666.0})
    for r in range(10):
        del expected[("part-03.csv", r)]
    model = chaos_model(tmp_path, crash_on=666.0, crash_signal=int(signal.SIGSEGV))
    out = tmp_path / "out"
    args = ["--model", str(model), "--input", str(tmp_path / "in"), "--output", str(out),
            "--set", "mini_batch_size=3", "--set", "max_retries=1"]

    done = submit(*args)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert predictions(out) == expected
    records = pq.read_table(out / "errors").to_pylist()
    assert [(e["file_name"], e["row"], e["stage"], e["error_type"]) for e in records] == [
        ("part-03.csv", None, "predict", "WorkerDiedError")]
    assert "died (killed by signal 11, SIGSEGV)" in records[0]["message"]
    summary = json.loads((out / "_summary.json").read_text())
    assert (summary["status"], summary["files_failed"], summary["rows_scored"],
            summary["rows_failed"]) == ("succeeded", 1, 50, 10)
    manifest = json.loads((out / "_manifest" / "batch-00001.json").read_text())
    assert manifest["isolated"] is True
    assert json.loads((out / "_manifest" / "batch-00000.json").read_text())["isolated"] is False

    again = submit(*args, "--set", "resume=true")
    assert again.returncode == 0, again.stdout[-3000:]
    assert predictions(out) == expected

    strict = submit(*args[:-6], "--output", str(tmp_path / "strict"), "--set",
                    "error_threshold=0", "--set", "max_retries=0")
    assert strict.returncode == 3
    assert strict.stdout.strip().splitlines()[-1].startswith(
        "error: error_threshold exceeded")
