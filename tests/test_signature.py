"""Signatures read back as mlflow wrote them, and input held to them by mlflow's safe rules."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sparkscore.enforcement import Conformed, conform, enforce
from sparkscore.errors import (
    MissingColumnError,
    ParamError,
    SchemaEnforcementError,
    TensorShapeError,
)
from sparkscore.signature import (
    AnyType,
    ArrayType,
    ColSpec,
    DataType,
    MapType,
    ObjectType,
    ParamSpec,
    Schema,
    Signature,
    TensorSpec,
    enforce_params,
)

# Exactly as mlflow 3.17 writes them into MLmodel (ModelSignature.to_dict()).
MLFLOW_INPUTS = (
    '[{"type": "boolean", "name": "b", "required": true}, '
    '{"type": "integer", "name": "i", "required": true}, '
    '{"type": "long", "name": "l", "required": false}, '
    '{"type": "float", "name": "f", "required": true}, '
    '{"type": "double", "name": "d", "required": true}, '
    '{"type": "string", "name": "s", "required": true}, '
    '{"type": "binary", "name": "y", "required": true}, '
    '{"type": "datetime", "name": "t", "required": true}, '
    '{"type": "array", "items": {"type": "double"}, "name": "arr", "required": true}, '
    '{"type": "object", "properties": {"x": {"type": "long", "required": true}, '
    '"y": {"type": "string", "required": false}}, "name": "obj", "required": true}, '
    '{"type": "map", "values": {"type": "double"}, "name": "m", "required": true}, '
    '{"type": "any", "name": "any", "required": true}, '
    '{"type": "array", "items": {"type": "array", "items": {"type": "string"}}, '
    '"name": "aa", "required": true}]'
)
MLFLOW_TENSORS = (
    '[{"name": "t1", "type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2, 2]}}, '
    '{"name": "t2", "type": "tensor", "tensor-spec": {"dtype": "str", "shape": [-1]}}]'
)
MLFLOW_PARAMS = (
    '[{"name": "t", "default": 0.5, "shape": null, "type": "double"}, '
    '{"name": "k", "default": 3, "shape": null, "type": "long"}, '
    '{"name": "s", "default": "x", "shape": null, "type": "string"}, '
    '{"name": "b", "default": true, "shape": null, "type": "boolean"}, '
    '{"name": "l", "default": [1.0, 2.0], "shape": [-1], "type": "double"}, '
    '{"name": "o", "default": {"x": 1}, "shape": null, "type": "object", '
    '"properties": {"x": {"type": "long", "required": true}}}]'
)


def schema(*specs: ColSpec | TensorSpec) -> Schema:
    return Schema(tuple(specs))


def one(t: DataType, name: str = "a") -> Schema:
    return schema(ColSpec(t, name))


def frame(values: object, dtype: object = None) -> pd.DataFrame:
    return pd.DataFrame({"a": pd.Series(values, dtype=dtype)})


def refused(data: pd.DataFrame, s: Schema, **kwargs: object) -> SchemaEnforcementError:
    with pytest.raises(SchemaEnforcementError) as info:
        enforce(data, s, **kwargs)
    return info.value


# ---------------------------------------------------------------------------------------------
# Parsing and round trips


def test_signature_from_dict_reads_every_column_type_as_mlflow_writes_it() -> None:
    sig = Signature.from_dict({"inputs": json.loads(MLFLOW_INPUTS)})

    assert sig.inputs == schema(
        ColSpec(DataType.boolean, "b"),
        ColSpec(DataType.integer, "i"),
        ColSpec(DataType.long, "l", required=False),
        ColSpec(DataType.float, "f"),
        ColSpec(DataType.double, "d"),
        ColSpec(DataType.string, "s"),
        ColSpec(DataType.binary, "y"),
        ColSpec(DataType.datetime, "t"),
        ColSpec(ArrayType(DataType.double), "arr"),
        ColSpec(ObjectType((("x", DataType.long, True), ("y", DataType.string, False))), "obj"),
        ColSpec(MapType(DataType.double), "m"),
        ColSpec(AnyType(), "any"),
        ColSpec(ArrayType(ArrayType(DataType.string)), "aa"),
    )
    assert sig.outputs is None and sig.params is None
    assert sig.inputs.required_names() == [
        "b",
        "i",
        "f",
        "d",
        "s",
        "y",
        "t",
        "arr",
        "obj",
        "m",
        "any",
        "aa",
    ]


def test_signature_to_dict_round_trips_column_tensor_and_param_specs() -> None:
    raw = {
        "inputs": json.loads(MLFLOW_INPUTS),
        "outputs": json.loads(MLFLOW_TENSORS),
        "params": json.loads(MLFLOW_PARAMS),
    }

    assert Signature.from_dict(raw).to_dict() == raw


def test_signature_reads_tensor_specs() -> None:
    sig = Signature.from_dict({"outputs": json.loads(MLFLOW_TENSORS)})

    assert sig.outputs == schema(
        TensorSpec(np.dtype("float32"), (-1, 2, 2), "t1"), TensorSpec(np.dtype(str), (-1,), "t2")
    )
    assert sig.outputs.is_tensor and sig.outputs.has_names


def test_signature_unnamed_specs_are_named_by_position() -> None:
    sig = Signature.from_dict({"outputs": [{"type": "long"}, {"type": "double"}]})

    assert sig.outputs == schema(ColSpec(DataType.long), ColSpec(DataType.double))
    assert not sig.outputs.has_names
    assert sig.outputs.names() == ["0", "1"]
    assert sig.to_dict() == {
        "inputs": None,
        "outputs": [{"type": "long", "required": True}, {"type": "double", "required": True}],
        "params": None,
    }


def test_signature_reads_params_with_defaults_shapes_and_object_type() -> None:
    sig = Signature.from_dict({"params": json.loads(MLFLOW_PARAMS)})

    assert sig.params == (
        ParamSpec("t", DataType.double, 0.5),
        ParamSpec("k", DataType.long, 3),
        ParamSpec("s", DataType.string, "x"),
        ParamSpec("b", DataType.boolean, True),
        ParamSpec("l", DataType.double, [1.0, 2.0], (-1,)),
        ParamSpec("o", ObjectType((("x", DataType.long, True),)), {"x": 1}),
    )


def test_signature_reads_params_written_with_the_older_dtype_key() -> None:
    sig = Signature.from_dict({"params": [{"name": "k", "dtype": "long", "default": 1}]})

    assert sig.params == (ParamSpec("k", DataType.long, 1),)


def test_signature_round_trips_what_the_real_mlflow_writes() -> None:
    from mlflow.models import infer_signature

    x = pd.DataFrame(
        {
            "b": [True],
            "i": np.array([1], dtype=np.int32),
            "l": [2],
            "f": np.float32([1.5]),
            "d": [2.5],
            "s": ["x"],
            "y": [b"z"],
            "t": pd.to_datetime(["2024-01-02"]),
            "arr": [[1.0, 2.0]],
        }
    )
    with pytest.warns(UserWarning):  # mlflow's hint about integer columns
        written = infer_signature(x, np.array([1, 2]), params={"k": 3, "w": 0.5}).to_dict()
    raw = {k: json.loads(v) for k, v in written.items() if v}

    assert Signature.from_dict(raw).to_dict() == raw
    assert [s.type for s in Signature.from_dict(raw).inputs.specs] == [
        DataType.boolean,
        DataType.integer,
        DataType.long,
        DataType.float,
        DataType.double,
        DataType.string,
        DataType.binary,
        DataType.datetime,
        ArrayType(DataType.double),
    ]


def test_schema_refuses_a_mix_of_tensor_and_column_specs() -> None:
    with pytest.raises(ValueError, match="^a schema cannot mix tensor and column specs$"):
        Schema.from_list(
            [{"type": "long"}, {"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]
        )


def test_schema_refuses_a_json_object_instead_of_a_list() -> None:
    with pytest.raises(TypeError, match="^a schema is a JSON list of specs, got dict$"):
        Schema.from_list({"type": "long"})  # type: ignore[arg-type]


def test_datatype_maps_to_numpy_and_back() -> None:
    assert [t.to_numpy() for t in DataType] == [
        np.dtype(n)
        for n in (
            "bool",
            "int32",
            "int64",
            "float32",
            "float64",
            "object",
            "object",
            "datetime64[ns]",
        )
    ]
    assert DataType.from_numpy(np.dtype("int64")) is DataType.long
    assert DataType.from_numpy(np.dtype("U5")) is DataType.string
    assert DataType.from_numpy(np.dtype("int8")) is None


# ---------------------------------------------------------------------------------------------
# enforce: safe widening is allowed


def test_signature_hands_on_columns_already_of_their_types_without_copying_them() -> None:
    data = pd.DataFrame(
        {"i": np.array([1, 2], dtype=np.int32), "d": [0.5, 1.5], "b": [True, False]}
    )
    s = schema(ColSpec(DataType.integer, "i"), ColSpec(DataType.double, "d"))
    s = schema(*s.specs, ColSpec(DataType.boolean, "b"))

    out = enforce(data, s)
    assert out is not data
    assert np.shares_memory(out["d"].to_numpy(), data["d"].to_numpy())
    out.loc[0, "d"] = -1.0  # a model that writes to its input writes to its own copy
    out["i"] = 0
    assert data["d"].tolist() == [0.5, 1.5]
    assert data["i"].tolist() == [1, 2]


def test_signature_rebuilds_the_frame_when_a_column_converts_or_is_extra() -> None:
    data = pd.DataFrame({"d": [0.5, 1.5], "n": np.array([1, 2], dtype=np.int32), "x": ["p", "q"]})
    s = schema(ColSpec(DataType.double, "d"), ColSpec(DataType.long, "n"))

    out = enforce(data, s)
    assert list(out.columns) == ["d", "n"]
    assert out["n"].dtype == np.int64
    assert list(data.columns) == ["d", "n", "x"]
    assert data["n"].dtype == np.int32


def test_signature_widens_int32_to_long() -> None:
    out = enforce(frame(np.array([1, -2], dtype=np.int32)), one(DataType.long))

    assert out["a"].dtype == np.int64
    assert out["a"].tolist() == [1, -2]


def test_signature_widens_int_to_double() -> None:
    out = enforce(frame([1, 2**53]), one(DataType.double))

    assert out["a"].dtype == np.float64
    assert out["a"].tolist() == [1.0, 9007199254740992.0]


def test_signature_widens_float32_to_double() -> None:
    out = enforce(frame(np.array([1.5, 0.25], dtype=np.float32)), one(DataType.double))

    assert out["a"].dtype == np.float64
    assert out["a"].tolist() == [1.5, 0.25]


def test_signature_accepts_whole_floats_as_long() -> None:
    out = enforce(frame([3.0, -4.0]), one(DataType.long))

    assert out["a"].dtype == np.int64
    assert out["a"].tolist() == [3, -4]


def test_signature_accepts_numeric_strings_as_double() -> None:
    out = enforce(frame(["1.5", "2", None], dtype=object), one(DataType.double))

    assert out["a"].dtype == np.float64
    assert out["a"].tolist()[:2] == [1.5, 2.0]
    assert np.isnan(out["a"].iloc[2])


def test_signature_accepts_pandas_default_str_dtype_for_string_columns() -> None:
    data = pd.DataFrame({"a": ["x", "y", None]})  # pandas 3: the default str dtype
    out = enforce(data, one(DataType.string))

    assert out["a"].tolist()[:2] == ["x", "y"]
    assert out["a"].isna().tolist() == [False, False, True]


def test_signature_accepts_nullable_string_dtype_and_missing_objects_for_strings() -> None:
    out = enforce(frame(["x", None], dtype="string"), one(DataType.string))
    assert out["a"].tolist() == ["x", pd.NA]

    out = enforce(frame(["x", None, pd.NA, np.nan], dtype=object), one(DataType.string))
    assert out["a"].tolist()[:3] == ["x", None, pd.NA]


def test_signature_parses_datetime_strings_of_mixed_formats() -> None:
    out = enforce(
        frame(["2024-01-02", "2024-03-04 05:06:07", None], dtype=object), one(DataType.datetime)
    )

    assert out["a"].dtype == np.dtype("datetime64[ns]")
    assert out["a"].tolist()[:2] == [
        pd.Timestamp("2024-01-02"),
        pd.Timestamp("2024-03-04 05:06:07"),
    ]
    assert out["a"].isna().tolist() == [False, False, True]


def test_signature_accepts_datetime64_of_any_unit_and_date_objects() -> None:
    out = enforce(frame(np.array(["2024-01-02"], dtype="datetime64[s]")), one(DataType.datetime))
    assert out["a"].dtype == np.dtype("datetime64[ns]")

    out = enforce(frame([dt.date(2024, 1, 2)], dtype=object), one(DataType.datetime))
    assert out["a"].tolist() == [pd.Timestamp("2024-01-02")]


def test_signature_keeps_booleans_and_bytes() -> None:
    s = schema(ColSpec(DataType.boolean, "b"), ColSpec(DataType.binary, "y"))
    out = enforce(pd.DataFrame({"b": [True, False], "y": [b"x", None]}), s)

    assert out["b"].tolist() == [True, False]
    assert out["y"].tolist() == [b"x", None]


def test_signature_keeps_exact_integers_beyond_2_53_from_strings_and_objects() -> None:
    out = enforce(
        frame(["9007199254740993", " 7 ", "1e3", 9007199254740995], dtype=object),
        one(DataType.long),
    )

    assert out["a"].tolist() == [9007199254740993, 7, 1000, 9007199254740995]


def test_signature_keeps_exact_nullable_integers_beyond_2_53() -> None:
    out = enforce(frame([1, 2**53 + 1], dtype="Int64"), one(DataType.long))

    assert out["a"].dtype == np.int64
    assert out["a"].tolist() == [1, 2**53 + 1]


def test_signature_narrows_float64_that_fits_float() -> None:
    out = enforce(frame([0.5, 0.25, np.inf]), one(DataType.float))

    assert out["a"].dtype == np.float32
    assert out["a"].tolist() == [0.5, 0.25, np.inf]


# ---------------------------------------------------------------------------------------------
# enforce: lossy conversion is refused, naming row, column and value


def test_signature_refuses_fractional_float_to_long_naming_row_column_value() -> None:
    error = refused(frame([3.0, 2.5]), one(DataType.long))

    assert str(error) == (
        "row 1: column 'a' has value 2.5, which cannot be converted safely to long."
    )
    assert (error.file, error.row, error.column, error.value, error.expected) == (
        None,
        1,
        "a",
        2.5,
        "long",
    )


def test_signature_refuses_nan_in_a_long_column() -> None:
    error = refused(frame([1.0, np.nan]), one(DataType.long))

    assert str(error) == (
        "row 1: column 'a' has value nan, which cannot be converted safely to long."
    )


def test_signature_refuses_missing_values_in_nullable_int_for_long() -> None:
    error = refused(frame([1, None], dtype="Int64"), one(DataType.long))

    assert str(error) == (
        "row 1: column 'a' has value <NA>, which cannot be converted safely to long."
    )


def test_signature_refuses_text_as_double_naming_the_row() -> None:
    error = refused(frame(["1"] * 7 + ["abc"], dtype=object), one(DataType.double))

    assert str(error) == (
        "row 7: column 'a' has value 'abc', which cannot be converted safely to double."
    )


def test_signature_names_the_file_and_counts_rows_from_the_offset() -> None:
    error = refused(frame(["1", "abc"]), one(DataType.double), file="in/part-3.csv", row_offset=40)

    assert str(error) == (
        "in/part-3.csv, row 41: column 'a' has value 'abc', "
        "which cannot be converted safely to double."
    )
    assert (error.file, error.row) == ("in/part-3.csv", 41)


def test_signature_refuses_double_to_float_that_loses_precision() -> None:
    error = refused(frame([0.5, 0.1]), one(DataType.float))

    assert str(error) == (
        "row 1: column 'a' has value 0.1, which cannot be converted safely to float."
    )


def test_signature_refuses_double_beyond_float_range() -> None:
    error = refused(frame([1e300]), one(DataType.float))

    assert str(error) == (
        "row 0: column 'a' has value 1e+300, which cannot be converted safely to float."
    )


def test_signature_refuses_int64_beyond_2_53_as_double() -> None:
    error = refused(frame([1, 2**53 + 1]), one(DataType.double))

    assert str(error) == (
        "row 1: column 'a' has value 9007199254740993, which cannot be converted safely to double."
    )


@pytest.mark.parametrize("dtype", ["Int64", object, np.uint64])
def test_signature_refuses_any_int_beyond_2_53_as_double(dtype: object) -> None:
    error = refused(frame([1, 2**53 + 1], dtype=dtype), one(DataType.double))

    assert (error.row, error.value) == (1, 2**53 + 1)


def test_signature_refuses_int_beyond_2_24_as_float() -> None:
    error = refused(frame(np.array([2**24 + 1], dtype=np.int32)), one(DataType.float))

    assert str(error) == (
        "row 0: column 'a' has value 16777217, which cannot be converted safely to float."
    )


def test_signature_refuses_int64_out_of_int32_range_as_integer() -> None:
    out = enforce(frame([1, 2**31 - 1]), one(DataType.integer))
    assert out["a"].dtype == np.int32

    error = refused(frame([1, 2**31]), one(DataType.integer))
    assert str(error) == (
        "row 1: column 'a' has value 2147483648, which cannot be converted safely to integer."
    )


def test_signature_refuses_floats_at_or_beyond_2_63_as_long() -> None:
    error = refused(frame([1.0, 2.0**63]), one(DataType.long))

    assert str(error) == (
        "row 1: column 'a' has value 9.223372036854776e+18, "
        "which cannot be converted safely to long."
    )


@pytest.mark.parametrize(
    ("values", "dtype", "row", "value"),
    [
        (["9223372036854775808"], object, 0, "9223372036854775808"),
        ([2**64], object, 0, 2**64),
        ([1, 2**63], np.uint64, 1, 2**63),
        ([1, 2**63], "UInt64", 1, 2**63),
        ([1.0, np.inf], None, 1, np.inf),
    ],
)
def test_signature_refuses_values_beyond_long(values, dtype, row, value) -> None:
    error = refused(frame(values, dtype=dtype), one(DataType.long))

    assert (error.row, error.value) == (row, value)


def test_signature_refuses_numbers_as_string() -> None:
    error = refused(frame([1, 2]), one(DataType.string))
    assert str(error) == (
        "row 0: column 'a' has value 1, which cannot be converted safely to string."
    )

    error = refused(frame(["x", 2], dtype=object), one(DataType.string))
    assert str(error) == (
        "row 1: column 'a' has value 2, which cannot be converted safely to string."
    )


def test_signature_refuses_bool_as_long() -> None:
    error = refused(frame([True, False]), one(DataType.long))
    assert str(error) == (
        "row 0: column 'a' has value True, which cannot be converted safely to long."
    )

    error = refused(frame([1, True], dtype=object), one(DataType.long))
    assert (error.row, error.value) == (1, True)


def test_signature_refuses_numbers_as_boolean_and_text_as_binary() -> None:
    error = refused(frame([1, 0]), one(DataType.boolean))
    assert str(error) == (
        "row 0: column 'a' has value 1, which cannot be converted safely to boolean."
    )

    error = refused(frame(["x"], dtype=object), one(DataType.binary))
    assert str(error) == (
        "row 0: column 'a' has value 'x', which cannot be converted safely to binary."
    )


def test_signature_refuses_text_that_is_not_a_date() -> None:
    error = refused(frame(["2024-01-02", "not a date"], dtype=object), one(DataType.datetime))

    assert str(error) == (
        "row 1: column 'a' has value 'not a date', which cannot be converted safely to datetime."
    )


def test_signature_refuses_numbers_as_datetime() -> None:
    error = refused(frame([20240102]), one(DataType.datetime))
    assert str(error) == (
        "row 0: column 'a' has value 20240102, which cannot be converted safely to datetime."
    )

    error = refused(frame(["2024-01-02", 5], dtype=object), one(DataType.datetime))
    assert (error.row, error.value) == (1, 5)


def test_signature_refuses_timezone_aware_datetimes() -> None:
    error = refused(
        frame(["2024-01-02T00:00:00Z"], dtype=object), one(DataType.datetime), file="f.csv"
    )

    assert str(error) == (
        "f.csv, row 0: column 'a' has value '2024-01-02T00:00:00Z', "
        "which is not a timezone-naive datetime."
    )


def test_signature_refuses_mixed_timezone_offsets() -> None:
    values = ["2024-01-02T00:00:00+01:00", "2024-01-03T00:00:00+02:00"]
    error = refused(frame(values, dtype=object), one(DataType.datetime))

    assert str(error) == (
        "row 0: column 'a' has value '2024-01-02T00:00:00+01:00', "
        "which is not a timezone-naive datetime."
    )


# ---------------------------------------------------------------------------------------------
# enforce: decimals (Parquet / Arrow / Spark), judged on their exact value


def decimals(values: list[str | None], arrow_type: pa.DataType) -> pd.DataFrame:
    """A column as pyarrow hands it to pandas from a Parquet decimal column: decimal.Decimal."""
    column = pa.array([None if v is None else Decimal(v) for v in values], arrow_type)
    return pa.table({"a": column}).to_pandas()


def reasons(result: Conformed) -> list[tuple[int, str]]:
    return [(e.row, str(e)) for e in result.errors]


@pytest.mark.parametrize(
    "arrow_type", [pa.decimal128(38, 20), pa.decimal256(76, 20), pa.decimal128(20, 2)]
)
def test_signature_decimal_to_double_only_when_the_double_reads_back_as_it(arrow_type) -> None:
    data = decimals(
        [
            "12.34",
            "9007199254740993",
            "-12.34",
            None,
            "-9007199254740993",
            "9007199254740992",
            "0.10",
        ],
        arrow_type,
    )

    result = conform(data, one(DataType.double))

    scale = "0" * arrow_type.scale
    assert reasons(result) == [
        (
            row,
            f"row {row}: column 'a' has value Decimal('{sign}9007199254740993.{scale}'), "
            "which cannot be converted safely to double.",
        )
        for row, sign in ((1, ""), (4, "-"))
    ]
    assert result.frame.index.tolist() == [0, 2, 3, 5, 6]
    assert result.frame["a"].dtype == np.float64
    assert result.frame["a"].tolist()[:2] == [12.34, -12.34]
    assert np.isnan(result.frame["a"].iloc[2])
    assert result.frame["a"].tolist()[3:] == [9007199254740992.0, 0.1]


def test_signature_decimal_with_more_digits_than_a_double_is_refused() -> None:
    data = decimals(
        ["0.1", "0.10000000000000000001", "0.33333333333333333333", "0.30000000000000004"],
        pa.decimal128(38, 20),
    )

    result = conform(data, one(DataType.double))

    assert [e.row for e in result.errors] == [1, 2]
    assert result.frame["a"].tolist() == [0.1, 0.30000000000000004]


def test_signature_decimal_to_float_reads_back_as_a_float32() -> None:
    data = decimals(["12.34", "16777217", "0.1"], pa.decimal128(38, 20))

    result = conform(data, one(DataType.float))

    assert reasons(result) == [
        (
            1,
            "row 1: column 'a' has value Decimal('16777217.00000000000000000000'), "
            "which cannot be converted safely to float.",
        )
    ]
    assert result.frame["a"].dtype == np.float32
    assert result.frame["a"].tolist() == [np.float32(12.34), np.float32(0.1)]


@pytest.mark.parametrize(
    ("t", "refused_rows"), [(DataType.long, [1, 2, 5]), (DataType.integer, [1, 2, 3, 4, 5])]
)
def test_signature_decimal_to_integers_only_when_whole_and_in_range(t, refused_rows) -> None:
    data = decimals(
        [
            "12.00",
            "1.00000000000000000001",
            "12.34",
            "9007199254740993",
            "-9007199254740993",
            None,
            "-7",
        ],
        pa.decimal128(38, 20),
    )

    result = conform(data, one(t))

    assert [e.row for e in result.errors] == refused_rows
    assert str(result.errors[0]) == (
        "row 1: column 'a' has value Decimal('1.00000000000000000001'), "
        f"which cannot be converted safely to {t.value}."
    )
    kept = {
        DataType.long: [12, 9007199254740993, -9007199254740993, -7],
        DataType.integer: [12, -7],
    }[t]
    assert result.frame["a"].tolist() == kept
    assert result.frame["a"].dtype == t.to_numpy()


@pytest.mark.parametrize("dtype", [None, object])  # None: pandas' default str dtype
def test_signature_text_to_long_is_judged_on_its_exact_value(dtype) -> None:
    data = frame(["9007199254740993", "1.00000000000000000001", "7", "1e-400"], dtype=dtype)

    result = conform(data, one(DataType.long))

    assert [(e.row, e.value) for e in result.errors] == [
        (1, "1.00000000000000000001"),
        (3, "1e-400"),
    ]
    assert result.frame["a"].tolist() == [9007199254740993, 7]


# ---------------------------------------------------------------------------------------------
# enforce: datetimes, held as mlflow's datetime64[ns] and judged value by value

RANGE = (
    "which is outside the range of the signature's datetime type (datetime64[ns]: "
    "1677-09-21 00:12:43.145224193 to 2262-04-11 23:47:16.854775807)."
)


@pytest.mark.parametrize("unit", ["s", "ms", "us"])
def test_signature_datetime_beyond_nanoseconds_fails_its_own_row(unit) -> None:
    column = pa.array(
        [dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime(9999, 12, 31), None, dt.datetime(1, 1, 1)],
        pa.timestamp(unit),
    )
    data = pa.table({"a": column}).to_pandas()  # pandas keeps Arrow's unit

    result = conform(data, one(DataType.datetime), file="f.parquet")

    assert reasons(result) == [
        (1, f"f.parquet, row 1: column 'a' has value Timestamp('9999-12-31 00:00:00'), {RANGE}"),
        (3, f"f.parquet, row 3: column 'a' has value Timestamp('0001-01-01 00:00:00'), {RANGE}"),
    ]
    assert result.frame["a"].dtype == np.dtype("datetime64[ns]")
    assert result.frame["a"].tolist() == [pd.Timestamp("2024-01-02 03:04:05"), pd.NaT]


def test_signature_datetime_keeps_exact_microseconds_and_the_range_edges() -> None:
    values = np.array(
        [
            "2024-01-02T03:04:05.000006",
            "2262-04-11T23:47:16.854775",
            "2262-04-11T23:47:16.854776",
            "1677-09-21T00:12:43.145225",
            "1677-09-21T00:12:43.145224",
        ],
        dtype="datetime64[us]",
    )

    result = conform(frame(values), one(DataType.datetime))

    assert [e.row for e in result.errors] == [2, 4]
    assert result.frame["a"].astype("int64").tolist() == [
        1704164645000006000,
        9223372036854775000,
        -9223372036854775000,
    ]


def test_signature_datetime_objects_dates_and_text_out_of_range_fail_their_own_rows() -> None:
    data = frame(
        [
            dt.datetime(2024, 1, 2, 3, 4, 5, 6),
            dt.datetime(9999, 12, 31, 23, 59),
            dt.date(2024, 1, 2),
            dt.date(9999, 12, 31),
            "2024-01-03T04:05:06.123456789",
            "9999-12-31",
            "0001-01-01 00:00:00",
            "not a date",
            None,
        ],
        dtype=object,
    )

    result = conform(data, one(DataType.datetime))

    assert reasons(result) == [
        (1, f"row 1: column 'a' has value datetime.datetime(9999, 12, 31, 23, 59), {RANGE}"),
        (3, f"row 3: column 'a' has value datetime.date(9999, 12, 31), {RANGE}"),
        (5, f"row 5: column 'a' has value '9999-12-31', {RANGE}"),
        (6, f"row 6: column 'a' has value '0001-01-01 00:00:00', {RANGE}"),
        (
            7,
            "row 7: column 'a' has value 'not a date', which cannot be converted safely to "
            "datetime.",
        ),
    ]
    assert result.frame["a"].tolist() == [
        pd.Timestamp("2024-01-02 03:04:05.000006"),
        pd.Timestamp("2024-01-02"),
        pd.Timestamp("2024-01-03 04:05:06.123456789"),
        pd.NaT,
    ]


def test_signature_timezone_aware_column_fails_each_value_but_not_its_nulls() -> None:
    column = pa.array(
        [dt.datetime(2024, 1, 2), None, dt.datetime(9999, 1, 1)],
        pa.timestamp("us", tz="Europe/Paris"),
    )
    data = pa.table({"a": column}).to_pandas()

    result = conform(data, one(DataType.datetime))

    assert reasons(result) == [
        (
            0,
            "row 0: column 'a' has value Timestamp('2024-01-02 01:00:00+0100', "
            "tz='Europe/Paris'), which is not a timezone-naive datetime.",
        ),
        (
            2,
            "row 2: column 'a' has value Timestamp('9999-01-01 01:00:00+0100', "
            "tz='Europe/Paris'), which is not a timezone-naive datetime.",
        ),
    ]
    assert result.frame["a"].isna().tolist() == [True]


def test_signature_naive_and_aware_text_in_one_column_are_judged_each() -> None:
    data = frame(["2024-01-02T00:00:00Z", "2024-01-03", "2024-01-04 05:06:07+02:00"], dtype=object)

    result = conform(data, one(DataType.datetime))

    assert [(e.row, e.reason.split(", ")[-1]) for e in result.errors] == [
        (0, "which is not a timezone-naive datetime."),
        (2, "which is not a timezone-naive datetime."),
    ]
    assert result.frame["a"].tolist() == [pd.Timestamp("2024-01-03")]


# ---------------------------------------------------------------------------------------------
# enforce: columns


def test_signature_missing_required_column_is_an_error_naming_it() -> None:
    s = schema(ColSpec(DataType.long, "a"), ColSpec(DataType.string, "c"))
    with pytest.raises(MissingColumnError) as info:
        enforce(pd.DataFrame({"a": [1], "b": [1.0]}), s, file="in/x.csv")

    assert str(info.value) == (
        "in/x.csv: the input is missing the column 'c', which the model signature requires "
        "(columns present: a, b)."
    )
    assert (info.value.column, info.value.present, info.value.row) == ("c", ["a", "b"], None)


def test_signature_missing_column_message_without_file_or_columns() -> None:
    with pytest.raises(MissingColumnError) as info:
        enforce(pd.DataFrame(index=[0]), one(DataType.long))

    assert str(info.value) == (
        "the input is missing the column 'a', which the model signature requires "
        "(columns present: none)."
    )


def test_signature_missing_optional_column_is_fine() -> None:
    s = schema(ColSpec(DataType.long, "a"), ColSpec(DataType.double, "b", required=False))
    out = enforce(pd.DataFrame({"a": [1]}), s)

    assert list(out.columns) == ["a"]
    assert out["a"].tolist() == [1]


def test_signature_drops_extra_columns_and_follows_schema_order() -> None:
    s = schema(ColSpec(DataType.long, "a"), ColSpec(DataType.string, "c"))
    out = enforce(pd.DataFrame({"z": [0], "c": ["x"], "a": [1]}), s)

    assert list(out.columns) == ["a", "c"]
    assert out.to_dict("list") == {"a": [1], "c": ["x"]}


def test_signature_unnamed_columns_match_by_position() -> None:
    s = schema(ColSpec(DataType.double), ColSpec(DataType.long))
    out = enforce(pd.DataFrame({"x": [1], "y": [2.0], "z": ["dropped"]}), s)

    assert list(out.columns) == ["x", "y"]
    assert out.dtypes.tolist() == [np.float64, np.int64]
    assert out.to_dict("list") == {"x": [1.0], "y": [2]}


def test_signature_unnamed_columns_too_few_is_missing_by_position() -> None:
    s = schema(ColSpec(DataType.double), ColSpec(DataType.long))
    with pytest.raises(MissingColumnError) as info:
        enforce(pd.DataFrame({"x": [1]}), s)

    assert str(info.value) == (
        "the input is missing the column '1', which the model signature requires "
        "(columns present: x)."
    )


def test_signature_enforce_takes_a_2d_array_or_a_dict() -> None:
    s = schema(ColSpec(DataType.double, "p"), ColSpec(DataType.long, "q"))

    out = enforce(np.array([[1, 2], [3, 4]]), s)
    assert out.to_dict("list") == {"p": [1.0, 3.0], "q": [2, 4]}

    out = enforce({"q": [5], "p": [6]}, s)
    assert out.to_dict("list") == {"p": [6.0], "q": [5]}


def test_signature_enforce_refuses_input_that_is_not_a_frame() -> None:
    error = refused({1, 2}, one(DataType.long))  # type: ignore[arg-type]

    assert str(error) == (
        "the model has a column signature, so its input must be a pandas DataFrame (or a list, "
        "dict or array that makes one), got set."
    )


def test_signature_without_schema_passes_data_through() -> None:
    data = pd.DataFrame({"a": ["anything"]})

    assert enforce(data, None) is data
    assert enforce(data, Schema(())) is data
    assert conform(data, None).frame is data


def test_signature_leaves_array_and_object_columns_as_they_are() -> None:
    s = schema(ColSpec(ArrayType(DataType.double), "v"), ColSpec(AnyType(), "w"))
    out = enforce(pd.DataFrame({"v": [[1.0, 2.0]], "w": [{"k": 1}]}), s)

    assert out.to_dict("list") == {"v": [[1.0, 2.0]], "w": [{"k": 1}]}


# ---------------------------------------------------------------------------------------------
# conform: every bad row, the rest kept


def test_conform_reports_every_bad_row_once_and_keeps_the_good_ones() -> None:
    s = schema(ColSpec(DataType.long, "a"), ColSpec(DataType.string, "c"))
    data = pd.DataFrame(
        {"a": [1.0, 2.5, 3.0, np.nan, 5.0], "c": ["x", 5, 7, "w", "v"]},
        index=[10, 11, 12, 13, 14],
    )

    result = conform(data, s, file="in/p.csv", row_offset=100)

    assert result.bad.tolist() == [False, True, True, True, False]
    assert [str(e) for e in result.errors] == [
        "in/p.csv, row 101: column 'a' has value 2.5, which cannot be converted safely to long.",
        "in/p.csv, row 102: column 'c' has value 7, which cannot be converted safely to string.",
        "in/p.csv, row 103: column 'a' has value nan, which cannot be converted safely to long.",
    ]
    assert [(e.row, e.column) for e in result.errors] == [(101, "a"), (102, "c"), (103, "a")]
    assert result.frame.index.tolist() == [10, 14]
    assert result.frame.to_dict("list") == {"a": [1, 5], "c": ["x", "v"]}
    assert result.frame["a"].dtype == np.int64


def test_conform_with_no_bad_rows_keeps_all_rows() -> None:
    result = conform(frame([1, 2]), one(DataType.double))

    assert result.bad.tolist() == [False, False]
    assert result.errors == ()
    assert result.frame["a"].tolist() == [1.0, 2.0]


def test_conform_missing_required_column_raises() -> None:
    with pytest.raises(MissingColumnError):
        conform(pd.DataFrame({"b": [1]}), one(DataType.long))


# ---------------------------------------------------------------------------------------------
# tensors


def test_signature_tensor_of_right_shape_and_dtype_passes() -> None:
    arr = np.ones((3, 2))
    out = enforce(arr, schema(TensorSpec(np.dtype("float64"), (-1, 2))))

    assert out.dtype == np.float64 and out.shape == (3, 2)


@pytest.mark.parametrize(("shape", "text"), [((3, 3), "[3, 3]"), ((3,), "[3]")])
def test_signature_tensor_of_wrong_shape_is_refused(shape: tuple[int, ...], text: str) -> None:
    with pytest.raises(TensorShapeError) as info:
        enforce(np.ones(shape), schema(TensorSpec(np.dtype("float64"), (-1, 2))), file="x.npy")

    assert str(info.value) == (
        f"x.npy: input 'the unnamed input' has shape {text}, which does not fit the "
        "signature's tensor shape [-1, 2] (-1 is any size)."
    )
    assert (info.value.shape, info.value.expected_shape) == (shape, (-1, 2))


def test_signature_tensor_int_is_cast_to_float64() -> None:
    spec = schema(TensorSpec(np.dtype("float64"), (-1, 2)))
    out = enforce(np.array([[1, 2]], dtype=np.int64), spec)

    assert out.dtype == np.float64
    assert out.tolist() == [[1.0, 2.0]]


def test_signature_tensor_float_with_fraction_is_refused_for_int() -> None:
    spec = schema(TensorSpec(np.dtype("int64"), (-1,)))
    with pytest.raises(SchemaEnforcementError) as info:
        enforce(np.array([1.5, 2.0]), spec)
    assert str(info.value) == (
        "tensor input 'the unnamed input' has dtype float64, which cannot be converted safely "
        "to int64."
    )

    with pytest.raises(SchemaEnforcementError) as info:
        enforce(pd.DataFrame({"x": [1.5, 2.0]}), spec)
    assert str(info.value) == (
        "tensor input 'the unnamed input' of dtype float64 cannot be converted safely to int64."
    )


def test_signature_tensor_from_a_frame_names_its_shape_before_its_dtype() -> None:
    spec = schema(TensorSpec(np.dtype("uint8"), (-1, 64)))
    with pytest.raises(TensorShapeError) as info:
        enforce(pd.DataFrame({"a": [0.5, 1.5], "b": [1, 2], "c": [3, 4]}), spec, file="rows.csv")

    assert str(info.value) == (
        "rows.csv: input 'the unnamed input' has shape [2, 3], which does not fit the "
        "signature's tensor shape [-1, 64] (-1 is any size)."
    )


def test_signature_tensor_column_of_whole_floats_is_cast_to_int() -> None:
    out = enforce(pd.DataFrame({"x": [1.0, 2.0]}), schema(TensorSpec(np.dtype("int64"), (-1,))))

    assert out.dtype == np.int64 and out.tolist() == [1, 2]


def test_signature_tensor_column_of_lists_is_reshaped() -> None:
    spec = schema(TensorSpec(np.dtype("float64"), (-1, 2, 2)))
    out = enforce(pd.DataFrame({"x": [[1, 2, 3, 4], [5, 6, 7, 8]]}), spec)

    assert out.shape == (2, 2, 2) and out.dtype == np.float64
    assert out.tolist() == [[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]


def test_signature_tensor_column_of_lists_that_cannot_reshape_is_refused() -> None:
    spec = schema(TensorSpec(np.dtype("float64"), (-1, 2, 2)))
    with pytest.raises(TensorShapeError) as info:
        enforce(pd.DataFrame({"x": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]}), spec)

    assert str(info.value) == (
        "input 'the unnamed input' has shape [2, 3], which does not fit the signature's "
        "tensor shape [-1, 2, 2] (-1 is any size)."
    )


def test_signature_tensor_single_column_frame_becomes_the_tensor() -> None:
    out = enforce(pd.DataFrame({"x": [1, 2]}), schema(TensorSpec(np.dtype("float64"), (-1, 1))))

    assert out.tolist() == [[1.0], [2.0]]


def test_signature_named_tensors_from_dict_and_frame() -> None:
    s = schema(
        TensorSpec(np.dtype("float64"), (-1, 2), "x"), TensorSpec(np.dtype("int64"), (-1,), "y")
    )

    out = enforce({"x": np.ones((2, 2)), "y": np.array([1, 2])}, s)
    assert sorted(out) == ["x", "y"]
    assert out["y"].tolist() == [1, 2]

    out = enforce(pd.DataFrame({"x": [[1.0, 2.0], [3.0, 4.0]], "y": [1, 2]}), s)
    assert out["x"].tolist() == [[1.0, 2.0], [3.0, 4.0]]

    with pytest.raises(MissingColumnError) as info:
        enforce({"x": np.ones((2, 2))}, s)
    assert str(info.value) == (
        "the input is missing the column 'y', which the model signature requires "
        "(columns present: x)."
    )


@pytest.mark.parametrize(
    ("dtype", "good", "values", "lost"),
    [
        ("float64", [0, 1], [12.0, 12.34], "9007199254740993"),
        ("int64", [0, 2], [12, 9007199254740993], "12.34"),
    ],
)
def test_signature_tensor_from_decimals_holds_them_to_the_column_rule(
    dtype, good, values, lost
) -> None:
    spec = schema(TensorSpec(np.dtype(dtype), (-1,), "x"))
    data = pd.DataFrame({"x": [Decimal("12"), Decimal("12.34"), Decimal("9007199254740993")]})

    assert enforce(data.iloc[good], spec)["x"].tolist() == values
    with pytest.raises(SchemaEnforcementError) as info:
        enforce(data, spec, file="f.parquet")
    assert str(info.value) == (
        f"f.parquet: tensor input 'x' has value Decimal('{lost}'), which cannot be converted "
        f"safely to {dtype}."
    )


def test_signature_object_tensor_accepts_strings() -> None:
    out = enforce(pd.DataFrame({"x": ["a", "b"]}), schema(TensorSpec(np.dtype(object), (-1,))))

    assert out.tolist() == ["a", "b"]


# ---------------------------------------------------------------------------------------------
# params

PARAMS = (
    ParamSpec("k", DataType.long, 5),
    ParamSpec("t", DataType.double, 0.5),
    ParamSpec("s", DataType.string, "x"),
    ParamSpec("l", DataType.double, [1.0], (-1,)),
)


def test_enforce_params_fills_defaults() -> None:
    assert enforce_params(None, PARAMS) == {"k": 5, "t": 0.5, "s": "x", "l": [1.0]}
    assert enforce_params({"k": None}, PARAMS) == {"k": 5, "t": 0.5, "s": "x", "l": [1.0]}


def test_enforce_params_widens_int_to_double() -> None:
    result = enforce_params({"t": 1, "l": [1, 2.5]}, PARAMS)

    assert result == {"k": 5, "t": 1.0, "s": "x", "l": [1.0, 2.5]}
    assert type(result["t"]) is float


def test_enforce_params_refuses_an_unknown_name() -> None:
    with pytest.raises(ParamError) as info:
        enforce_params({"zz": 1}, PARAMS)

    assert str(info.value) == (
        "Parameter 'zz': is not a parameter of this model; its parameters are k, l, s, t."
    )
    assert info.value.name == "zz"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"k": "x"},
            "Parameter 'k': must be of type long, got 'x' (str), which cannot be converted safely.",
        ),
        (
            {"k": 2.0},
            "Parameter 'k': must be of type long, got 2.0 (float), "
            "which cannot be converted safely.",
        ),
        (
            {"k": True},
            "Parameter 'k': must be of type long, got True (bool), "
            "which cannot be converted safely.",
        ),
        ({"l": 1.0}, "Parameter 'l': must be a list of double, got 1.0."),
    ],
)
def test_enforce_params_refuses_a_wrong_type(params: dict, message: str) -> None:
    with pytest.raises(ParamError) as info:
        enforce_params(params, PARAMS)

    assert str(info.value) == message


def test_enforce_params_without_schema_or_params_is_none() -> None:
    assert enforce_params(None, None) is None
    assert enforce_params({}, None) is None
    assert enforce_params(None, ()) is None


def test_enforce_params_refuses_params_for_a_model_without_params() -> None:
    with pytest.raises(ParamError) as info:
        enforce_params({"b": 1, "a": 2}, None)

    assert str(info.value) == (
        "Parameter 'a': the model declares no inference parameters, so none can be passed; "
        "remove params."
    )


def test_enforce_params_float_param_takes_a_python_float_as_mlflow_does() -> None:
    spec = (ParamSpec("f", DataType.float, 0.5),)

    assert enforce_params(None, spec) == {"f": 0.5}
    assert enforce_params({"f": 0.1}, spec) == {"f": 0.1}


def test_enforce_params_refuses_int_beyond_integer_range() -> None:
    with pytest.raises(ParamError) as info:
        enforce_params({"i": 2**40}, (ParamSpec("i", DataType.integer, 1),))

    assert str(info.value) == (
        "Parameter 'i': must be of type integer, got 1099511627776 (int), "
        "which cannot be converted safely."
    )


def test_enforce_params_reads_datetime_values_and_defaults() -> None:
    spec = (ParamSpec("d", DataType.datetime, "2024-01-02T03:04:05"),)

    assert enforce_params(None, spec) == {"d": dt.datetime(2024, 1, 2, 3, 4, 5)}
    assert enforce_params({"d": "2025-06-07"}, spec) == {"d": dt.datetime(2025, 6, 7)}


def test_enforce_params_object_param_is_checked_and_passed_on() -> None:
    spec = Signature.from_dict({"params": json.loads(MLFLOW_PARAMS)}).params

    result = enforce_params({"o": {"x": 2, "extra": "kept"}}, spec)
    assert result is not None and result["o"] == {"x": 2, "extra": "kept"}
    assert enforce_params(None, spec)["o"] == {"x": 1}

    with pytest.raises(ParamError) as info:
        enforce_params({"o": {"y": 1}}, spec)
    assert str(info.value) == ("Parameter 'o': is missing the required property 'x', got {'y': 1}.")

    with pytest.raises(ParamError) as info:
        enforce_params({"o": 3}, spec)
    assert str(info.value) == "Parameter 'o': must be an object (a dict with x), got 3."
