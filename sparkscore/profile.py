"""Profiles: what the scored rows looked like, per input column and for the prediction.

Each task profiles the rows it scores (the inputs `predict` was given and what it returned), the
profile travels to the driver in the mini-batch's manifest, and the driver merges them into
`OUT/_profile.json`. A profile is small (at most a few hundred numbers a column) and merging is
exact: counts add, minima and maxima compare, sums add (up to float rounding in the last bits).

Each column's profile (what is counted for numbers, strings and other types, and how two
merge) is sparkscore.columnprofile's.

The sample: every statistic but `rows` is over the rows whose row in their file, modulo
SAMPLE_PERIOD (4096), is below SAMPLE_BLOCK (64): the first 64 rows of every 4096, all the
rows of a file of up to 64. Chosen by the row's place in its file, not in its batch, it is the
same however the files are split into batches and tasks, so merging stays exact and a rerun
over the same files samples the same rows; blocks of consecutive rows keep the reads
cache-friendly. Why sample: the LR benchmark's predict costs about 10 ns a row for its 10
columns, so three numpy reductions over every value (sum, min, max) already cost 5% of its
tasks, and binning every value several times that. A predict call only takes its sampled rows
(sparkscore.sample); they are profiled once a mini-batch, the numeric columns together in one
block (a column's own profile costs mostly fixed overhead), and manifests carry bins as grid
keys. Measured with bench/profile_cost.py: docs/performance.md#profilings-cost.

A profile is the records here and their JSON, in one place (`Profile.to_json`/`from_json`);
the manifest and `_profile.json` both hold it. docs/batch-job.md#the-profile has the format.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sparkscore.columnprofile import TOP_K, ColumnProfile, finite_columns, profile_values

__all__ = [
    "PREDICTION",
    "PROFILE_FILE",
    "SAMPLE_BLOCK",
    "SAMPLE_PERIOD",
    "TOP_K",
    "ColumnProfile",
    "Profile",
    "profile_values",
    "sample_of",
]

SAMPLE_BLOCK = 64  # the sample: the first SAMPLE_BLOCK rows of every SAMPLE_PERIOD of a file
SAMPLE_PERIOD = 4096
PREDICTION = "prediction"  # the prediction's key beside the input columns (in drift)
PROFILE_FILE = "_profile.json"  # in the output folder
_PREDICTED = object()  # the prediction's place among the columns profiled together
FORMAT = 1  # `format` of the JSON: bumped when a key changes meaning


@dataclass(frozen=True, kw_only=True)
class Profile:
    """The rows of one or more mini-batches. `unprofiled`: mini-batches whose manifest has no
    profile (committed by an earlier version, or with `profile: false`), so in no count here."""

    rows: int = 0
    sampled: int = 0
    batches: int = 0
    unprofiled: int = 0
    inputs: Mapping[str, ColumnProfile] = field(default_factory=dict)
    prediction: ColumnProfile | None = None

    @classmethod
    def of(
        cls, model_input: pd.DataFrame | np.ndarray, prediction: pa.Array, sample: np.ndarray
    ) -> Profile:
        """One predict call's rows: what the model was given (a tensor's columns are not
        profiled) and its predictions, over the rows at `sample` (see sample_of)."""
        frames = [model_input.take(sample)] if isinstance(model_input, pd.DataFrame) else []
        return cls.of_sampled(frames, prediction.take(sample), rows=len(prediction))

    @classmethod
    def of_sampled(cls, frames: Sequence[pd.DataFrame], prediction: pa.Array, rows: int) -> Profile:
        """Sampled rows, every one profiled: the inputs, in frames of the same columns (none: a
        tensor's, not profiled), and the predictions, of `rows` rows in all. The frames are
        never concatenated: their numbers join one block, other columns are joined alone."""
        names = _plain_numbers(frames)
        blocks = []
        if names:
            blocks.append(np.concatenate([_numbers(f, names) for f in frames]))
        predicted = _plain_prediction(prediction)
        if predicted is not None:
            blocks.append(predicted[:, None])
        together = dict(zip([*names, _PREDICTED], finite_columns(blocks)))
        columns: dict[str, ColumnProfile] = {}
        for name in frames[0].columns if frames else ():
            columns[str(name)] = together.get(name) or profile_values(_joined(frames, name))
        return cls(
            rows=rows,
            sampled=len(prediction),
            inputs=columns,
            prediction=together.get(_PREDICTED) or profile_values(prediction),
        )

    def merge(self, other: Profile) -> Profile:
        inputs = dict(self.inputs)
        for name, column in other.inputs.items():
            inputs[name] = inputs[name].merge(column) if name in inputs else column
        return Profile(
            rows=self.rows + other.rows,
            sampled=self.sampled + other.sampled,
            batches=self.batches + other.batches,
            unprofiled=self.unprofiled + other.unprofiled,
            inputs=inputs,
            prediction=_merged_optional(self.prediction, other.prediction),
        )

    @classmethod
    def merged(cls, profiles: Iterable[Profile]) -> Profile:
        result = cls()
        for p in profiles:
            result = result.merge(p)
        return result

    @classmethod
    def of_manifests(cls, profiles: Sequence[Profile | None]) -> Profile:
        """A run's profile from its mini-batches' (None: a manifest without one)."""
        merged = cls.merged(p for p in profiles if p is not None)
        return replace(merged, unprofiled=merged.unprofiled + sum(p is None for p in profiles))

    def columns(self) -> dict[str, ColumnProfile]:
        """Every input column, and the prediction under PREDICTION."""
        both = dict(self.inputs)
        if self.prediction is not None:
            both[PREDICTION] = self.prediction
        return both

    def to_json(self, *, keys: bool = False) -> dict[str, Any]:
        """`keys`: bins as grid keys (ColumnProfile.to_json), as manifests hold them."""
        return {
            "format": FORMAT,
            "sample": {"block": SAMPLE_BLOCK, "period": SAMPLE_PERIOD},
            "rows": self.rows,
            "sampled": self.sampled,
            "batches": self.batches,
            "batches_unprofiled": self.unprofiled,
            "inputs": {name: c.to_json(keys=keys) for name, c in self.inputs.items()},
            "prediction": None if self.prediction is None else self.prediction.to_json(keys=keys),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Profile:
        prediction = doc.get("prediction")
        return cls(
            rows=doc["rows"],
            sampled=doc["sampled"],
            batches=doc["batches"],
            unprofiled=doc["batches_unprofiled"],
            inputs={name: ColumnProfile.from_json(c) for name, c in doc["inputs"].items()},
            prediction=None if prediction is None else ColumnProfile.from_json(prediction),
        )


def sample_of(rows: np.ndarray, *, increasing: bool) -> np.ndarray:
    """The positions, among a predict call's rows, of those in the sample: rows whose row in
    their file, modulo SAMPLE_PERIOD, is below SAMPLE_BLOCK. `increasing`: `rows` are one
    file's, in order; with no row skipped, the blocks are found without a pass over them."""
    if not len(rows):
        return np.zeros(0, dtype=np.int64)
    first, last = int(rows[0]), int(rows[-1])
    if not increasing or last - first != len(rows) - 1:  # several files, or bad rows left out
        return np.flatnonzero(rows % SAMPLE_PERIOD < SAMPLE_BLOCK)
    starts = np.arange(first // SAMPLE_PERIOD, last // SAMPLE_PERIOD + 1) * SAMPLE_PERIOD
    sampled = (starts[:, None] + np.arange(SAMPLE_BLOCK)).ravel()
    return sampled[(sampled >= first) & (sampled <= last)] - first


def _plain_numbers(frames: Sequence[pd.DataFrame]) -> list[Any]:
    """The names of the columns that are numbers of numpy types (no nulls but NaN) in every
    one of these frames."""
    if not frames or not sum(len(f) for f in frames):
        return []
    plain = [{n for n, t in f.dtypes.items() if _plain(t)} for f in frames[1:]]
    return [n for n, t in frames[0].dtypes.items() if _plain(t) and all(n in p for p in plain)]


def _plain(dtype: Any) -> bool:
    return isinstance(dtype, np.dtype) and dtype.kind in "fiu"


def _numbers(frame: pd.DataFrame, names: list[Any]) -> np.ndarray:
    chosen = frame if len(names) == frame.shape[1] else frame[names]  # a selection costs
    block: np.ndarray = chosen.to_numpy(dtype=np.float64)
    return block


def _joined(frames: Sequence[pd.DataFrame], name: Any) -> pd.Series:
    if len(frames) == 1:
        return frames[0][name]
    return pd.concat([f[name] for f in frames], ignore_index=True)


def _plain_prediction(prediction: pa.Array) -> np.ndarray | None:
    """The predictions as float64, when numbers without nulls."""
    t = prediction.type
    if (
        not len(prediction)
        or prediction.null_count
        or not (pa.types.is_integer(t) or pa.types.is_floating(t))
    ):
        return None
    return np.asarray(prediction.to_numpy(zero_copy_only=False), dtype=np.float64)


def _merged_optional(a: ColumnProfile | None, b: ColumnProfile | None) -> ColumnProfile | None:
    if a is None:
        return b
    return a if b is None else a.merge(b)
