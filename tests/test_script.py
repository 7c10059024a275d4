"""Scoring scripts (Azure ML's batch driver) end to end: real scripts, a real mlflow model, real
Spark, real files; the command runs start together (JVM start-up dominates), then are awaited."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sparkscore
from sparkscore import azureconfig
from sparkscore.console import summary_line
from sparkscore.errors import (
    ErrorThresholdExceeded,
    InputError,
    ModelFormatError,
    ScoringScriptError,
    SettingsError,
)
from sparkscore.model import bare_record, read_spec
from sparkscore.modelfiles import directory_sha256
from sparkscore.preflight import preflight
from sparkscore.script import ScoringScript, check_script
from sparkscore.scriptrun import as_table
from sparkscore.session import Sizing, sized
from sparkscore.settings import Settings

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL = REPO / "sparkscore" / "examples" / "diabetes" / "model"
VISITS = REPO / "sparkscore" / "examples" / "diabetes" / "input" / "visits-2024-01.csv"

# Azure's heart-classifier batch_driver.py, as written for Azure: the model by folder name.
DATAFRAME_SCRIPT = """
import os

import mlflow
import pandas as pd


def init():
    global model
    model = mlflow.pyfunc.load_model(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model"))


def run(mini_batch):
    frames = []
    for path in mini_batch:
        data = pd.read_csv(path)
        frames.append(
            pd.DataFrame(
                {
                    "file": os.path.basename(path),
                    "patient_id": data["patient_id"],
                    "prediction": model.predict(data),
                }
            )
        )
    return pd.concat(frames)
"""

# Azure's custom-output example: a Parquet file per input file, the list of files returned;
# the model found with glob, and the output folder read once, in init().
PARQUET_SCRIPT = """
import glob
import os
from pathlib import Path

import mlflow
import pandas as pd


def init():
    global model, output_path
    output_path = os.environ["AZUREML_BI_OUTPUT_PATH"]
    model = mlflow.pyfunc.load_model(glob.glob(os.environ["AZUREML_MODEL_DIR"] + "/*/")[0])


def run(mini_batch):
    for file_path in mini_batch:
        data = pd.read_csv(file_path)
        data["prediction"] = model.predict(data)
        data.to_parquet(os.path.join(output_path, Path(file_path).stem + ".parquet"))
    return mini_batch
"""

# JSON lines, which the no-code path does not read; a helper module from the code folder.
JSONL_SCRIPT = """
import json

from helpers import total


def init():
    pass


def run(mini_batch):
    return [total(json.loads(line)) for path in mini_batch for line in open(path)]
"""

# Raises on one file; each call leaves a line in CALLS, so the test counts the attempts. A file
# named kill-*.csv kills its worker the first time only (the marker says it happened).
CHAOS_SCRIPT = """
import os

import pandas as pd


def init():
    pass


def run(mini_batch):
    with open(os.environ["CALLS"], "a") as f:
        f.write(",".join(os.path.basename(p) for p in mini_batch) + "\\n")
    for path in mini_batch:
        name = os.path.basename(path)
        if name.startswith("bad"):
            raise ValueError(f"cannot score {name}")
        marker = os.environ["CALLS"] + ".killed"
        if name.startswith("kill") and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(3)
    with open(os.path.join(os.environ["AZUREML_BI_OUTPUT_PATH"], "seen.txt"), "a") as f:
        f.write(" ".join(os.path.basename(p) for p in mini_batch))
    return pd.concat(pd.read_csv(p).assign(file=os.path.basename(p)) for p in mini_batch)
"""

# A model that is not an MLflow model: a scikit-learn estimator joblib saved, which init() loads
# itself from AZUREML_MODEL_DIR (MODEL_FILE: "model.pkl" for a single file, as Azure places
# one, or "bare/model.pkl" for a folder named bare).
BARE_SCRIPT = """
import os

import joblib
import pandas as pd


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], os.environ["MODEL_FILE"]))


def run(mini_batch):
    data = pd.concat(pd.read_csv(p) for p in mini_batch)
    return list(model.predict(data[["x"]]))
