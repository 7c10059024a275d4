"""Models saved by the real mlflow library, built once per test run on first use."""

from __future__ import annotations

import json
import textwrap
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd


def lr_frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=n).round(3), "b": np.arange(n) % 3})


def mixed_frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "color": rng.choice(["red", "green", "blue"], size=n).astype(object),
            "count": rng.integers(0, 10, size=n),
            "size": rng.normal(10, 3, size=n).round(2),
        }
    )


def digit_images(n: int = 12) -> np.ndarray:
    """The first `n` 8x8 scikit-learn digits as grayscale pixels, uint8 0..240 (16 levels x 15)."""
    from sklearn.datasets import load_digits

    return (load_digits().images[:n] * 15).astype(np.uint8)


def write_pngs(folder: Path, images: np.ndarray, prefix: str = "digit") -> list[Path]:
    """Each image as `prefix-NN.png`, in order; returns the paths."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, pixels in enumerate(images):
        path = folder / f"{prefix}-{i:02d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


# Named, so mlflow does not load each model in a subprocess to infer them (seconds per model).
IMAGE_MODEL_REQUIREMENTS = ["numpy", "scikit-learn"]
DIGIT_NAMES = np.array(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
)


class Zoo:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        return self.root / name

    def _lr(self):
        from sklearn.linear_model import LogisticRegression

        X = lr_frame()
        y = (X["a"] + 0.3 * X["b"] > 0.2).astype(int)
        return X, LogisticRegression().fit(X, y)

    def lr(self, fmt: str) -> Path:
        return {
            "skops": self.lr_skops,
            "pickle": self.lr_pickle,
            "cloudpickle": self.lr_cloudpickle,
        }[fmt]

    def _save_lr(self, fmt: str) -> Path:
        import mlflow.sklearn
        from mlflow.models import infer_signature

        X, model = self._lr()
        path = self._path(f"lr_{fmt}")
        mlflow.sklearn.save_model(
            model,
            str(path),
            serialization_format=fmt,
            signature=infer_signature(X, model.predict(X)),
        )
        return path

    @cached_property
    def lr_skops(self) -> Path:
        return self._save_lr("skops")

    @cached_property
    def lr_pickle(self) -> Path:
        return self._save_lr("pickle")

    @cached_property
    def lr_cloudpickle(self) -> Path:
        return self._save_lr("cloudpickle")

    @cached_property
    def lr_proba(self) -> Path:
        import mlflow.sklearn
        from mlflow.models import infer_signature

        X, model = self._lr()
        path = self._path("lr_proba")
        mlflow.sklearn.save_model(
            model,
            str(path),
            pyfunc_predict_fn="predict_proba",
            signature=infer_signature(X, model.predict_proba(X)),
        )
        return path

    @cached_property
    def pipeline(self) -> Path:
        """ColumnTransformer + RandomForest over string, integer and float columns, string
        labels."""
        import mlflow.sklearn
        from mlflow.models import infer_signature
        from sklearn.compose import ColumnTransformer
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        X = mixed_frame()
        y = np.where((X["size"] > 10) ^ (X["color"] == "red"), "yes", "no")
        pipe = Pipeline(
            [
                (
                    "prep",
                    ColumnTransformer(
                        [
                            ("onehot", OneHotEncoder(handle_unknown="ignore"), ["color"]),
                            ("scale", StandardScaler(), ["size"]),
                        ],
                        remainder="passthrough",
                    ),
                ),
                ("forest", RandomForestClassifier(n_estimators=15, random_state=0)),
            ]
        ).fit(X, y)
        path = self._path("pipeline")
        mlflow.sklearn.save_model(
            pipe,
            str(path),
            signature=infer_signature(X, pipe.predict(X)),
            skops_trusted_types=["sklearn.tree._tree.Tree"],
        )
        return path

    @cached_property
    def regressor_nosig(self) -> Path:
        import mlflow.sklearn
        from sklearn.linear_model import LinearRegression

        X = lr_frame()
        model = LinearRegression().fit(X, X["a"] * 2 + X["b"])
        path = self._path("regressor_nosig")
        mlflow.sklearn.save_model(model, str(path), serialization_format="cloudpickle")
        return path

    @cached_property
    def python_model(self) -> Path:
        """A PythonModel returning a DataFrame with named outputs of two types."""
        import mlflow.pyfunc
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, Schema

        class Doubler(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input, params=None):
                return pd.DataFrame(
                    {
                        "doubled": model_input["a"] * 2,
                        "label": np.where(model_input["b"] > 0, "pos", "zero"),
                    }
                )

        sig = ModelSignature(
            inputs=Schema([ColSpec("double", "a"), ColSpec("long", "b")]),
            outputs=Schema([ColSpec("double", "doubled"), ColSpec("string", "label")]),
        )
        path = self._path("python_model")
        mlflow.pyfunc.save_model(str(path), python_model=Doubler(), signature=sig)
        return path

    @cached_property
    def param_model(self) -> Path:
        """A PythonModel with an inference parameter `scale` (default 2.0)."""
        import mlflow.pyfunc
        from mlflow.models import infer_signature

        class Scaler(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input, params=None):
                return model_input["a"].to_numpy() * params["scale"]

        X = lr_frame()
        sig = infer_signature(X, X["a"].to_numpy(), params={"scale": 2.0})
        path = self._path("param_model")
        mlflow.pyfunc.save_model(str(path), python_model=Scaler(), signature=sig)
        return path

    @cached_property
    def untrusted_skops(self) -> Path:
        """The forest pipeline with its skops trust in sklearn.tree._tree.Tree taken away."""
        import shutil

        import yaml

        path = self._path("untrusted_skops")
        shutil.copytree(self.pipeline, path)
        mlmodel = path / "MLmodel"
        doc = yaml.safe_load(mlmodel.read_text())
        doc["flavors"]["sklearn"]["skops_trusted_types"] = None
        mlmodel.write_text(yaml.safe_dump(doc))
        return path

    @cached_property
    def custom_flavor(self) -> Path:
        """A hand-written flavor with its own code, loadable with no mlflow installed.

        Each load appends the loading process id to the file named by `load_log` in its config
        (see `counting_copy`), so tests can count loads per worker process.
        """
        path = self._path("custom_flavor")
        (path / "code").mkdir(parents=True)
        (path / "data").mkdir()
        (path / "data" / "config.json").write_text(json.dumps({"factor": 3.0}))
        (path / "code" / "triple_flavor.py").write_text(
            textwrap.dedent("""
            import json
            import os

            import numpy as np


            class Triple:
                def __init__(self, factor):
                    self.factor = factor

                def predict(self, data):
                    return data["a"].to_numpy() * self.factor + data["b"].to_numpy()


            def _load_pyfunc(path):
                with open(path) as f:
                    config = json.load(f)
                if config.get("load_log"):
                    with open(config["load_log"], "a") as f:
                        f.write(f"{os.getpid()}\\n")
                return Triple(config["factor"])
        """)
        )
        (path / "MLmodel").write_text(
            textwrap.dedent("""
            flavors:
              python_function:
                loader_module: triple_flavor
                code: code
                data: data/config.json
                python_version: 3.11.7
            signature:
              inputs: '[{"type": "double", "name": "a"}, {"type": "long", "name": "b"}]'
              outputs: '[{"type": "double"}]'
            model_uuid: 0123456789abcdef
        """)
        )
        return path

    @cached_property
    def _digits_classifier(self):
        """Three nearest neighbours over the digits' 64 pixels (0..16): fits in milliseconds."""
        from sklearn.datasets import load_digits
        from sklearn.neighbors import KNeighborsClassifier

        digits = load_digits()
        return KNeighborsClassifier(n_neighbors=3).fit(digits.data, digits.target)

    @cached_property
    def digit_scores(self) -> Path:
        """A PythonModel over 8x8 grayscale images: tensor float32 [-1, 8, 8] in, the ten class
        scores (tensor float32 [-1, 10]) out."""
        import mlflow.pyfunc
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        class DigitScores(mlflow.pyfunc.PythonModel):
            def __init__(self, classifier):
                self.classifier = classifier

            def predict(self, context, model_input, params=None):
                flat = np.asarray(model_input).reshape(len(model_input), 64) / 15.0
                return self.classifier.predict_proba(flat).astype(np.float32)

        sig = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 8, 8))]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 10))]),
        )
        path = self._path("digit_scores")
        mlflow.pyfunc.save_model(
            str(path),
            python_model=DigitScores(self._digits_classifier),
            signature=sig,
            pip_requirements=IMAGE_MODEL_REQUIREMENTS,
        )
        return path

    @cached_property
    def digit_labels(self) -> Path:
        """The same classifier over flat pixels: tensor uint8 [-1, 64] in, a string label out."""
        import mlflow.pyfunc
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, Schema, TensorSpec

        class DigitLabels(mlflow.pyfunc.PythonModel):
            def __init__(self, classifier, names):
                self.classifier, self.names = classifier, names

            def predict(self, context, model_input, params=None):
                if model_input.dtype != np.uint8 or model_input.shape[1:] != (64,):
                    raise TypeError(f"got {model_input.dtype} {model_input.shape}")
                return self.names[self.classifier.predict(model_input / 15.0)]

        sig = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, 64))]),
            outputs=Schema([ColSpec("string")]),
        )
        path = self._path("digit_labels")
        mlflow.pyfunc.save_model(
            str(path),
            python_model=DigitLabels(self._digits_classifier, DIGIT_NAMES),
            signature=sig,
            pip_requirements=IMAGE_MODEL_REQUIREMENTS,
        )
        return path

    @cached_property
    def channel_means(self) -> Path:
        """Mean of each color channel of RGB images of any size: tensor uint8 [-1, -1, -1, 3]
        in, tensor float64 [-1, 3] out."""
        import mlflow.pyfunc
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        class ChannelMeans(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input, params=None):
                return model_input.reshape(len(model_input), -1, 3).mean(axis=1)

        sig = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))]),
            outputs=Schema([TensorSpec(np.dtype(np.float64), (-1, 3))]),
        )
        path = self._path("channel_means")
        mlflow.pyfunc.save_model(
            str(path),
            python_model=ChannelMeans(),
            signature=sig,
            pip_requirements=IMAGE_MODEL_REQUIREMENTS,
        )
        return path

    @cached_property
    def image_bytes(self) -> Path:
        """A model whose signature is one binary column: it gets each image file's bytes and
        returns their length."""
        import mlflow.pyfunc
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, Schema

        class ByteCount(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input, params=None):
                return model_input["image"].map(len).astype(np.int64)

        sig = ModelSignature(
            inputs=Schema([ColSpec("binary", "image")]), outputs=Schema([ColSpec("long")])
        )
        path = self._path("image_bytes")
        mlflow.pyfunc.save_model(
            str(path),
            python_model=ByteCount(),
            signature=sig,
            pip_requirements=IMAGE_MODEL_REQUIREMENTS,
        )
        return path

    @cached_property
    def pixel_mean_nosig(self) -> Path:
        """A PythonModel with no signature: the mean pixel of each image it is given."""
        import mlflow.pyfunc

        class PixelMean(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input, params=None):
                return np.asarray(model_input).reshape(len(model_input), -1).mean(axis=1)

        path = self._path("pixel_mean_nosig")
        mlflow.pyfunc.save_model(
            str(path), python_model=PixelMean(), pip_requirements=IMAGE_MODEL_REQUIREMENTS
        )
        return path


