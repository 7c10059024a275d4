from __future__ import annotations

import numpy as np
import pytest
from model_zoo import counting_copy, lr_frame, mixed_frame
from pyspark.errors import PythonException
from pyspark.sql import functions as F
from pyspark.sql import types as T

import sparkscore


def mlflow_predict(path, data, params=None):
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(path)).predict(data, params=params)


def test_udf_return_type_comes_from_signature(spark, zoo):
    df = spark.createDataFrame(lr_frame(6))
    cases = {
        zoo.lr_skops: T.LongType(),
        zoo.lr_proba: T.ArrayType(T.DoubleType()),
        zoo.python_model: T.StructType(
            [
                T.StructField("doubled", T.DoubleType()),
                T.StructField("label", T.StringType()),
            ]
        ),
        zoo.regressor_nosig: T.DoubleType(),
    }
    for path, expected in cases.items():
        out = df.withColumn("prediction", sparkscore.spark_udf(spark, path)("a", "b"))
        assert out.schema["prediction"].dataType == expected, path


def test_udf_values_equal_mlflow_for_each_way_of_passing_columns(spark, zoo):
    X = lr_frame()
    df = spark.createDataFrame(X.assign(id=range(len(X))))
    predict = sparkscore.spark_udf(spark, zoo.lr_skops)
    expected = mlflow_predict(zoo.lr_skops, X).tolist()
    by_name = df.withColumn("p", predict("a", "b")).orderBy("id")
    by_column = df.withColumn("p", predict(df.b, df.a)).orderBy("id")
    by_struct = df.withColumn("p", predict(F.struct("a", "b"))).orderBy("id")
    no_cols = df.withColumn("p", predict()).orderBy("id")
    for out in (by_name, by_column, by_struct, no_cols):
        assert [r.p for r in out.collect()] == expected


def test_udf_pipeline_strings_and_struct_output_equal_mlflow(spark, zoo):
    X = mixed_frame()
    df = spark.createDataFrame(X.assign(id=range(len(X))))
    labels = df.withColumn("p", sparkscore.spark_udf(spark, zoo.pipeline)()).orderBy("id")
    assert [r.p for r in labels.collect()] == mlflow_predict(zoo.pipeline, X).tolist()

    Y = lr_frame()
    ydf = spark.createDataFrame(Y.assign(id=range(len(Y))))
    out = ydf.withColumn("p", sparkscore.spark_udf(spark, zoo.python_model)()).orderBy("id")
    theirs = mlflow_predict(zoo.python_model, Y)
    assert [(r.p.doubled, r.p.label) for r in out.collect()] == list(
        zip(theirs["doubled"], theirs["label"])
    )


def test_udf_predict_proba_rows_are_arrays(spark, zoo):
    X = lr_frame(8)
    df = spark.createDataFrame(X.assign(id=range(len(X))))
    out = df.withColumn("p", sparkscore.spark_udf(spark, zoo.lr_proba)()).orderBy("id")
    np.testing.assert_array_equal(
        np.array([r.p for r in out.collect()]), mlflow_predict(zoo.lr_proba, X)
    )


def test_udf_passes_params_and_result_type(spark, zoo):
    X = lr_frame(5)
    df = spark.createDataFrame(X.assign(id=range(len(X))))
    predict = sparkscore.spark_udf(spark, zoo.param_model, params={"scale": 10})
    out = df.withColumn("p", predict()).orderBy("id")
    assert [r.p for r in out.collect()] == (X["a"] * 10).tolist()
    as_string = sparkscore.spark_udf(spark, zoo.lr_skops, result_type="string")
    out = df.withColumn("p", as_string()).orderBy("id")
    assert out.schema["p"].dataType == T.StringType()
    assert [r.p for r in out.collect()] == [str(v) for v in mlflow_predict(zoo.lr_skops, X)]


