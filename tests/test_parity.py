"""Inputs `predict` accepts or refuses as `mlflow.pyfunc.load_model(...).predict` does.

Each case saves a tiny model with the real mlflow, feeds the same input to both libraries and
compares what the model received (the model echoes its input) or the error. Cases rewritten from
mlflow's `tests/pyfunc/test_pyfunc_schema_enforcement.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from model_zoo import lr_frame

from sparkscore import load_model
from sparkscore.errors import ParamError, SchemaEnforcementError

mlflow = pytest.importorskip("mlflow")
from mlflow.models import ModelSignature  # noqa: E402
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec  # noqa: E402
from mlflow.types.schema import Array, Map, Object, Property  # noqa: E402

# The models below are pickled with their classes, so Spark's workers need not import this file.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class _Echo(mlflow.pyfunc.PythonModel):
    """Returns what it was given, so a test sees the input after enforcement."""

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return {"input": model_input, "params": params}


def _save(where: Path, inputs: Schema, params: ParamSchema | None = None) -> Path:
    path = where / "echo"
    mlflow.pyfunc.save_model(
        str(path),
        python_model=_Echo(),
        signature=ModelSignature(inputs=inputs, params=params),
        pip_requirements=["mlflow"],
    )
    return path


def _both(path: Path, data: Any, params: dict[str, Any] | None = None) -> tuple[Any, Any]:
    ours = load_model(path, trust_model=True).predict(data, params)
    theirs = mlflow.pyfunc.load_model(str(path)).predict(data, params)
    return ours["input"], theirs["input"]


def _same_frame(ours: Any, theirs: Any) -> None:
    assert isinstance(ours, pd.DataFrame) and isinstance(theirs, pd.DataFrame)
    assert list(ours.columns) == list(theirs.columns)
    assert [str(t) for t in ours.dtypes] == [str(t) for t in theirs.dtypes]
    pd.testing.assert_frame_equal(ours, theirs)


NAMED = Schema([ColSpec("long", "a"), ColSpec("string", "b")])
UNNAMED = Schema([ColSpec("double"), ColSpec("double"), ColSpec("double")])


def test_a_list_of_rows_feeds_an_unnamed_column_signature(tmp_path: Path) -> None:
    ours, theirs = _both(_save(tmp_path, UNNAMED), [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    _same_frame(ours, theirs)
    assert ours.to_numpy().tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


def test_a_list_of_records_feeds_a_named_column_signature(tmp_path: Path) -> None:
    ours, theirs = _both(_save(tmp_path, NAMED), [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])
    _same_frame(ours, theirs)
    assert ours.to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}


def test_a_dict_of_scalars_is_one_row(tmp_path: Path) -> None:
    ours, theirs = _both(_save(tmp_path, NAMED), {"a": 1, "b": "long string"})
    _same_frame(ours, theirs)
    assert ours.to_dict("list") == {"a": [1], "b": ["long string"]}


def test_dict_entries_the_schema_does_not_name_are_dropped(tmp_path: Path) -> None:
    data = {"a": np.array([1, 2]), "b": np.array(["x", "y"]), "extra": np.zeros((2, 2))}
    ours, theirs = _both(_save(tmp_path, NAMED), data)
    _same_frame(ours, theirs)
    assert list(ours.columns) == ["a", "b"]


def test_a_bare_array_for_a_named_signature_is_refused_naming_the_missing_inputs(
    tmp_path: Path,
) -> None:
    schema = Schema([ColSpec("double", f"x{i}") for i in range(8)])
    path = _save(tmp_path, schema)
    with pytest.raises(mlflow.exceptions.MlflowException):
        mlflow.pyfunc.load_model(str(path)).predict(np.ones((1, 9)))
    with pytest.raises(SchemaEnforcementError) as caught:
        load_model(path, trust_model=True).predict(np.ones((1, 9)))
    assert "x0" in str(caught.value) and "x7" in str(caught.value)


def test_params_that_are_not_a_dict_are_a_param_error(tmp_path: Path) -> None:
    params = ParamSchema([ParamSpec("k", "long", 1)])
    path = _save(tmp_path, NAMED, params)
    with pytest.raises(ParamError) as caught:
        load_model(path, trust_model=True).predict({"a": 1, "b": "x"}, params=[("k", 2)])
    assert str(caught.value) == (
        "Parameter 'params': params must be a dict of parameter names to values, got list."
    )


def test_an_unnamed_signature_labels_array_columns_with_integers(tmp_path: Path) -> None:
    ours, theirs = _both(_save(tmp_path, UNNAMED), np.ones((2, 3)))
    _same_frame(ours, theirs)
    assert list(ours.columns) == [0, 1, 2]


def test_python_booleans_declared_boolean_become_bool(tmp_path: Path) -> None:
    schema = Schema([ColSpec("boolean", "flag")])
    data = pd.DataFrame({"flag": pd.Series([True, False, True], dtype=object)})
    ours, theirs = _both(_save(tmp_path, schema), data)
    _same_frame(ours, theirs)
    assert ours["flag"].dtype == np.dtype(bool)


def test_one_named_tensor_fed_a_bare_array_is_handed_over_by_name(tmp_path: Path) -> None:
    schema = Schema([TensorSpec(np.dtype(np.float32), (-1, 2), "pixels")])
    data = np.ones((3, 2), dtype=np.float32)
    ours, theirs = _both(_save(tmp_path, schema), data)
    assert isinstance(theirs, dict) and list(theirs) == ["pixels"]
    assert isinstance(ours, dict) and list(ours) == ["pixels"]
    np.testing.assert_array_equal(ours["pixels"], theirs["pixels"])


ARRAY = Schema([ColSpec(Array("string"), "tags")])
OBJECT = Schema([ColSpec(Object([Property("name", "string"), Property("age", "long")]), "who")])
MAP = Schema([ColSpec(Map("double"), "weights")])


@pytest.mark.parametrize(
    ("schema", "good", "bad", "column"),
    [
        (ARRAY, {"tags": [["a", "b"], ["c"]]}, {"tags": [["a"], [1, 2]]}, "tags"),
        (OBJECT, {"who": [{"name": "ann", "age": 3}]}, {"who": [{"name": "ann"}]}, "who"),
        (MAP, {"weights": [{"x": 1.5}]}, {"weights": [{"x": "heavy"}]}, "weights"),
    ],
    ids=["array", "object", "map"],
)
def test_array_object_and_map_columns_are_enforced(
    tmp_path: Path, schema: Schema, good: dict[str, Any], bad: dict[str, Any], column: str
) -> None:
    path = _save(tmp_path, schema)
    ours, theirs = _both(path, pd.DataFrame(good))
    assert ours[column].tolist() == theirs[column].tolist()
    with pytest.raises(mlflow.exceptions.MlflowException):
        mlflow.pyfunc.load_model(str(path)).predict(pd.DataFrame(bad))
    with pytest.raises(SchemaEnforcementError) as caught:
        load_model(path, trust_model=True).predict(pd.DataFrame(bad))
    assert caught.value.column == column and caught.value.row is not None


def test_a_datetime_param_accepts_numpy_datetime64(tmp_path: Path) -> None:
    when = np.datetime64("2023-06-26T00:00:00")
    params = ParamSchema([ParamSpec("when", "datetime", when)])
    path = _save(tmp_path, NAMED, params)
    data = pd.DataFrame({"a": [1], "b": ["x"]})
    ours = load_model(path, trust_model=True).predict(data, {"when": when})["params"]
    theirs = mlflow.pyfunc.load_model(str(path)).predict(data, {"when": when})["params"]
    assert ours["when"] == theirs["when"]


# spark_udf: return types and calls, against mlflow.pyfunc.spark_udf on the same DataFrame.


class _Tiles(mlflow.pyfunc.PythonModel):
    """Row i's prediction is `shape` filled with i (one tensor) or fixed tensors by name."""

    def __init__(self, shape: tuple[int, ...] | None) -> None:
        self.shape = shape

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        n = len(model_input)
        if self.shape is None:
            return {"x": np.ones((n, 2), dtype=np.int64), "y": np.full((n, 2, 3), 0.5)}
        rows = np.arange(n, dtype=np.int64).reshape((-1,) + (1,) * len(self.shape))
        return np.ones((n, *self.shape), dtype=np.int64) * rows


