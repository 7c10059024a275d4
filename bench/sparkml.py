"""Spark MLlib pipelines (mlflow.spark) on the perf data (parquet16): the job against the fastest
a user could write by hand, and against mlflow's pyfunc path, in one local[*] session.

    .venv/bin/python bench/sparkml.py [--scale S] [--runs N] [--models lr,rf]

For each pipeline (VectorAssembler over x0..x9, then LogisticRegression or a 20-tree
RandomForestClassifier, fitted on 20,000 rows and saved by mlflow.spark with a signature), the
median seconds of `--runs` timed runs (after one untimed run of each way) of:
- job: `sparkscore.score` writing file_name, row, prediction and the `id` passthrough;
- by hand: `spark.read.parquet` of the same files, `PipelineModel.transform`, and id and
  prediction written as Parquet (no lineage, no signature, no errors output);
- mlflow: `mlflow.pyfunc.spark_udf(spark, model, env_manager="local")` over `spark.read.parquet`,
  id and prediction written as Parquet: mlflow's spark loader inside a Python UDF.
Printed as rows/s and as the ratios job / by hand and job / mlflow. The job's predictions are
checked against the by-hand ones (equal, row by row, by id).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import run

OUT = run.OUT / "sparkml"
TRAIN_ROWS = 20_000


def fit(spark: Any, data: Path, kind: str, where: Path) -> Path:
    """The pipeline fitted on the first rows of the data, saved by mlflow.spark (once)."""
    import mlflow.spark
    from mlflow.models import infer_signature
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression, RandomForestClassifier
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as F

    path = where / f"sparkml-{kind}"
    if (path / "MLmodel").exists():
        return path
    train = spark.read.parquet(str(data)).limit(TRAIN_ROWS)
    train = train.withColumn("label", (F.col("x0") + F.col("x1") > 0).cast("double"))
    classifier = (
        LogisticRegression(maxIter=20)
        if kind == "lr"
        else RandomForestClassifier(numTrees=20, maxDepth=6, seed=0)
    )
    assembler = VectorAssembler(inputCols=datasets.FEATURES, outputCol="features")
    model = Pipeline(stages=[assembler, classifier]).fit(train)
    sample = train.limit(100)
    signature = infer_signature(
        sample.select(*datasets.FEATURES).toPandas(),
        model.transform(sample).select("prediction").toPandas(),
    )
    mlflow.spark.save_model(model, str(path), signature=signature, pip_requirements=["pyspark"])
    return path


def ways(spark: Any, model: Path, data: Path) -> dict[str, Callable[[Path], None]]:
    import mlflow.pyfunc
    from pyspark.ml import PipelineModel

    import sparkscore

    pipeline = PipelineModel.load(str(model / "sparkml"))
    predict = mlflow.pyfunc.spark_udf(spark, str(model), env_manager="local")

    def job(out: Path) -> None:
        sparkscore.score(spark, model, data, out, passthrough_columns=["id"])

    def by_hand(out: Path) -> None:
        df = spark.read.parquet(str(data))
        pipeline.transform(df).select("id", "prediction").write.parquet(str(out))

    def mlflow_udf(out: Path) -> None:
        df = spark.read.parquet(str(data))
        df.select("id", predict(*datasets.FEATURES).alias("prediction")).write.parquet(str(out))

    return {"job": job, "by hand": by_hand, "mlflow": mlflow_udf}


def timed(run_way: Callable[[Path], None], out: Path, runs: int) -> float:
    seconds = []
    for i in range(runs + 1):  # the first run warms the Python workers and the JVM
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        run_way(out)
        if i:
            seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def check(job_out: Path, hand_out: Path) -> None:
    import pyarrow.parquet as pq

    job = pq.read_table(job_out / "predictions", columns=["id", "prediction"]).to_pydict()
    hand = pq.read_table(hand_out, columns=["id", "prediction"]).to_pydict()
    assert dict(zip(job["id"], job["prediction"])) == dict(zip(hand["id"], hand["prediction"]))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", default="lr,rf")
    args = parser.parse_args(argv)
    root = datasets.scale_root(args.scale)
    spec = datasets.specs(args.scale)["parquet16"]
    data = datasets.ensure(root, spec, datasets.default_row_group_rows(args.scale))
    spark, _ = run.start_session()
    print(f"{data.rows:,} rows in {data.files} Parquet files, median of {args.runs} runs:")
    for kind in args.models.split(","):
        model = fit(spark, Path(data.path), kind, root)
        seconds = {
            name: timed(way, OUT / f"{kind}-{name.replace(' ', '-')}", args.runs)
            for name, way in ways(spark, model, Path(data.path)).items()
        }
        check(OUT / f"{kind}-job", OUT / f"{kind}-by-hand")
        rates = ", ".join(
            f"{n} {data.rows / s:,.0f} rows/s ({s:.2f} s)" for n, s in seconds.items()
        )
        print(f"  {kind}: {rates}")
        print(
            f"  {kind}: job / by hand {seconds['by hand'] / seconds['job']:.2f}x the rate, "
            f"job / mlflow {seconds['mlflow'] / seconds['job']:.2f}x the rate"
        )
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