"""

# Slow when PAUSE is set (the run to kill); each file leaves a note named for the attempt, so a
# note landed twice would show as two notes of one file.
NOTES_SCRIPT = """
import os
import time
import uuid

import pandas as pd


def init():
    pass


def run(mini_batch):
    time.sleep(float(os.environ.get("PAUSE", "0")))
    for path in mini_batch:
        stem = os.path.splitext(os.path.basename(path))[0]
        note = os.path.join(os.environ["AZUREML_BI_OUTPUT_PATH"], f"{stem}-{uuid.uuid4().hex}.txt")
        with open(note, "w") as f:
            f.write(os.path.basename(path))
    return pd.concat(pd.read_csv(p).assign(file=os.path.basename(p)) for p in mini_batch)
"""


# Azure's deployment-custom/deployment.yml (CLI 1.7 and later: knobs under settings:).
NEW_LAYOUT = """
$schema: https://azuremlschemas.azureedge.net/latest/modelBatchDeployment.schema.json
endpoint_name: diabetes-batch
name: diabetes-custom
description: A diabetes progression regressor scored by a custom script.
type: model
model: azureml:diabetes@latest
environment:
  name: batch-mlflow
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
  conda_file: environment/conda.yaml
code_configuration:
  code: code
  scoring_script: batch_driver.py
compute: azureml:batch-cluster
resources:
  instance_count: 2
settings:
  max_concurrency_per_instance: 2
  mini_batch_size: 2
  output_action: append_row
  output_file_name: predictions.csv
  retry_settings:
    max_retries: 3
    timeout: 300
  error_threshold: -1
  logging_level: info
"""

# The older layout: every knob at the top level.
OLD_LAYOUT = """
$schema: https://azuremlschemas.azureedge.net/latest/batchDeployment.schema.json
name: chaos
endpoint_name: chaos-batch
model: azureml:diabetes:1
code_configuration:
  code: code
  scoring_script: batch_driver.py
environment: azureml:AzureML-sklearn-1.0@latest
compute: azureml:batch-cluster
resources:
  instance_count: 1
max_concurrency_per_instance: 1
mini_batch_size: 1
output_action: append_row
output_file_name: scored.csv
retry_settings:
  max_retries: 1
  timeout: 120
environment_variables:
  CALLS: {calls}
error_threshold: -1
logging_level: info
"""


def write_script(folder: Path, text: str, name: str = "batch_driver.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text))
    return folder


def visits(folder: Path, names: list[str]) -> Path:
    """Copies of the example's first CSV under each name, rows shifted so files differ."""
    folder.mkdir(parents=True, exist_ok=True)
    data = pd.read_csv(VISITS)
    for i, name in enumerate(names):
        data.iloc[i * 10 : i * 10 + 5].to_csv(folder / name, index=False)
    return folder


def bare_model(folder: Path, slope: float = 2.0) -> Path:
    """y = slope * x + 1, fitted by scikit-learn and saved with joblib, as model.pkl in
    `folder`."""
    import joblib
    from sklearn.linear_model import LinearRegression

    folder.mkdir(parents=True, exist_ok=True)
    x = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    joblib.dump(LinearRegression().fit(x, slope * x["x"] + 1), folder / "model.pkl")
    (folder / "README.txt").write_text("not an MLflow model\n")
    return folder


def mlflow_predictions(path: Path) -> list[float]:
    import mlflow

    return list(mlflow.pyfunc.load_model(str(MODEL)).predict(pd.read_csv(path)))


