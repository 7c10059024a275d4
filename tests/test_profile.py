"""Profiles: exact bins on the fixed grid, a sample chosen by file row, and merging the parts
equals profiling the whole."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sparkscore.bins import bin_edges, bin_key
from sparkscore.profile import TOP_K, Profile, sample_of


def rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.05, n)
    x[::17] = np.nan
    x[5] = np.inf
    x[9] = 0.0
    return pd.DataFrame(
        {
            "x": x,
            "n": rng.integers(-1000, 1000, n),
            "s": rng.choice(["a", "b", "c", None], n),
            "flag": rng.choice([True, False], n),
        }
    )


def test_profile_merged_from_parts_equals_profile_of_all_rows():
    frame = rows(3000, seed=1)
    prediction = pa.array(frame["n"] * 0.5)
    whole = Profile.of(frame, prediction, sample_of(np.arange(3000), increasing=True)).to_json()
    # The last part's rows are not in file order: its sample is found row by row.
    parts = [
        (np.arange(0, 10), True),
        (np.arange(10, 1500), True),
        (np.arange(1500, 3000)[::-1], False),
    ]
    merged = Profile.merged(
        Profile.of(frame.iloc[p], prediction.take(p), sample_of(p, increasing=increasing))
        for p, increasing in parts
    ).to_json()
    # Sums add in another order: equal to the last bits only. Everything else is exact.
    for doc in (whole, merged):
        for column in [*doc["inputs"].values(), doc["prediction"]]:
            if column["kind"] == "numeric":
                column["sum"] = pytest.approx(column.pop("sum"), rel=1e-12)
                column["mean"] = pytest.approx(column.pop("mean"), rel=1e-12)
    assert merged == whole
    # rows 0-63, 1024-1087 and 2048-2111 are sampled; 11 of them (multiples of 17) are NaN,
    # row 5 is infinite
    assert (whole["rows"], whole["sampled"]) == (3000, 192)
    x = whole["inputs"]["x"]
    assert (x["count"], x["nulls"], x["infinite"], x["finite"]) == (192, 11, 1, 180)
    assert sum(n for _, _, n in x["bins"]) == 180


def test_profile_sample_is_the_first_64_rows_of_every_1024_of_a_file():
    # file rows 1024-1087 and 2048-2099, at positions 24-87 and 1048-1099 of rows 1000-2099
    sampled = sample_of(np.arange(1000, 2100), increasing=True).tolist()
    assert sampled == list(range(24, 88)) + list(range(1048, 1100))
    mixed = np.array([0, 63, 64, 0, 1023, 1024, 1087, 1088])  # two files predicted together
    assert sample_of(mixed, increasing=False).tolist() == [0, 1, 3, 5, 6]
    assert sample_of(np.arange(0, 75), increasing=True).tolist() == list(range(64))
    skipped = np.array([60, 62, 63, 64, 1100])  # one file's rows, bad rows left out
    assert sample_of(skipped, increasing=True).tolist() == [0, 1, 2]


def test_profile_bins_values_on_the_fixed_grid_with_exact_edges():
    frame = pd.DataFrame({"v": [0.0, 1.0, 1.1, 1.2, -3.0, np.nan, 100.0]})
    column = Profile.of(frame, pa.array([1.0] * 7), np.arange(7)).to_json()["inputs"]["v"]
    assert column == {
        "kind": "numeric",
        "count": 7,
        "nulls": 1,
        "infinite": 0,
        "finite": 6,
        "min": -3.0,
        "max": 100.0,
        "mean": pytest.approx(100.3 / 6),
        "sum": pytest.approx(100.3),
        "bins": [
            [-3.25, -3.0, 1],
            [0.0, 2.781342323134e-309, 1],
            [1.0, 1.125, 2],
            [1.125, 1.25, 1],
            [96.0, 104.0, 1],
        ],
    }
    for lo, hi, _ in column["bins"]:
        assert bin_edges(bin_key(lo, hi)) == (lo, hi)


def test_profile_keeps_the_top_values_and_counts_the_rest_as_other():
    values = [f"v{i:03d}" for i in range(TOP_K + 10) for _ in range(i + 1)]
    frame = pd.DataFrame({"s": values + [None]})
    every_row = np.arange(len(frame))
    doc = Profile.of(frame, pa.array([0] * len(frame)), every_row).to_json()["inputs"]["s"]
    assert doc["top"][0] == [f"v{TOP_K + 9:03d}", TOP_K + 10]
    assert len(doc["top"]) == TOP_K
    assert doc["other"] == sum(range(1, 11))  # the ten rarest values
    assert doc["nulls"] == 1


def test_profile_json_round_trips():
    profile = Profile.of(rows(50, seed=2), pa.array(["yes", "no"] * 25), np.arange(50))
    assert Profile.from_json(json.loads(json.dumps(profile.to_json()))) == profile


def test_profile_of_manifests_counts_those_without_one():
    one = Profile.of(pd.DataFrame({"x": [1.0]}), pa.array([2.0]), np.arange(1))
    run = Profile.of_manifests([one, None, one])
    assert (run.rows, run.unprofiled, run.inputs["x"].count) == (2, 1, 2)
