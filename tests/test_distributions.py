"""Distributions for the report's charts: grid bins spread over equal buckets, classes, the
reference on the same buckets, and the files whose predictions differ most."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from sparkscore.distributions import DISPLAY_BINS, of_columns, of_predictions
from sparkscore.profile import profile_values


def column(values: list) -> object:
    series = pd.Series(values)
    return profile_values(series, np.arange(len(series)))


def test_distributions_spread_a_grid_bin_over_the_buckets_it_overlaps():
    # 1.0 is in the grid bin [1, 1.125), 3.0 in [3, 3.25), clipped to the maximum 3.0: a point.
    ours, theirs = of_columns(column([1.0, 1.0, 3.0, 3.0]), None)
    assert theirs is None
    assert ours.edges == tuple(np.linspace(1.0, 3.0, DISPLAY_BINS + 1).tolist())
    # buckets 1/12 wide: the first holds 2 x (1/12) / (1/8) of the bin's rows, the second the rest
    assert ours.counts == (1.333333, 0.666667, *[0.0] * (DISPLAY_BINS - 3), 2.0)


def test_distributions_put_the_reference_on_the_same_buckets():
    ours, theirs = of_columns(column(["a", "b", "b", None]), column(["a", "c", "c", "c"]))
    # most rows on both sides first (a and b tie at 2: by value)
    assert (ours.labels, ours.counts) == (("c", "a", "b"), (0.0, 1.0, 2.0))
    assert (theirs.labels, theirs.counts) == (("c", "a", "b"), (3.0, 1.0, 0.0))
    ours, theirs = of_columns(column([0.0, 1.0]), column([1.0, 2.0]))
    assert (ours.edges[0], ours.edges[-1]) == (theirs.edges[0], theirs.edges[-1]) == (0.0, 2.0)
    assert (ours.rows, theirs.rows) == pytest.approx((2.0, 2.0))


def predictions_folder(tmp_path, rows: dict[str, list]) -> ds.Dataset:
    names = [name for name, values in rows.items() for _ in values]
    values = [v for vs in rows.values() for v in vs]
    pq.write_table(
        pa.table({"file_name": names, "prediction": values}), tmp_path / "part-00000.parquet"
    )
    return ds.dataset(tmp_path, format="parquet")


def test_distributions_integer_classes_and_the_files_farthest_from_the_run(tmp_path):
    dataset = predictions_folder(
        tmp_path, {"a.csv": [0, 1, 1, 2], "b.csv": [2, 2, 2, 2], "c.csv": [0, 1, 1, 2]}
    )
    reference = profile_values(pa.array([0, 0, 1, 1, 2]), np.arange(5))
    found = of_predictions(dataset, reference)
    assert (found.overall.labels, found.overall.counts) == (("0", "1", "2"), (2.0, 4.0, 6.0))
    assert (found.reference.labels, found.reference.counts) == (("0", "1", "2"), (2.0, 2.0, 1.0))
    # b.csv: all 2s against 1/6, 1/3, 1/2: half of (1/6 + 1/3 + 1/2) = 1/2 of its rows move
    assert [(f.file_name, f.rows, f.distance) for f in found.differing] == [
        ("b.csv", 4, 0.5),
        ("a.csv", 4, 0.25),
        ("c.csv", 4, 0.25),
    ]
    assert found.note is None


def test_distributions_say_why_a_prediction_is_not_drawn(tmp_path):
    pq.write_table(
        pa.table({"file_name": ["a.csv"], "prediction": [[1.0, 2.0]]}), tmp_path / "p.parquet"
    )
    found = of_predictions(ds.dataset(tmp_path, format="parquet"))
    assert (found.overall, found.note) == (
        None,
        "a prediction of type list<element: double> is not drawn",
    )


def test_distributions_of_predictions_draw_the_profiles_sample_of_rows(tmp_path):
    # One file of 5,000 rows: its rows 0-63 and 4096-4159 are the sample; every other row has
    # a prediction of 9, which must not be drawn.
    row = np.arange(5000)
    sampled = (row % 4096) < 64
    pq.write_table(
        pa.table(
            {
                "row": row,
                "prediction": np.where(sampled, row % 2, 9),
                "file_name": ["a.csv"] * 5000,
            }
        ),
        tmp_path / "part-00000.parquet",
    )
    found = of_predictions(ds.dataset(tmp_path, format="parquet"))
    assert (found.overall.labels, found.overall.counts) == (("0", "1"), (64.0, 64.0))
