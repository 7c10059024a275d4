"""Profiles: what the scored rows looked like, per input column and for the prediction.

Each task profiles the rows it scores (the inputs `predict` was given and what it returned), the
profile travels to the driver in the mini-batch's manifest, and the driver merges them into
`OUT/_profile.json`. A profile is small (at most a few hundred numbers a column) and merging is
exact: counts add, minima and maxima compare, sums add (up to float rounding in the last bits).

Numeric columns: count, nulls (NaN counts as null, as in pandas), min, max, mean and a
histogram over a grid fixed once for all data, not per run. A finite value's bin is its
binary exponent and the first three bits of its mantissa: `|v|` in
`[2**e * (8 + j) / 16, 2**e * (9 + j) / 16)` for `j` in 0..7, mirrored for negative values,
and zero in a bin of its own. So every bin is at most 12.5% wide relative to its values, its
edges are exact floats, and two tasks, two runs or a run and its reference a year later put a
value in the same bin, with no pass over the data first and nothing decided on the driver.
Bins decided from the first file (or the plan's metadata) would instead differ between runs,
and a comparison would have to re-bin one histogram into the other's edges, inexactly; a
grid fixed by the number's own bits needs neither. Only the bins holding values are kept:
a column spanning six orders of magnitude holds about 160 of them. Infinite values are
counted (`infinite`) and left out of min, max, mean and bins, so the JSON stays JSON.

String and boolean columns: count, nulls and the counts of their TOP_K most frequent values;
the rows of the other values add up in `other`. Merging keeps the TOP_K largest of the summed
counts, so it is exact while a column has at most TOP_K distinct values in each task, and the
most frequent values of a column with more are still found unless they are rare in every task.
Other types (dates, nested values, tensors): count and nulls only.

A profile is the records here and their JSON, in one place (`Profile.to_json`/`from_json`);
the manifest and `_profile.json` both hold it. docs/batch-job.md#the-profile has the format.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "PREDICTION",
    "PROFILE_FILE",
    "SUB_BINS",
    "TOP_K",
    "ColumnProfile",
    "Profile",
    "bin_edges",
    "bin_key",
    "profile_values",
]

TOP_K = 50  # distinct values kept per string column
SUB_BINS = 8  # bins per power of two: each bin is at most 1/SUB_BINS of its values wide
PREDICTION = "prediction"  # the prediction's key beside the input columns (in drift)
PROFILE_FILE = "_profile.json"  # in the output folder
FORMAT = 1  # `format` of the JSON: bumped when a key changes meaning
_EXPONENT_BIAS = 1075  # frexp's exponent of the smallest subnormal is -1073: keys stay >= 1

Kind = Literal["numeric", "categorical", "other"]


@dataclass(frozen=True, kw_only=True)
class ColumnProfile:
    """One column over some rows. `bins`: grid key -> rows (numeric, see bin_edges); `top`:
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

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "count": self.count, "nulls": self.nulls}
        if self.kind == "numeric":
            doc.update(
                infinite=self.infinite,
                finite=self.finite,
                min=self.minimum,
                max=self.maximum,
                mean=self.mean,
                sum=self.total,
                bins=[[*bin_edges(k), n] for k, n in sorted(self.bins.items())],
            )
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
                bins={bin_key(lo, hi): n for lo, hi, n in doc["bins"]},
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
    batches: int = 0
    unprofiled: int = 0
    inputs: Mapping[str, ColumnProfile] = field(default_factory=dict)
    prediction: ColumnProfile | None = None

    @classmethod
    def of(cls, inputs: Sequence[pd.DataFrame | np.ndarray], prediction: pa.Array) -> Profile:
        """One predict call's rows: its input pieces (a tensor's columns are not profiled) and
        its predictions."""
        columns: dict[str, ColumnProfile] = {}
        for piece in inputs:
            if isinstance(piece, pd.DataFrame):
                for name in piece.columns:
                    column = profile_values(piece[name])
                    key = str(name)
                    columns[key] = columns[key].merge(column) if key in columns else column
        return cls(rows=len(prediction), inputs=columns, prediction=profile_values(prediction))

    def merge(self, other: Profile) -> Profile:
        inputs = dict(self.inputs)
        for name, column in other.inputs.items():
            inputs[name] = inputs[name].merge(column) if name in inputs else column
        return Profile(
            rows=self.rows + other.rows,
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

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "rows": self.rows,
            "batches": self.batches,
            "batches_unprofiled": self.unprofiled,
            "inputs": {name: c.to_json() for name, c in self.inputs.items()},
            "prediction": None if self.prediction is None else self.prediction.to_json(),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Profile:
        prediction = doc.get("prediction")
        return cls(
            rows=doc["rows"],
            batches=doc["batches"],
            unprofiled=doc["batches_unprofiled"],
            inputs={name: ColumnProfile.from_json(c) for name, c in doc["inputs"].items()},
            prediction=None if prediction is None else ColumnProfile.from_json(prediction),
        )


def profile_values(values: pd.Series | pa.Array | pa.ChunkedArray) -> ColumnProfile:
    """One column's profile, from pandas (as predict was given it) or Arrow (its output)."""
    try:
        array = pa.array(values, from_pandas=True) if isinstance(values, pd.Series) else values
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # an object column of mixed values
        return ColumnProfile(kind="other", count=len(values), nulls=int(values.isna().sum()))
    t = array.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _numeric(array)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t):
        return _categorical(array)
    if pa.types.is_dictionary(t):
        return _categorical(array.cast(t.value_type) if isinstance(array, pa.Array) else array)
    return ColumnProfile(kind="other", count=len(array), nulls=array.null_count)


