"""Model, input and output on S3: a real S3-compatible server (moto) on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

import sparkscore

EXAMPLE = Path(__file__).resolve().parents[1] / "sparkscore" / "examples" / "diabetes"


@pytest.fixture(scope="module")
def s3() -> Iterator[pafs.S3FileSystem]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    mp = pytest.MonkeyPatch()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.2)
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        for k, v in env.items():
            mp.setenv(k, v)
        fs = pafs.S3FileSystem(
            endpoint_override=endpoint,
            access_key="testing",
            secret_key="testing",
            region="us-east-1",
            scheme="http",
            allow_bucket_creation=True,
        )
        fs.create_dir("models")
        fs.create_dir("data")
        pafs.copy_files(str(EXAMPLE / "model"), "models/diabetes", destination_filesystem=fs)
        pafs.copy_files(str(EXAMPLE / "input"), "data/visits", destination_filesystem=fs)
        yield fs
    finally:
        mp.undo()
        server.terminate()
        server.wait(timeout=10)


def test_storage_job_reads_model_and_input_and_writes_output_on_s3(spark, s3):
    summary = sparkscore.score(
        spark,
        "s3://models/diabetes",
        "s3://data/visits",
        "s3://data/scored",
        passthrough_columns=["patient_id"],
    )
    assert (summary["files_total"], summary["rows_scored"]) == (4, 300)
    listing = sorted(
        i.path for i in s3.get_file_info(pafs.FileSelector("data/scored", recursive=True))
    )
    assert "data/scored/_summary.json" in listing
    table = pq.read_table("data/scored/predictions", filesystem=s3).to_pandas()
    local = sparkscore.load_model(EXAMPLE / "model")
    expected = pd.read_csv(EXAMPLE / "input" / "visits-2024-01.csv")
    got = table[table.file_name == "visits-2024-01.csv"].sort_values("row")
    assert got["patient_id"].tolist() == expected["patient_id"].tolist()
    # Rows of several files share one predict call; BLAS may round the last bit differently
    # for another batch shape, as with any batching scorer.
    assert got["prediction"].tolist() == pytest.approx(local.predict(expected).tolist(), rel=1e-12)
    assert summary["model"]["uri"] == "s3://models/diabetes"
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")


def test_storage_uri_options_survive_and_credentials_are_never_recorded(spark, s3, caplog):
    endpoint = os.environ["AWS_ENDPOINT_URL"].removeprefix("http://")
    options = f"?endpoint_override={endpoint}&scheme=http&region=us-east-1"
    given = f"s3://testing:sekrit-value@data/visits/*.csv{options}"
    with caplog.at_level("INFO", logger="sparkscore"):
        summary = sparkscore.score(
            spark,
            "s3://models/diabetes",
            given,
            f"s3://testing:sekrit-value@data/redacted{options}",
        )
    assert (summary["files_total"], summary["rows_scored"]) == (2, 150)  # the two CSVs
    text = s3.open_input_stream("data/redacted/_summary.json").read().decode()
    assert "sekrit" not in text and "sekrit" not in repr(summary)
    assert f"s3://***@data/visits/*.csv{options}" in text
    assert caplog.messages and not [m for m in caplog.messages if "sekrit" in m]


def test_storage_scoring_script_gets_local_copies_of_s3_files_removed_after(spark, s3, tmp_path):
    (tmp_path / "batch_driver.py").write_text(
        "import os\nimport zlib\n\n\ndef init():\n    pass\n\n\n"
        "def run(mini_batch):\n"
        "    out = os.path.join(os.environ['AZUREML_BI_OUTPUT_PATH'], 'seen.txt')\n"
        "    with open(out, 'w') as f:\n"
        "        f.write(' '.join(os.path.basename(p) for p in mini_batch))\n"
        "    return [f'{p}|{zlib.crc32(open(p, \"rb\").read())}' for p in mini_batch]\n"
    )
    summary = sparkscore.score(
        spark,
        "s3://models/diabetes",
        "s3://data/visits",
        "s3://data/script-out",
        scoring_script=str(tmp_path / "batch_driver.py"),
        mini_batch_size=4,
        output_format="csv",
    )
    assert (summary["files_succeeded"], summary["items_succeeded"]) == (4, 4)
    returned = pd.read_csv(s3.open_input_file("data/script-out/predictions.csv"))
    paths, crcs = zip(*(value.split("|") for value in returned["prediction"]))
    names = sorted(os.listdir(EXAMPLE / "input"))
    assert [os.path.basename(p) for p in paths] == names
    assert [int(c) for c in crcs] == [
        zlib.crc32((EXAMPLE / "input" / n).read_bytes()) for n in names
    ]  # each copy holds its own file's bytes (the small ones fetched ahead)
    assert all(
        os.path.basename(os.path.dirname(p)).startswith("sparkscore-minibatch-") for p in paths
    )
    assert not any(os.path.exists(p) for p in paths), "the downloaded copies were not removed"
    with s3.open_input_stream("data/script-out/seen.txt") as f:
        assert f.read().decode() == " ".join(names)


def test_storage_scoring_script_model_without_mlmodel_is_copied_under_its_name(spark, s3, tmp_path):
    with s3.open_output_stream("models/weights/model.pkl") as f:
        f.write(b"weights")
    with s3.open_output_stream("models/weights/vocab.txt") as f:
        f.write(b"a b c")
    (tmp_path / "batch_driver.py").write_text(
        "import os\n\n\ndef init():\n    global found\n"
        "    root = os.environ['AZUREML_MODEL_DIR']\n"
        "    found = sorted(os.path.relpath(os.path.join(d, n), root)\n"
        "                   for d, _, names in os.walk(root) for n in names)\n\n\n"
        "def run(mini_batch):\n    return found\n"
    )
    listed = {}
    for model in ("s3://models/weights", "s3://models/weights/model.pkl"):
        out = tmp_path / f"out-{len(listed)}"
        summary = sparkscore.score(
            spark,
            model,
            "s3://data/visits/visits-2024-01.csv",
            out,
            scoring_script=str(tmp_path / "batch_driver.py"),
        )
        assert summary["model"]["flavor"] == "none"
        listed[model] = pq.read_table(out / "predictions")["prediction"].to_pylist()
    assert listed == {
        "s3://models/weights": ["weights/model.pkl", "weights/vocab.txt"],
        "s3://models/weights/model.pkl": ["model.pkl"],
    }
    with pytest.raises(sparkscore.ModelFormatError) as caught:
        sparkscore.score(spark, "s3://models/weights", "s3://data/visits", tmp_path / "no")
    assert caught.value.reason.startswith("has no MLmodel file")
