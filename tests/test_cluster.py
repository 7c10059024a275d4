"""The same job on a real standalone Spark cluster: a master and a worker from the pip pyspark."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pyspark
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "sparkscore" / "examples" / "diabetes"
SPARK_HOME = Path(pyspark.__file__).parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(tmp / "logs"),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_for(log: Path, text: str, proc: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        time.sleep(0.3)
    raise AssertionError(f"{text!r} never appeared in {log}:\n{log.read_text()[-3000:]}")


def submit(cluster: str, tmp: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`spark-submit --master CLUSTER jobs/score.py ARGS`, its output captured."""
    return subprocess.run(
        [str(BIN / "spark-submit"), "--master", cluster, str(ROOT / "jobs" / "score.py"), *args],
        env=spark_env(tmp),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("cluster")
    env = spark_env(tmp)
    port = free_port()
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    master_log, worker_log = tmp / "master.log", tmp / "worker.log"
    master = start(
        [
            spark_class,
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(free_port()),
        ],
        env,
        master_log,
    )
    procs = [master]
    try:
        wait_for(master_log, "I have been elected leader", master)
        url = f"spark://127.0.0.1:{port}"
        worker = start(
            [
                spark_class,
                "org.apache.spark.deploy.worker.Worker",
                url,
                "--host",
                "127.0.0.1",
                "--webui-port",
                str(free_port()),
                "--cores",
                "2",
                "--memory",
                "2g",
                "--work-dir",
                str(tmp / "work"),
            ],
            env,
            worker_log,
        )
        procs.append(worker)
        wait_for(worker_log, "Successfully registered with master", worker)
        yield url
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def test_cluster_job_scores_every_row_on_a_standalone_master_and_worker(cluster, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        [
            str(BIN / "spark-submit"),
            "--master",
            cluster,
            str(ROOT / "jobs" / "score.py"),
            "--model",
            str(EXAMPLE / "model"),
            "--input",
            str(EXAMPLE / "input"),
            "--output",
            str(out),
            "--set",
            "passthrough_columns=[patient_id]",
            "--set",
            "mini_batch_size=1",
        ],
        env=spark_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (
        done.stdout.strip()
        .splitlines()[-1]
        .startswith("sparkscore: succeeded: 4 of 4 files scored, 300 rows scored, 0 rows failed")
    )

    import sparkscore

    model = sparkscore.load_model(EXAMPLE / "model")
    got = pq.read_table(out / "predictions").to_pandas().sort_values(["file_name", "row"])
    expected = []
    for path in sorted((EXAMPLE / "input").iterdir()):
        df = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        for row, (pid, p) in enumerate(zip(df["patient_id"], model.predict(df))):
            expected.append((path.name, row, int(pid), float(p)))
    assert [
        tuple(r)
        for r in got[["file_name", "row", "patient_id", "prediction"]].itertuples(index=False)
    ] == expected
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["input"]["mini_batches"] == 4
    assert summary["model_loads"] == summary["python_workers"]
    assert all(
        m.get("worker") for m in (json.loads(p.read_text()) for p in (out / "_manifest").iterdir())
    )


def test_cluster_job_ships_the_models_environment_to_the_worker(
    cluster, light_chaos, env_cache, tmp_path, tmp_path_factory
):
    model = light_chaos()
    inputs = tmp_path / "in"
    inputs.mkdir()
    pd.DataFrame({"a": [1.5, 2.5], "b": [1, 2]}).to_csv(inputs / "a.csv", index=False)
    out = tmp_path / "out"

    done = subprocess.run(
        [
            str(BIN / "spark-submit"),
            "--master",
            cluster,
            str(ROOT / "jobs" / "score.py"),
            "--model",
            str(model),
            "--input",
            str(inputs),
            "--output",
            str(out),
            "--set",
            "env_manager=virtualenv",
            "--set",
            f"env_cache={env_cache}",
        ],
        env=spark_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = pq.read_table(out / "predictions").to_pylist()
    assert [(r["row"], r["prediction"]) for r in rows] == [(0, 4.0), (1, 7.0)]
    environment = json.loads((out / "_summary.json").read_text())["environment"]
    assert environment["shipped"] == "archive"
    assert environment["archive_bytes"] > 1_000_000
    # The worker unpacked the archive in its own work directory, and scored from there.
    pattern = Path("cluster*", "work", "app-*", "*", f"sparkscore-env-{environment['key'][:20]}")
    unpacked = list(tmp_path_factory.getbasetemp().glob(str(pattern / "numpy")))
    assert unpacked, "the worker did not unpack the environment in its work directory"


def test_cluster_job_scores_a_spark_pipeline_in_the_executors_jvm(cluster, spark, tmp_path):
    """A Spark MLlib model: the pipeline loaded by the driver, its transform run by the worker's
    executor (the model directory is on a disk both see, as PipelineModel.load needs)."""
    from pipeline_zoo import features, save_pipelines, transformed

    model = save_pipelines(spark, tmp_path / "models")["signed"]
    inputs = tmp_path / "in"
    inputs.mkdir()
    frames = {"a.csv": features(4, seed=1), "b.csv": features(3, seed=2)}
    for name, df in frames.items():
        df.to_csv(inputs / name, index=False)
    out = tmp_path / "out"
    done = submit(
        cluster,
        tmp_path,
        *("--model", str(model), "--input", str(inputs), "--output", str(out)),
        *("--set", "mini_batch_size=1"),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = sorted(pq.read_table(out / "predictions").to_pylist(), key=lambda r: r["file_name"])
    assert rows == [
        {"file_name": name, "row": i, "prediction": p["prediction"]}
        for name in sorted(frames)
        for i, p in enumerate(transformed(spark, model, frames[name][["a", "b"]]))
    ]