def env() -> dict[str, str]:
    return {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ---------------------------------------------------------------------------------------------
# The script itself, checked on the driver


def test_script_without_run_is_refused_naming_the_file(tmp_path):
    code = write_script(tmp_path / "code", "def init():\n    pass\n")
    script = ScoringScript.of(Settings(scoring_script="batch_driver.py", code=str(code)))
    assert script is not None
    with pytest.raises(ScoringScriptError) as caught:
        check_script(script)
    assert str(caught.value) == (
        f"scoring script {code}/batch_driver.py: it defines no run(); a scoring script defines "
        "init() and run(mini_batch), as Azure ML's batch deployments call them."
    )


def test_script_that_cannot_import_is_refused_with_the_import_error(tmp_path):
    code = write_script(tmp_path / "code", "import not_a_module_anywhere\n")
    script = ScoringScript.of(Settings(scoring_script=str(code / "batch_driver.py")))
    assert script is not None and script.folder is None
    with pytest.raises(ScoringScriptError) as caught:
        check_script(script)
    assert caught.value.reason == (
        "importing it failed (ModuleNotFoundError: No module named 'not_a_module_anywhere')"
    )


def test_script_check_calls_neither_init_nor_run_and_leaves_sys_path(tmp_path):
    marker = tmp_path / "called"
    touch = f"open({str(marker)!r}, 'w')"
    code = write_script(
        tmp_path / "code", f"def init():\n    {touch}\n\ndef run(b):\n    {touch}\n"
    )
    before = list(sys.path)
    check_script(ScoringScript.of(Settings(scoring_script="batch_driver.py", code=str(code))))
    assert not marker.exists()
    assert sys.path == before


def test_plan_with_a_script_lists_files_of_any_type_and_checks_the_script(tmp_path):
    marker = tmp_path / "called"
    code = write_script(
        tmp_path / "code", f"def init():\n    open({str(marker)!r}, 'w')\n\ndef run(b):\n    pass\n"
    )
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"a": 1}\n')
    (folder / "b.wav").write_bytes(b"RIFF")
    settings = Settings(scoring_script="batch_driver.py", code=str(code), mini_batch_size=1)
    report, ok = preflight(str(MODEL), str(folder), settings, parallelism=2)
    assert ok and not marker.exists()
    assert report.splitlines() == [
        f"input: {folder} (2 files, 13 bytes)",
        "mini-batches (Spark tasks): 2",
        "  0: 9 bytes: a.jsonl",
        "  1: 4 bytes: b.wav",
        f"scoring script: {code}/batch_driver.py (shipped: {code}): imports, and defines init "
        "and run (neither was called)",
    ]
    (code / "batch_driver.py").write_text("def run(b):\n    pass\n")
    with pytest.raises(ScoringScriptError, match="it defines no init()"):
        preflight(str(MODEL), str(folder), settings, parallelism=2)


def test_plan_with_a_script_over_a_folder_of_hidden_files_says_there_are_none(tmp_path):
    code = write_script(tmp_path / "code", "def init():\n    pass\n\ndef run(b):\n    pass\n")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "_SUCCESS").write_text("")
    settings = Settings(scoring_script="batch_driver.py", code=str(code))
    with pytest.raises(InputError) as caught:
        preflight(str(MODEL), str(folder), settings, parallelism=2)
    assert caught.value.reason == "there are no files to score here."


def test_script_refuses_settings_that_apply_only_without_one(spark, tmp_path):
    code = write_script(tmp_path / "code", DATAFRAME_SCRIPT)
    with pytest.raises(SettingsError) as caught:
        sparkscore.score(
            spark,
            MODEL,
            VISITS,
            tmp_path / "out",
            scoring_script="batch_driver.py",
            code=str(code),
            passthrough_columns=["patient_id"],
        )
    assert caught.value.key == "passthrough_columns"
    assert not (tmp_path / "out").exists()


def test_plan_with_a_script_takes_a_model_without_mlmodel_and_a_missing_one_is_named(tmp_path):
    code = write_script(tmp_path / "code", BARE_SCRIPT)
    folder = visits(tmp_path / "in", ["a.csv"])
    settings = Settings(scoring_script="batch_driver.py", code=str(code))
    model = bare_model(tmp_path / "bare")
    report, ok = preflight(str(model / "model.pkl"), str(folder), settings, parallelism=2)
    assert ok and report.splitlines()[-1].startswith("scoring script: ")
    with pytest.raises(ModelFormatError) as caught:
        preflight(str(tmp_path / "nowhere"), str(folder), settings, parallelism=2)
    assert str(caught.value) == (
        f"{tmp_path}/nowhere: does not exist; point --model at the model folder (or the single "
        "model file) that the scoring script's init() loads from AZUREML_MODEL_DIR."
    )


def test_model_record_without_mlmodel_has_the_keys_of_an_mlflow_models():
    assert list(bare_record("m")) == list(read_spec(MODEL).record())
    assert bare_record("m")["flavor"] == "none"


