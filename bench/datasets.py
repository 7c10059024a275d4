"""The benchmark's input data and models, generated once under bench/data/ and reused.

Every data set lives in `bench/data/scale-<S>/<name>/` next to a `<name>.json` marker holding the
parameters it was made with; the marker is written last, so a data set whose marker is missing or
differs (an interrupted run, another generator version) is deleted and made again.

Sizes at scale 1 (issue 6; `--scale` multiplies row and file counts, small files keep 100 rows):

| name             | format  | files   | rows per file | rows      | rows the same as |
| ---------------- | ------- | ------- | ------------- | --------- | ---------------- |
| parquet16        | Parquet | 16      | 200,000       | 3,200,000 | csv16            |
| csv16            | CSV     | 16      | 200,000       | 3,200,000 | parquet16        |
| skew1            | Parquet | 1       | 2,000,000     | 2,000,000 | skew16           |
| skew16           | Parquet | 16      | 125,000       | 2,000,000 | skew1            |
| small20000       | Parquet | 20,000  | 100           | 2,000,000 | small20          |
| small20          | Parquet | 20      | 100,000       | 2,000,000 | small20000       |
| tiny             | Parquet | 1       | 10            | 10        |                  |
| mem200m (--memory) | CSV   | 1       | ~200 MB       | ~0.95M    |                  |
| mem2g (--memory)   | CSV   | 1       | ~2 GB         | ~9.5M     |                  |

Every row is `id` (int64, unique within its row set) and `x0`..`x9` (float64, standard normal).
Parquet files are written by pyarrow with row groups of `row_group_rows` rows: by default
1,048,576 x scale, which at scale 1 is pyarrow's own default (what `pandas.to_parquet` writes),
so the 2-million-row file has 2 row groups and a 200k-row file has one, at every scale.
Dictionary encoding is off (snappy, pyarrow's default, stays on): random doubles do not repeat,
and pyarrow would dictionary-encode a 125k-row file's columns but fall back to plain encoding in
a 1M-row row group, so the two sides of the skew (and small-file) comparisons would decode
differently for a reason that has nothing to do with how the files are split.
CSV files are written by pyarrow (header line, shortest round-trip doubles: the CSV rows parse
back to exactly the Parquet rows).
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

GENERATOR_VERSION = 2
FEATURES = [f"x{i}" for i in range(10)]
PYARROW_DEFAULT_ROW_GROUP = 1 << 20

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path  # the folder scored
    fmt: str  # parquet | csv
    files: int
    rows: int
    bytes: int
    rowset: str  # data sets with the same rowset hold the same rows


@dataclass(frozen=True)
class Spec:
    """How to make one data set."""

    name: str
    fmt: str
    rowset: str
    seed: int
    rows: int  # total rows (or, for target_bytes, computed)
    files: int
    target_bytes: int = 0  # CSV of about this size instead of a row count

    def params(self, row_group_rows: int) -> dict:
        return {
            "version": GENERATOR_VERSION,
            "fmt": self.fmt,
            "seed": self.seed,
            "rows": self.rows,
            "files": self.files,
            "target_bytes": self.target_bytes,
            "row_group_rows": row_group_rows if self.fmt == "parquet" else None,
        }


def specs(scale: float) -> dict[str, Spec]:
    """The data sets at this scale (see the module docstring)."""

    def n(x: float) -> int:
        return max(1, round(x * scale))

    per_file = n(200_000)
    skew_rows = max(16, n(2_000_000))
    small_files = max(20, round(20_000 * scale / 20) * 20)  # a multiple of 20
    return {
        s.name: s
        for s in [
            Spec("parquet16", "parquet", "main", 1, 16 * per_file, 16),
            Spec("csv16", "csv", "main", 1, 16 * per_file, 16),
            Spec("skew1", "parquet", "skew", 2, skew_rows, 1),
            Spec("skew16", "parquet", "skew", 2, skew_rows, 16),
            Spec("small20000", "parquet", "small", 3, small_files * 100, small_files),
            Spec("small20", "parquet", "small", 3, small_files * 100, 20),
            Spec("tiny", "parquet", "tiny", 4, 10, 1),
            Spec("mem200m", "csv", "mem200m", 5, 0, 1, target_bytes=n(200_000_000)),
            Spec("mem2g", "csv", "mem2g", 6, 0, 1, target_bytes=n(2_000_000_000)),
        ]
    }


def default_row_group_rows(scale: float) -> int:
    return max(1000, round(PYARROW_DEFAULT_ROW_GROUP * scale))


@functools.lru_cache(maxsize=2)
def _chunk(seed: int, c: int, chunk: int) -> np.ndarray:
    """Chunk `c` of the row set: made once for the many small files cut from it (a 100-row
    file made its own 1M-row chunk, 0.15 s, so 20,000 of them took most of an hour)."""
    block = np.random.default_rng([seed, c]).standard_normal((chunk, len(FEATURES)))
    block.flags.writeable = False
    return block


def table(seed: int, rows: int, id_start: int = 0) -> pa.Table:
    """`rows` rows of the row set `seed`, starting at row `id_start` (deterministic by chunk)."""
    chunk = 1 << 20
    parts = []
    first, last = id_start, id_start + rows
    for c in range(first // chunk, (last - 1) // chunk + 1 if rows else 0):
        block = _chunk(seed, c, chunk)
        lo, hi = max(first, c * chunk), min(last, (c + 1) * chunk)
        parts.append(block[lo - c * chunk : hi - c * chunk])
    x = np.concatenate(parts) if parts else np.empty((0, len(FEATURES)))
    cols = {"id": pa.array(np.arange(first, last, dtype=np.int64))}
    for i, name in enumerate(FEATURES):
        cols[name] = pa.array(np.ascontiguousarray(x[:, i]))
    return pa.table(cols)


def csv_schema() -> pa.Schema:
    return pa.schema([("id", pa.int64()), *[(c, pa.float64()) for c in FEATURES]])


def ensure(root: Path, spec: Spec, row_group_rows: int, log=print) -> Dataset:
    """The data set, generated unless an identical one is already on disk."""
    folder = root / spec.name
    marker = root / f"{spec.name}.json"
    params = spec.params(row_group_rows)
    if marker.exists() and folder.is_dir():
        saved = json.loads(marker.read_text())
        if saved.get("params") == params:
            return _dataset(spec, folder, saved)
    if marker.exists():
        marker.unlink()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    log(f"  generating {spec.name} in {folder} ...", flush=True)
    if spec.target_bytes:
        rows = _write_big_csv(folder / "big.csv", spec)
    else:
        rows = spec.rows
        bounds = np.linspace(0, spec.rows, spec.files + 1).round().astype(int)
        width = max(5, len(str(spec.files)))
        for i in range(spec.files):
            # File by file (the rows are the same, made by chunk): the 16x set's 51M rows would
            # take about 13 GB of memory made at once.
            part = table(spec.seed, int(bounds[i + 1] - bounds[i]), int(bounds[i]))
            path = folder / f"part-{i:0{width}d}.{spec.fmt}"
            if spec.fmt == "parquet":
                pq.write_table(part, path, row_group_size=row_group_rows, use_dictionary=False)
            else:
                pacsv.write_csv(part, path)
    size = sum(p.stat().st_size for p in folder.iterdir())
    saved = {"params": params, "rows": rows, "files": spec.files, "bytes": size}
    marker.write_text(json.dumps(saved, indent=1))
    return _dataset(spec, folder, saved)


def _dataset(spec: Spec, folder: Path, saved: dict) -> Dataset:
    return Dataset(
        spec.name, folder, spec.fmt, saved["files"], saved["rows"], saved["bytes"], spec.rowset
    )


def _write_big_csv(path: Path, spec: Spec) -> int:
    """One CSV of about `target_bytes`, written in 1M-row chunks; returns its row count."""
    sample = pa.BufferOutputStream()
    pacsv.write_csv(table(spec.seed, 20_000), sample)
    bytes_per_row = sample.getvalue().size / 20_000
    rows = max(10, int(spec.target_bytes / bytes_per_row))
    chunk = 1 << 20
    with pacsv.CSVWriter(str(path), csv_schema()) as writer:
        for start in range(0, rows, chunk):
            writer.write_table(table(spec.seed, min(chunk, rows - start), start))
    return rows


# ---------------------------------------------------------------------------------------------
# Models


MODELS_VERSION = 2


def ensure_models(root: Path, log=print) -> dict[str, Path]:
    """A LogisticRegression ("lr"), a StandardScaler + 100-tree RandomForest pipeline ("rf"),
    both saved by the real mlflow (skops format), and a 200-tree LightGBM classifier ("gbm",
    saved by mlflow.lightgbm), signature inputs x0..x9 double."""
    import mlflow
    import sklearn

    folder = root / "models"
    marker = root / "models.json"
    params = {
        "version": MODELS_VERSION,
        "sklearn": sklearn.__version__,
        "mlflow": mlflow.__version__,
    }
    paths = {"lr": folder / "lr", "rf": folder / "rf", "gbm": folder / "gbm"}
    if (
        marker.exists()
        and json.loads(marker.read_text()) == params
        and all((p / "MLmodel").exists() for p in paths.values())
    ):
        return paths
    if marker.exists():
        marker.unlink()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    log(f"  training and saving models in {folder} ...", flush=True)

    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    train = table(99, 20_000).to_pandas()
    X = train[FEATURES]
    noise = np.random.default_rng(100).standard_normal(len(X))
    y = ((X.x0 + 0.5 * X.x1 - X.x2 + 0.5 * X.x3 * X.x4 + 0.8 * noise) > 0).astype(np.int64)

    lr = LogisticRegression().fit(X, y)
    mlflow.sklearn.save_model(
        lr,
        str(paths["lr"]),
        serialization_format="skops",
        signature=infer_signature(X, lr.predict(X)),
    )
    rf = Pipeline(
        [
            ("scale", StandardScaler()),
            ("forest", RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1)),
        ]
    ).fit(X, y)
    mlflow.sklearn.save_model(
        rf,
        str(paths["rf"]),
        serialization_format="skops",
        signature=infer_signature(X, rf.predict(X)),
        skops_trusted_types=["sklearn.tree._tree.Tree"],
    )
    import lightgbm
    import mlflow.lightgbm

    # lightgbm's defaults but the tree count: one OpenMP thread per core when it predicts.
    gbm = lightgbm.LGBMClassifier(n_estimators=200, verbose=-1).fit(X, y)
    mlflow.lightgbm.save_model(gbm, str(paths["gbm"]), signature=infer_signature(X, gbm.predict(X)))
    marker.write_text(json.dumps(params))
    return paths


def scale_root(scale: float) -> Path:
    return DATA / f"scale-{scale:g}"


def row_count_check() -> None:  # pragma: no cover - a manual aid
    """Print the data sets on disk (python bench/datasets.py)."""
    for marker in sorted(DATA.glob("scale-*/*.json")):
        saved = json.loads(marker.read_text())
        print(marker.relative_to(DATA), saved.get("rows"), saved.get("files"), saved.get("bytes"))


if __name__ == "__main__":
    row_count_check()
