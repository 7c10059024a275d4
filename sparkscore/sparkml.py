"""Spark MLlib models (saved by `mlflow.spark`) scored natively, in Spark's JVM.

mlflow's python_function loader for these starts a local SparkSession inside whatever process
loads it; sparkscore runs on Spark already, so it loads the PipelineModel once, on the driver
(`load_pipeline`), and puts the rows through `PipelineModel.transform`: in the batch job
(`score_pipeline`: each mini-batch one partition, read and checked by sparkscore.sparkmltasks,
transformed, committed, in one Spark task) and in a notebook (`transform`).

The prediction is the column the signature's one output names (the pipeline's `predictionCol`
when it names none, or there is no signature); `spark_output_columns` asks for several, as a
struct. Vector columns (`probability`, `rawPrediction`) become arrays of doubles.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sparkscore.enforcement import enforce, unplaced
from sparkscore.errors import (
    MissingColumnError,
    ModelLoadError,
    PassthroughConflictError,
    ReadError,
    SchemaEnforcementError,
    SparkPipelineError,
    one_line,
)
from sparkscore.layout import OutputLayout
from sparkscore.manifest import Manifest
from sparkscore.model import ModelSpec, read_spec
from sparkscore.passthrough import passthrough_types
from sparkscore.planner import MiniBatch, Plan
from sparkscore.predictiontype import column_type, prediction_type
from sparkscore.progress import Counters
from sparkscore.readers import peek_schema
from sparkscore.scoring import ScoringSpec
from sparkscore.signature import ColSpec, DataType, Schema, Signature
from sparkscore.sparkmltasks import FILE, ROW, PipelineRun, carried, commit_task, read_task
from sparkscore.sparktypes import arrow_type, spark_type
from sparkscore.storage import resolve

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel

__all__ = ["load_pipeline", "score_pipeline", "transform"]

PREDICTION = "prediction"


def load_pipeline(spec: ModelSpec) -> PipelineModel:
    """The model's PipelineModel, loaded on the driver from its `sparkml` folder.

    Spark reads the stages' data through its executors: on a cluster the model directory must
    be where they can read it too (a shared filesystem), as any PipelineModel.load needs.
    """
    from pyspark.ml import PipelineModel

    assert spec.sparkml is not None
    model_class = str(spec.flavors.get("spark", {}).get("model_class") or "")
    if model_class.startswith("pyspark.ml.connect."):
        raise SparkPipelineError(
            path=spec.path,
            reason=f"is a Spark Connect ML model ({model_class}), which sparkscore cannot load; "
            "save the fitted pyspark.ml PipelineModel instead",
        )
    where = Path(spec.file(spec.sparkml)).as_uri()
    try:
        return PipelineModel.load(where)
    except Exception as e:  # the JVM's own exception, whatever Spark raises
        raise ModelLoadError(
            path=spec.path, reason=f"PipelineModel.load({where}) failed: {one_line(e)}"
        ) from None


def score_pipeline(
    spark: SparkSession,
    *,
    spec: ModelSpec,
    scoring: ScoringSpec,
    output_columns: Sequence[str] | None,
    layout: OutputLayout,
    plan: Plan,
    todo: list[MiniBatch],
    timeout: float | None,
    counters: Counters | None,
) -> list[Manifest]:
    """Run the mini-batches through the pipeline, one partition (one Spark task) each, and
    return their manifests: read and checked in Python, transformed in the JVM, committed."""
    pipeline = load_pipeline(spec)
    inputs = _input_schema(spec) or pipeline_inputs(spark, pipeline, plan)
    fields = [(str(s.name), column_type(s.type)) for s in inputs.specs if isinstance(s, ColSpec)]
    read = replace(
        scoring,
        prediction_type=pa.struct(fields),
        column_types={**scoring.column_types, **dict(fields)},
        read_columns=tuple(dict.fromkeys([*(n for n, _ in fields), *_names(scoring)])),
        params=None,
        profile=False,
    )
    run = PipelineRun(
        spec=replace(spec, signature=Signature(inputs=inputs)),
        read=read,
        output=scoring,
        layout=layout,
        input_uri=plan.uri,
        timeout=timeout,
        key=uuid.uuid4().hex[:12],
    )
    read_schema = T.StructType(
        [T.StructField(FILE, T.StringType()), T.StructField(ROW, T.LongType())]
        + [T.StructField(n, spark_type(t)) for n, t in fields]
        + [T.StructField(carried(n), spark_type(t)) for n, t in scoring.passthrough]
    )
    rows = spark.range(len(todo), numPartitions=len(todo)).mapInArrow(
        functools.partial(read_task, todo, run), read_schema
    )
    transformed = pipeline.transform(rows)
    prediction, output_type = _prediction(spec, pipeline, transformed, output_columns, scoring)
    run = replace(run, output=replace(scoring, prediction_type=output_type))
    selected = transformed.select(
        FILE,
        ROW,
        prediction.alias(PREDICTION),
        *([F.col(n) for n, _ in fields] if scoring.profile else []),
        *(carried(n) for n, _ in scoring.passthrough),
    )
    committed = selected.mapInArrow(
        functools.partial(commit_task, run, counters), "manifest string"
    ).collect()
    return [Manifest.loads(r.manifest) for r in committed]


def _names(scoring: ScoringSpec) -> list[str]:
    return [n for n, _ in scoring.passthrough]


def _input_schema(spec: ModelSpec) -> Schema | None:
    """The signature's input columns, which the rows are held to before the pipeline."""
    schema = spec.signature.inputs if spec.signature else None
    if schema is None or not schema.specs:
        return None
    if schema.is_tensor or not schema.has_names:
        raise SparkPipelineError(
            path=spec.path,
            reason="has a signature whose inputs are not named columns; a Spark pipeline reads "
            "columns by name, so save it with a signature of named columns (infer_signature "
            "on a pandas DataFrame)",
        )
    return schema