def test_script_results_keep_a_dataframes_types_and_make_a_list_one_column():
    frame = pd.DataFrame({"id": [1, 2], "score": [0.5, 1.5], "label": ["a", "b"]})
    assert as_table(frame, 3).to_pylist() == [
        {"id": 1, "score": 0.5, "label": "a", "mini_batch": 3},
        {"id": 2, "score": 1.5, "label": "b", "mini_batch": 3},
    ]
    assert as_table(frame, 3).schema.field("id").type == pa.int64()
    assert as_table(["x.csv", "y.csv"], 0).to_pydict() == {
        "prediction": ["x.csv", "y.csv"],
        "mini_batch": [0, 0],
    }
    assert as_table([1, "two"], 1).column("prediction").to_pylist() == ["1", "two"]
    with pytest.raises(TypeError, match="run returned dict; it must return a pandas DataFrame"):
        as_table({"a": 1}, 0)


def test_script_summary_line_counts_items_per_second_not_rows():
    summary = {
        "job_id": "j",
        "status": "succeeded",
        "output": "out",
        "files_total": 4,
        "files_succeeded": 4,
        "files_skipped": 0,
        "files_rows_unknown": 0,
        "rows_scored": 0,
        "rows_failed": 0,
        "rows_per_s": 0.0,
        "items_succeeded": 15,
        "duration_s": 2.0,
    }
    assert summary_line(summary) == (
        "sparkscore: succeeded: 4 of 4 files scored, 15 items returned by run, 0 files skipped, "
        "2.0s (7.5 items/s); summary in out/_summary.json, report in out/report.html"
    )


# ---------------------------------------------------------------------------------------------
# Azure's deployment file as the settings file


def test_azure_deployment_new_layout_maps_each_knob_and_code_from_its_folder(tmp_path):
    (tmp_path / "deployment.yml").write_text(NEW_LAYOUT)
    settings = Settings.load(tmp_path / "deployment.yml", ["logging_level=debug"])
    assert (
        settings.scoring_script,
        settings.code,
        settings.mini_batch_size,
        settings.output_action,
        settings.output_file_name,
        settings.output_format,
        settings.max_retries,
        settings.timeout,
        settings.error_threshold,
        settings.logging_level,
    ) == (
        "batch_driver.py",
        str(tmp_path / "code"),
        2,
        "append_row",
        "predictions.csv",
        "csv",
        3,
        300.0,
        -1,
        "debug",
    )
    assert azureconfig.notes(tmp_path / "deployment.yml") == [
        (
            logging.INFO,
            f"{tmp_path}/deployment.yml: ignored Azure's $schema, endpoint_name, name, "
            "description, type, model, environment, compute: sparkscore runs on your Spark, "
            "with --model and the master you give it",
        ),
    ]
    assert azureconfig.instances(tmp_path / "deployment.yml") == azureconfig.Instances(
        2, 2, source=str(tmp_path / "deployment.yml")
    )


def test_azure_size_becomes_the_task_slots_of_a_session_sparkscore_starts():
    size = azureconfig.Instances(count=2, concurrency=3, source="d.yml")
    what = "resources.instance_count 2 x max_concurrency_per_instance 3"
    assert sized(size, master=None) == Sizing(
        master="local[6]", line=(logging.INFO, f"d.yml: {what}: local[6] (--master overrides it)")
    )
    assert sized(size, master="yarn") == Sizing(
        executors={"spark.executor.cores": "3", "spark.executor.instances": "2"},
        line=(
            logging.INFO,
            f"d.yml: {what}: spark.executor.cores=3, spark.executor.instances=2 on yarn",
        ),
    )
    assert sized(size, master="spark://head:7077").executors == {
        "spark.executor.cores": "3",
        "spark.cores.max": "6",
    }
    assert sized(None, master=None) == Sizing()
    ignored = {
        "local[1]": sized(size, master="local[1]"),
        "connect": sized(size, master=None, remote=True),
        "conf": sized(size, master="yarn", given={"spark.executor.instances": "5"}.get),
    }
    assert {name: s.line for name, s in ignored.items()} == {
        "local[1]": (
            logging.WARNING,
            f"d.yml: ignored {what}: the master local[1] you chose decides the task slots",
        ),
        "connect": (
            logging.WARNING,
            f"d.yml: ignored {what}: the Spark Connect server has its own executors",
        ),
        "conf": (
            logging.WARNING,
            f"d.yml: ignored {what}: the session's own spark.executor.instances=5 decide",
        ),
    }
    assert all(s.master is None and not s.executors for s in ignored.values())