def test_udf_enforcement_error_keeps_column_and_value(spark, zoo):
    df = spark.createDataFrame([("1.5", 1), ("abc", 2)], ["a", "b"])
    with pytest.raises(PythonException) as err:
        df.withColumn("p", sparkscore.spark_udf(spark, zoo.lr_skops)()).collect()
    assert (
        "SchemaEnforcementError: column 'a' has value 'abc', which cannot be converted safely to "
        "double." in str(err.value)
    )


def test_udf_loads_model_once_per_python_worker(spark, zoo, tmp_path):
    log = tmp_path / "loads.txt"
    model = counting_copy(zoo.custom_flavor, tmp_path, log)
    X = lr_frame(400)
    df = spark.createDataFrame(X).repartition(8)
    out = df.withColumn("p", sparkscore.spark_udf(spark, model)())
    assert out.count() == 400
    out = df.withColumn("p", sparkscore.spark_udf(spark, model)("a", "b"))
    values = sorted(r.p for r in out.collect())
    np.testing.assert_allclose(values, sorted(X["a"] * 3.0 + X["b"]))
    pids = log.read_text().split()
    # 16 tasks over local[2]: usually two workers, a third when a task starts before a busy
    # machine hands a finished worker back; never one load per task, never two in one worker.
    assert 1 <= len(pids) <= 4, pids
    assert len(pids) == len(set(pids)), "a worker process loaded the model more than once"


# ---------------------------------------------------------------------------------------------
# Images: a binary column of encoded files (Spark's binaryFile source) or an array column


def pillow_arrays(paths) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(p)) for p in paths])


def test_udf_scores_binary_file_images_as_the_job_does_equal_mlflow(spark, zoo, tmp_path):
    from model_zoo import digit_images, write_pngs

    paths = write_pngs(tmp_path / "in", digit_images(12))
    df = spark.read.format("binaryFile").load(str(tmp_path / "in"))
    scores = sparkscore.spark_udf(spark, zoo.digit_scores)
    labels = sparkscore.spark_udf(spark, zoo.digit_labels)
    out = df.select("path", scores("content").alias("scores"), labels(df.content).alias("label"))
    assert out.schema["scores"].dataType == T.ArrayType(T.FloatType())
    assert out.schema["label"].dataType == T.StringType()
    rows = out.orderBy("path").collect()

    pixels = pillow_arrays(paths)
    assert [r.path.rsplit("/", 1)[1] for r in rows] == [p.name for p in paths]
    assert [r.scores for r in rows] == mlflow_predict(
        zoo.digit_scores, pixels.astype(np.float32)
    ).tolist()
    assert [r.label for r in rows] == list(mlflow_predict(zoo.digit_labels, pixels.reshape(12, 64)))


def test_udf_scores_array_columns_with_the_same_reshape_rules(spark, zoo):
    from model_zoo import digit_images

    digits = digit_images(6)
    df = spark.createDataFrame(
        [(i, d.tolist(), d.reshape(64).tolist()) for i, d in enumerate(digits)],
        "id long, nested array<array<int>>, flat array<int>",
    )
    predict = sparkscore.spark_udf(spark, zoo.digit_labels)
    rows = (
        df.select("id", predict("nested").alias("a"), predict("flat").alias("b"))
        .orderBy("id")
        .collect()
    )
    want = list(mlflow_predict(zoo.digit_labels, digits.reshape(6, 64)))
    assert [r.a for r in rows] == want
    assert [r.b for r in rows] == want
    assert want[:3] == ["zero", "one", "two"]


