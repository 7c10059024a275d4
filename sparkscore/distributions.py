"""Distributions a chart draws as they are: buckets (equal-width ranges, or classes) and the rows
in each, made from a profile's histogram (sparkscore.bins' fixed grid) or from the predictions a
run wrote.

Numeric: DISPLAY_BINS equal-width buckets from the smallest to the largest value of both sides
(this run and the reference), so that the two overlay bucket for bucket. A grid bin is up to
12.5% of its values wide (far narrower near zero), and its rows are spread evenly over the
buckets it overlaps, clipped to the column's minimum and maximum: a row moves by at most its
grid bin's width. Categorical: the MAX_CLASSES values with the most rows on both sides, and
`other` for the rest.

Predictions are read a batch at a time (`file_name` and `prediction` only) and counted per file
on the grid, so memory grows with the files and bins, not the rows. Integer predictions with at
most MAX_CLASSES distinct values are classes. The files that differ most are those farthest
from the whole run in total variation distance: half the sum of the absolute differences of
their shares, i.e. the share of a file's rows that would have to move to look like the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from sparkscore.bins import bin_edges, count_bins
from sparkscore.profile import ColumnProfile

__all__ = [
    "DIFFERING_FILES",
    "DISPLAY_BINS",
    "MAX_CLASSES",
    "Distribution",
    "FileDistribution",
    "of_columns",
    "of_predictions",
]

DISPLAY_BINS = 24
MAX_CLASSES = 20  # classes drawn as bars; integer predictions with more are numeric
MAX_LABELS = 1000  # distinct string predictions counted per run before giving up on classes
DIFFERING_FILES = 3
OTHER = "other"


@dataclass(frozen=True, kw_only=True)
class Distribution:
    """Rows per bucket: `edges` (one more than `counts`) for numeric values, `labels` for
    classes."""

    kind: Literal["numeric", "categorical"]
    counts: tuple[float, ...]
    edges: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()

    @property
    def rows(self) -> float:
        return sum(self.counts)

    def shares(self) -> np.ndarray:
        total = self.rows
        return np.asarray(self.counts) / total if total else np.zeros(len(self.counts))


@dataclass(frozen=True, kw_only=True)
class FileDistribution:
    """One file's predictions on the whole run's buckets, and how far they are from it."""

    file_name: str
    rows: int
    distance: float  # total variation distance from the whole run's shares
    distribution: Distribution


def of_columns(
    ours: ColumnProfile, theirs: ColumnProfile | None
) -> tuple[Distribution | None, Distribution | None]:
    """A profiled column, and the reference's on the same buckets (None where there is none, or
    the column is neither numeric nor categorical)."""
    if theirs is not None and (theirs.kind != ours.kind or not theirs.valued):
        theirs = None
    if ours.kind == "numeric" and ours.finite:
        sides = [c for c in (ours, theirs) if c is not None and c.finite]
        edges = _edges(min(c.minimum or 0.0 for c in sides), max(c.maximum or 0.0 for c in sides))
        spread = [_numeric(c.bins, edges, c.minimum or 0.0, c.maximum or 0.0) for c in sides]
        return spread[0], (spread[1] if len(spread) > 1 else None)
    if ours.kind == "categorical":
        both = [c for c in (ours, theirs) if c is not None]
        labels = _top_labels([c.top for c in both])
        other = any(_rest(c.top, labels, c.other) for c in both)
        made = [_classes(c.top, labels, c.other, with_other=other) for c in both]
        return made[0], (made[1] if len(made) > 1 else None)
    return None, None


def of_predictions(
    dataset: ds.Dataset,
) -> tuple[Distribution | None, str | None, tuple[FileDistribution, ...]]:
    """The prediction's distribution over every row of `dataset`, a note when it cannot be
    drawn, and the DIFFERING_FILES files farthest from it."""
    t = dataset.schema.field("prediction").type
    if pa.types.is_dictionary(t):
        t = t.value_type
    numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
    if not numeric and not (pa.types.is_string(t) or pa.types.is_boolean(t)):
        return None, f"a prediction of type {t} is not drawn", ()
    tally = _Tally(integer=pa.types.is_integer(t), numeric=numeric)
    for batch in dataset.to_batches(columns=["file_name", "prediction"]):
        tally.add(batch.column(0), batch.column(1))
    if not tally.files:
        return None, "no predictions were written", ()
    per_file = tally.distributions()
    overall = Distribution(
        kind=per_file[0][1].kind,
        counts=tuple(np.sum([d.counts for _, d in per_file], axis=0).tolist()),
        edges=per_file[0][1].edges,
        labels=per_file[0][1].labels,
    )
    if len(per_file) < 2:
        return overall, None, ()
    share = overall.shares()
    ranked = [
        FileDistribution(
            file_name=name,
            rows=int(d.rows),
            distance=round(float(np.abs(d.shares() - share).sum() / 2), 4),
            distribution=d,
        )
        for name, d in per_file
    ]
    ranked.sort(key=lambda f: (-f.distance, f.file_name))
    return overall, None, tuple(f for f in ranked[:DIFFERING_FILES] if f.distance > 0)


@dataclass
class _Tally:
    """Per file: grid bins, minimum and maximum (numeric), and value counts (classes)."""

    integer: bool
    numeric: bool
    bins: dict[str, dict[int, int]] = field(default_factory=dict)
    low: dict[str, float] = field(default_factory=dict)
    high: dict[str, float] = field(default_factory=dict)
    values: dict[str, dict[str, int]] | None = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    files: list[str] = field(default_factory=list)

    def add(self, names: pa.Array, predictions: pa.Array) -> None:
        encoded = pc.dictionary_encode(names)
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        for i, name in enumerate(encoded.dictionary.to_pylist()):
            picked = predictions.filter(pa.array(indices == i))
            if name not in self.bins:
                self.files.append(name)
                self.bins[name] = {}
            if self.numeric:
                self._add_numbers(name, picked)
            if self.values is not None and (self.integer or not self.numeric):
                self._add_values(name, picked)

    def _add_numbers(self, name: str, picked: pa.Array) -> None:
        values = picked.to_numpy(zero_copy_only=False).astype(np.float64)
        finite = values[np.isfinite(values)]
        if not len(finite):
            return
        for key, n in count_bins(finite).items():
            self.bins[name][key] = self.bins[name].get(key, 0) + n
        self.low[name] = min(self.low.get(name, np.inf), float(finite.min()))
        self.high[name] = max(self.high.get(name, -np.inf), float(finite.max()))

    def _add_values(self, name: str, picked: pa.Array) -> None:
        assert self.values is not None
        counted = pc.value_counts(pc.drop_null(picked))
        mine = self.values.setdefault(name, {})
        for value, n in zip(counted.field("values").to_pylist(), counted.field("counts")):
            label = str(value).lower() if isinstance(value, bool) else str(value)
            mine[label] = mine.get(label, 0) + n.as_py()
            self.seen.add(label)
        if len(self.seen) > (MAX_CLASSES if self.integer else MAX_LABELS):
            self.values = None  # too many to be classes: numbers are binned, strings not drawn

    def distributions(self) -> list[tuple[str, Distribution]]:
        if self.values is not None and (self.integer or not self.numeric):
            tops = [self.values.get(n, {}) for n in self.files]
            labels = _top_labels(tops)
            if self.integer:
                labels = tuple(sorted(labels, key=int))
            other = any(_rest(top, labels, 0) for top in tops)
            return [
                (n, _classes(top, labels, 0, with_other=other)) for n, top in zip(self.files, tops)
            ]
        if not self.numeric or not self.low:
            return []
        edges = _edges(min(self.low.values()), max(self.high.values()))
        return [
            (n, _numeric(self.bins[n], edges, self.low.get(n, 0.0), self.high.get(n, 0.0)))
            for n in self.files
        ]


def _edges(low: float, high: float) -> np.ndarray:
    if high <= low:  # one value: a bucket around it
        pad = abs(low) * 0.05 or 0.5
        low, high = low - pad, high + pad
    return np.linspace(low, high, DISPLAY_BINS + 1)


def _numeric(bins: Mapping[int, int], edges: np.ndarray, low: float, high: float) -> Distribution:
    """Grid bins spread evenly over the buckets of `edges` they overlap, clipped to the values'
    own minimum and maximum."""
    counts = np.zeros(len(edges) - 1)
    for key, n in bins.items():
        lo, hi = bin_edges(key)
        lo, hi = max(lo, low), min(hi, high)
        if hi <= lo:  # every value of the bin at one point
            counts[
                min(max(int(np.searchsorted(edges, lo, side="right")) - 1, 0), len(counts) - 1)
            ] += n
            continue
        overlap = np.clip(edges[1:], lo, hi) - np.clip(edges[:-1], lo, hi)
        counts += n * overlap / (hi - lo)
    return Distribution(
        kind="numeric", counts=tuple(counts.round(6).tolist()), edges=tuple(edges.tolist())
    )


def _top_labels(tops: Iterable[Mapping[str, int]]) -> tuple[str, ...]:
    summed: dict[str, int] = {}
    for top in tops:
        for value, n in top.items():
            summed[value] = summed.get(value, 0) + n
    ordered = sorted(summed.items(), key=lambda kv: (-kv[1], kv[0]))
    return tuple(value for value, _ in ordered[:MAX_CLASSES])


def _rest(top: Mapping[str, int], labels: tuple[str, ...], other: int) -> int:
    return other + sum(n for value, n in top.items() if value not in labels)


def _classes(
    top: Mapping[str, int], labels: tuple[str, ...], other: int, *, with_other: bool
) -> Distribution:
    """Rows per label, and (`with_other`, so that every side has the same buckets) the rest."""
    counts = [float(top.get(value, 0)) for value in labels]
    if with_other:
        counts.append(float(_rest(top, labels, other)))
        labels = (*labels, OTHER)
    return Distribution(kind="categorical", counts=tuple(counts), labels=labels)