def test_azure_size_must_be_a_whole_number(tmp_path):
    zero = NEW_LAYOUT.replace("instance_count: 2", "instance_count: 0")
    (tmp_path / "deployment.yml").write_text(zero)
    with pytest.raises(SettingsError) as caught:
        Settings.load(tmp_path / "deployment.yml")
    assert str(caught.value) == "resources.instance_count must be a whole number >= 1, got 0"


def test_azure_deployment_old_layout_reads_top_level_knobs(tmp_path):
    (tmp_path / "deployment.yml").write_text(OLD_LAYOUT.format(calls="/tmp/calls.txt"))
    settings = Settings.load(tmp_path / "deployment.yml")
    assert (
        settings.code,
        settings.mini_batch_size,
        settings.output_file_name,
        settings.max_retries,
        settings.timeout,
        settings.environment_variables,
    ) == (str(tmp_path / "code"), 1, "scored.csv", 1, 120.0, {"CALLS": "/tmp/calls.txt"})


def test_azure_deployment_key_neither_azure_nor_sparkscore_is_refused_by_name(tmp_path):
    (tmp_path / "deployment.yml").write_text(NEW_LAYOUT + "  mini_batch_sise: 3\n")
    with pytest.raises(SettingsError) as caught:
        Settings.load(tmp_path / "deployment.yml")
    assert caught.value.key == "mini_batch_sise"
    assert "did you mean mini_batch_size?" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# In a notebook's session (local[2]: Spark retries nothing, so a failure is recorded at once)


def test_script_dataframe_rows_keep_their_columns_and_the_model_loads_once_per_worker(
    spark, tmp_path
):
    code = write_script(tmp_path / "code", DATAFRAME_SCRIPT)
    names = ["a.csv", "b.csv", "c.csv"]
    folder = visits(tmp_path / "in", names)
    summary = sparkscore.score(
        spark,
        MODEL,
        folder,
        tmp_path / "out",
        scoring_script="batch_driver.py",
        code=str(code),
        mini_batch_size=1,
    )
    got = pq.read_table(tmp_path / "out" / "predictions").to_pandas()
    got = got.sort_values(["file", "patient_id"]).reset_index(drop=True)
    expected = [
        (name, int(pid), pred, i)
        for i, name in enumerate(names)
        for pid, pred in zip(
            pd.read_csv(folder / name)["patient_id"], mlflow_predictions(folder / name)
        )
    ]
    assert list(got.itertuples(index=False, name=None)) == expected
    assert list(got.columns) == ["file", "patient_id", "prediction", "mini_batch"]
    assert (summary["status"], summary["files_succeeded"], summary["items_succeeded"]) == (
        "succeeded",
        3,
        15,
    )
    assert summary["model_loads"] == summary["python_workers"] >= 1


def test_script_files_written_to_the_output_path_land_once(spark, tmp_path):
    code = write_script(tmp_path / "code", PARQUET_SCRIPT)
    folder = visits(tmp_path / "in", ["a.csv", "b.csv", "c.csv", "d.csv"])
    out = tmp_path / "out"
    summary = sparkscore.score(
        spark,
        MODEL,
        folder,
        out,
        scoring_script="batch_driver.py",
        code=str(code),
        mini_batch_size=2,
        output_format="csv",
    )
    assert summary["items_succeeded"] == 4
    assert sorted(p.name for p in out.iterdir()) == [
        "_manifest",
        "_run.json",
        "_summary.json",
        "a.parquet",
        "b.parquet",
        "c.parquet",
        "d.parquet",
        "predictions.csv",
    ]
    a = pd.read_parquet(out / "a.parquet")
    assert a["prediction"].tolist() == mlflow_predictions(folder / "a.csv")
    rows = pd.read_csv(out / "predictions.csv")
    assert [(os.path.basename(p), b) for p, b in rows.itertuples(index=False)] == [
        ("a.csv", 0),
        ("b.csv", 0),
        ("c.csv", 1),
        ("d.csv", 1),
    ]


