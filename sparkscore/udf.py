"""The notebook face: an Arrow UDF whose return type comes from the model's signature.

An Arrow UDF, not a pandas one: Spark's Arrow batches reach it as Arrow, are gathered into one
predict call's rows and turned into pandas once per call, as the job turns its batches, and the
predictions go back as the Arrow array they already are, with no pandas hop either way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.functions import arrow_udf

from sparkscore.batching import full
from sparkscore.enforcement import enforce, unplaced
from sparkscore.envbuild import ensure_environment
from sparkscore.environment import read_environment
from sparkscore.errors import SchemaEnforcementError, SettingsError, SparkPipelineError
from sparkscore.images import ImageInput, row_tensors, stack_runs
from sparkscore.loader import Model, warn_untrusted
from sparkscore.model import read_spec
from sparkscore.outputs import to_arrow
from sparkscore.readers import batch_bytes
from sparkscore.session import task_cpus
from sparkscore.settings import Settings
from sparkscore.shipping import ShippedModel, ship_model
from sparkscore.signature import Signature
from sparkscore.sparktypes import prediction_types
from sparkscore.threads import budget_for
from sparkscore.worker import WORKER

if TYPE_CHECKING:
    from pyspark.sql._typing import UserDefinedFunctionLike

__all__ = ["spark_udf"]

log = logging.getLogger("sparkscore")


def spark_udf(
    spark: SparkSession,
    model_uri: str | os.PathLike[str],
    result_type: str | T.DataType | None = None,
    *,
    env_manager: str | None = "local",
    params: Mapping[str, Any] | None = None,
    env_cache: str | None = None,
    trust_model: bool = False,
    threads: int | Literal["auto", "off"] = "auto",
    batch_rows: int | Literal["auto"] = "auto",
    **mlflow_options: Any,
) -> Callable[..., Column]:
    """A Spark function that scores the model, typed by its signature.

    The arguments are `mlflow.pyfunc.spark_udf`'s: `model_uri` and `result_type` by position,
    the rest by name, so code written for mlflow runs unchanged; an mlflow option sparkscore
    does not have (`extra_env`, `model_config`, ...) is refused by name.

    Call it with the input columns (`predict("age", "bmi")`, `predict(*df.columns)`), with one
    struct column (`predict(F.struct(...))`), or with nothing, when the signature names the
    columns: then the required ones must be in the DataFrame and the optional ones it has are
    used (those it lacks are logged as left out). Columns are matched to the signature by name,
    and by position when the names differ but the count agrees. For a model with one input
    tensor, one binary column of encoded images (Spark's `binaryFile` `content`) or an array
    column is shaped image by image as the batch job shapes image files; encoded images reach a
    model with no signature as uint8, as image files do.

    `env_manager` is as in `mlflow.pyfunc.spark_udf`: "local" scores in this environment;
    "virtualenv" or "uv" builds the model's own environment from its pins (cached in
    `env_cache`), ships it to the executors and predicts in a process running in it.
    `trust_model=True` says the model is trusted: loading a pickled model runs code from it,
    which is otherwise said once, in a warning. `threads` is each Python worker's native thread
    budget, as the job's `threads` setting: `auto`, the cores Spark gives each task.
    `batch_rows` is the job's setting too: Spark hands the UDF Arrow batches of 10,000 rows
    (`spark.sql.execution.arrow.maxRecordsPerBatch`), gathered here into one `predict` call of
    `batch_rows` rows (`auto`: about 32 MiB of input, at most 200,000 rows), so that predict's
    cost per call is paid as rarely as in the job.

    Examples
    --------
    >>> predict = sparkscore.spark_udf(spark, "model_dir")          # doctest: +SKIP
    >>> df.withColumn("prediction", predict()).show()                # doctest: +SKIP
    """
    _refuse(mlflow_options)
    env_manager = env_manager or "local"  # mlflow's None: this environment
    if env_manager not in ("local", "virtualenv", "uv"):
        raise SettingsError(
            key="env_manager", value=env_manager, reason="must be one of local, virtualenv, uv"
        )
    path = os.path.abspath(os.fspath(model_uri))
    spec = read_spec(path)
    if spec.sparkml is not None:
        raise SparkPipelineError(
            path=path,
            reason="is a Spark MLlib model (the spark flavor): its PipelineModel runs in "
            "Spark's JVM, which a Python UDF cannot call; score a DataFrame with "
            "sparkscore.transform(spark, model_uri, df) instead",
        )
    warn_untrusted(spec, trusted=trust_model)
    return_type, pa_type = prediction_types(spec.signature, result_type)
    checked_params = spec.params(params)
    built = None
    if env_manager != "local":
        built = ensure_environment(read_environment(spec), env_manager, env_cache)
    shipped = ship_model(spark, path, environment=built, spec=spec)
    checked = Settings(threads=threads, batch_rows=batch_rows)
    scoring = _Scoring.of(
        spec.signature,
        shipped,
        checked_params,
        pa_type,
        budget_for(checked.threads, task_cpus(spark)),
        None if checked.batch_rows == "auto" else checked.batch_rows,
    )
    return _caller(scoring, return_type)


@dataclass(frozen=True)
class _Scoring:
    """What scoring an Arrow batch needs, decided on the driver and pickled to the workers."""

    shipped: ShippedModel
    params: dict[str, Any] | None
    pa_type: pa.DataType
    names: tuple[str, ...]  # the signature's columns (unnamed ones too: "0", "1", ...)
    named: tuple[str, ...]  # the same, when the signature names them
    optional: tuple[str, ...]
    threads: int | None  # each worker's native thread budget (sparkscore.threads)
    batch_rows: int | None  # rows per predict call; None: about BATCH_BYTES of input

    @classmethod
    def of(
        cls,
        signature: Signature | None,
        shipped: ShippedModel,
        params: dict[str, Any] | None,
        pa_type: pa.DataType,
        threads: int | None,
        batch_rows: int | None,
    ) -> _Scoring:
        schema = signature.inputs if signature else None
        if schema is None or schema.is_tensor:
            return cls(shipped, params, pa_type, (), (), (), threads, batch_rows)
        names = tuple(schema.names())
        if not schema.has_names:
            return cls(shipped, params, pa_type, names, (), (), threads, batch_rows)
        required = set(schema.required_names())
        optional = tuple(n for n in names if n not in required)
        return cls(shipped, params, pa_type, names, names, optional, threads, batch_rows)

    def _model(self) -> Model:
        """The shipped model, loaded once per worker and held to the thread budget."""
        model = self.shipped.load()
        WORKER.hold_threads(model, self.shipped.sha256, self.threads)
        return model

    def given(self, structs: Iterator[pa.Array]) -> Iterator[pa.Array]:
        """Called with columns: those, matched to the signature."""
        model = self._model()
        names = list(self.names) or None
        batches = (_as_model_input(_columns(struct), names) for struct in structs)
        for frame in _gathered(batches, self.batch_rows):
            yield _score(model, frame, self.params, self.pa_type)

    def every(self, structs: Iterator[pa.Array]) -> Iterator[pa.Array]:
        """Called with no columns: the signature's columns that the DataFrame has."""
        model = self._model()
        for frame in _gathered(map(self._present, structs), self.batch_rows):
            yield _score(model, frame, self.params, self.pa_type)

    def _present(self, struct: pa.Array) -> pa.RecordBatch:
        batch = _columns(struct)
        have = set(batch.schema.names)
        _say_left_out([n for n in self.optional if n not in have])
        return batch.select([n for n in self.named if n in have])


