"""The run record's counts, and the check that every row read is accounted exactly once."""

from __future__ import annotations

import pytest

from sparkscore.errors import AccountingError
from sparkscore.manifest import Manifest
from sparkscore.summary import check_invariant, counts


def manifest(*files: dict, batch: int = 0) -> Manifest:
    return Manifest.from_json({
        "batch": batch, "files": list(files),
        "prediction_rows": sum(f["rows_scored"] for f in files), "error_records": len(files)})


GOOD = {"file_name": "good.csv", "status": "succeeded", "rows_read": 5, "rows_scored": 4,
        "rows_failed": 1}
GONE = {"file_name": "gone.csv", "status": "failed", "rows_read": 0, "rows_scored": 0,
        "rows_failed": 0, "rows_unknown": True}
EMPTY = {"file_name": "header.csv", "status": "failed", "rows_read": 0, "rows_scored": 0,
         "rows_failed": 0}


def test_summary_counts_files_whose_rows_are_unknown():
    manifests = [manifest(GOOD, GONE), manifest(EMPTY, batch=1)]
    check_invariant(manifests)
    assert counts(manifests) == {
        "files_succeeded": 1, "files_failed": 2, "files_rows_unknown": 1, "rows_read": 5,
        "rows_scored": 4, "rows_failed": 1, "error_records": 3}


TAIL = ("; the output is inconsistent, so the run is not reported as succeeded. Run again with "
        "overwrite: true, and report it.")


@pytest.mark.parametrize("record, message", [
    ({**GONE, "status": "succeeded"},
     "gone.csv: its rows are recorded as unknown, but it succeeded with 0 rows read" + TAIL),
    ({**GONE, "rows_read": 3, "rows_failed": 3},
     "gone.csv: its rows are recorded as unknown, but it failed with 3 rows read" + TAIL),
    ({**GOOD, "rows_failed": 0},
     "good.csv: 5 rows read but 4 scored and 0 failed" + TAIL),
])
def test_summary_check_invariant_refuses_rows_not_accounted(record, message):
    with pytest.raises(AccountingError) as info:
        check_invariant([manifest(record)])
    assert str(info.value) == message
    assert info.value.where == message.split(":")[0]

