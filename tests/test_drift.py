"""Drift against a reference run: PSI as defined, and the run that flags exactly what moved."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sparkscore
from sparkscore.drift import compare, psi
from sparkscore.errors import DriftError, ReferenceProfileError
from sparkscore.profile import Profile

EXAMPLE = Path(__file__).parents[1] / "sparkscore" / "examples" / "diabetes"
INPUTS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def test_psi_matches_the_hand_computed_value():
    # (0.3 - 0.5) ln(0.3 / 0.5) + 0 + (0.4 - 0.2) ln(0.4 / 0.2)
    assert psi([50, 30, 20], [30, 30, 40]) == pytest.approx(0.2407946, abs=1e-7)
    assert psi([50, 30, 20], [5, 3, 2]) == 0.0


def test_psi_counts_an_empty_bucket_as_one_in_ten_thousand():
    assert psi([1, 1], [0, 2]) == pytest.approx(
        (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1.0 - 0.5) * math.log(1.0 / 0.5)
    )


def profile(**columns: list) -> Profile:
    frame = pd.DataFrame(columns)
    return Profile.of(frame, pa.array([0.0] * len(frame)), np.arange(len(frame)))


def test_drift_flags_values_outside_a_constant_reference_and_a_new_share_of_nulls():
    reference = profile(c=[1.0] * 100, n=[1.0] * 100, s=["a", "b"] * 50)
    current = profile(c=[1.0] * 50 + [9.0] * 50, n=[1.0] * 90 + [None] * 10, s=["b", "a"] * 50)
    drift = compare(
        current, reference, reference_name="ref", psi_threshold=0.25, null_threshold=0.05
    )
    assert drift.flagged == ["c", "n"]
    assert drift.to_json()["columns"]["n"] == {
        "psi": 0.0,
        "null_share": 0.1,
        "reference_null_share": 0.0,
        "flagged": True,
        "flagged_psi": False,
        "flagged_null_share": True,
    }
    assert drift.columns["c"].psi == pytest.approx(
        (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    )


def shifted_copy(folder: Path, column: str, by: float) -> Path:
    """The example input with `column` moved by `by` in every file (CSV and Parquet)."""
    shutil.copytree(EXAMPLE / "input", folder)
    for path in sorted(folder.iterdir()):
        if path.suffix == ".csv":
            frame = pd.read_csv(path)
            frame[column] += by
            frame.to_csv(path, index=False)
        else:
            table = pq.read_table(path)
            frame = table.to_pandas()
            frame[column] += by
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return folder


def score(spark, input: Path, output: Path, **settings) -> dict:
    return sparkscore.score(spark, EXAMPLE / "model", input, output, trust_model=True, **settings)


@pytest.fixture(scope="module")
def reference_run(spark, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("drift") / "reference"
    score(spark, EXAMPLE / "input", out, profile=True)
    return out


def test_drift_flags_exactly_the_shifted_column_and_nothing_on_a_rerun(
    spark, reference_run, tmp_path, caplog
):
    # age's standard deviation is about 0.048: a shift of one deviation; the model barely
    # uses age, so the prediction moves little (its PSI is recorded, unflagged).
    shifted = shifted_copy(tmp_path / "in", "age", 0.05)
    summary = score(spark, shifted, tmp_path / "out", reference=str(reference_run))
    drift = summary["drift"]
    assert drift["reference"] == str(reference_run)
    assert list(drift["columns"]) == [*INPUTS, "prediction"]
    assert drift["flagged"] == ["age"]
    assert [n for n, c in drift["columns"].items() if c["flagged"]] == ["age"]
    assert drift["columns"]["age"]["psi"] == 1.8667
    assert drift["columns"]["prediction"]["psi"] == 0.0174
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("drift")] == [
        f"drift: column 'age' has PSI 1.867 (flagged at 0.25) and null share 0.000 (reference "
        f"0.000, flagged past a change of 0.05) against {reference_run}"
    ]
    again = score(spark, EXAMPLE / "input", tmp_path / "again", reference=str(reference_run))
    assert again["drift"]["flagged"] == []
    assert {c["psi"] for c in again["drift"]["columns"].values()} == {0.0}


def test_drift_fails_the_run_under_fail_on_drift_after_writing_everything(
    spark, reference_run, tmp_path
):
    shifted = shifted_copy(tmp_path / "in", "bmi", 0.05)
    reference = str(reference_run / "_profile.json")
    with pytest.raises(DriftError) as caught:
        score(spark, shifted, tmp_path / "out", reference=reference, fail_on_drift=True)
    flagged = caught.value.columns
    assert "bmi" in flagged and not set(flagged) - {"bmi", "prediction"}
    assert str(caught.value) == (
        f"fail_on_drift: {len(flagged)} column(s) drifted from the reference {reference}: "
        f"{', '.join(flagged)}. The output is written; see the drift section of _summary.json."
    )
    summary = json.loads((tmp_path / "out" / "_summary.json").read_text())
    assert (summary["status"], summary["error"]) == ("failed", str(caught.value))
    assert summary["rows_scored"] == 300
    assert len(pd.read_parquet(tmp_path / "out" / "predictions")) == 300
    assert json.loads((tmp_path / "out" / "_profile.json").read_text())["rows"] == 300


def test_drift_refuses_a_reference_without_a_profile_before_scoring(spark, tmp_path):
    with pytest.raises(ReferenceProfileError) as caught:
        score(spark, EXAMPLE / "input", tmp_path / "out", reference=str(tmp_path))
    assert str(caught.value) == (
        f"reference {tmp_path}: there is no {tmp_path}/_profile.json; a run writes it unless it "
        "ran with profile: false; set reference to an earlier run's output folder or to its "
        "_profile.json."
    )
    assert not (tmp_path / "out").exists()