def _gathered(batches: Iterator[pa.RecordBatch], batch_rows: int | None) -> Iterator[pd.DataFrame]:
    """Spark's Arrow batches gathered into predict calls of the job's size, each one frame.

    Spark pairs the UDF's output with its input row by row, not batch by batch, so one
    prediction array may answer several input batches; it only must not run ahead of them.
    """
    waiting: list[pa.RecordBatch] = []
    rows = nbytes = 0
    for batch in batches:
        waiting.append(batch)
        rows += batch.num_rows
        nbytes += batch_bytes(batch)
        if full(rows, nbytes, batch_rows):
            yield _frame(waiting)
            waiting, rows, nbytes = [], 0, 0
    if waiting:
        yield _frame(waiting)


def _frame(batches: list[pa.RecordBatch]) -> pd.DataFrame:
    """One predict call's rows in pandas, maps as dicts (as a pandas UDF and mlflow give them)."""
    frame: pd.DataFrame = pa.Table.from_batches(batches).to_pandas(maps_as_pydicts="lossy")
    return frame


def _caller(scoring: _Scoring, return_type: T.DataType) -> Callable[..., Column]:
    """The function a user calls with columns (or none) to get the prediction column."""
    # The iterator type hints make these scalar iterator UDFs; pyspark's stubs for that kind
    # accept only atomic and array return types, but struct and map types are valid too.
    given: UserDefinedFunctionLike = arrow_udf(  # type: ignore[call-overload]
        scoring.given, return_type
    )
    every: UserDefinedFunctionLike = arrow_udf(  # type: ignore[call-overload]
        scoring.every, return_type
    )

    def predict(*cols: str | Column) -> Column:
        if not cols:
            if not scoring.named:
                names = scoring.names
                raise TypeError(
                    _NO_NAMES
                    if not names
                    else _UNNAMED.format(
                        n=len(names), example=", ".join(repr(c) for c in "abcdefgh"[: len(names)])
                    )
                )
            if scoring.optional:
                # Which optional columns the DataFrame has is known only where it is scored.
                return every(F.struct(F.col("*")))
            cols = scoring.named
        packed = [F.col(c).alias(c) if isinstance(c, str) else c for c in cols]
        return given(F.struct(*packed))

    return predict


