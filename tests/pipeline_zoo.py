"""Spark MLlib pipelines fitted in the test session and saved by the real mlflow.spark: a
VectorAssembler and a LogisticRegression over two double columns, with and without a signature.
"""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def features(n: int, seed: int) -> pd.DataFrame:
    """Two double features and an id; the values are written to CSV and read back exactly."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(size=n).round(4),
            "b": (np.arange(n) % 4) * 0.5,
            "id": np.arange(n, dtype=np.int64) + 100 * seed,
        }
    )


def save_pipelines(spark: Any, root: Path) -> dict[str, Path]:
    """The fitted pipeline saved twice: `signed` (infer_signature, as mlflow's docs do) and
    `unsigned` (no signature); also the `sparkml` folder's PipelineModel, to compare with."""
    import mlflow.spark
    from mlflow.models import Model, infer_signature
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    train = features(40, seed=0)
    train["label"] = (train["a"] + train["b"] > 0.7).astype(float)
    df = spark.createDataFrame(train)
    pipeline = Pipeline(
        stages=[
            VectorAssembler(inputCols=["a", "b"], outputCol="features"),
            LogisticRegression(maxIter=10),
        ]
    ).fit(df)
    predicted = pipeline.transform(df).select("prediction").toPandas()
    signature = infer_signature(train[["a", "b"]], predicted)
    paths = {"signed": root / "signed", "unsigned": root / "unsigned"}
    # pip_requirements named, so mlflow does not load the model again to infer them
    mlflow.spark.save_model(
        pipeline, str(paths["signed"]), signature=signature, pip_requirements=["pyspark"]
    )
    # The same model without its signature, as mlflow writes it, without a second save through
    # Spark (tens of seconds on a busy machine): MLmodel rewritten by mlflow's own Model.
    shutil.copytree(paths["signed"], paths["unsigned"])
    mlmodel = Model.load(str(paths["unsigned"] / "MLmodel"))
    mlmodel.signature = None
    mlmodel.save(str(paths["unsigned"] / "MLmodel"))
    return paths


def transformed(spark: Any, model: Path, df: pd.DataFrame) -> list[dict[str, Any]]:
    """PipelineModel.transform's prediction and probability for each row, in order."""
    rows = (
        _pipeline(str(model / "sparkml"))
        .transform(spark.createDataFrame(df))
        .select("prediction", "probability")
    )
    return [
        {"prediction": r.prediction, "probability": r.probability.toArray().tolist()}
        for r in rows.collect()
    ]


@cache
def _pipeline(path: str) -> Any:
    from pyspark.ml import PipelineModel

    return PipelineModel.load(path)
