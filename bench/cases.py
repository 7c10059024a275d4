"""What each benchmark case runs, and how it is timed.

Timing rule (every case): one untimed warm-up run, then timed runs until they add up to at least
`min_seconds` (30 s at scale 1) or `max_runs` runs, and their median: a case whose one run
already takes that long is timed once. Each run writes to an output folder deleted (untimed)
before the run.
Peak RSS covers the whole case (warm-up and timed runs): see rss.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from datasets import FEATURES, Dataset, table
from rss import PeakRss

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SPARK_SUBMIT = str(Path(sys.executable).parent / "spark-submit")
LOGS = HERE / "out" / "logs"

# The plain loop's batch sizes: pyarrow's default Parquet batch (65,536 rows), and CSV blocks of
# 16 MiB (about 80,000 rows here) so that predict is called on batches of similar size.
LOOP_PARQUET_BATCH_ROWS = 65_536
LOOP_CSV_BLOCK_BYTES = 16 << 20
# predict_batch_udf's batch size (the brief: 10,000 rows, Spark's Arrow batch size too).
PBUDF_BATCH_ROWS = 10_000
CSV_DDL = "id BIGINT, " + ", ".join(f"{c} DOUBLE" for c in FEATURES)


@dataclass
class Result:
    case: str
    rows: int | None = None
    times: list[float] = field(default_factory=list)
    warmup_s: float | None = None
    rss: dict[str, Any] = field(default_factory=dict)
    check: tuple[int, float] | None = None  # (rows written, sum of predictions)
    job_runs: list[tuple[int, int]] = field(default_factory=list)  # (model_loads, python_workers)
    notes: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    # spark-submit cases: seconds to subtract from each run (the bare session start)
    subtract_s: float = 0.0

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def net_s(self) -> float | None:
        m = self.median_s
        return None if m is None else m - self.subtract_s

    @property
    def rate(self) -> float | None:
        s = self.net_s
        if not self.rows or s is None or s <= 0:
            return None
        return self.rows / s

    @property
    def spread(self) -> float | None:
        if len(self.times) < 2:
            return None
        return (max(self.times) - min(self.times)) / statistics.median(self.times)


@dataclass
class Timing:
    min_seconds: float
    max_runs: int

    def more(self, times: list[float], min_runs: int) -> bool:
        """Another timed run? Until `min_seconds` of them (`min_runs` to `max_runs` runs)."""
        if len(times) < min_runs:
            return True
        return sum(times) < self.min_seconds and len(times) < self.max_runs


def measure(
    result: Result,
    once: Callable[[PeakRss], None],
    prepare: Callable[[], None],
    *,
    timing: Timing,
    peak: PeakRss,
    warmup: bool = True,
    runs: int | None = None,
    min_runs: int = 1,
    log: Callable[..., None] = print,
) -> Result:
    """Run `once` (warm-up + timed runs) inside `peak`; fill `result` (errors are recorded)."""
    try:
        with peak:
            if warmup:
                prepare()
                t = time.perf_counter()
                once(peak)
                result.warmup_s = time.perf_counter() - t
            while len(result.times) < runs if runs else timing.more(result.times, min_runs):
                prepare()
                t = time.perf_counter()
                once(peak)
                result.times.append(time.perf_counter() - t)
        result.rss = peak.result()
        result.rss["reset_ok"] = peak.reset_ok
    except Exception as e:  # a broken case must not stop the others
        record_error(result, e, log)
    return result


def record_error(result: Result, e: BaseException, log: Callable[..., None] = print) -> None:
    """Keep one line in the result; the whole message goes to bench/out/logs/CASE-error.txt."""
    import traceback

    result.error = short_error(e)
    where = LOGS / f"{result.case}-error.txt"
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text("".join(traceback.format_exception(e)))
    log(f"    ERROR {result.case}: {result.error} (full text: {where})", flush=True)


def short_error(e: BaseException) -> str:
    """One line: the innermost 'SomeError: message' line of (a Python worker's) traceback."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception)\b", line)]
    text = errors[-1] if errors else (lines[-1] if lines else "")
    return f"{type(e).__name__}: {text}"[:240]


def fresh(out: Path) -> Callable[[], None]:
    def prepare() -> None:
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)

    return prepare