def counting_copy(model: Path, where: Path, log: Path) -> Path:
    """A copy of the custom flavor model that logs each load's process id to `log`."""
    import shutil

    copy = where / "counting_model"
    shutil.copytree(model, copy)
    config = copy / "data" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "load_log": str(log)}))
    return copy


def chaos_model(where: Path, **config: object) -> Path:
    """A hand-written flavor that misbehaves on purpose, configured by `config`:

    - `sleep`: seconds to sleep in every predict call;
    - `die_on`: a value of column `a` on which predict kills its own Python worker
      (`os._exit`), once: it first creates the file `marker`, and never dies while it exists;
    - `hang_on`: a value of `a` on which predict sleeps for an hour;
    - `crash_on`: a value of `a` on which predict kills its Python worker every time, with the
      signal `crash_signal` (e.g. 11, SIGSEGV) or, without one, `os._exit(3)`.
    Otherwise it predicts a * 2 + b.
    """
    path = where / "chaos_model"
    (path / "code").mkdir(parents=True)
    (path / "data").mkdir()
    (path / "data" / "config.json").write_text(json.dumps(config))
    (path / "code" / "chaos_flavor.py").write_text(
        textwrap.dedent("""
        import json
        import os
        import time


        class Chaos:
            def __init__(self, config):
                self.config = config

            def predict(self, data):
                c = self.config
                if c.get("sleep"):
                    time.sleep(c["sleep"])
                values = set(data["a"].tolist())
                if "die_on" in c and c["die_on"] in values and not os.path.exists(c["marker"]):
                    open(c["marker"], "w").close()
                    os._exit(1)
                if "hang_on" in c and c["hang_on"] in values:
                    time.sleep(3600)
                if "crash_on" in c and c["crash_on"] in values:
                    if c.get("crash_signal"):
                        os.kill(os.getpid(), c["crash_signal"])
                    os._exit(3)
                return data["a"].to_numpy() * 2 + data["b"].to_numpy()


        def _load_pyfunc(path):
            with open(path) as f:
                return Chaos(json.load(f))
    """)
    )
    (path / "MLmodel").write_text(
        textwrap.dedent("""
        flavors:
          python_function:
            loader_module: chaos_flavor
            code: code
            data: data/config.json
        signature:
          inputs: '[{"type": "double", "name": "a"}, {"type": "long", "name": "b"}]'
          outputs: '[{"type": "double"}]'
    """)
    )
    return path


