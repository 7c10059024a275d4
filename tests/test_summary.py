"""The run record: its keys, its counts, and the check that every row read is accounted
exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sparkscore.errors import AccountingError
from sparkscore.listing import InputFile
from sparkscore.manifest import Manifest
from sparkscore.model import ModelSpec, PyFuncFlavor
from sparkscore.planner import MiniBatch, Plan
from sparkscore.settings import Settings
from sparkscore.summary import EnvironmentRecord, RunRecord, check_invariant, counts


def manifest(*files: dict, batch: int = 0) -> Manifest:
    return Manifest.from_json(
        {
            "batch": batch,
            "files": list(files),
            "prediction_rows": sum(f["rows_scored"] for f in files),
            "error_records": len(files),
        }
    )


GOOD = {
    "file_name": "good.csv",
    "status": "succeeded",
    "rows_read": 5,
    "rows_scored": 4,
    "rows_failed": 1,
}
GONE = {
    "file_name": "gone.csv",
    "status": "failed",
    "rows_read": 0,
    "rows_scored": 0,
    "rows_failed": 0,
    "rows_unknown": True,
}
EMPTY = {
    "file_name": "header.csv",
    "status": "failed",
    "rows_read": 0,
    "rows_scored": 0,
    "rows_failed": 0,
}


def test_summary_counts_files_whose_rows_are_unknown():
    manifests = [manifest(GOOD, GONE), manifest(EMPTY, batch=1)]
    check_invariant(manifests)
    assert counts(manifests) == {
        "files_succeeded": 1,
        "files_failed": 2,
        "files_rows_unknown": 1,
        "rows_read": 5,
        "rows_scored": 4,
        "rows_failed": 1,
        "error_records": 3,
    }


TAIL = (
    "; the output is inconsistent, so the run is not reported as succeeded. Run again with "
    "overwrite: true, and report it."
)


@pytest.mark.parametrize(
    "record, message",
    [
        (
            {**GONE, "status": "succeeded"},
            "gone.csv: its rows are recorded as unknown, but it succeeded with 0 rows read" + TAIL,
        ),
        (
            {**GONE, "rows_read": 3, "rows_failed": 3},
            "gone.csv: its rows are recorded as unknown, but it failed with 3 rows read" + TAIL,
        ),
        ({**GOOD, "rows_failed": 0}, "good.csv: 5 rows read but 4 scored and 0 failed" + TAIL),
    ],
)
def test_summary_check_invariant_refuses_rows_not_accounted(record, message):
    with pytest.raises(AccountingError) as info:
        check_invariant([manifest(record)])
    assert str(info.value) == message
    assert info.value.where == message.split(":")[0]


def run_record(metadata: dict | None) -> RunRecord:
    spec = ModelSpec(
        path="/models/m",
        pyfunc=PyFuncFlavor(loader_module="mlflow.sklearn"),
        flavors={},
        signature=None,
        metadata=metadata,
    )
    files = (InputFile(path="/in/good.csv", name="good.csv", size=40, kind="csv"),)
    plan = Plan(uri="/in", root="/in", files=files, batches=(MiniBatch(0, files),), skipped=())
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return RunRecord(
        job_id="20260102T030405-abcd1234",
        started=started,
        ended=started + timedelta(seconds=2),
        error=None,
        model=spec,
        model_uri="models/m",
        model_sha256="0" * 64,
        model_located={},
        input_uri="/in",
        plan=plan,
        output_uri="/out",
        settings=Settings(),
        manifests=(manifest(GOOD),),
        files_skipped=0,
        spark_version="4.0.0",
        environment=EnvironmentRecord(),
    )


def test_summary_run_record_writes_each_key_once_in_its_order():
    record = run_record(None).to_json()
    assert list(record) == [
        "job_id",
        "status",
        "error",
        "started",
        "ended",
        "duration_s",
        "rows_per_s",
        "model",
        "input",
        "output",
        "settings",
        "files_total",
        "files_succeeded",
        "files_failed",
        "files_skipped",
        "files_rows_unknown",
        "rows_read",
        "rows_scored",
        "rows_failed",
        "error_records",
        "model_loads",
        "python_workers",
        "threads",
        "spark_version",
        "python_version",
        "environment",
        "drift",
    ]
    assert {
        k: record[k] for k in ("status", "duration_s", "rows_per_s", "files_total", "rows_scored")
    } == {
        "status": "succeeded",
        "duration_s": 2.0,
        "rows_per_s": 2.0,
        "files_total": 1,
        "rows_scored": 4,
    }
    assert record["input"] == {
        "uri": "/in",
        "files": 1,
        "bytes": 40,
        "mini_batches": 1,
        "listing_digest": record["input"]["listing_digest"],
        "unsupported_skipped": [],
        "broken_links_skipped": [],
    }
    assert record["environment"] == {"env_manager": "local", "mismatches": []}


def test_summary_run_record_carries_the_model_metadata():
    """PRODUCT.md: MLmodel's free-form `metadata` is carried into the run record."""
    model = run_record({"owner": "team-a", "tags": ["churn"]}).to_json()["model"]
    assert model["metadata"] == {"owner": "team-a", "tags": ["churn"]}
    assert (model["path"], model["sha256"], model["flavor"]) == ("models/m", "0" * 64, "sklearn")
    assert run_record(None).to_json()["model"]["metadata"] is None
