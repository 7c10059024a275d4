"""Profiles: what the scored rows looked like, per input column and for the prediction.

Each task profiles the rows it scores (the inputs `predict` was given and what it returned), the
profile travels to the driver in the mini-batch's manifest, and the driver merges them into
`OUT/_profile.json`. A profile is small (at most a few hundred numbers a column) and merging is
exact: counts add, minima and maxima compare, sums add (up to float rounding in the last bits).

Numeric columns: count, nulls (NaN counts as null, as in pandas), min, max, mean and a
histogram on a grid fixed once for all data (sparkscore.bins), so that two tasks, two runs or a
run and its reference a year later put a value in the same bin, and merging adds counts.
Infinite values are counted (`infinite`) and left out of min, max, mean and bins.

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

String and boolean columns: count, nulls and the counts of their TOP_K most frequent values;
the rows of the other values add up in `other`. Merging keeps the TOP_K largest of the summed
counts, so it is exact while a column has at most TOP_K distinct values in each task, and the
most frequent values of a column with more are still found unless they are rare in every task.
Other types (dates, nested values, tensors): count and nulls only.

A profile is the records here and their JSON, in one place (`Profile.to_json`/`from_json`);
the manifest and `_profile.json` both hold it. docs/batch-job.md#the-profile has the format.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sparkscore.bins import bin_edges, bin_key, count_bins, count_bins_columns

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

TOP_K = 50  # distinct values kept per string column
SAMPLE_BLOCK = 64  # the sample: the first SAMPLE_BLOCK rows of every SAMPLE_PERIOD of a file
SAMPLE_PERIOD = 4096
PREDICTION = "prediction"  # the prediction's key beside the input columns (in drift)
PROFILE_FILE = "_profile.json"  # in the output folder
_PREDICTED = object()  # the prediction's place among the columns profiled together
FORMAT = 1  # `format` of the JSON: bumped when a key changes meaning

Kind = Literal["numeric", "categorical", "other"]


@dataclass(frozen=True, kw_only=True)
class ColumnProfile:
    """One column over some rows. `bins`: grid key -> rows (numeric, sparkscore.bins); `top`:
    value -> rows (categorical). `total` and `finite`: the sum and count of finite values."""

    kind: Kind
    count: int
    nulls: int
    infinite: int = 0
    finite: int = 0
    minimum: float | None = None
    maximum: float | None = None
    total: float = 0.0
    bins: Mapping[int, int] = field(default_factory=dict)
    top: Mapping[str, int] = field(default_factory=dict)
    other: int = 0

    @property
    def mean(self) -> float | None:
        return self.total / self.finite if self.finite else None

    @property
    def valued(self) -> bool:
        """Whether it saw a value at all: a column of nulls takes the kind of one that did."""
        return self.count > self.nulls

    def merge(self, other: ColumnProfile) -> ColumnProfile:
        if not other.valued and other.kind != self.kind:
            return replace(self, count=self.count + other.count, nulls=self.nulls + other.nulls)
        if not self.valued and other.kind != self.kind:
            return other.merge(self)
        if other.kind != self.kind or self.kind == "other":
            return ColumnProfile(
                kind="other", count=self.count + other.count, nulls=self.nulls + other.nulls
            )
        top, dropped = _merged_top(self.top, other.top)
        return ColumnProfile(
            kind=self.kind,
            count=self.count + other.count,
            nulls=self.nulls + other.nulls,
            infinite=self.infinite + other.infinite,
            finite=self.finite + other.finite,
            minimum=_pick(min, self.minimum, other.minimum),
            maximum=_pick(max, self.maximum, other.maximum),
            total=self.total + other.total,
            bins=_add(self.bins, other.bins),
            top=top,
            other=self.other + other.other + dropped,
        )

    def to_json(self, *, keys: bool = False) -> dict[str, Any]:
        """`keys`: the bins as grid keys and counts (`bin_keys`, `bin_counts`), as manifests
        hold them: a third of the JSON of their edges, written and read 3 times faster."""
        doc: dict[str, Any] = {"kind": self.kind, "count": self.count, "nulls": self.nulls}
        if self.kind == "numeric":
            doc.update(
                infinite=self.infinite,
                finite=self.finite,
                min=self.minimum,
                max=self.maximum,
                mean=self.mean,
                sum=self.total,
            )
            bins = sorted(self.bins.items())
            if keys:
                doc.update(bin_keys=[k for k, _ in bins], bin_counts=[n for _, n in bins])
            else:
                doc.update(bins=[[*bin_edges(k), n] for k, n in bins])
        elif self.kind == "categorical":
            ordered = sorted(self.top.items(), key=lambda kv: (-kv[1], kv[0]))
            doc.update(top=[[value, n] for value, n in ordered], other=self.other)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ColumnProfile:
        kind, count, nulls = doc["kind"], doc["count"], doc["nulls"]
        if kind == "numeric":
            return cls(
                kind=kind,
                count=count,
                nulls=nulls,
                infinite=doc["infinite"],
                finite=doc["finite"],
                minimum=doc["min"],
                maximum=doc["max"],
                total=doc["sum"],
                bins=(
                    dict(zip(doc["bin_keys"], doc["bin_counts"]))
                    if "bin_keys" in doc
                    else {bin_key(lo, hi): n for lo, hi, n in doc["bins"]}
                ),
            )
        if kind == "categorical":
            top = dict(doc["top"])
            return cls(kind=kind, count=count, nulls=nulls, top=top, other=doc["other"])
        return cls(kind="other", count=count, nulls=nulls)


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
        together = dict(zip([*names, _PREDICTED], _finite_columns(blocks)))
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


def profile_values(values: pd.Series | pa.Array, sample: np.ndarray | None = None) -> ColumnProfile:
    """One column's profile over the rows at `sample` (None: every row), from pandas (as
    predict was given it) or Arrow (what it returned)."""
    if isinstance(values, pd.Series):
        return _from_pandas(values, sample)
    sampled = values if sample is None else values.take(sample)
    t = sampled.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _numeric(sampled.to_numpy(zero_copy_only=False))  # nulls become NaN
    if pa.types.is_dictionary(t):
        sampled = sampled.cast(t.value_type)
        t = sampled.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t):
        return _categorical(sampled)
    return ColumnProfile(kind="other", count=len(sampled), nulls=sampled.null_count)


def _from_pandas(series: pd.Series, sample: np.ndarray | None) -> ColumnProfile:
    dtype = series.dtype
    if dtype.kind in "fiu":
        if isinstance(dtype, np.dtype):
            return _numeric(_at(series.to_numpy(), sample))
        return _numeric(_at(series.to_numpy(dtype=np.float64, na_value=np.nan), sample))
    values = _at(series.to_numpy(), sample)
    if dtype.kind == "b" or pd.api.types.is_string_dtype(dtype):
        try:
            sampled = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # an object column of mixed values
            sampled = None
        if sampled is not None and (
            pa.types.is_string(sampled.type)
            or pa.types.is_boolean(sampled.type)
            or pa.types.is_null(sampled.type)
        ):
            return _categorical(sampled)
    return ColumnProfile(kind="other", count=len(values), nulls=int(pd.isna(values).sum()))


def _at(values: np.ndarray, sample: np.ndarray | None) -> np.ndarray:
    return values if sample is None else values[sample]


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


def _finite_columns(blocks: list[np.ndarray]) -> list[ColumnProfile | None]:
    """The profiles of the columns of these blocks (rows x columns, float64; one sample's rows
    each) computed together: one pass per statistic over them all rather than one per column,
    since on a sample this small a column's own profile costs mostly fixed overhead. None: a
    column holding a value that is not finite, profiled on its own (_numeric)."""
    if not blocks:
        return []
    block = blocks[0] if len(blocks) == 1 else np.hstack(blocks)
    finite = np.isfinite(block).all(axis=0)
    kept = block if finite.all() else block[:, finite]
    if not kept.shape[1]:
        return [None] * len(finite)
    count = len(kept)
    profiles = iter(
        ColumnProfile(
            kind="numeric",
            count=count,
            nulls=0,
            finite=count,
            minimum=float(lo),
            maximum=float(hi),
            total=float(total),
            bins=bins,
        )
        for lo, hi, total, bins in zip(
            kept.min(axis=0), kept.max(axis=0), kept.sum(axis=0), count_bins_columns(kept)
        )
    )
    return [next(profiles) if ok else None for ok in finite]


def _numeric(values: np.ndarray) -> ColumnProfile:
    if values.dtype.kind != "f":
        values = values.astype(np.float64)
    nan = np.isnan(values)
    finite_mask = np.isfinite(values)
    finite = values if finite_mask.all() else values[finite_mask]
    nulls = int(nan.sum())
    profile = ColumnProfile(
        kind="numeric",
        count=len(values),
        nulls=nulls,
        infinite=len(values) - nulls - len(finite),
        finite=len(finite),
    )
    if not len(finite):
        return profile
    return replace(
        profile,
        minimum=finite.min().item(),
        maximum=finite.max().item(),
        total=float(finite.sum()),
        bins=count_bins(finite),
    )


def _categorical(sampled: pa.Array) -> ColumnProfile:
    counts = pc.value_counts(pc.drop_null(sampled))
    values = counts.field("values")
    if pa.types.is_boolean(values.type):
        values = pc.if_else(values, "true", "false")
    if pa.types.is_null(values.type):
        values = values.cast(pa.string())
    top, dropped = _merged_top(
        dict(zip(values.to_pylist(), counts.field("counts").to_pylist())), {}
    )
    return ColumnProfile(
        kind="categorical", count=len(sampled), nulls=sampled.null_count, top=top, other=dropped
    )


def _merged_top(a: Mapping[str, int], b: Mapping[str, int]) -> tuple[dict[str, int], int]:
    """The TOP_K largest summed counts (ties by value), and the rows of the rest."""
    summed = _add(a, b)
    if len(summed) <= TOP_K:
        return summed, 0
    ordered = sorted(summed.items(), key=lambda kv: (-kv[1], kv[0]))
    return dict(ordered[:TOP_K]), sum(n for _, n in ordered[TOP_K:])


def _add(a: Mapping[Any, int], b: Mapping[Any, int]) -> dict[Any, int]:
    summed = dict(a)
    for k, n in b.items():
        summed[k] = summed.get(k, 0) + n
    return summed


def _pick(choose: Any, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else choose(a, b)


def _merged_optional(a: ColumnProfile | None, b: ColumnProfile | None) -> ColumnProfile | None:
    if a is None:
        return b
    return a if b is None else a.merge(b)
