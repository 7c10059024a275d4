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
        zoo.python_model: T.StructType([
            T.StructField("doubled", T.DoubleType()), T.StructField("label", T.StringType()),
        ]),
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
    assert 1 <= len(pids) <= 2, pids
    assert len(pids) == len(set(pids)), "a worker process loaded the model more than once"
