"""Inputs `predict` accepts or refuses as `mlflow.pyfunc.load_model(...).predict` does.

Each case saves a tiny model with the real mlflow, feeds the same input to both libraries and
compares what the model received (the model echoes its input) or the error. Cases rewritten from
mlflow's `tests/pyfunc/test_pyfunc_schema_enforcement.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sparkscore import load_model
from sparkscore.errors import ParamError, SchemaEnforcementError

mlflow = pytest.importorskip("mlflow")
from mlflow.models import ModelSignature  # noqa: E402
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec  # noqa: E402
from mlflow.types.schema import Array, Map, Object, Property  # noqa: E402


class _Echo(mlflow.pyfunc.PythonModel):
    """Returns what it was given, so a test sees the input after enforcement."""

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return {"input": model_input, "params": params}


def _save(where: Path, inputs: Schema, params: ParamSchema | None = None) -> Path:
    path = where / "echo"
    mlflow.pyfunc.save_model(str(path), python_model=_Echo(),
                             signature=ModelSignature(inputs=inputs, params=params),
                             pip_requirements=["mlflow"])
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
    assert str(caught.value) == ("Parameter 'params': params must be a dict of parameter names to "
                                 "values, got list.")


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