def pipeline_inputs(spark: SparkSession, pipeline: PipelineModel, plan: Plan) -> Schema:
    """Without a signature, the columns the rows are held to: those of the input files that
    the pipeline cannot do without, each of the one type every file gives it (the rule of
    passthrough.common_type). A file without one of them then fails alone, by name."""
    fs, _ = resolve(plan.uri)
    names: dict[str, None] = {}
    for file in plan.files:
        if file.kind != "image":
            try:
                names.update(dict.fromkeys(peek_schema(fs, file).names))
            except (pa.ArrowException, OSError, UnicodeDecodeError, ReadError):
                continue  # its task says why it cannot be read
    try:
        types = passthrough_types(fs, plan.files, list(names), uri=plan.uri)
    except PassthroughConflictError as e:
        raise SparkPipelineError(
            path=plan.uri,
            reason=f"gives the column {e.column!r} types no one column holds "
            f"({_listed(e.types)}); a model without a signature takes each column's type "
            "from the files, so save it with a signature (infer_signature), which holds "
            "every file to one",
        ) from None
    full = [T.StructField(n, spark_type(t)) for n, t in types.items()]
    problem = _refusal(spark, pipeline, full)
    if problem is not None:
        raise SparkPipelineError(
            path=plan.uri,
            reason=f"has no columns the model's pipeline can transform ({problem})",
        )
    specs = []
    for name, t in types.items():
        if _refusal(spark, pipeline, [f for f in full if f.name != name]) is None:
            continue  # the pipeline does without it
        signature_type = _SIGNATURE_TYPES.get(t) or (
            DataType.datetime if pa.types.is_timestamp(t) else None
        )
        if signature_type is None:
            raise SparkPipelineError(
                path=plan.uri,
                reason=f"has the column {name!r} of type {t}, which a model without a signature "
                "cannot be given; save the model with a signature (infer_signature)",
            )
        specs.append(ColSpec(type=signature_type, name=name))
    return Schema(tuple(specs))


_SIGNATURE_TYPES = {
    pa.bool_(): DataType.boolean,
    pa.int8(): DataType.integer,
    pa.int16(): DataType.integer,
    pa.int32(): DataType.integer,
    pa.int64(): DataType.long,
    pa.float32(): DataType.float,
    pa.float64(): DataType.double,
    pa.string(): DataType.string,
    pa.large_string(): DataType.string,
    pa.binary(): DataType.binary,
}


def _refusal(
    spark: SparkSession, pipeline: PipelineModel, fields: list[T.StructField]
) -> str | None:
    """Why the pipeline cannot transform rows of these columns (from their schema alone, an
    empty DataFrame: Spark checks each stage's columns as the transform is planned)."""
    try:
        pipeline.transform(spark.createDataFrame([], T.StructType(fields)))
    except Exception as e:  # the JVM's own exception, whatever Spark raises
        return one_line(e)
    return None


def prediction_column(spec: ModelSpec, pipeline: PipelineModel) -> str:
    """The pipeline's column the prediction is: the signature's one output, when it names it,
    else the `predictionCol` of the last stage that has one."""
    outputs = spec.signature.outputs if spec.signature else None
    if outputs is not None and len(outputs.specs) == 1 and outputs.specs[0].name:
        return str(outputs.specs[0].name)
    for stage in reversed(pipeline.stages):
        if stage.hasParam("predictionCol"):
            return str(stage.getOrDefault("predictionCol"))
    return PREDICTION


