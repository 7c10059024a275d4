"""Profiles: exact bins on the fixed grid, a sample chosen by file row, and merging the parts
equals profiling the whole."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sparkscore.bins import bin_edges, bin_key, count_bins, count_bins_columns
from sparkscore.profile import TOP_K, Profile, profile_values, sample_of
from sparkscore.sample import Sample


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
    frame = rows(9000, seed=1)
    prediction = pa.array(frame["n"] * 0.5)
    whole = Profile.of(frame, prediction, sample_of(np.arange(9000), increasing=True)).to_json()
    # The last part's rows are not in file order: its sample is found row by row.
    parts = [
        (np.arange(0, 10), True),
        (np.arange(10, 4500), True),
        (np.arange(4500, 9000)[::-1], False),
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
    # rows 0-63, 4096-4159 and 8192-8255 are sampled; 12 of them (multiples of 17) are NaN,
    # row 5 is infinite
    assert (whole["rows"], whole["sampled"]) == (9000, 192)
    x = whole["inputs"]["x"]
    assert (x["count"], x["nulls"], x["infinite"], x["finite"]) == (192, 12, 1, 179)
    assert sum(n for _, _, n in x["bins"]) == 179


def test_profile_sample_is_the_first_64_rows_of_every_4096_of_a_file():
    # file rows 4096-4159 and 8192-8199, at positions 96-159 and 4192-4199 of rows 4000-8199
    sampled = sample_of(np.arange(4000, 8200), increasing=True).tolist()
    assert sampled == list(range(96, 160)) + list(range(4192, 4200))
    mixed = np.array([0, 63, 64, 0, 4095, 4096, 4159, 4160])  # two files predicted together
    assert sample_of(mixed, increasing=False).tolist() == [0, 1, 3, 5, 6]
    assert sample_of(np.arange(0, 75), increasing=True).tolist() == list(range(64))
    skipped = np.array([60, 62, 63, 64, 4200])  # one file's rows, bad rows left out
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


def test_columns_profiled_together_equal_each_column_profiled_alone():
    # Numeric columns (and a numeric prediction) are profiled as one block; the result must be
    # what each column's own profile is, whatever the mix: NaN, infinity, ints, strings,
    # values of both signs and many magnitudes, and a block in either memory order.
    frame = rows(3000, seed=3)
    frame["wide"] = np.random.default_rng(4).normal(0, 1, 3000) * 10.0 ** (np.arange(3000) % 13 - 6)
    frame["neg"] = -(np.arange(3000, dtype=np.float64) ** 3)
    for prediction in (pa.array(frame["n"] * 0.25), pa.array([1.5, None] * 1500)):
        together = Profile.of_sampled([frame], prediction, 3000)
        assert together.prediction == profile_values(prediction)
        for name in frame.columns:
            alone = profile_values(frame[name])
            assert together.inputs[name] == replace(alone, total=pytest.approx(alone.total))
        halves = Profile.of_sampled([frame.iloc[:1000], frame.iloc[1000:]], prediction, 3000)
        assert halves.inputs == together.inputs  # frames are joined column by column
    block = frame[["n", "wide", "neg"]].to_numpy(dtype=np.float64)
    each = [count_bins(block[:, i].copy()) for i in range(3)]
    assert count_bins_columns(np.ascontiguousarray(block)) == each
    assert count_bins_columns(np.asfortranarray(block)) == each


def test_sample_profiles_once_what_profiling_each_call_gives():
    frame = rows(9000, seed=5)
    prediction = pa.array(frame["n"] * 0.5)
    calls = [np.arange(0, 1000), np.arange(1000, 6000), np.arange(6000, 9000)]
    sample, per_call = Sample(), []
    for p in calls:
        chosen = sample_of(p, increasing=True)
        sample.add(frame.iloc[p], prediction.take(p), chosen)
        per_call.append(Profile.of(frame.iloc[p], prediction.take(p), chosen))
    once, merged = sample.profile().to_json(), Profile.merged(per_call).to_json()
    for doc in (once, merged):
        for column in [*doc["inputs"].values(), doc["prediction"]]:
            if column["kind"] == "numeric":
                column["sum"] = pytest.approx(column.pop("sum"), rel=1e-12)
                column["mean"] = pytest.approx(column.pop("mean"), rel=1e-12)
    assert once == merged
    assert (once["rows"], once["sampled"]) == (9000, 192)


def test_sample_profiles_early_when_many_values_wait(monkeypatch):
    monkeypatch.setattr("sparkscore.sample.FOLD_CELLS", 1000)
    frame = pd.DataFrame({"x": np.arange(2000, dtype=np.float64)})
    sample = Sample()
    sample.add(frame.iloc[:400], pa.array(np.zeros(400)), np.arange(400))
    assert sample.waiting and sample.profiled.rows == 0  # 800 values (x and prediction) wait
    sample.add(frame.iloc[400:], pa.array(np.zeros(1600)), np.arange(1600))
    assert not sample.waiting and sample.profiled.rows == 2000
    assert sample.profile().inputs["x"].maximum == 1999.0
