"""Spark MLlib models saved by mlflow.spark, scored in the JVM: the batch job (with lineage,
errors, resume) and sparkscore.transform give exactly what PipelineModel.transform gives on the
same rows; spark_udf refuses them, pointing to transform."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline_zoo import features, save_pipelines, transformed

import sparkscore

pytest.importorskip(
    "mlflow", reason="models are saved by mlflow.spark: pip install 'sparkscore[mlflow]'"
)

GOOD = {"one.csv": features(6, seed=1), "two.parquet": features(5, seed=2)}
BAD = features(4, seed=3).astype({"a": object})
BAD.loc[1, "a"] = "oops"


@pytest.fixture(scope="module")
def pipelines(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_pipelines(spark, tmp_path_factory.mktemp("pipelines"))


def write_inputs(folder: Path, files: dict[str, pd.DataFrame]) -> Path:
    folder.mkdir()
    for name, df in files.items():
        if name.endswith(".csv"):
            df.to_csv(folder / name, index=False)
        else:
            pq.write_table(pa.Table.from_pandas(df, preserve_index=False), folder / name)
    return folder


def scored(out: Path) -> list[dict[str, Any]]:
    rows = pq.read_table(out / "predictions").to_pylist()
    return sorted(rows, key=lambda r: (r["file_name"], r["row"]))


def expected(spark: Any, model: Path, files: dict[str, pd.DataFrame], value: str) -> list[dict]:
    rows = []
    for name in sorted(files):
        predicted = transformed(spark, model, files[name][["a", "b"]])
        for i, (p, id_) in enumerate(zip(predicted, files[name]["id"])):
            rows.append(
                {
                    "file_name": name,
                    "row": i,
                    "prediction": p["prediction"] if value == "prediction" else p,
                    "id": int(id_),
                }
            )
    return rows


def test_job_scores_a_pipeline_as_it_transforms_and_records_a_wrong_type_per_row(
    spark: Any, pipelines: dict[str, Path], tmp_path: Path
) -> None:
    data = write_inputs(tmp_path / "in", {**GOOD, "bad.csv": BAD})
    out = tmp_path / "out"
    summary = sparkscore.score(
        spark, pipelines["signed"], data, out, passthrough_columns=["id"], mini_batch_size=1
    )
    assert scored(out) == expected(spark, pipelines["signed"], GOOD, "prediction")
    assert pq.read_table(out / "errors").to_pylist() == [
        {
            "file_name": "bad.csv",
            "row": 1,
            "stage": "validate",
            "error_type": "SchemaEnforcementError",
            "message": "bad.csv, row 1: column 'a' has value 'oops', which cannot be converted "
            "safely to double.",
        }
    ]
    assert {k: summary[k] for k in ("status", "files_failed", "rows_scored", "rows_failed")} == {
        "status": "succeeded",
        "files_failed": 1,
        "rows_scored": 11,
        "rows_failed": 4,
    }
    assert summary["model"]["flavor"] == "spark"


def test_job_writes_the_probability_as_an_array_when_asked(
    spark: Any, pipelines: dict[str, Path], tmp_path: Path
) -> None:
    data = write_inputs(tmp_path / "in", GOOD)
    out = tmp_path / "out"
    sparkscore.score(
        spark,
        pipelines["unsigned"],
        data,
        out,
        passthrough_columns=["id"],
        overrides=["spark_output_columns=[prediction, probability]"],
    )
    assert pq.read_schema(out / "predictions" / "part-00000.parquet").field(
        "prediction"
    ).type == pa.struct(
        [("prediction", pa.float64()), ("probability", pa.list_(pa.field("element", pa.float64())))]
    )
    assert scored(out) == expected(spark, pipelines["unsigned"], GOOD, "both")


def test_job_resume_scores_only_the_mini_batches_a_killed_run_left(
    spark: Any, pipelines: dict[str, Path], tmp_path: Path
) -> None:
    data = write_inputs(tmp_path / "in", GOOD)
    out = tmp_path / "out"
    sparkscore.score(spark, pipelines["signed"], data, out, mini_batch_size=1)
    # As a kill leaves it: the first mini-batch committed, no later manifest, no summary.
    (out / "_manifest" / "batch-00001.json").unlink()
    (out / "_summary.json").unlink()
    summary = sparkscore.score(
        spark, pipelines["signed"], data, out, mini_batch_size=1, resume=True
    )
    assert (summary["files_skipped"], summary["rows_scored"]) == (1, 11)
    want = expected(spark, pipelines["signed"], GOOD, "prediction")
    assert scored(out) == [{k: v for k, v in r.items() if k != "id"} for r in want]


def test_transform_holds_a_dataframe_to_the_signature_and_adds_the_columns_asked(
    spark: Any, pipelines: dict[str, Path]
) -> None:
    df = features(5, seed=4)
    got = sparkscore.transform(
        spark,
        pipelines["signed"],
        spark.createDataFrame(df),
        output_columns=["prediction", "probability"],
    )
    assert got.columns == ["a", "b", "id", "prediction", "probability"]
    want = transformed(spark, pipelines["signed"], df[["a", "b"]])
    assert [r.asDict() for r in got.collect()] == [
        {"a": a, "b": b, "id": i, **p} for a, b, i, p in zip(df["a"], df["b"], df["id"], want)
    ]
    text = spark.createDataFrame(pd.DataFrame({"a": ["0.5", "x"], "b": [1.0, 2.0]}))
    with pytest.raises(Exception) as info:
        sparkscore.transform(spark, pipelines["signed"], text).collect()
    assert "column 'a' has value 'x', which cannot be converted safely to double" in str(info.value)


def test_spark_udf_refuses_a_pipeline_and_points_to_transform(
    spark: Any, pipelines: dict[str, Path]
) -> None:
    with pytest.raises(sparkscore.SparkPipelineError) as info:
        sparkscore.spark_udf(spark, pipelines["signed"])
    assert str(info.value) == (
        f"{pipelines['signed']}: is a Spark MLlib model (the spark flavor): its PipelineModel "
        "runs in Spark's JVM, which a Python UDF cannot call; score a DataFrame with "
        "sparkscore.transform(spark, model_uri, df) instead."
    )


def test_job_refuses_settings_a_pipeline_cannot_take_before_scoring(
    spark: Any, pipelines: dict[str, Path], zoo: Any, tmp_path: Path
) -> None:
    data = write_inputs(tmp_path / "in", GOOD)
    with pytest.raises(sparkscore.SettingsError) as info:
        sparkscore.score(spark, pipelines["signed"], data, tmp_path / "a", env_manager="uv")
    assert str(info.value).startswith(
        "env_manager must be local for a Spark MLlib model, which runs in Spark's JVM, not in "
        "a Python environment"
    )
    with pytest.raises(sparkscore.SettingsError) as info:
        sparkscore.score(
            spark, zoo.lr_skops, data, tmp_path / "b", spark_output_columns=["probability"]
        )
    assert str(info.value).startswith(
        "spark_output_columns applies to Spark MLlib models (the spark flavor) only; this "
        "model's flavor is sklearn"
    )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