@pytest.mark.parametrize(
    ("shape", "outputs", "spark_type"),
    [
        ((2,), [TensorSpec(np.dtype(np.int64), (2,))], "array<bigint>"),
        ((2, 3), [TensorSpec(np.dtype(np.int64), (2, 3))], "array<array<bigint>>"),
        (
            None,
            [
                TensorSpec(np.dtype(np.int64), (2,), "x"),
                TensorSpec(np.dtype(np.float64), (2, 3), "y"),
            ],
            "struct<x:array<bigint>,y:array<array<double>>>",
        ),
    ],
    ids=["2", "2x3", "struct"],
)
def test_a_fixed_first_tensor_dimension_is_part_of_each_row(
    spark: Any,
    tmp_path: Path,
    shape: tuple[int, ...] | None,
    outputs: list[TensorSpec],
    spark_type: str,
) -> None:
    import sparkscore

    path = tmp_path / "tiles"
    mlflow.pyfunc.save_model(
        str(path),
        python_model=_Tiles(shape),
        signature=ModelSignature(inputs=NAMED, outputs=Schema(outputs)),
        pip_requirements=["mlflow"],
    )
    df = spark.createDataFrame(pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}))
    ours = df.select(sparkscore.spark_udf(spark, path)("a", "b").alias("p"))
    theirs = df.select(mlflow.pyfunc.spark_udf(spark, str(path))("a", "b").alias("p"))
    assert ours.schema["p"].dataType.simpleString() == spark_type
    assert theirs.schema["p"].dataType.simpleString() == spark_type
    assert [r.p for r in ours.collect()] == [r.p for r in theirs.collect()]


class _Positive(mlflow.pyfunc.PythonModel):
    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return (model_input["a"] > 0).to_numpy()


