"""The prediction's Spark type comes from the output signature, unless result_type overrides it."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_type

from sparkscore.dtypes import TYPES
from sparkscore.errors import SettingsError
from sparkscore.predictiontype import prediction_type
from sparkscore.signature import DataType, Signature
from sparkscore.sparktypes import (
    arrow_type,
    output_type,
    parse_type,
    prediction_types,
    spark_type,
)

LABEL_SCORE = T.StructType(
    [T.StructField("label", T.StringType()), T.StructField("score", T.DoubleType())]
)


def outputs(*specs: dict) -> Signature:
    return Signature.from_dict({"outputs": list(specs)})


def tensor(dtype: str, shape: list[int], name: str | None = None) -> dict:
    spec: dict = {"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}}
    return spec if name is None else {**spec, "name": name}


CASES = [
    pytest.param(None, T.DoubleType(), pa.float64(), id="no-signature"),
    pytest.param(Signature(), T.DoubleType(), pa.float64(), id="no-outputs"),
    pytest.param(outputs({"type": "long"}), T.LongType(), pa.int64(), id="colspec-long"),
    pytest.param(
        outputs({"type": "datetime"}),
        T.TimestampType(),
        pa.timestamp("us", tz="UTC"),
        id="colspec-datetime",
    ),
    pytest.param(
        outputs({"type": "string", "name": "label"}),
        T.StringType(),
        pa.string(),
        id="one-named-colspec-is-scalar",
    ),
    pytest.param(
        outputs({"type": "string", "name": "label"}, {"type": "double", "name": "score"}),
        LABEL_SCORE,
        pa.struct([("label", pa.string()), ("score", pa.float64())]),
        id="two-named-colspecs",
    ),
    pytest.param(outputs(tensor("int64", [-1])), T.LongType(), pa.int64(), id="tensor-int64"),
    pytest.param(
        outputs(tensor("float64", [-1, 2])),
        T.ArrayType(T.DoubleType()),
        pa.list_(pa.float64()),
        id="tensor-2d",
    ),
    pytest.param(
        outputs(tensor("float64", [-1, 2, 3])),
        T.ArrayType(T.ArrayType(T.DoubleType())),
        pa.list_(pa.list_(pa.float64())),
        id="tensor-3d",
    ),
    pytest.param(outputs(tensor("str", [-1])), T.StringType(), pa.string(), id="tensor-str"),
    pytest.param(outputs(tensor("object", [-1])), T.StringType(), pa.string(), id="tensor-object"),
    pytest.param(
        outputs(tensor("float32", [-1])), T.FloatType(), pa.float32(), id="tensor-float32"
    ),
    pytest.param(outputs(tensor("bool", [-1])), T.BooleanType(), pa.bool_(), id="tensor-bool"),
    pytest.param(outputs(tensor("int32", [-1])), T.IntegerType(), pa.int32(), id="tensor-int32"),
    pytest.param(
        outputs({"type": "array", "items": {"type": "double"}}),
        T.ArrayType(T.DoubleType()),
        pa.list_(pa.float64()),
        id="colspec-array",
    ),
]


@pytest.mark.parametrize(("signature", "spark", "arrow"), CASES)
def test_output_type_follows_the_output_signature(signature, spark, arrow) -> None:
    assert output_type(signature) == spark


@pytest.mark.parametrize(("signature", "spark", "arrow"), CASES)
def test_arrow_type_carries_each_output_type(signature, spark, arrow) -> None:
    assert arrow_type(spark) == arrow
    assert from_arrow_type(arrow) == spark


def test_output_type_two_unnamed_colspecs_are_a_struct_named_by_position() -> None:
    assert output_type(outputs({"type": "long"}, {"type": "double"})) == T.StructType(
        [T.StructField("0", T.LongType()), T.StructField("1", T.DoubleType())]
    )


def test_output_type_named_tensors_are_a_struct_of_arrays() -> None:
    sig = outputs(tensor("float64", [-1, 2], "emb"), tensor("int64", [-1], "label"))

    assert output_type(sig) == T.StructType(
        [T.StructField("emb", T.ArrayType(T.DoubleType())), T.StructField("label", T.LongType())]
    )


def test_output_type_result_type_string_wins_over_the_signature() -> None:
    assert output_type(outputs({"type": "long"}), "array<double>") == T.ArrayType(T.DoubleType())
    assert output_type(None, "string") == T.StringType()


def test_output_type_result_type_datatype_wins_over_the_signature() -> None:
    wanted = T.ArrayType(T.LongType())

    assert output_type(outputs(tensor("float64", [-1])), wanted) is wanted


def test_output_type_bad_result_type_is_a_settings_error() -> None:
    with pytest.raises(SettingsError) as info:
        output_type(outputs({"type": "long"}), "array<dbl>")

    assert str(info.value) == (
        "result_type must be a Spark SQL type such as double, string, array<double> or "
        "struct<label:string,score:double>, got 'array<dbl>'"
    )
    assert (info.value.key, info.value.value) == ("result_type", "array<dbl>")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("double", T.DoubleType()),
        (" DOUBLE ", T.DoubleType()),
        ("bigint", T.LongType()),
        ("int", T.IntegerType()),
        ("timestamp", T.TimestampType()),
        ("array< double >", T.ArrayType(T.DoubleType())),
        ("array<array<float>>", T.ArrayType(T.ArrayType(T.FloatType()))),
        ("map<string,double>", T.MapType(T.StringType(), T.DoubleType())),
        ("decimal(10, 2)", T.DecimalType(10, 2)),
        ("struct<label:string,score:double>", LABEL_SCORE),
        ("struct<`my col` int>", T.StructType([T.StructField("my col", T.IntegerType())])),
        ("label string, score double", LABEL_SCORE),
    ],
)
def test_parse_type_reads_ddl_without_a_spark_session(text: str, expected: T.DataType) -> None:
    assert parse_type(text) == expected


@pytest.mark.parametrize("text", ["", "dbl", "array<double", "double>", "map<string>", "a:"])
def test_parse_type_refuses_what_is_not_a_type(text: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse_type(text)

    assert info.value.key == "result_type"
    assert info.value.value == text


# ---------------------------------------------------------------------------------------------
# The job's prediction Arrow type (pure core) and the UDF's Spark return type are one type

SHAPES = [
    *CASES,
    pytest.param(outputs({"type": "long"}, {"type": "double"}), None, None, id="unnamed-colspecs"),
    pytest.param(
        outputs(tensor("float64", [-1, 2], "emb"), tensor("int64", [-1], "label")),
        None,
        None,
        id="named-tensors",
    ),
    pytest.param(
        outputs(
            {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "score": {"type": "double", "required": False},
                },
            }
        ),
        None,
        None,
        id="colspec-object",
    ),
    pytest.param(
        outputs({"type": "map", "values": {"type": "array", "items": {"type": "long"}}}),
        None,
        None,
        id="colspec-map",
    ),
    pytest.param(outputs({"type": "any"}), None, None, id="colspec-any"),
    *[
        pytest.param(outputs({"type": t.value}), None, None, id=f"colspec-{t.value}")
        for t in DataType
    ],
    *[
        pytest.param(outputs(tensor(d, [-1, 3])), None, None, id=f"tensor-{d}")
        for d in ("int8", "int16", "uint8", "uint16", "uint32", "float16", "datetime64[ns]")
    ],
]


@pytest.mark.parametrize(("signature", "spark", "arrow"), SHAPES)
def test_prediction_type_is_what_carries_the_udf_return_type(signature, spark, arrow) -> None:
    job_type = prediction_type(signature)
    udf_type, udf_arrow = prediction_types(signature)

    assert udf_arrow == job_type
    if arrow is not None:
        assert job_type == arrow
    assert udf_type == output_type(signature)
    assert arrow_type(udf_type) == job_type
    assert str(arrow_type(udf_type)) == str(job_type)  # field names too: they reach messages
    assert spark_type(job_type) == udf_type


@pytest.mark.parametrize(
    "ddl",
    [
        "double",
        "timestamp",
        "timestamp_ntz",
        "date",
        "decimal(10, 2)",
        "void",
        "tinyint",
        "map<string,array<double>>",
        "struct<label:string,score:double>",
        "label string, n bigint",
    ],
)
def test_prediction_type_of_a_result_type_is_what_carries_its_spark_type(ddl: str) -> None:
    job_type = prediction_type(outputs({"type": "long"}), ddl)

    assert prediction_types(outputs({"type": "long"}), ddl) == (parse_type(ddl), job_type)
    assert str(arrow_type(parse_type(ddl))) == str(job_type)


def test_prediction_types_take_a_spark_result_type_as_it_is() -> None:
    wanted = T.MapType(T.StringType(), T.LongType())

    assert prediction_types(None, wanted) == (wanted, pa.map_(pa.string(), pa.int64()))


@pytest.mark.parametrize(
    ("t", "spark"),
    [
        (DataType.boolean, T.BooleanType()),
        (DataType.integer, T.IntegerType()),
        (DataType.long, T.LongType()),
        (DataType.float, T.FloatType()),
        (DataType.double, T.DoubleType()),
        (DataType.string, T.StringType()),
        (DataType.binary, T.BinaryType()),
        (DataType.datetime, T.TimestampType()),
    ],
)
def test_spark_type_of_each_signature_type(t: DataType, spark: T.DataType) -> None:
    assert parse_type(TYPES[t].spark) == spark
    assert output_type(outputs({"type": t.value})) == spark