def predictions_check(folder: Path) -> tuple[int, float]:
    """(rows, sum of the prediction column) of a Parquet output folder."""
    data = pads.dataset(str(folder), format="parquet").to_table(columns=["prediction"])
    col = data.column("prediction")
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        # spark_udf's default Spark type for a [-1] tensor output: one-element arrays
        col = pc.list_flatten(col)
    total = pc.sum(col.cast(pa.float64())).as_py() if data.num_rows else 0.0
    return data.num_rows, float(total or 0.0)


# ---------------------------------------------------------------------------------------------
# LIMIT: the model's own single-core predict rate


def _estimator(model: Path) -> Any:
    """The raw model, one thread: every `n_jobs` set to 1 (threadpoolctl limits the pools)."""
    import mlflow.lightgbm
    import mlflow.sklearn

    flavor = mlflow.lightgbm if "lightgbm:" in (model / "MLmodel").read_text() else mlflow.sklearn
    estimator = flavor.load_model(str(model))
    jobs = {k: 1 for k in estimator.get_params() if k == "n_jobs" or k.endswith("__n_jobs")}
    if jobs:
        estimator.set_params(**jobs)
    return estimator


def _predict_share(model: Path, rows: int, batch: int, seed: int, barrier: Any, out: Any) -> None:
    """One process of parallel_limit: load, wait for the others, predict `rows` in batches."""
    from threadpoolctl import threadpool_limits

    estimator = _estimator(model)
    frame = table(seed, rows).to_pandas()[FEATURES]
    batches = [frame.iloc[i : i + batch].copy() for i in range(0, len(frame), batch)]
    with threadpool_limits(limits=1):
        estimator.predict(batches[0])
        barrier.wait()
        start = time.time()
        for b in batches:
            estimator.predict(b)
        out.put((start, time.time()))