def _refuse(mlflow_options: Mapping[str, Any]) -> None:
    """An mlflow.pyfunc.spark_udf option sparkscore lacks is refused by name, not ignored."""
    if mlflow_options:
        name = sorted(mlflow_options)[0]
        raise SettingsError(
            key=name,
            value=mlflow_options[name],
            reason=f"is an option sparkscore.spark_udf does not have; its options are "
            f"{', '.join(_OPTIONS)}",
        )


_OPTIONS = (
    "model_uri",
    "result_type",
    "env_manager",
    "params",
    "env_cache",
    "trust_model",
    "threads",
    "batch_rows",
)
_NO_NAMES = (
    "this model's signature names no input columns; pass the columns to score, "
    "e.g. predict('a', 'b')."
)
_UNNAMED = (
    "this model's signature does not name its input columns (it takes {n} unnamed "
    "columns, by position), so predict() cannot pick them; pass the columns to score in "
    "order, e.g. predict({example})."
)
_SAID: set[tuple[str, ...]] = set()


def _say_left_out(missing: list[str]) -> None:
    """Log once per worker which optional columns the DataFrame lacks, so a typo is seen."""
    key = tuple(missing)
    if missing and key not in _SAID:
        _SAID.add(key)
        log.warning(
            "the DataFrame has no column %s, which the model's signature marks optional; "
            "the model is scored without %s.",
            ", ".join(map(repr, missing)),
            "it" if len(missing) == 1 else "them",
        )


def _columns(struct: pa.Array) -> pa.RecordBatch:
    """The struct column the UDF is called with, as a batch of its fields."""
    assert isinstance(struct, pa.StructArray)  # _caller packs the columns into one struct
    fields = [_wall_clock(field) for field in struct.flatten()]
    return pa.RecordBatch.from_arrays(fields, names=[f.name for f in struct.type])


def _wall_clock(array: pa.Array) -> pa.Array:
    """A Spark timestamp as a pandas UDF gets it: the session time zone's naive wall-clock time
    (Arrow carries it with that zone; a model's datetime column, as mlflow's, is naive)."""
    if pa.types.is_timestamp(array.type) and array.type.tz is not None:
        return pc.local_timestamp(array)
    return array


def _as_model_input(batch: pa.RecordBatch, names: list[str] | None) -> pa.RecordBatch:
    """One struct column is the user's own struct: its fields are the columns."""
    if batch.num_columns == 1 and pa.types.is_struct(batch.schema.types[0]):
        batch = _columns(batch.column(0))
    if names and not set(names) <= set(batch.schema.names) and batch.num_columns == len(names):
        batch = batch.rename_columns(names)
    return batch


def _score(
    model: Model, frame: pd.DataFrame, params: dict[str, Any] | None, pa_type: pa.DataType
) -> pa.Array:
    """One predict call's predictions; images (encoded bytes or arrays) as the job gives them."""
    tensors = row_tensors(frame, model.input_schema)
    if tensors is None:
        return to_arrow(_predict(model, frame, params), pa_type, len(frame))
    # Rows of one shape share a predict call; a shape change (images of many sizes) starts another.
    batchable = ImageInput.for_schema(model.input_schema).batchable
    parts = [
        to_arrow(model.predict_conformed(run, params), pa_type, len(run))
        for run in stack_runs(tensors, batchable)
    ]
    return pa.concat_arrays(parts)


def _predict(model: Model, frame: pd.DataFrame, params: dict[str, Any] | None) -> Any:
    try:
        conformed = enforce(frame, model.input_schema)
    except SchemaEnforcementError as e:
        raise unplaced(e) from None
    return model.predict_conformed(conformed, params)
