"""The popular flavors, saved by mlflow through their own flavor, scored by the batch job and by
`spark_udf`: every prediction equals `mlflow.pyfunc.load_model(path).predict` on the same rows.

The models are tree ensembles, a logistic regression run by onnxruntime and a weighted sum:
each row's prediction is computed from that row alone, with no reduction across rows, so the
values are equal to the last bit whatever the batch (the comparisons are exact).
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from flavor_zoo import FlavorZoo, features
from hiding import load_error_without

import sparkscore

for package in ("mlflow", "xgboost", "lightgbm", "onnxruntime", "skl2onnx"):
    pytest.importorskip(package, reason="the flavors extra: pip install 'sparkscore[flavors]'")

FLAVORS = [
    "xgb_booster",
    "xgb_classifier",
    "xgb_regressor",
    "lgbm_classifier",
    "lgbm_booster",
    "onnx_classifier",
    "python_model",
]

# file name -> rows; one CSV among Parquet files, each read back by pandas as mlflow is given it.
INPUTS = {
    "one.parquet": features(7, seed=1),
    "two.csv": features(5, seed=2),
    "three.parquet": features(6, seed=3),
}


@pytest.fixture(scope="session")
def flavors(tmp_path_factory: pytest.TempPathFactory) -> FlavorZoo:
    return FlavorZoo(tmp_path_factory.mktemp("flavors"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("flavor_inputs")
    for name, df in INPUTS.items():
        if name.endswith(".csv"):
            df.to_csv(folder / name, index=False)
        else:
            pq.write_table(pa.Table.from_pandas(df, preserve_index=False), folder / name)
    return folder


def plain(prediction: Any) -> list[Any]:
    """mlflow's prediction as one Python value per row: a scalar, or a dict for a frame."""
    if isinstance(prediction, pd.DataFrame):
        return [
            {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}
            for row in prediction.to_dict("records")
        ]
    return np.asarray(prediction).tolist()


def mlflow_predict(path: Path, data: pd.DataFrame) -> list[Any]:
    import mlflow.pyfunc

    return plain(mlflow.pyfunc.load_model(str(path)).predict(data))


def read_back(folder: Path, name: str) -> pd.DataFrame:
    path = folder / name
    return pd.read_csv(path) if name.endswith(".csv") else pd.read_parquet(path)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_job_scores_each_flavor_as_mlflow_predicts(
    spark: Any, flavors: FlavorZoo, inputs: Path, tmp_path: Path, flavor: str
) -> None:
    model = getattr(flavors, flavor)
    summary = sparkscore.score(spark, model, inputs, tmp_path / "out", mini_batch_size=2)
    got = pq.read_table(tmp_path / "out" / "predictions").to_pylist()
    got.sort(key=lambda r: (r["file_name"], r["row"]))
    expected = [
        {"file_name": name, "row": i, "prediction": p}
        for name in sorted(INPUTS)
        for i, p in enumerate(mlflow_predict(model, read_back(inputs, name)))
    ]
    assert (summary["status"], summary["rows_scored"], summary["rows_failed"]) == (
        "succeeded",
        18,
        0,
    )
    assert got == expected


@pytest.mark.parametrize("flavor", FLAVORS)
def test_spark_udf_scores_each_flavor_as_mlflow_predicts(
    spark: Any, flavors: FlavorZoo, flavor: str
) -> None:
    model = getattr(flavors, flavor)
    X = features(12, seed=4)
    df = spark.createDataFrame(X.assign(id=range(len(X))))
    rows = df.withColumn("p", sparkscore.spark_udf(spark, model)()).orderBy("id").collect()
    got = [r.p.asDict() if hasattr(r.p, "asDict") else r.p for r in rows]
    assert got == mlflow_predict(model, X)


def test_a_missing_flavor_package_is_named_with_the_version_the_model_pins(
    flavors: FlavorZoo, tmp_path: Path
) -> None:
    import lightgbm
    import onnxruntime
    import xgboost

    models = {
        flavors.xgb_booster: ("xgboost", xgboost.__version__),
        flavors.xgb_classifier: ("xgboost", xgboost.__version__),
        flavors.lgbm_classifier: ("lightgbm", lightgbm.__version__),
        flavors.lgbm_booster: ("lightgbm", lightgbm.__version__),
        flavors.onnx_classifier: ("onnxruntime", onnxruntime.__version__),
    }
    python = platform.python_version()
    found = load_error_without(("xgboost", "lightgbm", "onnxruntime"), list(models), tmp_path)
    for (model, (package, pinned)), error in zip(models.items(), found):
        pins = f"{package}=={pinned} (requirements.txt), {package}=={pinned} (conda.yaml)"
        assert error == {
            "package": package,
            "pinned": pins,
            "installed": None,
            "python": python,
            "message": f"Cannot load the model at {model}: it needs the package '{package}'; "
            f"the model pins {pins}; not installed here; the model was saved with Python "
            f"{python} (No module named '{package}'). Install the version the model pins, or "
            "score it with env_manager: virtualenv so that sparkscore builds the model's own "
            "environment.",
        }


def test_xgboost_and_lightgbm_models_load_in_a_python_without_mlflow(
    flavors: FlavorZoo, tmp_path: Path
) -> None:
    boosters = ["xgb_booster", "xgb_classifier", "xgb_regressor", "lgbm_classifier", "lgbm_booster"]
    models = [getattr(flavors, name) for name in boosters]
    assert load_error_without(("mlflow",), models, tmp_path) == [None] * len(models)


def test_booster_files_run_no_model_code_and_their_library_is_preloaded(
    flavors: FlavorZoo,
) -> None:
    from sparkscore import daemon
    from sparkscore.loader import runs_model_code
    from sparkscore.model import read_spec

    expected = {
        "xgb_booster": (None, ("sparkscore.tasks", "xgboost")),
        "xgb_classifier": (None, ("sparkscore.tasks", "xgboost")),
        "lgbm_booster": (None, ("sparkscore.tasks", "lightgbm")),
        "lgbm_classifier": (None, ("sparkscore.tasks", "lightgbm", "skops.io")),
        "onnx_classifier": (
            "its loader module 'mlflow.onnx' unpickles or imports the model's files",
            ("sparkscore.tasks", "mlflow.onnx"),
        ),
    }
    for name, (how, modules) in expected.items():
        path = getattr(flavors, name)
        assert runs_model_code(read_spec(path)) == how, name
        assert daemon.preload_modules(str(path), "local") == modules, name