def parallel_limit(
    model: Path, processes: int, rows: int, batch: int, log: Callable[..., None] = print
) -> dict[str, Any]:
    """The predict limit of `processes` plain processes at once, no Spark: each loads the model
    (one thread) and predicts its share of `rows` in batches of `batch` rows (the job's auto
    batch), all starting together; rows / (last end - first start). Processes predicting at
    once slow each other (shared caches, memory bandwidth): cores x one process's LIMIT does not
    see that, this does."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    share = rows // processes
    procs = [
        ctx.Process(target=_predict_share, args=(model, share, batch, 7 + i, barrier, out))
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    spans = [out.get(timeout=3600) for _ in procs]
    for proc in procs:
        proc.join()
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    rate = share * processes / wall
    log(f"    parallel LIMIT {model.name}: {processes} processes, {rate:,.0f} rows/s", flush=True)
    return {"rate": rate, "processes": processes, "batch": batch}


def limit(model: Path, seconds: float, log: Callable[..., None] = print) -> dict[str, Any]:
    """Best single-thread rows/s of the raw scikit-learn model over batches of 10k/50k/200k rows.

    The estimator is loaded with mlflow.sklearn.load_model (mlflow.lightgbm's for LightGBM),
    every `n_jobs` set to 1 and BLAS / OpenMP pinned to one thread (threadpoolctl); the 200,000
    rows are an in-memory pandas frame,
    sliced into contiguous batches before timing. Per batch size: passes over all rows, repeated
    for at least `seconds` (and 3 passes), median pass rate.
    """
    from threadpoolctl import threadpool_limits

    estimator = _estimator(model)
    frame = table(7, 200_000).to_pandas()[FEATURES]
    rates: dict[int, float] = {}
    with threadpool_limits(limits=1):
        for size in (10_000, 50_000, 200_000):
            batches = [frame.iloc[i : i + size].copy() for i in range(0, len(frame), size)]
            estimator.predict(batches[0])
            passes: list[float] = []
            end = time.perf_counter() + seconds
            while len(passes) < 3 or time.perf_counter() < end:
                t = time.perf_counter()
                for b in batches:
                    estimator.predict(b)
                passes.append(len(frame) / (time.perf_counter() - t))
            rates[size] = statistics.median(passes)
    best = max(rates, key=rates.get)
    log(
        f"    LIMIT {model.name}: "
        + ", ".join(f"{s // 1000}k rows: {r:,.0f}/s" for s, r in rates.items()),
        flush=True,
    )
    return {"rate": rates[best], "batch": best, "by_batch": rates}


# ---------------------------------------------------------------------------------------------
# In-process cases (the benchmark process is the Spark driver)


def job_case(
    result: Result,
    spark: Any,
    model: Path,
    ds: Dataset,
    out: Path,
    *,
    threads: Any = "auto",
    report: bool = False,
    **kw: Any,
) -> Result:
    """sparkscore.score(spark, model, input, out, overwrite=True): default settings, but for
    `threads` where a case compares the thread budget with each library's default, and
    `report: false` unless asked: report.html is a fixed cost per run (0.25 to 0.55 s of charts
    on the driver, bench/profile_cost.py), not per row, and the job figures are rates."""
    import sparkscore

    def once(_peak: PeakRss) -> None:
        summary = sparkscore.score(
            spark,
            str(model),
            str(ds.path),
            str(out),
            overwrite=True,
            threads=threads,
            report=report,
        )
        _job_summary(result, summary, ds)

    measure(result, once, fresh(out), **kw)
    if not result.error:
        result.check = predictions_check(out / "predictions")
    return result


def _job_summary(result: Result, summary: dict[str, Any], ds: Dataset) -> None:
    if summary.get("status") != "succeeded" or summary.get("rows_scored") != ds.rows:
        raise RuntimeError(
            f"job status {summary.get('status')}, rows_scored "
            f"{summary.get('rows_scored')} of {ds.rows}, rows_failed "
            f"{summary.get('rows_failed')}: {summary.get('error')}"
        )
    result.job_runs.append(
        (int(summary.get("model_loads") or 0), int(summary.get("python_workers") or 0))
    )
    result.notes["job_rows_per_s"] = summary.get("rows_per_s")
    result.notes["mini_batches"] = (summary.get("input") or {}).get("mini_batches")


def spark_read(spark: Any, ds: Dataset) -> Any:
    if ds.fmt == "parquet":
        return spark.read.parquet(str(ds.path))
    return spark.read.csv(str(ds.path), header=True, schema=CSV_DDL)


def spark_udf_case(
    result: Result, spark: Any, model: Path, ds: Dataset, out: Path, **kw: Any
) -> Result:
    """mlflow.pyfunc.spark_udf(env_manager="local") over spark.read, predictions + id to Parquet.

    The UDF is made once per case (untimed): each timed run is one read-predict-write action.
    """
    import mlflow.pyfunc

    try:
        udf = mlflow.pyfunc.spark_udf(spark, str(model), env_manager="local")
    except Exception as e:
        record_error(result, e)
        return result

    return _write_with_udf(result, spark, udf, ds, out, **kw)


def _write_with_udf(
    result: Result, spark: Any, udf: Any, ds: Dataset, out: Path, **kw: Any
) -> Result:
    """Time a UDF scoring the dataset and writing predictions + id to Parquet, as the job does."""
    from pyspark.sql import functions as F

    def once(_peak: PeakRss) -> None:
        df = spark_read(spark, ds)
        (
            df.withColumn("prediction", udf(*[F.col(c) for c in FEATURES]))
            .select("id", "prediction")
            .write.mode("overwrite")
            .parquet(str(out))
        )

    measure(result, once, fresh(out), **kw)
    if not result.error:
        result.check = predictions_check(out)
    return result


def sparkscore_udf_case(
    result: Result,
    spark: Any,
    model: Path,
    ds: Dataset,
    out: Path,
    *,
    max_partition_bytes: str | None = None,
    **kw: Any,
) -> Result:
    """sparkscore.spark_udf (defaults: batch_rows and threads auto) over spark.read into
    Spark's `noop` sink: the notebook path, the UDF's own cost with no write.

    `max_partition_bytes`: spark.read's `spark.sql.files.maxPartitionBytes` for this case (Spark's
    128 MB makes 3 partitions of the 16 perf files: on 2 cores the third runs alone)."""
    import sparkscore

    key = "spark.sql.files.maxPartitionBytes"
    before = spark.conf.get(key, None)
    if max_partition_bytes is not None:
        spark.conf.set(key, max_partition_bytes)
    try:
        udf = sparkscore.spark_udf(spark, str(model))
        _noop_with_udf(result, spark, udf, ds, **kw)
        result.notes["partitions"] = spark_read(spark, ds).rdd.getNumPartitions()
        return result
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def mlflow_udf_noop_case(
    result: Result, spark: Any, model: Path, ds: Dataset, out: Path, **kw: Any
) -> Result:
    """mlflow.pyfunc.spark_udf(env_manager="local") over spark.read into the `noop` sink."""
    import mlflow.pyfunc

    udf = mlflow.pyfunc.spark_udf(spark, str(model), env_manager="local")
    return _noop_with_udf(result, spark, udf, ds, **kw)


def udf_bound_case(result: Result, spark: Any, ds: Dataset, **kw: Any) -> Result:
    """The ceiling of any scalar UDF on the notebook path: an Arrow UDF called as the others are,
    with the ten feature columns in one struct, that returns 0.0 for every row without reading
    them, over spark.read into the `noop` sink. What it costs is Spark reading the files and
    carrying the columns to a Python worker and a column back, which no UDF can avoid."""
    from pyspark.sql import functions as F
    from pyspark.sql.functions import arrow_udf

    def constant(structs: Iterator[pa.Array]) -> Iterator[pa.Array]:
        for struct in structs:
            yield pa.array(np.zeros(len(struct)))

    udf = arrow_udf(constant, "double")
    return _noop_with_udf(result, spark, lambda *cols: udf(F.struct(*cols)), ds, **kw)


def _noop_with_udf(result: Result, spark: Any, udf: Any, ds: Dataset, **kw: Any) -> Result:
    from pyspark.sql import functions as F

    def once(_peak: PeakRss) -> None:
        df = spark_read(spark, ds)
        scored = df.withColumn("prediction", udf(*[F.col(c) for c in FEATURES]))
        scored.select("id", "prediction").write.format("noop").mode("overwrite").save()

    measure(result, once, lambda: None, **kw)
    return result


def pbudf_case(
    result: Result, spark: Any, model: Path, ds: Dataset, out: Path, **kw: Any
) -> Result:
    """pyspark.ml.functions.predict_batch_udf, the model loaded once per worker with
    mlflow.pyfunc.load_model, batches of 10,000 rows, predictions + id to Parquet."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import LongType

    path = str(model)
    features = list(FEATURES)

    def make_predict_fn():  # a closure: cloudpickle ships it by value to the workers
        import mlflow.pyfunc
        import pandas as pd

        loaded = mlflow.pyfunc.load_model(path)

        # One parameter per column: predict_batch_udf counts them and passes one 1-D array each.
        def predict(x0, x1, x2, x3, x4, x5, x6, x7, x8, x9):
            columns = (x0, x1, x2, x3, x4, x5, x6, x7, x8, x9)
            return np.asarray(loaded.predict(pd.DataFrame(dict(zip(features, columns)))))

        return predict

    udf = predict_batch_udf(make_predict_fn, return_type=LongType(), batch_size=PBUDF_BATCH_ROWS)

    return _write_with_udf(result, spark, udf, ds, out, **kw)