def test_result_type_takes_mlflows_bool_alias(spark: Any, tmp_path: Path) -> None:
    import sparkscore

    path = tmp_path / "positive"
    mlflow.pyfunc.save_model(
        str(path),
        python_model=_Positive(),
        signature=ModelSignature(inputs=NAMED),
        pip_requirements=["mlflow"],
    )
    df = spark.createDataFrame(pd.DataFrame({"a": [-1, 0, 3], "b": ["x", "y", "z"]}))
    ours = df.select(sparkscore.spark_udf(spark, path, "bool")("a", "b").alias("p"))
    theirs = df.select(mlflow.pyfunc.spark_udf(spark, str(path), "bool")("a", "b").alias("p"))
    assert ours.schema["p"].dataType.simpleString() == "boolean"
    assert [r.p for r in ours.collect()] == [r.p for r in theirs.collect()] == [False, False, True]


class _Columns(mlflow.pyfunc.PythonModel):
    """Each row's prediction names the columns the model was given."""

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return [",".join(map(str, model_input.columns))] * len(model_input)


def _columns_model(where: Path, inputs: Schema) -> Path:
    path = where / "columns"
    mlflow.pyfunc.save_model(
        str(path),
        python_model=_Columns(),
        signature=ModelSignature(inputs=inputs, outputs=Schema([ColSpec("string")])),
        pip_requirements=["mlflow"],
    )
    return path


def test_a_call_with_no_columns_uses_the_optional_columns_the_dataframe_has(
    spark: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sparkscore

    inputs = Schema([ColSpec("long", "a"), ColSpec("string", "b", required=False)])
    predict = sparkscore.spark_udf(spark, _columns_model(tmp_path, inputs))
    both = spark.createDataFrame(pd.DataFrame({"z": [0], "b": ["x"], "a": [1]}))
    only_a = spark.createDataFrame(pd.DataFrame({"a": [1, 2], "z": [0, 0]}))
    assert [r.p for r in both.select(predict().alias("p")).collect()] == ["a,b"]
    assert [r.p for r in only_a.select(predict().alias("p")).collect()] == ["a", "a"]
    no_a = spark.createDataFrame(pd.DataFrame({"b": ["x"]}))
    with pytest.raises(Exception, match="the input is missing the column 'a'"):
        no_a.select(predict()).collect()


def test_a_call_with_no_columns_on_an_unnamed_signature_is_refused(
    spark: Any, tmp_path: Path
) -> None:
    import sparkscore

    predict = sparkscore.spark_udf(spark, _columns_model(tmp_path, UNNAMED))
    with pytest.raises(TypeError) as caught:
        predict()
    assert str(caught.value) == (
        "this model's signature does not name its input columns (it takes 3 unnamed columns, "
        "by position), so predict() cannot pick them; pass the columns to score in order, e.g. "
        "predict('a', 'b', 'c')."
    )


def test_spark_udf_takes_mlflows_arguments_by_their_names(spark: Any, zoo: Any) -> None:
    import sparkscore
    from sparkscore.errors import SettingsError

    df = spark.createDataFrame(lr_frame(6))
    mine = sparkscore.spark_udf(
        spark, model_uri=str(zoo.lr_skops), result_type="double", env_manager=None, params=None
    )
    theirs = mlflow.pyfunc.spark_udf(
        spark, model_uri=str(zoo.lr_skops), result_type="double", env_manager=None, params=None
    )
    assert [r.p for r in df.select(mine("a", "b").alias("p")).collect()] == [
        r.p for r in df.select(theirs("a", "b").alias("p")).collect()
    ]
    with pytest.raises(TypeError, match="positional"):
        sparkscore.spark_udf(spark, str(zoo.lr_skops), "double", "local")  # type: ignore[misc]
    with pytest.raises(SettingsError) as caught:
        sparkscore.spark_udf(spark, str(zoo.lr_skops), extra_env={"A": "1"})
    assert str(caught.value).startswith("extra_env")
    assert "does not have" in str(caught.value)


class _PixelSums(mlflow.pyfunc.PythonModel):
    """Indexes its input by the tensor's name: a bare array would fail it."""

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        pixels = model_input["pixels"]
        return pixels.reshape(len(pixels), -1).astype(np.int64).sum(axis=1)


def test_a_named_image_tensor_reaches_the_model_by_name_in_the_job_as_in_mlflow(
    spark: Any, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq
    from model_zoo import digit_images, write_pngs

    import sparkscore

    images = digit_images(4)
    write_pngs(tmp_path / "in", images)
    path = tmp_path / "sums"
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, 8, 8), "pixels")]),
        outputs=Schema([TensorSpec(np.dtype(np.int64), (-1,))]),
    )
    mlflow.pyfunc.save_model(
        str(path), python_model=_PixelSums(), signature=signature, pip_requirements=["mlflow"]
    )
    theirs = mlflow.pyfunc.load_model(str(path)).predict({"pixels": images})
    sparkscore.score(spark, path, tmp_path / "in", tmp_path / "out", trust_model=True)
    rows = pq.read_table(tmp_path / "out" / "predictions").sort_by("file_name").to_pylist()
    assert [r["prediction"] for r in rows] == theirs.tolist()
    assert load_model(path, trust_model=True).predict(images).tolist() == theirs.tolist()
