"""env_manager: the model scored with the packages it pins, built once, cached, kept apart.

The builds are real (uv or pip against the package index); the jobs are real spark-submit runs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from model_zoo import PINNED_SKLEARN, chaos_model, lr_frame, versioned_frame

import sparkscore
from sparkscore.envbuild import ensure_environment, packed
from sparkscore.environment import EnvironmentSpec, check_python, read_environment
from sparkscore.errors import (
    EnvironmentBuildError,
    ModelEnvironmentError,
    ModelFormatError,
    ModelLoadError,
    ModelProcessError,
    PredictError,
    PythonVersionError,
)
from sparkscore.model import read_spec
from sparkscore.modelprocess import ModelProcess, decode, encode
from sparkscore.preparation import prepare
from sparkscore.requirements import requirement_lines
from sparkscore.settings import Settings
from sparkscore.worker import WORKER

ROOT = Path(__file__).resolve().parents[1]
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"
JOB_SKLEARN = __import__("sklearn").__version__
JOB_PYTHON = ".".join(map(str, sys.version_info[:3]))
# The job's own packages, for tests of the process mechanics that need no build.
JOB_SITE = sysconfig.get_paths()["purelib"]


def write_model(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    (path / "MLmodel").write_text(
        textwrap.dedent("""
        flavors:
          python_function:
            loader_module: my_flavor
    """)
    )
    for name, text in files.items():
        (path / name).write_text(textwrap.dedent(text))
    return path


# ---------------------------------------------------------------------------------------------
# Reading what the model pins


def test_read_environment_follows_python_env_yaml_into_requirements_and_constraints(tmp_path):
    model = write_model(
        tmp_path / "m",
        {
            "python_env.yaml": """
            python: 3.11.4
            build_dependencies: [pip==24.0]
            dependencies:
              - -r requirements.txt
              - -c constraints.txt
        """,
            "requirements.txt": "# pins\nscikit-learn==1.5.2\npandas>=2  # any recent\n\n",
            "constraints.txt": "numpy<2.5\n",
        },
    )

    env = read_environment(read_spec(model))

    assert env.python == "3.11.4"
    assert env.source == "python_env.yaml"
    assert env.requirements == ("scikit-learn==1.5.2", "pandas>=2")
    assert env.constraints == ("numpy<2.5",)
    # pandas is pinned by the model, so only what it does not name is added
    assert env.runtime == ("pyarrow", "pyyaml")


def test_read_environment_from_conda_yaml_takes_python_and_the_pip_section(tmp_path):
    model = write_model(
        tmp_path / "m",
        {
            "conda.yaml": """
        dependencies:
          - python=3.11.9
          - pip<=24
          - pip:
            - mlflow==3.17.2
            - scikit-learn==1.5.2
    """
        },
    )

    env = read_environment(read_spec(model))

    assert (env.python, env.source) == ("3.11.9", "conda.yaml")
    assert env.requirements == ("mlflow==3.17.2", "scikit-learn==1.5.2")
    assert env.runtime == ("pandas", "pyarrow", "pyyaml")


def test_read_environment_refuses_a_model_without_dependency_files(tmp_path):
    model = write_model(tmp_path / "m", {})

    with pytest.raises(ModelEnvironmentError) as e:
        read_environment(read_spec(model))

    assert str(e.value) == (
        f"Cannot build the environment of the model at {model}: the model directory has no "
        "python_env.yaml, requirements.txt or conda.yaml to build its environment from; score "
        "it with env_manager: local."
    )


def test_read_environment_refuses_pip_options_it_would_have_to_obey(tmp_path):
    model = write_model(
        tmp_path / "m",
        {"requirements.txt": "--extra-index-url https://example.invalid/simple\nnumpy\n"},
    )

    with pytest.raises(ModelEnvironmentError, match="holds the pip option '--extra-index-url"):
        read_environment(read_spec(model))


@pytest.mark.parametrize(
    ("line", "flag", "ref"),
    [
        ("-r ../outside.txt", "-r", "../outside.txt"),
        ("-r../outside.txt", "-r", "../outside.txt"),
        ("--requirement=../outside.txt", "--requirement", "../outside.txt"),
        ("--requirement ../outside.txt", "--requirement", "../outside.txt"),
        ("--constraint=../outside.txt", "--constraint", "../outside.txt"),
        ("-c {tmp}/outside.txt", "-c", "{tmp}/outside.txt"),
        (
            "-r ../../../../../../../..{tmp}/outside.txt",
            "-r",
            "../../../../../../../..{tmp}/outside.txt",
        ),
    ],
)
def test_an_include_outside_the_model_directory_is_refused_naming_it(tmp_path, line, flag, ref):
    (tmp_path / "outside.txt").write_text("not-a-package-but-a-secret\n")
    line, ref = line.format(tmp=tmp_path), ref.format(tmp=tmp_path)
    model = write_model(
        tmp_path / "m", {"python_env.yaml": f"python: {JOB_PYTHON}\ndependencies: [{line}]\n"}
    )

    with pytest.raises(ModelFormatError) as e:
        read_environment(read_spec(model))

    assert str(e.value) == (
        f"{model / 'python_env.yaml'}: refers to {ref!r} ({flag}), which is outside the model "
        f"directory ({tmp_path / 'outside.txt'}); every file a model's environment files refer "
        "to must be inside the model directory."
    )
    assert e.value.path == str(model / "python_env.yaml")


def test_an_include_from_conda_yamls_pip_section_or_a_nested_file_stays_inside(tmp_path):
    (tmp_path / "outside.txt").write_text("secret\n")
    model = write_model(
        tmp_path / "m",
        {
            "conda.yaml": "dependencies:\n  - python=3.11\n  - pip:\n    - -r reqs/base.txt\n",
        },
    )
    (model / "reqs").mkdir()
    (model / "reqs" / "base.txt").write_text("numpy\n-r ../../outside.txt\n")

    with pytest.raises(ModelFormatError) as e:
        read_environment(read_spec(model))

    assert e.value.path == str(model / "reqs" / "base.txt")
    assert e.value.reason.startswith("refers to '../../outside.txt' (-r), which is outside")


def test_includes_are_relative_to_the_file_that_names_them(tmp_path):
    model = write_model(tmp_path / "m", {"requirements.txt": "-r reqs/base.txt\npandas\n"})
    (model / "reqs").mkdir()
    (model / "reqs" / "base.txt").write_text("numpy==2.0\n-c pins.txt\n")
    (model / "reqs" / "pins.txt").write_text("scipy<2\n")

    env = read_environment(read_spec(model))

    assert (env.requirements, env.constraints) == (("numpy==2.0", "pandas"), ("scipy<2",))


def test_a_requirements_file_that_includes_itself_is_refused_naming_the_loop(tmp_path):
    model = write_model(tmp_path / "m", {"requirements.txt": "numpy\n-r requirements.txt\n"})

    with pytest.raises(ModelFormatError) as e:
        read_environment(read_spec(model))

    assert str(e.value) == (
        f"{model / 'requirements.txt'}: includes itself (requirements.txt -> requirements.txt); "
        "remove the -r or -c line that closes the loop."
    )
    (model / "requirements.txt").write_text("-r a.txt\n-r b.txt\n")
    (model / "a.txt").write_text("-r c.txt\n")
    (model / "b.txt").write_text("-r c.txt\n")  # included twice, but no loop
    (model / "c.txt").write_text("numpy\n")
    assert read_environment(read_spec(model)).requirements == ("numpy",)
    (model / "c.txt").write_text("-c a.txt\n")
    with pytest.raises(
        ModelFormatError,
        match=r"includes itself \(requirements.txt -> a.txt -> "
        r"c.txt -> a.txt\)",
    ):
        read_environment(read_spec(model))


def test_an_environment_file_that_links_out_is_refused_before_it_is_read(tmp_path):
    (tmp_path / "outside.txt").write_text("secret\n")
    model = write_model(tmp_path / "m", {"python_env.yaml": "dependencies: [-r linked.txt]\n"})
    os.symlink(tmp_path / "outside.txt", model / "linked.txt")

    with pytest.raises(ModelFormatError) as e:
        read_environment(read_spec(model))
    assert e.value.path == str(model / "linked.txt")
    # What read_spec refuses, the include reader refuses on its own too.
    with pytest.raises(ModelFormatError) as e:
        requirement_lines(str(model), str(model / "python_env.yaml"), ["-r linked.txt"])
    assert e.value.reason.startswith(
        "refers to 'linked.txt' (-r), which is outside the model "
        f"directory ({tmp_path / 'outside.txt'})"
    )
    with pytest.raises(ModelFormatError) as e:
        requirement_lines(str(model), str(model / "linked.txt"))
    assert e.value.reason.startswith(
        f"is a symbolic link to {tmp_path / 'outside.txt'}, outside the model directory"
    )


@pytest.mark.parametrize(
    "requirement",
    [
        "/etc/hostname",
        "../../x.whl",
        "./local_pkg",
        "wheels/x-1.0-py3-none-any.whl",
        "x @ file:///etc/passwd",
        "x@https://example.invalid/x.whl",
        "file:x.whl",
        ".",
    ],
)
def test_a_requirement_that_is_a_path_or_url_is_refused(tmp_path, requirement):
    model = write_model(tmp_path / "m", {"requirements.txt": f"numpy\n{requirement}\n"})

    with pytest.raises(ModelEnvironmentError) as e:
        read_environment(read_spec(model))

    assert e.value.reason == (
        f"requirements.txt holds {requirement!r}, a path or URL rather than a package name; "
        "sparkscore installs plain requirements (name and version) from the default package "
        "index only."
    )


def test_the_local_environment_reads_pins_only_inside_the_model(zoo, tmp_path):
    """env_manager: local compares pins with what is installed: it follows -r, inside only."""
    model = tmp_path / "m"
    shutil.copytree(zoo.lr_skops, model)
    (tmp_path / "outside.txt").write_text("numpy==0.0.1\n")
    (model / "requirements.txt").write_text("-r extra.txt\n")
    (model / "extra.txt").write_text("numpy==0.0.2\n")
    (tmp_path / "in").mkdir()
    lr_frame(3).to_csv(tmp_path / "in" / "x.csv", index=False)

    job = prepare(
        str(model), str(tmp_path / "in"), str(tmp_path / "out"), Settings(), parallelism=1
    )
    assert [m.to_dict() for m in job.mismatched if m.package == "numpy"] == [
        {"package": "numpy", "pinned": "0.0.2", "installed": np.__version__}
    ]

    (model / "extra.txt").write_text("-r ../outside.txt\n")
    with pytest.raises(ModelFormatError) as e:
        prepare(str(model), str(tmp_path / "in"), str(tmp_path / "out2"), Settings(), parallelism=1)
    assert e.value.path == str(model / "extra.txt")
    assert not (tmp_path / "out2").exists()


def test_the_cache_key_changes_with_a_pin_and_only_with_what_is_installed():
    a = EnvironmentSpec("m1", "3.11.7", "requirements.txt", ("scikit-learn==1.5.2",))
    same = EnvironmentSpec("elsewhere", "3.11.2", "python_env.yaml", ("scikit-learn==1.5.2",))
    other = EnvironmentSpec("m1", "3.11.7", "requirements.txt", ("scikit-learn==1.5.1",))

    assert a.key == same.key  # another path or patch release installs the same wheels
    assert a.key != other.key


def test_a_model_saved_with_another_python_is_refused_naming_both_versions(tmp_path):
    model = write_model(
        tmp_path / "m",
        {
            "python_env.yaml": "python: 3.8.5\ndependencies: [-r requirements.txt]\n",
            "requirements.txt": "xgboost==1.4.2\n",
        },
    )
    env = read_environment(read_spec(model))

    with pytest.raises(PythonVersionError) as e:
        check_python(env)

    minor = ".".join(JOB_PYTHON.split(".")[:2])
    assert str(e.value) == (
        f"Cannot build the environment of the model at {model}: the model was saved with Python "
        f"3.8.5 (python_env.yaml) but the job runs Python {JOB_PYTHON}; packages built for one "
        "do not load in the other. Run the job with Python 3.8, or save the model again with "
        f"Python {JOB_PYTHON}."
    )
    assert (e.value.model_python, e.value.job_python) == ("3.8.5", JOB_PYTHON)
    assert minor != "3.8"


def test_the_azure_sample_model_is_refused_before_spark_starts(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("age\n1\n")

    done = submit(
        "--model",
        str(ROOT / "tests" / "data" / "azure-heart-model"),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(out),
        "--set",
        "env_manager=virtualenv",
        "--set",
        f"env_cache={tmp_path / 'c'}",
    )

    assert done.returncode == 2, done.stdout[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("error: Cannot build the environment of the model at ")
    assert "the model was saved with Python 3.8.5" in last
    assert f"the job runs Python {JOB_PYTHON}" in last
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# Values across the pipe


@pytest.mark.parametrize(
    "value",
    [
        pd.DataFrame(
            {
                "x": [1.5, np.nan],
                "n": np.array([1, 2], dtype="int32"),
                "s": ["a", None],
                "t": pd.to_datetime(["2024-01-01", "2024-06-30"]),
                7: [True, False],
            }
        ),
        pd.Series(["yes", "no", "yes"], name="label"),
        np.arange(12, dtype="float32").reshape(3, 2, 2),
        np.array(["a", "bb"], dtype=object),
        np.array(["a", "bb"]),
        [0.25, 0.5],
        {"scores": np.ones((2, 3)), "labels": np.array([1, 0])},
    ],
    ids=["frame", "series", "tensor", "object", "unicode", "list", "dict"],
)
def test_values_cross_the_pipe_unchanged(value):
    header, tables = encode(value)
    back = decode(json.loads(json.dumps(header)), tables)

    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(back, value, check_dtype=False)
        assert [str(t) for t in back.dtypes[["x", "n"]]] == ["float64", "int32"]
    elif isinstance(value, pd.Series):
        pd.testing.assert_series_equal(back, value, check_dtype=False)
    elif isinstance(value, dict):
        assert list(back) == ["scores", "labels"]
        for key in value:
            np.testing.assert_array_equal(back[key], value[key])
    elif isinstance(value, np.ndarray):
        np.testing.assert_array_equal(back, value)
        assert (back.dtype, back.shape) == (value.dtype, value.shape)
    else:
        assert back == value


def test_a_value_that_cannot_cross_is_refused_by_type():
    with pytest.raises(TypeError, match="a set cannot be passed between the job and the model's"):
        encode({1, 2})


# ---------------------------------------------------------------------------------------------
# The model process (run here on the job's own packages: the mechanics need no build)


@pytest.fixture
def loud_model(tmp_path: Path) -> Path:
    """A flavor that prints to stdout on load and predict (the pipe must survive it)."""
    model = tmp_path / "loud"
    (model / "code").mkdir(parents=True)
    (model / "code" / "loud_flavor.py").write_text(
        textwrap.dedent("""
        import datetime
        print("loading, noisily")


        class Loud:
            def predict(self, data, params=None):
                print("predicting", len(data))
                if (data["a"] < 0).any():
                    raise ValueError("negative a")
                scale = (params or {}).get("scale", 1.0)
                if isinstance((params or {}).get("when"), datetime.date):
                    scale *= 10
                return data["a"].to_numpy() * scale


        def _load_pyfunc(path):
            return Loud()
    """)
    )
    (model / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: loud_flavor\n    code: code\n"
    )
    return model


def test_the_process_predicts_what_the_model_returns_despite_its_prints(loud_model):
    process = ModelProcess(str(loud_model), JOB_SITE)
    try:
        got = process.predict(pd.DataFrame({"a": [1.0, 2.5]}), {"scale": np.float64(2.0)})
        dated = process.predict(
            pd.DataFrame({"a": [1.0]}), {"scale": 1.0, "when": dt.date(2024, 1, 1)}
        )
    finally:
        process.close()

    np.testing.assert_array_equal(got, [2.0, 5.0])
    np.testing.assert_array_equal(dated, [10.0])
    assert process.info["python"] == JOB_PYTHON
    assert "loading, noisily" in Path(process.log_path).read_text()


def test_a_predict_failure_in_the_process_is_the_models_error_and_the_process_lives_on(loud_model):
    process = ModelProcess(str(loud_model), JOB_SITE)
    try:
        with pytest.raises(PredictError) as e:
            process.predict(pd.DataFrame({"a": [-1.0]}), None)
        assert e.value.cause == "ValueError: negative a"
        np.testing.assert_array_equal(process.predict(pd.DataFrame({"a": [3.0]}), None), [3.0])
    finally:
        process.close()


def test_a_model_that_cannot_load_in_its_environment_is_a_load_error(tmp_path):
    model = write_model(tmp_path / "m", {})

    with pytest.raises(ModelLoadError) as e:
        ModelProcess(str(model), JOB_SITE)

    assert str(e.value) == (
        f"Cannot load the model at {model}: in the model's environment ({JOB_SITE}) it needs the "
        "package 'my_flavor' but has nothing; the model does not pin it (No module named "
        "'my_flavor'). Add it to the model's requirements (pip_requirements when saving it with "
        "mlflow)."
    )


def test_a_dead_process_is_reported_then_replaced_on_the_next_load(tmp_path):
    model = chaos_model(tmp_path, die_on=13.0, marker=str(tmp_path / "died"))
    first = WORKER.load_isolated(str(model), JOB_SITE, key="dead-process-test")

    with pytest.raises(ModelProcessError) as e:
        first.predict_conformed(pd.DataFrame({"a": [13.0], "b": [1]}), None)

    assert e.value.returncode == 1
    assert str(e.value).startswith(
        f"The process scoring the model at {model} in its own environment exited with status 1"
    )
    again = WORKER.load_isolated(str(model), JOB_SITE, key="dead-process-test")
    assert again is not first
    np.testing.assert_array_equal(
        again.predict_conformed(pd.DataFrame({"a": [13.0], "b": [1]}), None), [27.0]
    )
    assert WORKER.loads["dead-process-test"] == 2


# ---------------------------------------------------------------------------------------------
# Real builds, real jobs


def submit(*args: str, master: str = "local[2]") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    return subprocess.run(
        [str(SPARK_SUBMIT), "--master", master, str(ROOT / "jobs" / "score.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_pin_without_a_wheel_fails_the_build_naming_it_before_any_task(tmp_path):
    model = write_model(tmp_path / "m", {"requirements.txt": "numpy\nscikit-learn==0.20.0\n"})
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("a\n1\n")

    done = submit(
        "--model",
        str(model),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
        "--set",
        "env_manager=virtualenv",
        "--set",
        f"env_cache={tmp_path / 'cache'}",
    )

    assert done.returncode == 2, done.stdout[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith(
        f"error: Cannot build the environment of the model at {model}: the "
        f"requirement 'scikit-learn==0.20.0' cannot be installed for Python "
        f"{JOB_PYTHON} on this platform ("
    )
    assert last.endswith(
        "Pin a version that publishes a wheel for this platform, or score with "
        "env_manager: local in an environment you prepared."
    )
    assert not (tmp_path / "out").exists()
    assert "Stage 0" not in done.stderr
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")] == []


def run_versioned(model: Path, tmp_path: Path, name: str, *settings: str):
    inputs = tmp_path / "in"
    if not inputs.exists():
        inputs.mkdir()
        versioned_frame().to_csv(inputs / "frame.csv", index=False)
    out = tmp_path / name
    done = submit(
        "--model",
        str(model),
        "--input",
        str(inputs),
        "--output",
        str(out),
        *[arg for s in settings for arg in ("--set", s)],
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = pq.read_table(out / "predictions").to_pylist()
    summary = json.loads((out / "_summary.json").read_text())
    return done.stdout, rows, summary


def expected_labels() -> list[int]:
    return [int(a > 0) for a in versioned_frame().a]


def test_local_scores_in_the_jobs_environment_and_warns_of_each_mismatch(
    spark, versioned, tmp_path, caplog
):
    versioned_frame().to_csv(tmp_path / "frame.csv", index=False)

    with caplog.at_level("WARNING", logger="sparkscore"):
        summary = sparkscore.score(spark, versioned, tmp_path / "frame.csv", tmp_path / "out")

    assert (
        f"the model pins scikit-learn=={PINNED_SKLEARN} but {JOB_SKLEARN} is installed"
        in caplog.messages
    )
    assert {
        "package": "scikit-learn",
        "pinned": PINNED_SKLEARN,
        "installed": JOB_SKLEARN,
    } in summary["environment"]["mismatches"]
    rows = pq.read_table(tmp_path / "out" / "predictions").to_pylist()
    assert [r["prediction"]["sklearn"] for r in rows] == [JOB_SKLEARN] * 20


def test_virtualenv_scores_with_the_pinned_packages_and_reuses_the_cached_environment(
    versioned, env_cache, tmp_path
):
    settings = ("env_manager=virtualenv", f"env_cache={env_cache}")

    first_out, first, built = run_versioned(versioned, tmp_path, "first", *settings)
    second_out, second, reused = run_versioned(versioned, tmp_path, "second", *settings)

    for rows in (first, second):
        assert [(r["file_name"], r["row"]) for r in rows] == [("frame.csv", i) for i in range(20)]
        assert [r["prediction"] for r in rows] == [
            {"label": label, "sklearn": PINNED_SKLEARN} for label in expected_labels()
        ]
    env_first, env_second = built["environment"], reused["environment"]
    assert (env_first["reused"], env_second["reused"]) == (False, True)
    assert env_first["key"] == env_second["key"]
    assert env_first["packages"]["scikit-learn"] == PINNED_SKLEARN
    assert env_second["loaded_with"]["scikit-learn"] == PINNED_SKLEARN
    assert env_first["mismatches"] == []
    assert "WARNING the model pins" not in first_out + second_out
    assert "reused from the cache" in second_out
    # Build and reuse times, for the record (not asserted: timing belongs in bench/)
    assert (env_first["shipped"], env_second["shipped"]) == ("in place", "in place")
    print(
        f"\nenvironment: built in {env_first['seconds']}s, reused in {env_second['seconds']}s; "
        f"job {built['duration_s']}s then {reused['duration_s']}s"
    )


def test_spark_udf_scores_in_the_models_environment(spark, versioned, env_cache):
    predict = sparkscore.spark_udf(
        spark, versioned, env_manager="virtualenv", env_cache=str(env_cache)
    )
    local = sparkscore.spark_udf(spark, versioned)
    df = spark.createDataFrame(versioned_frame())

    rows = df.select(predict("a", "b").alias("p"), local("a", "b").alias("q")).collect()

    assert [r.p.asDict() for r in rows] == [
        {"label": label, "sklearn": PINNED_SKLEARN} for label in expected_labels()
    ]
    assert {r.q.sklearn for r in rows} == {JOB_SKLEARN}


def test_spark_udf_refuses_an_unknown_env_manager(spark, versioned):
    with pytest.raises(
        sparkscore.SettingsError,
        match="env_manager must be one of local, virtualenv, uv, got 'conda'",
    ):
        sparkscore.spark_udf(spark, versioned, env_manager="conda")


def test_a_dead_model_process_fails_its_task_which_spark_retries_exactly_once(
    light_chaos, env_cache, tmp_path
):
    model = light_chaos(die_on=203.0, marker=str(tmp_path / "died-once"))
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(4):
        pd.DataFrame({"a": [float(i * 100 + r) for r in range(5)], "b": range(5)}).to_csv(
            inputs / f"part-{i}.csv", index=False
        )

    done = submit(
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
        "--set",
        "mini_batch_size=1",
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "died-once").exists()
    rows = pq.read_table(tmp_path / "out" / "predictions").to_pylist()
    got = sorted((r["file_name"], r["row"], r["prediction"]) for r in rows)
    assert got == sorted(
        (f"part-{i}.csv", r, (i * 100 + r) * 2.0 + r) for i in range(4) for r in range(5)
    )
    summary = json.loads((tmp_path / "out" / "_summary.json").read_text())
    assert summary["rows_failed"] == 0
    assert summary["environment"]["packages"]["numpy"]


def test_a_timeout_stops_the_model_process_and_records_the_rows(
    spark, light_chaos, env_cache, tmp_path
):
    model = light_chaos(hang_on=1.0)
    inputs = tmp_path / "in"
    inputs.mkdir()
    pd.DataFrame({"a": [0.0, 1.0], "b": [0, 1]}).to_csv(inputs / "hangs.csv", index=False)
    pd.DataFrame({"a": [5.0], "b": [1]}).to_csv(inputs / "fine.csv", index=False)

    summary = sparkscore.score(
        spark,
        model,
        inputs,
        tmp_path / "out",
        env_manager="virtualenv",
        env_cache=str(env_cache),
        mini_batch_size=1,
        timeout=5,
    )

    rows = pq.read_table(tmp_path / "out" / "predictions").to_pylist()
    assert [(r["file_name"], r["prediction"]) for r in rows] == [("fine.csv", 11.0)]
    errors = pq.read_table(tmp_path / "out" / "errors").to_pylist()
    assert {(e["file_name"], e["stage"]) for e in errors} == {("hangs.csv", "timeout")}
    assert (summary["rows_scored"], summary["rows_failed"]) == (1, 2)


def test_ensure_environment_reuses_what_an_earlier_build_left(light_chaos, env_cache):
    env = read_environment(read_spec(light_chaos()))

    first = ensure_environment(env, "virtualenv", str(env_cache))
    second = ensure_environment(env, "virtualenv", str(env_cache))

    assert second.reused and second.root == first.root
    assert second.build_seconds == first.build_seconds
    assert {"numpy", "pandas", "pyarrow", "PyYAML"} <= set(second.packages)
    archive = packed(second)
    assert packed(first) == archive and archive.endswith(f"{first.key[:20]}.tar.gz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "numpy" in names and "pyarrow" in names  # site-packages at the archive's root


def test_env_manager_uv_without_uv_says_how_to_get_it(tmp_path, monkeypatch):
    from sparkscore import envbuild

    monkeypatch.setattr(envbuild, "_find_uv", lambda: None)
    env = EnvironmentSpec(str(tmp_path), None, "requirements.txt", ("numpy",))

    with pytest.raises(
        ModelEnvironmentError,
        match="env_manager is uv but the uv command is not "
        r"installed; install it \(pip install uv\)",
    ):
        ensure_environment(env, "uv", str(tmp_path / "cache"))


@pytest.mark.parametrize("tool", ["uv", "pip"])
def test_a_build_failure_names_the_pin_and_leaves_nothing_in_the_cache(tmp_path, tool):
    from sparkscore import envbuild

    env = EnvironmentSpec(
        str(tmp_path), None, "requirements.txt", ("numpy", "scikit-learn==0.20.0")
    )
    builder = (
        envbuild._Tool("uv", (envbuild._find_uv(),))
        if tool == "uv"
        else envbuild._Tool("pip", (sys.executable,))
    )
    cache = tmp_path / "cache"
    cache.mkdir()

    with pytest.raises(EnvironmentBuildError) as e:
        envbuild._build(env, builder, str(cache), str(cache / env.key))

    assert (e.value.requirement, e.value.tool) == ("scikit-learn==0.20.0", tool)
    assert "scikit-learn==0.20.0" in e.value.detail
    assert list(cache.iterdir()) == []


def test_an_executor_with_another_python_refuses_the_environment_by_version():
    from sparkscore.shipping import ShippedEnvironment

    shipped = ShippedEnvironment(key="k", path=JOB_SITE, python="3.10.4")

    with pytest.raises(ModelEnvironmentError) as e:
        shipped.site_packages()

    assert e.value.reason == (
        f"it was built on the driver for Python 3.10.4 but this executor runs Python "
        f"{JOB_PYTHON}; give the executors the driver's Python version (PYSPARK_PYTHON)."
    )
    assert ShippedEnvironment(key="k", path=JOB_SITE, python=JOB_PYTHON).site_packages() == JOB_SITE
