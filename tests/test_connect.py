"""Spark Connect: a real Connect server from the pip pyspark on 127.0.0.1, clients in subprocesses
(a process holds either a classic or a Connect session, and the suite's own is classic)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import sparkscore

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "sparkscore" / "examples" / "diabetes"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("connect")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    log = tmp / "server.log"
    server = subprocess.Popen(
        [
            str(BIN / "spark-submit"),
            "--class",
            "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--master",
            "local[2]",
            "--conf",
            f"spark.connect.grpc.binding.port={port}",
            "--conf",
            "spark.connect.grpc.binding.address=127.0.0.1",
            "--conf",
            "spark.ui.enabled=false",
        ],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while "Spark Connect server started" not in log.read_text(errors="replace"):
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def expected_predictions() -> list[float]:
    df = pd.read_csv(EXAMPLE / "input" / "visits-2024-01.csv")
    return sparkscore.load_model(EXAMPLE / "model").predict(df).tolist()


def test_connect_spark_udf_ships_the_model_with_add_artifacts(connect_url):
    script = textwrap.dedent(f"""
        import json, warnings
        warnings.filterwarnings("ignore")
        from pyspark.sql import SparkSession
        import sparkscore
        spark = SparkSession.builder.remote({connect_url!r}).getOrCreate()
        import pandas as pd
        df = spark.createDataFrame(pd.read_csv({str(EXAMPLE / "input" / "visits-2024-01.csv")!r}))
        predict = sparkscore.spark_udf(spark, {str(EXAMPLE / "model")!r})
        out = df.withColumn("p", predict()).orderBy("patient_id")
        print(json.dumps([out.schema["p"].dataType.simpleString(),
                          [r.p for r in out.select("p").collect()]]))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    dtype, values = json.loads(done.stdout.strip().splitlines()[-1])
    assert dtype == "double"
    assert values == pytest.approx(expected_predictions(), rel=1e-12)


def test_connect_job_runs_with_remote(connect_url, tmp_path):
    done = subprocess.run(
        [
            str(BIN / "sparkscore"),
            "score",
            "--remote",
            connect_url,
            "--model",
            str(EXAMPLE / "model"),
            "--input",
            str(EXAMPLE / "input"),
            "--output",
            str(tmp_path / "out"),
            "--set",
            "passthrough_columns=[patient_id]",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (
        done.stdout.strip()
        .splitlines()[-1]
        .startswith("sparkscore: succeeded: 4 of 4 files scored, 300 rows scored")
    )
    table = pq.read_table(tmp_path / "out" / "predictions").to_pandas()
    got = table[table.file_name == "visits-2024-01.csv"].sort_values("row")
    assert got["prediction"].tolist() == pytest.approx(expected_predictions(), rel=1e-12)
    summary = json.loads((tmp_path / "out" / "_summary.json").read_text())
    assert summary["model_loads"] == summary["python_workers"] >= 1


def test_connect_job_ships_the_models_environment_with_add_artifacts(
    connect_url, light_chaos, env_cache, tmp_path
):
    model = light_chaos()
    inputs = tmp_path / "in"
    inputs.mkdir()
    pd.DataFrame({"a": [1.5, 2.5], "b": [1, 2]}).to_csv(inputs / "a.csv", index=False)

    done = subprocess.run(
        [
            str(BIN / "sparkscore"),
            "score",
            "--remote",
            connect_url,
            "--model",
            str(model),
            "--input",
            str(inputs),
            "--output",
            str(tmp_path / "out"),
            "--set",
            "env_manager=virtualenv",
            "--set",
            f"env_cache={env_cache}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = pq.read_table(tmp_path / "out" / "predictions").to_pylist()
    assert [(r["row"], r["prediction"]) for r in rows] == [(0, 4.0), (1, 7.0)]
    environment = json.loads((tmp_path / "out" / "_summary.json").read_text())["environment"]
    assert environment["shipped"] == "archive"


def test_connect_failure_line_names_what_the_task_raised(connect_url):
    script = textwrap.dedent(f"""
        import warnings
        warnings.filterwarnings("ignore")
        from pyspark.sql import SparkSession
        from sparkscore.sparkerrors import failure_line as _failure_line

        def disk_full(batches):
            for batch in batches:
                raise OSError(28, "No space left on device", "/data/out/part-00000.parquet")
            yield from ()

        spark = SparkSession.builder.remote({connect_url!r}).getOrCreate()
        try:
            spark.range(1).mapInArrow(disk_full, "id long").collect()
        except Exception as e:
            print(type(e).__module__, type(e).__name__)
            print(_failure_line(e))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [
        "pyspark.errors.exceptions.connect PythonException",
        "a Spark task failed: OSError: [Errno 28] No space left on device: "
        "'/data/out/part-00000.parquet'",
    ]
