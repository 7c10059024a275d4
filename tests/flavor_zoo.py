"""Models saved by the real mlflow library through its own flavors (xgboost, lightgbm, onnx, a
PythonModel with artifacts and a code_paths module), built once per test run on first use.

Each is small (a few trees, two features) and names its pip requirements as mlflow would infer
them, so mlflow does not load each model in a subprocess to infer them (seconds per model).
"""

from __future__ import annotations

import json
import sys
import textwrap
from functools import cached_property
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd


def features(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """Two double features; `b` takes whole values, as a count read from a file would."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n).round(3), "b": (np.arange(n) % 3) * 1.0})


def labels(X: pd.DataFrame) -> pd.Series:
    return (X["a"] + 0.3 * X["b"] > 0.2).astype(int)


def _pins(*distributions: str) -> list[str]:
    """`name==version` of each, as mlflow writes them; xgboost by its module's version, which
    mlflow pins under the name `xgboost` whichever wheel (`xgboost`, `xgboost-cpu`) installed it."""
    return [f"{d}=={_version(d)}" for d in distributions]


def _version(distribution: str) -> str:
    if distribution == "xgboost":
        import xgboost

        return str(xgboost.__version__)
    return version(distribution)


class FlavorZoo:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _signature(self, predict_output: object):
        from mlflow.models import infer_signature

        return infer_signature(features(), predict_output)

    @cached_property
    def xgb_booster(self) -> Path:
        """A native xgboost Booster (binary:logistic): float32 probabilities."""
        import mlflow.xgboost
        import xgboost as xgb

        X = features()
        booster = xgb.train(
            {"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
            xgb.DMatrix(X, label=labels(X)),
            num_boost_round=5,
        )
        path = self.root / "xgb_booster"
        mlflow.xgboost.save_model(
            booster,
            str(path),
            signature=self._signature(booster.predict(xgb.DMatrix(X))),
            pip_requirements=_pins("xgboost"),
        )
        return path

    def _xgb_sklearn(self, name: str, estimator: str, target: pd.Series) -> Path:
        import mlflow.xgboost
        import xgboost as xgb

        X = features()
        model = getattr(xgb, estimator)(n_estimators=5, max_depth=2, n_jobs=1).fit(X, target)
        path = self.root / name
        mlflow.xgboost.save_model(
            model,
            str(path),
            signature=self._signature(model.predict(X)),
            pip_requirements=_pins("xgboost", "scikit-learn"),
        )
        return path

    @cached_property
    def xgb_classifier(self) -> Path:
        """xgboost's scikit-learn API: an XGBClassifier, int64 labels."""
        return self._xgb_sklearn("xgb_classifier", "XGBClassifier", labels(features()))

    @cached_property
    def xgb_regressor(self) -> Path:
        """An XGBRegressor: float32 values."""
        X = features()
        return self._xgb_sklearn("xgb_regressor", "XGBRegressor", X["a"] * 2 - X["b"])

    @cached_property
    def lgbm_classifier(self) -> Path:
        """lightgbm's scikit-learn API, saved with skops (mlflow 3's default): int64 labels."""
        import lightgbm as lgb
        import mlflow.lightgbm

        X = features()
        model = lgb.LGBMClassifier(
            n_estimators=5, num_leaves=4, min_child_samples=3, n_jobs=1, verbose=-1
        ).fit(X, labels(X))
        path = self.root / "lgbm_classifier"
        mlflow.lightgbm.save_model(
            model,
            str(path),
            signature=self._signature(model.predict(X)),
            pip_requirements=_pins("lightgbm", "scikit-learn", "skops"),
        )
        return path

    @cached_property
    def lgbm_booster(self) -> Path:
        """A native lightgbm Booster (regression), saved as lightgbm's text file: float64."""
        import lightgbm as lgb
        import mlflow.lightgbm

        X = features()
        booster = lgb.train(
            {"objective": "regression", "num_leaves": 4, "min_data_in_leaf": 3, "verbose": -1},
            lgb.Dataset(X, label=X["a"] * 2 - X["b"]),
            num_boost_round=5,
        )
        path = self.root / "lgbm_booster"
        mlflow.lightgbm.save_model(
            booster,
            str(path),
            signature=self._signature(booster.predict(X)),
            pip_requirements=_pins("lightgbm"),
        )
        return path

    @cached_property
    def onnx_classifier(self) -> Path:
        """A scikit-learn LogisticRegression converted by skl2onnx with zipmap as columns, so
        that mlflow's onnx pyfunc returns a frame: the label and one probability per class."""
        import mlflow.onnx
        from skl2onnx import to_onnx
        from sklearn.linear_model import LogisticRegression

        X = features()
        estimator = LogisticRegression().fit(X.astype(np.float32), labels(X))
        onx = to_onnx(
            estimator, X.to_numpy(np.float32)[:1], options={"zipmap": "columns"}, target_opset=17
        )
        path = self.root / "onnx_classifier"
        # The frame it returns, before the model is saved: onnxruntime on the same graph.
        import onnxruntime

        session = onnxruntime.InferenceSession(onx.SerializeToString())
        label, *probabilities = session.run(None, {"X": X.to_numpy(np.float32)})
        output = pd.DataFrame(
            {"output_label": label, **{f"i{k}": p for k, p in enumerate(probabilities)}}
        )
        mlflow.onnx.save_model(
            onx,
            str(path),
            signature=self._signature(output),
            onnx_execution_providers=["CPUExecutionProvider"],
            pip_requirements=_pins("onnx", "onnxruntime"),
        )
        return path

    @cached_property
    def python_model(self) -> Path:
        """A PythonModel whose class is in a code_paths module and whose weights are an
        artifact read in load_context: a score (double) and a band (string) per row."""
        import mlflow.pyfunc
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, Schema

        code = self.root / "weighted_code"
        code.mkdir(parents=True)
        (code / "weighted_sum.py").write_text(
            textwrap.dedent("""
            import json

            import mlflow.pyfunc
            import numpy as np
            import pandas as pd


            class WeightedSum(mlflow.pyfunc.PythonModel):
                def load_context(self, context):
                    with open(context.artifacts["weights"]) as f:
                        self.weights = json.load(f)

                def predict(self, context, model_input, params=None):
                    w = self.weights
                    score = model_input["a"] * w["a"] + model_input["b"] * w["b"]
                    band = np.where(score > w["threshold"], "high", "low")
                    return pd.DataFrame({"score": score, "band": band})
        """)
        )
        weights = self.root / "weights.json"
        weights.write_text(json.dumps({"a": 2.5, "b": -0.75, "threshold": 0.1}))
        sys.path.insert(0, str(code))
        try:
            from weighted_sum import WeightedSum
        finally:
            sys.path.remove(str(code))
        sig = ModelSignature(
            inputs=Schema([ColSpec("double", "a"), ColSpec("double", "b")]),
            outputs=Schema([ColSpec("double", "score"), ColSpec("string", "band")]),
        )
        path = self.root / "python_model"
        mlflow.pyfunc.save_model(
            str(path),
            python_model=WeightedSum(),
            artifacts={"weights": str(weights)},
            code_paths=[str(code / "weighted_sum.py")],
            signature=sig,
            pip_requirements=_pins("mlflow-skinny", "pandas"),
        )
        return path
