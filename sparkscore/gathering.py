"""Small files' batches held as Arrow, then converted and checked as one.

With files of a few hundred rows, one to_pandas and one conform per file cost more than the
prediction; gathered, they run once per about one predict call's rows. Each bad row's error is
charged back to its own file and row, and a gathered check that raises (a missing column) is
redone file by file, so every outcome is the one the file would have alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from sparkscore.batching import Predictor, Queued, full
from sparkscore.checking import at_row, check_batch, good_positions, passthrough_arrays
from sparkscore.enforcement import conform
from sparkscore.errors import BatchTimeoutError, SchemaEnforcementError, SparkscoreError
from sparkscore.failures import FileState, error_record
from sparkscore.loader import Model
from sparkscore.readers import batch_bytes
from sparkscore.signature import ColSpec, DataType

if TYPE_CHECKING:  # scoring.py, the public surface, imports this module
    from sparkscore.scoring import ScoringSpec

__all__ = ["Gatherer"]


@dataclass(frozen=True, eq=False)
class _Part:
    """A whole small file's one batch, held; `offset`: the file row of its first row."""

    state: FileState
    batch: pa.RecordBatch
    offset: int


# Arrow types whose pandas column has one dtype whatever the values (an integer column with a
# null becomes float64, so null presence is part of the gathering key), and whose conversion is
# judged value by value, so a column checked whole holds each value to the same rule as alone.
def _plain_type(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
    )


class Gatherer:
    """Small files' batches held, then checked as one and queued for predict (see the module
    docstring); files of one schema and one null pattern are gathered together."""

    def __init__(self, model: Model, spec: ScoringSpec, predictor: Predictor) -> None:
        self.spec, self.predictor = spec, predictor
        self.schema = model.input_schema
        # A datetime column is parsed with a format inferred from its first value, and a tensor
        # is enforced whole: both are checked file by file.
        self.enabled = not (
            self.schema is not None
            and (
                self.schema.is_tensor
                or any(
                    isinstance(s, ColSpec) and s.type is DataType.datetime
                    for s in self.schema.specs
                )
            )
        )
        self.parts: list[_Part] = []
        self.rows = self.bytes = 0
        # The last plain schema seen, and its columns whose nulls change their pandas dtype:
        # files of one folder share a schema, so each is judged once, not once a file.
        self.seen: pa.Schema | None = None
        self.nullable: list[int] = []
        self.nulls: tuple[bool, ...] = ()

    def add(self, state: FileState, batch: pa.RecordBatch, offset: int) -> bool:
        """Hold `batch` (a whole file) for a gathered check; False: check it alone now."""
        if not self.enabled or batch.num_rows == 0:
            return False
        schema = batch.schema
        if self.seen is None or not schema.equals(self.seen, check_metadata=True):
            if not all(_plain_type(f.type) for f in schema):
                return False
            self.flush()
            self.seen = schema
            self.nullable = [
                i
                for i, f in enumerate(schema)
                if pa.types.is_integer(f.type) or pa.types.is_boolean(f.type)
            ]
        nulls = tuple(batch.column(i).null_count > 0 for i in self.nullable)
        if nulls != self.nulls:
            self.flush()
            self.nulls = nulls
        self.parts.append(_Part(state, batch, offset))
        self.rows += batch.num_rows
        self.bytes += batch_bytes(batch)
        if full(self.rows, self.bytes, self.spec.batch_rows):
            self.flush()
        return True

    def flush(self) -> None:
        parts, self.parts = self.parts, []
        self.rows = self.bytes = 0
        if len(parts) == 1:
            self._alone(parts[0])
        elif parts:
            self._together(parts)

    def _alone(self, part: _Part) -> None:
        try:
            check_batch(self.spec, self.schema, part.state, self.predictor, part.batch, part.offset)
        except BatchTimeoutError:
            raise
        except SparkscoreError as e:
            part.state.fail(e)

    def _together(self, parts: list[_Part]) -> None:
        try:
            frame = pa.Table.from_batches([p.batch for p in parts]).to_pandas()
            names = parts[0].batch.schema.names
            present = all(column in names for column, _ in self.spec.passthrough)
            checked = conform(frame, self.schema) if present else None
        except BatchTimeoutError:
            raise
        except Exception:  # a missing column: each file alone fails (or not) as it would have
            checked = None
        if checked is None:
            for part in parts:
                self._alone(part)
            return
        bad = checked.bad
        good_before = np.concatenate([[0], np.cumsum(~bad)])
        errors = list(checked.errors)
        e = start = 0
        for part in parts:
            stop = start + part.batch.num_rows
            mine = []
            while e < len(errors) and errors[e].row < stop:
                mine.append(errors[e])
                e += 1
            self._deliver(
                part,
                checked.frame,
                bad[start:stop],
                mine,
                start,
                (int(good_before[start]), int(good_before[stop])),
            )
            start = stop

    def _deliver(
        self,
        part: _Part,
        conformed: pd.DataFrame,
        bad: np.ndarray,
        errors: list[SchemaEnforcementError],
        start: int,
        span: tuple[int, int],
    ) -> None:
        """One gathered file's share: what `check_batch` would have done with it alone."""
        state, result = part.state, part.state.result
        name = result.name
        for err in errors:
            assert err.row is not None  # conform numbers every bad row
            row = part.offset + err.row - start
            result.errors.append(error_record(name, row, "validate", at_row(err, name, row)))
        if errors and self.spec.bad_rows == "fail_file":
            state.fail()
            return
        if span[0] == span[1]:
            return
        rows = part.offset + (
            good_positions(bad)
            if span[1] - span[0] < len(bad)
            else np.arange(len(bad), dtype=np.int64)
        )
        passthrough: list[pa.Array] = []
        if self.spec.passthrough:
            try:
                passthrough = passthrough_arrays(self.spec, name, part.batch, bad)
            except SparkscoreError as e:
                state.fail(e)
                return
        self.predictor.add(
            Queued(
                state,
                conformed,
                rows,
                passthrough,
                batch_bytes(part.batch) * len(rows) // len(bad),
                "frame",
                span,
            )
        )
