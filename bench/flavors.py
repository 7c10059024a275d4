"""xgboost and lightgbm models loaded by sparkscore's own loader (boosters.py) or by mlflow's.

For each model, two figures, each both ways:
- worker start: in a fresh Python process that has already imported what every worker imports
  (sparkscore's loader, pandas, pyarrow), the seconds to load the model and predict once on
  100 rows: what a Spark worker pays before its first mini-batch. Median of `--starts` runs.
- predict rate: rows/s of `Model.predict` on batches of 10,000 rows in one process, the best
  of `--rounds` passes.
The predictions of the two ways are compared, and must be equal to the last bit.

mlflow's way is what sparkscore did before boosters.py, and still does for other flavors: import
the loader module (`mlflow.xgboost`, `mlflow.lightgbm`) and call its `_load_pyfunc`.

    python bench/flavors.py [--starts 5] [--rows 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FEATURES = 20
WAYS = ("mlflow", "sparkscore")

CHILD = """
import importlib, sys, time
import pandas as pd, pyarrow
from sparkscore.loader import Model, load_model
from sparkscore.model import read_spec

way, path, sample = sys.argv[1:]
X = pd.read_parquet(sample)
start = time.perf_counter()
{load}
model.predict(X)
print(time.perf_counter() - start)
"""
LOAD = {
    "mlflow": "spec = read_spec(path)\n"
    "impl = importlib.import_module(spec.pyfunc.loader_module)._load_pyfunc("
    "spec.file(spec.pyfunc.data))\n"
    "model = Model(spec=spec, impl=impl)",
    "sparkscore": "model = load_model(path, trust_model=True)",
}


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, FEATURES)), columns=[f"f{i}" for i in range(FEATURES)])


def save_models(root: Path) -> dict[str, Path]:
    """Four models of 200 trees of depth 6 over 20 features, saved by mlflow's own flavors."""
    import lightgbm as lgb
    import mlflow.lightgbm
    import mlflow.xgboost
    import xgboost as xgb
    from mlflow.models import infer_signature

    X = frame(5000, 0)
    y = (X["f0"] + X["f1"] * X["f2"] > 0).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 6}, xgb.DMatrix(X, label=y), 200
    )
    lgb_booster = lgb.train(
        {"objective": "binary", "num_leaves": 63, "verbose": -1}, lgb.Dataset(X, label=y), 200
    )
    models = {
        "xgboost Booster": (mlflow.xgboost, booster, booster.predict(xgb.DMatrix(X))),
        "XGBClassifier": (mlflow.xgboost, xgb.XGBClassifier(n_estimators=200, max_depth=6), None),
        "lightgbm Booster": (mlflow.lightgbm, lgb_booster, lgb_booster.predict(X)),
        "LGBMClassifier (skops)": (
            mlflow.lightgbm,
            lgb.LGBMClassifier(n_estimators=200, num_leaves=63, verbose=-1),
            None,
        ),
    }
    paths = {}
    for i, (name, (flavor, model, output)) in enumerate(models.items()):
        if output is None:
            model.fit(X, y)
            output = model.predict(X)
        paths[name] = root / f"model{i}"
        flavor.save_model(
            model,
            str(paths[name]),
            signature=infer_signature(X, output),
            pip_requirements=["xgboost", "lightgbm"],
        )
    return paths


def worker_starts(path: Path, sample: Path, starts: int) -> dict[str, float]:
    """Median seconds to load and predict once, each in a fresh process, the ways taking
    turns so that a change in the machine's load weighs on both alike."""
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(starts):
        for way in WAYS:
            done = subprocess.run(
                [sys.executable, "-c", CHILD.format(load=LOAD[way]), way, str(path), str(sample)],
                capture_output=True,
                text=True,
                check=True,
            )
            times[way].append(float(done.stdout.strip().splitlines()[-1]))
    return {way: statistics.median(t) for way, t in times.items()}


def load(way: str, path: Path) -> Any:
    import importlib

    from sparkscore.loader import Model, load_model
    from sparkscore.model import read_spec

    if way == "sparkscore":
        return load_model(path, trust_model=True)
    spec = read_spec(path)
    module = importlib.import_module(spec.pyfunc.loader_module)
    return Model(spec=spec, impl=module._load_pyfunc(spec.file(spec.pyfunc.data or "")))


def predict_rates(
    models: dict[str, Any], batches: list[pd.DataFrame], rounds: int = 3
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """The best rows/s of `rounds` passes over `batches`, the ways taking turns, and what each
    way predicted."""
    rows = sum(len(b) for b in batches)
    rates: dict[str, float] = dict.fromkeys(models, 0.0)
    out: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for way, model in models.items():
            start = time.perf_counter()
            out[way] = np.concatenate([np.asarray(model.predict(b)) for b in batches])
            rates[way] = max(rates[way], rows / (time.perf_counter() - start))
    return rates, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5, help="fresh processes per figure")
    parser.add_argument("--rows", type=int, default=200_000, help="rows predicted per pass")
    parser.add_argument("--rounds", type=int, default=3, help="passes per rate, the best kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = save_models(root)
        sample = root / "sample.parquet"
        frame(100, 1).to_parquet(sample)
        batches = [frame(10_000, 2 + i) for i in range(max(1, args.rows // 10_000))]
        for name, path in paths.items():
            row: dict[str, Any] = {"model": name}
            starts = worker_starts(path, sample, args.starts)
            models = {way: load(way, path) for way in WAYS}
            rates, predictions = predict_rates(models, batches, args.rounds)
            for way in WAYS:
                row[f"start_s[{way}]"] = round(starts[way], 3)
                row[f"rows_per_s[{way}]"] = round(rates[way])
            row["exact"] = bool(np.array_equal(predictions["mlflow"], predictions["sparkscore"]))
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