PINNED_SKLEARN = "1.5.2"  # older than the job's, with wheels for Python 3.11


def versioned_model(where: Path, sklearn: str = PINNED_SKLEARN) -> Path:
    """A PythonModel that predicts with a real pickled LogisticRegression and says which
    scikit-learn ran it; its requirements pin `sklearn`, as mlflow writes them."""
    import pickle

    import mlflow.pyfunc
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    code = where / "versioned_code"
    code.mkdir(parents=True)
    (code / "versioned.py").write_text(
        textwrap.dedent("""
        import pickle

        import mlflow.pyfunc
        import pandas as pd


        class Versioned(mlflow.pyfunc.PythonModel):
            def load_context(self, context):
                with open(context.artifacts["estimator"], "rb") as f:
                    self.estimator = pickle.load(f)

            def predict(self, context, model_input):
                import sklearn

                labels = self.estimator.predict(model_input[["a", "b"]])
                return pd.DataFrame({"label": labels, "sklearn": sklearn.__version__})
    """)
    )
    import sys

    sys.path.insert(0, str(code))
    try:
        from versioned import Versioned
    finally:
        sys.path.remove(str(code))
    X = versioned_frame()
    estimator = LogisticRegression().fit(X, (X.a > 0).astype(int))
    with open(where / "estimator.pkl", "wb") as f:
        pickle.dump(estimator, f)
    path = where / "versioned_model"
    mlflow.pyfunc.save_model(
        str(path),
        python_model=Versioned(),
        artifacts={"estimator": str(where / "estimator.pkl")},
        code_paths=[str(code / "versioned.py")],
        pip_requirements=["mlflow==3.17.2", f"scikit-learn=={sklearn}", "cloudpickle==3.1.2"],
        signature=infer_signature(X, pd.DataFrame({"label": [1], "sklearn": ["x"]})),
    )
    return path


def versioned_frame() -> pd.DataFrame:
    return pd.DataFrame({"a": np.linspace(-1, 1, 20).round(3), "b": (np.arange(20) % 3) * 1.0})