def _numeric(array: pa.Array | pa.ChunkedArray) -> ColumnProfile:
    values = pc.drop_null(array).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    nan = np.isnan(values)
    nulls = array.null_count + int(nan.sum())
    finite_mask = np.isfinite(values)
    finite = values if finite_mask.all() else values[finite_mask]
    if not len(finite):
        infinite = len(values) - int(nan.sum())
        return ColumnProfile(kind="numeric", count=len(array), nulls=nulls, infinite=infinite)
    keys = _keys(finite)
    low = int(keys.min())
    counts = np.bincount(keys - low)
    present = np.flatnonzero(counts)
    return ColumnProfile(
        kind="numeric",
        count=len(array),
        nulls=nulls,
        infinite=len(values) - len(finite) - int(nan.sum()),
        finite=len(finite),
        minimum=float(finite.min()),
        maximum=float(finite.max()),
        total=float(finite.sum()),
        bins=dict(zip((present + low).tolist(), counts[present].tolist())),
    )


def _keys(finite: np.ndarray) -> np.ndarray:
    """Each finite value's grid key (see the module docstring): 0 for zero, the sign of the
    value, and ordered as the values are."""
    mantissa, exponent = np.frexp(np.abs(finite))  # |v| = mantissa * 2**exponent, in [0.5, 1)
    sub = ((mantissa - 0.5) * (2 * SUB_BINS)).astype(np.int64)
    keys = (exponent.astype(np.int64) + _EXPONENT_BIAS) * SUB_BINS + sub
    keys[finite == 0] = 0
    signed: np.ndarray = np.where(finite < 0, -keys, keys)
    return signed


def bin_edges(key: int) -> tuple[float, float]:
    """The values a grid key holds, [lo, hi) (for a negative key, (lo, hi]); zero is [0, 0]."""
    if key == 0:
        return 0.0, 0.0
    exponent, sub = divmod(abs(key), SUB_BINS)
    exponent -= _EXPONENT_BIAS
    lo = math.ldexp((2 * SUB_BINS + 2 * sub) / (4 * SUB_BINS), exponent)
    try:
        hi = math.ldexp((2 * SUB_BINS + 2 * sub + 2) / (4 * SUB_BINS), exponent)
    except OverflowError:  # the last bin below float's largest value
        hi = np.finfo(np.float64).max.item()
    return (lo, hi) if key > 0 else (-hi, -lo)


def bin_key(lo: float, hi: float) -> int:
    """The grid key of a bin written as its edges: the inverse of bin_edges."""
    if lo == 0 and hi == 0:
        return 0
    if lo > 0:
        return int(_keys(np.array([lo]))[0])
    return int(_keys(np.array([hi]))[0])


def _categorical(array: pa.Array | pa.ChunkedArray) -> ColumnProfile:
    counts = pc.value_counts(pc.drop_null(array))
    values = counts.field("values")
    if pa.types.is_boolean(values.type):
        values = pc.if_else(values, "true", "false")
    top, dropped = _merged_top(
        dict(zip(values.to_pylist(), counts.field("counts").to_pylist())), {}
    )
    return ColumnProfile(
        kind="categorical", count=len(array), nulls=array.null_count, top=top, other=dropped
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