def loop_case(result: Result, model: Path, ds: Dataset, out: Path, **kw: Any) -> Result:
    """One process, no Spark: pyarrow streams each file, to_pandas, mlflow pyfunc predict, and a
    Parquet file of id + prediction per input file. The model is loaded once (untimed)."""
    import mlflow.pyfunc

    loaded = mlflow.pyfunc.load_model(str(model))
    files = sorted(p for p in ds.path.iterdir() if p.suffix in (".parquet", ".csv"))
    convert = pacsv.ConvertOptions(
        column_types={"id": pa.int64(), **{c: pa.float64() for c in FEATURES}}
    )

    def batches(path: Path):
        if path.suffix == ".parquet":
            yield from pq.ParquetFile(path).iter_batches(batch_size=LOOP_PARQUET_BATCH_ROWS)
        else:
            yield from pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=LOOP_CSV_BLOCK_BYTES),
                convert_options=convert,
            )

    def once(_peak: PeakRss) -> None:
        out.mkdir(parents=True)
        for path in files:
            writer = None
            for batch in batches(path):
                frame = batch.to_pandas()
                prediction = np.asarray(loaded.predict(frame[FEATURES]))
                part = pa.table({"id": batch.column("id"), "prediction": prediction})
                if writer is None:
                    writer = pq.ParquetWriter(out / f"{path.stem}.parquet", part.schema)
                writer.write_table(part)
            if writer is not None:
                writer.close()

    measure(result, once, fresh(out), **kw)
    if not result.error:
        result.check = predictions_check(out)
    return result


