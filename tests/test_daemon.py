"""The worker daemon: which modules a job preloads, and that workers forked from it have them;
and that a worker's long-lived objects stay out of the garbage collection PySpark runs after
every task.

The spark-submit run is real: a job script starts its context through `sparkscore.session.session`,
and a task reports what its worker had imported before the task ran.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from pyspark import SparkConf

from sparkscore import daemon
from sparkscore.shipping import ship_model

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_a_skops_model_preloads_sklearn_and_skops(zoo):
    assert daemon.preload_modules(str(zoo.lr_skops), "local") == (
        "sparkscore.tasks",
        "sklearn",
        "skops.io",
    )


def test_a_pickled_model_preloads_sklearn_only(zoo):
    assert daemon.preload_modules(str(zoo.lr_pickle), "local") == ("sparkscore.tasks", "sklearn")


def test_an_mlflow_pyfunc_model_preloads_its_loader_module(zoo):
    assert daemon.preload_modules(str(zoo.python_model), "local") == (
        "sparkscore.tasks",
        "mlflow.pyfunc.model",
    )


def test_a_loader_from_the_models_own_code_is_not_preloaded(zoo):
    # Its module is importable only once the model's code directory is on the path.
    assert daemon.preload_modules(str(zoo.custom_flavor), "local") == ("sparkscore.tasks",)


@pytest.mark.parametrize("package", ["mlflow", "sklearn"])
def test_a_library_the_models_code_folder_shadows_is_not_preloaded(tmp_path, zoo, package):
    # Its code folder goes first on sys.path when the model loads: importing that name in the
    # daemon could only mean the model's code, or a library the model means to replace.
    marker = tmp_path / "marker"
    model = tmp_path / "m"
    if package == "mlflow":
        (model / "code" / "mlflow").mkdir(parents=True)
        (model / "MLmodel").write_text(
            "flavors:\n  python_function:\n    loader_module: mlflow.marker_flavor\n"
            "    code: code\n"
        )
    else:
        shutil.copytree(zoo.lr_skops, model)
        (model / "code" / "sklearn").mkdir(parents=True)
        doc = yaml.safe_load((model / "MLmodel").read_text())
        doc["flavors"]["sklearn"]["code"] = "code"
        (model / "MLmodel").write_text(yaml.safe_dump(doc))
    (model / "code" / package / "__init__.py").write_text(f"import os\nos.mkdir({str(marker)!r})\n")

    modules = daemon.preload_modules(str(model), "local")
    daemon.preload(modules)

    assert modules == ("sparkscore.tasks",)
    assert not marker.exists()


@pytest.mark.parametrize("env_manager", ["virtualenv", "uv"])
def test_a_model_in_its_own_environment_preloads_nothing_of_it(zoo, env_manager):
    # The model loads in a child process with its own packages, not in the worker.
    assert daemon.preload_modules(str(zoo.lr_skops), env_manager) == ("sparkscore.tasks",)


def test_a_registry_uri_or_a_broken_model_preloads_sparkscore_only(tmp_path):
    assert daemon.preload_modules("models:/churn/3", "local") == ("sparkscore.tasks",)
    (tmp_path / "MLmodel").write_text("flavors: [\n")
    assert daemon.preload_modules(str(tmp_path), "local") == ("sparkscore.tasks",)


def test_configure_names_the_daemon_and_its_modules():
    conf = daemon.configure(SparkConf(loadDefaults=False), ("sparkscore.tasks", "sklearn"))
    assert conf.get("spark.python.daemon.module") == "sparkscore.daemon"
    assert conf.get("spark.executorEnv.SPARKSCORE_PRELOAD") == "sparkscore.tasks,sklearn"


def test_configure_keeps_a_daemon_the_user_chose():
    conf = SparkConf(loadDefaults=False).set("spark.python.daemon.module", "site.daemon")
    daemon.configure(conf, ("sparkscore.tasks",))
    assert conf.get("spark.python.daemon.module") == "site.daemon"
    assert conf.get("spark.executorEnv.SPARKSCORE_PRELOAD", None) is None


def test_preload_imports_what_it_can_and_names_what_it_cannot():
    # The daemon's stdout carries its port to the JVM: a failed import is reported on stderr.
    code = (
        "from sparkscore.daemon import preload; import sys; "
        "preload(['colorsys', 'no_such_module_xyz']); "
        "print('colorsys' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "True\n"
    assert (
        "sparkscore: could not preload no_such_module_xyz: No module named "
        "'no_such_module_xyz'" in done.stderr
    )


JOB = textwrap.dedent("""
    import gc, json, os, sys
    from sparkscore.session import session
    from sparkscore.settings import Settings

    def report(_rows):
        # What this worker had imported before its task: only the daemon could have.
        yield json.dumps({"skops": "skops.io" in sys.modules, "pid": os.getpid(),
                          "daemon": os.getppid(), "frozen": gc.get_freeze_count()})

    sc = session(None, Settings(), preload=("sparkscore.tasks", "skops.io"))
    print("RESULT", json.dumps({
        "daemon_module": sc.getConf().get("spark.python.daemon.module"),
        "tasks": [json.loads(r) for r in
                  sc.parallelize(range(2), 2).mapPartitions(report).collect()],
    }))
""")


def test_workers_forked_by_the_daemon_start_with_the_models_libraries(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    done = subprocess.run(
        [str(BIN / "spark-submit"), "--master", "local[2]", str(script)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["daemon_module"] == "sparkscore.daemon"
    assert [t["skops"] for t in result["tasks"]] == [True, True]
    # The preloaded modules' objects were frozen before the fork: tens of thousands of them.
    assert all(t["frozen"] > 10_000 for t in result["tasks"]), result["tasks"]
    assert len({t["daemon"] for t in result["tasks"]}) == 1  # one daemon, warmed up once


def test_a_worker_keeps_its_loaded_model_out_of_garbage_collection(spark, zoo):
    shipped = ship_model(spark, str(zoo.lr_skops))

    def collectable(_rows):
        model = shipped.load()
        yield any(o is model for o in gc.get_objects())

    assert spark.sparkContext.parallelize(range(2), 2).mapPartitions(collectable).collect() == [
        False,
        False,
    ]