def test_udf_images_of_several_sizes_each_get_their_own_shape(spark, zoo, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(5)
    folder = tmp_path / "sizes"
    folder.mkdir()
    sizes = [(4, 6), (5, 5), (4, 6), (3, 9)]
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    df = spark.read.format("binaryFile").load(str(folder)).coalesce(1)
    rows = (
        df.select("path", sparkscore.spark_udf(spark, zoo.channel_means)("content").alias("m"))
        .orderBy("path")
        .collect()
    )
    want = [
        mlflow_predict(zoo.channel_means, pillow_arrays([folder / f"{i}.png"]))[0].tolist()
        for i in range(len(sizes))
    ]
    assert [r.m for r in rows] == want


def test_udf_corrupt_image_names_the_column(spark, zoo, tmp_path):
    from model_zoo import digit_images, write_pngs

    write_pngs(tmp_path / "in", digit_images(2))
    (tmp_path / "in" / "junk.png").write_bytes(b"not an image")
    df = spark.read.format("binaryFile").load(str(tmp_path / "in"))
    with pytest.raises(PythonException) as err:
        df.select(sparkscore.spark_udf(spark, zoo.digit_labels)("content")).collect()
    assert (
        "ReadError: column 'content': a value is not a readable image: Pillow recognizes no "
        "image format in it." in str(err.value)
    )


def call_size_model(where):
    """A hand-written flavor whose prediction is the number of rows its predict call got."""
    import textwrap

    path = where / "call_size_model"
    (path / "code").mkdir(parents=True)
    (path / "code" / "call_size.py").write_text(
        textwrap.dedent("""
        import numpy as np


        class CallSize:
            def predict(self, data):
                return np.full(len(data), len(data), dtype=np.int64)


        def _load_pyfunc(path):
            return CallSize()
        """)
    )
    (path / "MLmodel").write_text(
        textwrap.dedent("""
        flavors:
          python_function:
            loader_module: call_size
            code: code
        signature:
          inputs: '[{"type": "double", "name": "a"}]'
          outputs: '[{"type": "long"}]'
        """)
    )
    return path


def test_udf_gathers_sparks_arrow_batches_into_predict_calls_of_batch_rows(spark, tmp_path):
    # Spark hands the UDF 5-row Arrow batches here; predict sees batch_rows rows at a time
    # (auto: all 100, far under 32 MiB), and every row still gets its own call's answer.
    model = call_size_model(tmp_path)
    df = spark.range(100).select(F.col("id").cast("double").alias("a")).coalesce(1)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "5")
    try:
        sizes = {
            rows: [
                r.p
                for r in df.withColumn(
                    "p", sparkscore.spark_udf(spark, model, batch_rows=rows)("a")
                )
                .orderBy("a")
                .collect()
            ]
            for rows in (40, "auto")
        }
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    assert sizes == {40: [40] * 80 + [20] * 20, "auto": [100] * 100}


def echo_model(where):
    """A hand-written flavor that spells out each row's datetime and map as the model got them."""
    import textwrap

    path = where / "echo_model"
    (path / "code").mkdir(parents=True)
    (path / "code" / "echo.py").write_text(
        textwrap.dedent("""
        class Echo:
            def predict(self, data):
                return [
                    f"{t.isoformat()} {type(t).__name__} {sorted(m.items())}"
                    for t, m in zip(data["t"], data["m"])
                ]


        def _load_pyfunc(path):
            return Echo()
        """)
    )
    (path / "MLmodel").write_text(
        textwrap.dedent("""
        flavors:
          python_function:
            loader_module: echo
            code: code
        signature:
          inputs: '[{"type": "datetime", "name": "t"},
                    {"type": "map", "values": {"type": "double"}, "name": "m"}]'
          outputs: '[{"type": "string"}]'
        """)
    )
    return path


def test_udf_gives_timestamps_as_naive_wall_clock_and_maps_as_dicts(spark, tmp_path):
    # Arrow carries a Spark timestamp with the session's time zone; the model gets the naive
    # wall-clock time, as from a pandas UDF and mlflow, and a map column as dicts.
    import datetime as dt

    df = spark.createDataFrame(
        [(1, dt.datetime(2024, 3, 1, 12, 30, 5), {"x": 1.5}), (2, dt.datetime(1999, 12, 31), {})],
        "id long, t timestamp, m map<string, double>",
    )
    predict = sparkscore.spark_udf(spark, echo_model(tmp_path))
    assert [r.p for r in df.withColumn("p", predict()).orderBy("id").collect()] == [
        "2024-03-01T12:30:05 Timestamp [('x', 1.5)]",
        "1999-12-31T00:00:00 Timestamp []",
    ]