def test_script_reads_jsonl_and_a_failed_mini_batch_is_recorded_with_its_exception(spark, tmp_path):
    code = write_script(tmp_path / "code", JSONL_SCRIPT)
    (code / "helpers.py").write_text("def total(record):\n    return record['a'] + record['b']\n")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "one.jsonl").write_text('{"a": 1, "b": 2}\n{"a": 10, "b": 20}\n')
    (folder / "two.jsonl").write_text('{"a": 5, "b": 5}\n')
    (folder / "zz-bad.jsonl").write_text('{"a": 1}\n')
    with pytest.raises(ErrorThresholdExceeded):
        sparkscore.score(
            spark,
            MODEL,
            folder,
            tmp_path / "out",
            scoring_script="batch_driver.py",
            code=str(code),
            mini_batch_size=2,
            error_threshold=0,
        )
    rows = pq.read_table(tmp_path / "out" / "predictions").to_pylist()
    assert rows == [
        {"prediction": 3, "mini_batch": 0},
        {"prediction": 30, "mini_batch": 0},
        {"prediction": 10, "mini_batch": 0},
    ]
    assert pq.read_table(tmp_path / "out" / "errors").to_pylist() == [
        {
            "file_name": "zz-bad.jsonl",
            "row": None,
            "stage": "run",
            "error_type": "KeyError",
            "message": "'b'",
        }
    ]
    summary = json.loads((tmp_path / "out" / "_summary.json").read_text())
    assert (summary["status"], summary["files_failed"], summary["items_succeeded"]) == (
        "failed",
        1,
        3,
    )


def score_bare(spark, tmp_path: Path, model: Path, model_file: str, inputs: list[list[float]]):
    """Score CSV files of column x (one per list, one per mini-batch) with BARE_SCRIPT, which
    loads `model_file` from AZUREML_MODEL_DIR; the summary and the (mini_batch, prediction)
    rows."""
    code = write_script(tmp_path / "code", BARE_SCRIPT)
    folder = tmp_path / "in"
    folder.mkdir()
    for i, xs in enumerate(inputs):
        pd.DataFrame({"x": xs}).to_csv(folder / f"{i}.csv", index=False)
    summary = sparkscore.score(
        spark,
        model,
        folder,
        tmp_path / "out",
        scoring_script="batch_driver.py",
        code=str(code),
        mini_batch_size=1,
        environment_variables={"MODEL_FILE": model_file},
    )
    rows = pq.read_table(tmp_path / "out" / "predictions").to_pylist()
    return summary, sorted((r["mini_batch"], round(r["prediction"], 9)) for r in rows)


def test_script_loads_a_bare_model_folder_and_records_it_with_flavor_none(spark, tmp_path):
    model = bare_model(tmp_path / "bare")
    summary, rows = score_bare(spark, tmp_path, model, "bare/model.pkl", [[10.0, 20.0], [-1.0]])
    assert rows == [(0, 21.0), (0, 41.0), (1, -1.0)]
    assert (summary["status"], summary["items_succeeded"]) == ("succeeded", 3)
    assert summary["model"] == {
        **bare_record(str(model)),
        "metadata": None,
        "sha256": directory_sha256(model),
    }
    assert summary["model"]["flavor"] == "none"