def read_case(result: Result, ds: Dataset, **kw: Any) -> Result:
    """One process, one thread, no Spark, no predict: pyarrow reads each file whole, the least
    that scoring these files costs. Its rate times the cores bounds any scorer that reads them
    with pyarrow."""
    files = sorted(p for p in ds.path.iterdir() if p.suffix == ".parquet")

    def once(_peak: PeakRss) -> None:
        # Whole bytes then parse: 0.3 ms a 100-row file here, against 0.5 for ParquetFile(path).
        rows = sum(
            pq.ParquetFile(pa.BufferReader(path.read_bytes())).read(use_threads=False).num_rows
            for path in files
        )
        assert rows == ds.rows, (rows, ds.rows)

    return measure(result, once, lambda: None, **kw)


# ---------------------------------------------------------------------------------------------
# spark-submit cases (a new JVM and Python driver per run)


def submit_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    return env


def spark_submit(args: list[str], log_file: Path, peak: PeakRss) -> None:
    """Run spark-submit --master local[*] ARGS from the repository root; raise on failure."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w") as logf:
        proc = subprocess.Popen(
            [SPARK_SUBMIT, "--master", "local[*]", *args],
            cwd=REPO,
            env=submit_env(),
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        peak.add_root(proc.pid)
        code = proc.wait()
    if code != 0:
        text = log_file.read_text(errors="replace").splitlines()
        lines = [line.strip() for line in text if line.strip()]
        errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception)\b", line)]
        last = lines[-1] if lines else ""
        cause = f" ({errors[-1]})" if errors and errors[-1] not in last else ""
        raise RuntimeError(f"spark-submit exited {code}: {last}{cause} (log: {log_file})")


def bare_session_case(result: Result, logs: Path, **kw: Any) -> Result:
    """spark-submit of bench/bare_session.py: a SparkSession and spark.range(1).count()."""
    counter = iter(range(10_000))

    def once(peak: PeakRss) -> None:
        spark_submit(
            [str(HERE / "bare_session.py")], logs / f"{result.case}-{next(counter)}.log", peak
        )

    return measure(result, once, lambda: None, **kw)


def submit_case(
    result: Result,
    model: Path,
    ds: Dataset,
    out: Path,
    logs: Path,
    session_s: float | None,
    **kw: Any,
) -> Result:
    """spark-submit jobs/score.py --model M --input I --output O --set overwrite=true."""
    counter = iter(range(10_000))
    result.subtract_s = session_s or 0.0

    def once(peak: PeakRss) -> None:
        spark_submit(
            [
                "jobs/score.py",
                "--model",
                str(model),
                "--input",
                str(ds.path),
                "--output",
                str(out),
                "--set",
                "overwrite=true",
            ],
            logs / f"{result.case}-{next(counter)}.log",
            peak,
        )
        summary = json.loads((out / "_summary.json").read_text())
        _job_summary(result, summary, ds)

    measure(result, once, fresh(out), **kw)
    if not result.error:
        result.check = predictions_check(out / "predictions")
        result.notes["e2e_rows_per_s"] = ds.rows / result.median_s
    return result


def fixed_case(
    result: Result, model: Path, ds: Dataset, out: Path, logs: Path, **kw: Any
) -> Result:
    """Figure 7 in pairs: each run is a bare spark-submit session start followed by the job on a
    tiny input, so load that drifts during the bench touches both sides of each difference.

    `times` are the job's end-to-end seconds; notes["pairs"] holds (bare, job) per timed run.
    """
    counter = iter(range(10_000))
    pairs: list[tuple[float, float]] = []

    def once(peak: PeakRss) -> None:
        i = next(counter)
        t = time.perf_counter()
        spark_submit([str(HERE / "bare_session.py")], logs / f"{result.case}-bare-{i}.log", peak)
        bare = time.perf_counter() - t
        fresh(out)()
        t = time.perf_counter()
        spark_submit(
            [
                "jobs/score.py",
                "--model",
                str(model),
                "--input",
                str(ds.path),
                "--output",
                str(out),
                "--set",
                "overwrite=true",
            ],
            logs / f"{result.case}-{i}.log",
            peak,
        )
        job = time.perf_counter() - t
        _job_summary(result, json.loads((out / "_summary.json").read_text()), ds)
        pairs.append((bare, job))

    measure(result, once, lambda: None, **kw)
    if not result.error:
        timed = pairs[1:] if kw.get("warmup", True) else pairs
        result.times = [job for _, job in timed]
        result.notes["pairs"] = timed
        result.notes["extra_s"] = statistics.median(job - bare for bare, job in timed)
        result.notes["bare_s"] = statistics.median(bare for bare, _ in timed)
        result.check = predictions_check(out / "predictions")
    return result