def _prediction(
    spec: ModelSpec,
    pipeline: PipelineModel,
    transformed: DataFrame,
    output_columns: Sequence[str] | None,
    scoring: ScoringSpec,
) -> tuple[Column, pa.DataType]:
    """The prediction column and its Arrow type: one column of the job's prediction type, or
    the struct of the `spark_output_columns` (`prediction` among them is that column)."""
    predicted = prediction_column(spec, pipeline)
    columns = _outputs(spec, transformed, predicted, output_columns)
    if output_columns is None:
        return columns[0][1].cast(spark_type(scoring.prediction_type)), scoring.prediction_type
    fields = []
    for name, column in columns:
        t = scoring.prediction_type if name == PREDICTION else None
        column = column if t is None else column.cast(spark_type(t))
        fields.append((name, column, t))
    dtype = transformed.select(*(c.alias(n) for n, c, _ in fields)).schema
    struct = pa.struct(
        [(n, t if t is not None else arrow_type(dtype[n].dataType)) for n, _, t in fields]
    )
    return F.struct(*(c.alias(n) for n, c, _ in fields)), struct


def _outputs(
    spec: ModelSpec, transformed: DataFrame, predicted: str, names: Sequence[str] | None
) -> list[tuple[str, Column]]:
    """Each output column by its output name, vectors as arrays of doubles."""
    found = {f.name: f.dataType for f in transformed.schema.fields}
    chosen = []
    for name in names or (PREDICTION,):
        column = predicted if name == PREDICTION else name
        if column not in found or column.startswith("_sparkscore_"):
            raise SparkPipelineError(
                path=spec.path,
                reason=f"its pipeline gives no column {column!r} (spark_output_columns); it "
                f"gives {', '.join(n for n in found if not n.startswith('_sparkscore_'))}",
            )
        value = F.col(column)
        if isinstance(found[column], VectorUDT):
            # as every array the job writes: elements may be null
            value = vector_to_array(value).cast(T.ArrayType(T.DoubleType(), containsNull=True))
        chosen.append((name, value))
    return chosen


def transform(
    spark: SparkSession,
    model_uri: str | os.PathLike[str],
    df: DataFrame,
    *,
    output_columns: Sequence[str] | None = None,
) -> DataFrame:
    """`df` with the model's prediction: a Spark MLlib model, held to its signature, through
    its PipelineModel, in this session's JVM.

    The DataFrame keeps its columns and gains `prediction` (typed as the job types it), or one
    column per name in `output_columns` (`["prediction", "probability"]`; vectors as arrays of
    doubles). A value the signature's type cannot hold fails the query with the column and the
    value, as `spark_udf` does, before the pipeline sees it.

    Examples
    --------
    >>> scored = sparkscore.transform(spark, "spark_model", df)            # doctest: +SKIP
    >>> scored.select("id", "prediction").show()                          # doctest: +SKIP
    """
    spec = read_spec(os.path.abspath(os.fspath(model_uri)))
    if spec.sparkml is None:
        raise SparkPipelineError(
            path=spec.path,
            reason="is not a Spark MLlib model (MLmodel has no spark flavor); score it with "
            "sparkscore.spark_udf",
        )
    pipeline = load_pipeline(spec)
    schema = _input_schema(spec)
    checked = df if schema is None else _enforced(df, schema)
    transformed = pipeline.transform(checked)
    pa_type = prediction_type(spec.signature)
    columns = _outputs(spec, transformed, prediction_column(spec, pipeline), output_columns)
    outputs = [(c.cast(spark_type(pa_type)) if n == PREDICTION else c).alias(n) for n, c in columns]
    return transformed.select(*(F.col(c) for c in df.columns), *outputs)


def _enforced(df: DataFrame, schema: Schema) -> DataFrame:
    """`df` with the signature's columns converted to its types, value by value (a lossy
    conversion fails the query, naming the column and the value)."""
    specs = [s for s in schema.specs if isinstance(s, ColSpec)]
    missing = [s.name for s in specs if s.required and s.name not in df.columns]
    if missing:
        raise MissingColumnError(file=None, column=str(missing[0]), present=list(df.columns))
    types = {str(s.name): column_type(s.type) for s in specs if s.name in df.columns}
    fields = [
        T.StructField(f.name, spark_type(types[f.name])) if f.name in types else f
        for f in df.schema.fields
    ]
    held = Schema(tuple(s for s in specs if s.name in types))
    return df.mapInArrow(functools.partial(_conformed, held, types), T.StructType(fields))


def _conformed(
    schema: Schema, types: dict[str, pa.DataType], batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        try:
            frame = enforce(batch.select(list(types)).to_pandas(), schema)
        except SchemaEnforcementError as e:
            raise unplaced(e) from None
        arrays: list[Any] = [
            pa.array(frame[n], types[n], from_pandas=True) if n in types else column
            for n, column in zip(batch.schema.names, batch.columns)
        ]
        yield pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _listed(types: dict[str, list[str]]) -> str:
    return "; ".join(f"{t} in {', '.join(files)}" for t, files in types.items())