def test_script_loads_a_single_model_file_from_azureml_model_dir(spark, tmp_path):
    # The script of the test above, in the same workers: another model and environment
    # import it and call its init() again (a kept one would still predict 2x + 1).
    model = bare_model(tmp_path / "bare", slope=3.0) / "model.pkl"
    summary, rows = score_bare(spark, tmp_path, model, "model.pkl", [[5.0], [1.0]])
    assert rows == [(0, 16.0), (1, 4.0)]
    assert (summary["model"]["path"], summary["model"]["flavor"]) == (str(model), "none")
    # A single file's sha256 is the file's own, as sha256sum prints it.
    assert summary["model"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()


def test_model_folder_without_mlmodel_is_refused_without_a_script(spark, tmp_path):
    model = bare_model(tmp_path / "bare")
    with pytest.raises(ModelFormatError) as caught:
        sparkscore.score(spark, model, VISITS, tmp_path / "out")
    assert str(caught.value) == (
        f"{model}: has no MLmodel file, so it is not an MLflow model directory; point --model "
        "at the folder that holds MLmodel."
    )
    assert not (tmp_path / "out").exists()


def test_script_that_kills_its_worker_every_time_fails_its_mini_batch_alone(spark, tmp_path):
    code = write_script(
        tmp_path / "code",
        "import os\n\n\ndef init():\n    pass\n\n\ndef run(mini_batch):\n"
        "    if any('poison' in p for p in mini_batch):\n        os._exit(3)\n"
        "    return [os.path.basename(p) for p in mini_batch]\n",
    )
    folder = visits(tmp_path / "in", ["a.csv", "poison.csv", "z.csv"])
    summary = sparkscore.score(
        spark,
        MODEL,
        folder,
        tmp_path / "out",
        scoring_script="batch_driver.py",
        code=str(code),
        mini_batch_size=1,
    )
    assert (summary["files_succeeded"], summary["files_failed"], summary["items_succeeded"]) == (
        2,
        1,
        2,
    )
    assert sorted(pq.read_table(tmp_path / "out" / "predictions")["prediction"].to_pylist()) == [
        "a.csv",
        "z.csv",
    ]
    assert pq.read_table(tmp_path / "out" / "errors").to_pylist() == [
        {
            "file_name": "poison.csv",
            "row": None,
            "stage": "run",
            "error_type": "ScriptWorkerDiedError",
            "message": "the Python worker running the scoring script on the mini-batch of "
            "poison.csv died (exit code 3) in every attempt and again in a last one, run alone; "
            "its files are left out and the other mini-batches were scored. Check init() and "
            "run() on these files (memory, native code).",
        }
    ]


# ---------------------------------------------------------------------------------------------
# The commands, as a user runs them


def test_script_run_killed_then_resumed_keeps_every_row_and_note_once(spark, tmp_path):
    code = write_script(tmp_path / "code", NOTES_SCRIPT)
    names = [f"f{i}.csv" for i in range(8)]
    folder = visits(tmp_path / "in", names)
    out = tmp_path / "out"
    args = ["--model", str(MODEL), "--input", str(folder), "--output", str(out)]
    sets = ["scoring_script=batch_driver.py", f"code={code}", "mini_batch_size=1"]
    job = subprocess.Popen(
        [str(BIN / "spark-submit"), "--master", "local[1]", str(REPO / "jobs" / "score.py")]
        + args
        + [item for s in sets for item in ("--set", s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env(), "PAUSE": "1"},
        start_new_session=True,
    )
    manifests = out / "_manifest"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(manifests.glob("batch-*.json"))) < 2:
        assert job.poll() is None, job.stdout.read() if job.stdout else ""
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(timeout=30)
    committed = len(list(manifests.glob("batch-*.json")))
    assert 2 <= committed < 8, "the kill came too late to test resume"
    assert not list(out.glob("*.txt")), "a note landed before its run ended"

    summary = sparkscore.score(
        spark,
        MODEL,
        folder,
        out,
        scoring_script="batch_driver.py",
        code=str(code),
        mini_batch_size=1,
        resume=True,
    )
    assert (summary["status"], summary["files_skipped"]) == ("succeeded", committed)
    assert summary["items_succeeded"] == 40
    rows = pq.read_table(out / "predictions").to_pandas()
    keys = list(zip(rows["file"], rows["patient_id"]))
    assert len(keys) == len(set(keys)) == 40, "a row was written twice"
    assert sorted(set(rows["file"])) == names
    notes = sorted(p.read_text() for p in out.glob("*.txt"))
    assert notes == names, "a note was lost or landed twice"
    assert not (out / "_script_output").exists()


@pytest.fixture(scope="module")
def commands(tmp_path_factory):
    """spark-submit with a script that raises on one file and kills its worker once on
    another; `sparkscore score` with the DataFrame script. Started together, then awaited."""
    root = tmp_path_factory.mktemp("script-commands")
    chaos = root / "chaos-deployment"
    write_script(chaos / "code", CHAOS_SCRIPT)
    (chaos / "deployment.yml").write_text(OLD_LAYOUT.format(calls=root / "calls.txt"))
    chaos_in = visits(root / "chaos-in", ["a.csv", "bad.csv", "c.csv", "kill.csv"])
    frame = root / "frame-deployment"
    write_script(frame / "code", DATAFRAME_SCRIPT)
    (frame / "deployment.yml").write_text(NEW_LAYOUT)
    runs = {
        "chaos": [
            str(BIN / "spark-submit"),
            "--master",
            "local[2]",
            str(REPO / "jobs" / "score.py"),
            "--model",
            str(MODEL),
            "--input",
            str(chaos_in),
            "--output",
            str(root / "chaos"),
            "--config",
            str(chaos / "deployment.yml"),
        ],
        "frame": [
            str(BIN / "sparkscore"),
            "score",
            "--model",
            str(MODEL),
            "--input",
            str(VISITS),
            "--output",
            str(root / "frame"),
            "--config",
            str(frame / "deployment.yml"),
        ],
    }
    procs = {
        name: subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env()
        )
        for name, args in runs.items()
    }
    done = {}
    for name, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        done[name] = (root / name, proc.returncode, stdout, stderr)
    return root, done


