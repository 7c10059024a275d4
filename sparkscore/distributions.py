"""Distributions a chart draws as they are: buckets (equal-width ranges, or classes) and the rows
in each, made from a profile's histogram (sparkscore.bins' fixed grid) or from the predictions a
run wrote.

Numeric: DISPLAY_BINS equal-width buckets from the smallest to the largest value of both sides
(this run and the reference), so that the two overlay bucket for bucket. A grid bin is up to
12.5% of its values wide (far narrower near zero), and its rows are spread evenly over the
buckets it overlaps, clipped to the column's minimum and maximum: a row moves by at most its
grid bin's width. Categorical: the MAX_CLASSES values with the most rows on both sides, and
`other` for the rest.

Predictions are read a batch at a time (`file_name` and `prediction` only), the rows of the
profile's sample only (the first SAMPLE_BLOCK of every SAMPLE_PERIOD of a file, by `row`),
and counted per file on the grid, so memory grows with the files and bins, not the rows, and
time with the sample. Integer predictions with at
most MAX_CLASSES distinct values are classes. The files that differ most are those farthest
from the whole run in total variation distance: half the sum of the absolute differences of
their shares, i.e. the share of a file's rows that would have to move to look like the run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from sparkscore.bins import bin_edges, count_grouped
from sparkscore.profile import SAMPLE_BLOCK, SAMPLE_PERIOD, ColumnProfile

__all__ = [
    "DIFFERING_FILES",
    "DISPLAY_BINS",
    "MAX_CLASSES",
    "Distribution",
    "FileDistribution",
    "Predictions",
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


@dataclass(frozen=True, kw_only=True)
class Predictions:
    """The prediction over every row written, the reference's on the same buckets, and the
    files farthest from the whole run; `note` says why there is nothing to draw."""

    overall: Distribution | None = None
    reference: Distribution | None = None
    differing: tuple[FileDistribution, ...] = ()
    note: str | None = None


def of_predictions(dataset: ds.Dataset, reference: ColumnProfile | None = None) -> Predictions:
    """The prediction's distribution over every row of `dataset` (and the `reference` run's
    profiled prediction on its buckets), and the DIFFERING_FILES files farthest from it."""
    t = dataset.schema.field("prediction").type
    if pa.types.is_dictionary(t):
        t = t.value_type
    numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
    if not numeric and not (pa.types.is_string(t) or pa.types.is_boolean(t)):
        return Predictions(note=f"a prediction of type {t} is not drawn")
    tally = _Tally(integer=pa.types.is_integer(t), numeric=numeric)
    # The profile's sample of rows (by `row`, in Arrow as the batches are read), one batch read
    # ahead: tallying every row took 5 s and 320 MiB on the driver for 51M rows
    # (bench/rows.py), the job itself 10.
    sampled = None
    if "row" in dataset.schema.names:
        period = pc.bit_wise_and(pc.field("row"), SAMPLE_PERIOD - 1)
        sampled = pc.less(period, SAMPLE_BLOCK)
    batches = dataset.to_batches(
        columns=["file_name", "prediction"],
        filter=sampled,
        batch_readahead=1,
        fragment_readahead=1,
    )
    for batch in batches:
        tally.add(batch.column(0), batch.column(1))
    per_file, theirs = tally.distributions(reference)
    if not per_file:
        return Predictions(note=tally.empty_note())
    first = per_file[0][1]
    overall = replace(first, counts=tuple(np.sum([d.counts for _, d in per_file], axis=0).tolist()))
    share = overall.shares()
    ranked = [
        FileDistribution(
            file_name=name,
            rows=tally.rows[name],
            distance=round(float(np.abs(d.shares() - share).sum() / 2), 4),
            distribution=d,
        )
        for name, d in per_file
    ]
    ranked.sort(key=lambda f: (-f.distance, f.file_name))
    differing = tuple(f for f in ranked[:DIFFERING_FILES] if f.distance > 0)
    return Predictions(
        overall=overall, reference=theirs, differing=differing if len(ranked) > 1 else ()
    )


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
    rows: dict[str, int] = field(default_factory=dict)  # predictions written, nulls too

    def add(self, names: pa.Array, predictions: pa.Array) -> None:
        """A batch's rows counted per file in whole-batch operations: one batch can hold the
        rows of thousands of tiny files, and a pass per file would cost rows x files."""
        encoded = names if pa.types.is_dictionary(names.type) else pc.dictionary_encode(names)
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        labels = encoded.dictionary.to_pylist()
        for name, n in zip(labels, np.bincount(codes, minlength=len(labels)).tolist()):
            if name not in self.bins:
                self.files.append(name)
                self.bins[name] = {}
                self.rows[name] = 0
            self.rows[name] += n
        if self.numeric:
            self._add_numbers(labels, codes, predictions)
        if self.values is not None and (self.integer or not self.numeric):
            self._add_values(labels, codes, predictions)

    def _add_numbers(self, labels: list[str], codes: np.ndarray, predictions: pa.Array) -> None:
        values = predictions.to_numpy(zero_copy_only=False).astype(np.float64)
        finite = np.isfinite(values)
        values, codes = values[finite], codes[finite]
        if not len(values):
            return
        for code, key, n in zip(*(a.tolist() for a in count_grouped(codes, values))):
            bins = self.bins[labels[code]]
            bins[key] = bins.get(key, 0) + n
        low, high = np.full(len(labels), np.inf), np.full(len(labels), -np.inf)
        np.minimum.at(low, codes, values)
        np.maximum.at(high, codes, values)
        present = np.flatnonzero(np.isfinite(low))
        for code, lo, hi in zip(present.tolist(), low[present].tolist(), high[present].tolist()):
            name = labels[code]
            self.low[name] = min(self.low.get(name, np.inf), lo)
            self.high[name] = max(self.high.get(name, -np.inf), hi)

    def _add_values(self, labels: list[str], codes: np.ndarray, predictions: pa.Array) -> None:
        assert self.values is not None
        if pa.types.is_dictionary(predictions.type):
            predictions = predictions.dictionary_decode()
        rows = pa.table({"file": codes, "value": predictions}).filter(pc.is_valid(predictions))
        counted = rows.group_by(["file", "value"], use_threads=False).aggregate([("file", "count")])
        columns = (counted[c].to_pylist() for c in ("file", "value", "file_count"))
        for code, value, n in zip(*columns):
            label = str(value).lower() if isinstance(value, bool) else str(value)
            mine = self.values.setdefault(labels[code], {})
            mine[label] = mine.get(label, 0) + n
            self.seen.add(label)
        if len(self.seen) > (MAX_CLASSES if self.integer else MAX_LABELS):
            self.values = None  # too many to be classes: numbers are binned, strings not drawn

    def empty_note(self) -> str:
        if not self.files:
            return "no predictions were written"
        if not self.numeric:
            return f"more than {MAX_LABELS} distinct predictions: too many to draw as classes"
        return "no prediction has a finite value"

    def distributions(
        self, reference: ColumnProfile | None
    ) -> tuple[list[tuple[str, Distribution]], Distribution | None]:
        """Each file's predictions on the same buckets, and the reference's on them too."""
        if self.values is not None and (self.integer or not self.numeric):
            return self._classes(reference)
        if not self.numeric or not self.low:
            return [], None
        sides = [(min(self.low.values()), max(self.high.values()))]
        if reference is not None and reference.kind == "numeric" and reference.finite:
            sides.append((reference.minimum or 0.0, reference.maximum or 0.0))
        else:
            reference = None
        edges = _edges(min(lo for lo, _ in sides), max(hi for _, hi in sides))
        per_file = [
            (n, _numeric(self.bins[n], edges, self.low.get(n, 0.0), self.high.get(n, 0.0)))
            for n in self.files
        ]
        theirs = None
        if reference is not None:
            theirs = _numeric(reference.bins, edges, *sides[1])
        return per_file, theirs

    def _classes(
        self, reference: ColumnProfile | None
    ) -> tuple[list[tuple[str, Distribution]], Distribution | None]:
        assert self.values is not None
        tops = [self.values.get(n, {}) for n in self.files]
        their_top, their_other = _reference_classes(reference, integer=self.integer)
        labels = _top_labels([*tops, their_top] if their_top is not None else tops)
        if self.integer:
            labels = tuple(sorted(labels, key=int))
        other = any(_rest(top, labels, 0) for top in tops) or (
            their_top is not None and bool(_rest(their_top, labels, their_other))
        )
        per_file = [
            (n, _classes(top, labels, 0, with_other=other)) for n, top in zip(self.files, tops)
        ]
        if their_top is None:
            return per_file, None
        return per_file, _classes(their_top, labels, their_other, with_other=other)


def _reference_classes(
    reference: ColumnProfile | None, *, integer: bool
) -> tuple[dict[str, int] | None, int]:
    """The reference's prediction as class counts: its top values, or (integer classes, which a
    profile holds as numbers) the rows of each grid bin that holds one integer only."""
    if reference is None or not reference.valued:
        return None, 0
    if reference.kind == "categorical" and not integer:
        return dict(reference.top), reference.other
    if reference.kind != "numeric" or not integer:
        return None, 0
    top: dict[str, int] = {}
    for key, n in reference.bins.items():
        lo, hi = bin_edges(key)  # [lo, hi), or (lo, hi] for a negative key
        value = math.ceil(lo) if key >= 0 else math.floor(hi)
        alone = lo <= value < hi < value + 1 if key >= 0 else value - 1 <= lo < value <= hi
        if not alone:  # a bin of two integers, or of none
            return None, 0
        top[str(value)] = n
    return top, 0


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
