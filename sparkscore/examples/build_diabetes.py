"""Rebuild the bundled example: a scikit-learn pipeline on scikit-learn's diabetes data set.

Run `make example` (needs the `mlflow` extra). The data set ships inside scikit-learn, so nothing
is downloaded; the model is saved by the real mlflow with the signature of seed 000's example.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent / "diabetes"
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def build(target: Path = HERE) -> None:
    import mlflow.sklearn
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_diabetes(as_frame=True)
    X: pd.DataFrame = data.data[FEATURES].astype("float64")
    pipe = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(X, data.target)
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in FEATURES]),
        outputs=Schema([ColSpec("double")]),
    )
    model_dir = target / "model"
    shutil.rmtree(model_dir, ignore_errors=True)
    mlflow.sklearn.save_model(pipe, str(model_dir), signature=signature)

    inputs = target / "input"
    shutil.rmtree(inputs, ignore_errors=True)
    inputs.mkdir(parents=True)
    rows = X.round(6).assign(patient_id=np.arange(len(X)) + 1000)[["patient_id", *FEATURES]]
    chunks = [rows.iloc[i : i + 75] for i in range(0, 300, 75)]
    chunks[0].to_csv(inputs / "visits-2024-01.csv", index=False)
    chunks[1].to_csv(inputs / "visits-2024-02.csv", index=False)
    chunks[2].to_parquet(inputs / "visits-2024-03.parquet", index=False)
    chunks[3].to_parquet(inputs / "visits-2024-04.pqt", index=False)


if __name__ == "__main__":
    build()
    print(f"wrote {HERE}")