def test_spark_submit_script_retries_records_the_failure_and_lands_files_once(commands):
    root, done = commands
    out, code, stdout, stderr = done["chaos"]
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    assert last_line(stdout).startswith(
        "sparkscore: succeeded: 3 of 4 files scored, 15 items returned by run"
    )
    assert (
        f"{root}/chaos-deployment/deployment.yml: ignored resources.instance_count 1 x "
        "max_concurrency_per_instance 1: the master local[2] you chose decides the task slots"
    ) in stdout
    calls = (root / "calls.txt").read_text().splitlines()
    # max_retries=1: bad.csv is run twice, then recorded; kill.csv killed its worker once.
    assert sorted(calls) == ["a.csv", "bad.csv", "bad.csv", "c.csv", "kill.csv", "kill.csv"]
    assert pq.read_table(out / "errors").to_pylist() == [
        {
            "file_name": "bad.csv",
            "row": None,
            "stage": "run",
            "error_type": "ValueError",
            "message": "cannot score bad.csv",
        }
    ]
    rows = pd.read_csv(out / "scored.csv")
    keys = list(zip(rows["file"], rows["patient_id"]))
    assert len(keys) == len(set(keys)) == 15, "a row was written twice"
    assert sorted(set(rows["file"])) == ["a.csv", "c.csv", "kill.csv"]
    # One seen.txt per committed mini-batch lands; the last lands over the others, whole.
    assert (out / "seen.txt").read_text() in ("a.csv", "c.csv", "kill.csv")
    assert not (out / "_script_output").exists()
    killed = json.loads((out / "_manifest" / "batch-00003.json").read_text())
    assert killed["attempt"] == 1


def test_console_command_scores_with_a_script(commands):
    root, done = commands
    out, code, stdout, stderr = done["frame"]
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    assert last_line(stdout).startswith(
        "sparkscore: succeeded: 1 of 1 files scored, 75 items returned by run"
    )
    assert " items/s); summary in " in last_line(stdout)
    assert "ignored Azure's $schema, endpoint_name, name, description, type, model" in stdout
    # No --master: Azure's 2 instances x 2 mini-batches at once are 4 local task slots.
    assert (
        f"{root}/frame-deployment/deployment.yml: resources.instance_count 2 x "
        "max_concurrency_per_instance 2: local[4] (--master overrides it)"
    ) in stdout
    got = pd.read_csv(out / "predictions.csv")
    assert list(got.columns) == ["file", "patient_id", "prediction", "mini_batch"]
    assert got["prediction"].tolist() == pytest.approx(mlflow_predictions(VISITS), rel=1e-15)
