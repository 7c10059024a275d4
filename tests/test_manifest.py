"""The manifest, the record a task commits and hands back: its JSON keys stay those that
earlier runs wrote, since a resume reads them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa

from sparkscore.manifest import FileRecord, Manifest, TaskRun
from sparkscore.profile import Profile


def test_manifest_round_trips_the_json_earlier_runs_wrote():
    doc = {
        "batch": 3,
        "files": [
            {
                "file_name": "a.csv",
                "status": "succeeded",
                "rows_read": 2,
                "rows_scored": 2,
                "rows_failed": 0,
            },
            {
                "file_name": "gone.csv",
                "status": "failed",
                "rows_read": 0,
                "rows_scored": 0,
                "rows_failed": 0,
                "rows_unknown": True,
            },
        ],
        "prediction_rows": 2,
        "error_records": 1,
        "attempt": 0,
        "worker": "host:42",
        "model_loads": 1,
        "isolated": False,
    }
    manifest = Manifest.loads(json.dumps(doc))
    assert manifest.task == TaskRun(attempt=0, worker="host:42", model_loads=1, isolated=False)
    assert [f.failed for f in manifest.files] == [False, True]
    assert manifest.profile is None  # written before profiles: resumed runs still read it
    assert manifest.dumps() == json.dumps(doc)


def test_manifest_carries_its_profile_through_json():
    profile = Profile.of(pd.DataFrame({"x": [1.0, 2.0]}), pa.array(["a", "b"]), np.arange(2))
    manifest = Manifest(batch=0, files=(), prediction_rows=2, error_records=0, profile=profile)
    # A manifest holds bins as grid keys (1.0's top 15 bits, 2.0's); _profile.json as edges.
    x = json.loads(manifest.dumps())["profile"]["inputs"]["x"]
    assert (x["bin_keys"], x["bin_counts"], "bins" in x) == ([8184, 8192], [1, 1], False)
    assert profile.to_json()["inputs"]["x"]["bins"] == [[1.0, 1.125, 1], [2.0, 2.25, 1]]
    assert Manifest.loads(manifest.dumps()) == manifest
    # written by an earlier version, with edges: a resume still reads it
    doc = json.loads(manifest.dumps())
    doc["profile"] = profile.to_json()
    assert Manifest.from_json(doc) == manifest


def test_manifest_file_record_failed_whole_counts_its_rows_failed():
    record = FileRecord(
        file_name="big.parquet", status="succeeded", rows_read=100, rows_scored=100, rows_failed=0
    )
    assert record.failed_whole().to_json() == {
        "file_name": "big.parquet",
        "status": "failed",
        "rows_read": 100,
        "rows_scored": 0,
        "rows_failed": 100,
    }
