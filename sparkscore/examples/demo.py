"""`make demo`: show what the job wrote, then the same model as a notebook UDF.

The Makefile first runs the job with spark-submit into out/demo; this prints its summary, its
first predictions and where its report is, then scores one sample file through
`sparkscore.spark_udf`.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).parent / "diabetes"


def main(out: str = "out/demo") -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    summary = json.loads(Path(out, "_summary.json").read_text())
    keys = [
        "status",
        "files_total",
        "files_succeeded",
        "files_failed",
        "rows_scored",
        "rows_failed",
        "duration_s",
        "rows_per_s",
        "model_loads",
    ]
    print("== the job's _summary.json (excerpt) ==")
    print(json.dumps({k: summary[k] for k in keys}, indent=2))
    table = pq.read_table(Path(out, "predictions")).sort_by(
        [("file_name", "ascending"), ("row", "ascending")]
    )
    print(f"== {out}/predictions: {table.num_rows} rows, schema {table.schema.to_string()!r} ==")
    print(table.slice(0, 5).to_pandas().to_string(index=False))
    print(f"== the report: {out}/report.html (open it in a browser; `sparkscore show {out}`) ==")

    from pyspark.sql import SparkSession

    import sparkscore
    from sparkscore.session import QUIET_LOG4J

    spark = (
        SparkSession.builder.master("local[*]")
        .appName("sparkscore-demo")
        .config("spark.ui.showConsoleProgress", "false")
        # Spark's own start-up lines off, as the job has them: only the demo's lines show.
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{QUIET_LOG4J}")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    predict = sparkscore.spark_udf(spark, str(HERE / "model"))
    df = spark.read.csv(str(HERE / "input" / "visits-2024-01.csv"), header=True, inferSchema=True)
    scored = df.withColumn("prediction", predict()).select("patient_id", "prediction")
    print(f"== spark_udf: prediction column type {scored.schema['prediction'].dataType} ==")
    scored.show(5)
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
