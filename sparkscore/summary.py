"""The run record, `_summary.json`: what ran, on what, with which settings, and what came of it.

Other tools read these keys; keep the names.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sparkscore.errors import AccountingError


def now() -> datetime:
    return datetime.now(UTC)


def counts(manifests: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """File and row counts over committed mini-batches (a split file counts once).

    `files_rows_unknown`: failed files whose rows could not be counted (removed after planning,
    compressed, an unreadable Parquet footer); their rows are in none of the row counts.
    """
    files = [f for m in manifests for f in m["files"]]
    failed = {f["file_name"] for f in files if f["status"] == "failed"}
    names = {f["file_name"] for f in files}
    return {
        "files_succeeded": len(names - failed),
        "files_failed": len(failed),
        "files_rows_unknown": len({f["file_name"] for f in files if f.get("rows_unknown")}),
        "rows_read": sum(f["rows_read"] for f in files),
        "rows_scored": sum(f["rows_scored"] for f in files),
        "rows_failed": sum(f["rows_failed"] for f in files),
        "error_records": sum(m["error_records"] for m in manifests),
    }


def check_invariant(manifests: Sequence[Mapping[str, Any]]) -> None:
    """Every row read is in predictions or counted as failed, exactly once, and a file whose rows
    are unknown failed and counts none: else we say so."""
    for m in manifests:
        scored = sum(f["rows_scored"] for f in m["files"])
        if scored != m["prediction_rows"]:
            raise AccountingError(
                where=f"mini-batch {m['batch']}",
                detail=f"it wrote {m['prediction_rows']} prediction rows but scored {scored}")
        for f in m["files"]:
            if f["rows_read"] != f["rows_scored"] + f["rows_failed"]:
                raise AccountingError(
                    where=f["file_name"], detail=f"{f['rows_read']} rows read but "
                    f"{f['rows_scored']} scored and {f['rows_failed']} failed")
            if f.get("rows_unknown") and (f["status"] != "failed" or f["rows_read"]):
                raise AccountingError(
                    where=f["file_name"], detail=f"its rows are recorded as unknown, but it "
                    f"{f['status']} with {f['rows_read']} rows read")


def model_loads(manifests: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(model loads, Python worker processes) over the run's tasks."""
    per_worker: dict[str, int] = {}
    for m in manifests:
        worker = m.get("worker")
        if worker:
            per_worker[worker] = max(per_worker.get(worker, 0), int(m.get("model_loads") or 0))
    return sum(per_worker.values()), len(per_worker)


def build(
    *,
    job_id: str,
    status: str,
    started: datetime,
    ended: datetime,
    model: Mapping[str, Any],
    input_record: Mapping[str, Any],
    output: str,
    settings: Mapping[str, Any],
    manifests: Sequence[Mapping[str, Any]],
    files_total: int,
    files_skipped: int,
    spark_version: str,
    error: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    duration = (ended - started).total_seconds()
    c = counts(manifests)
    loads, workers = model_loads(manifests)
    return {
        "job_id": job_id,
        "status": status,
        "error": error,
        "started": started.isoformat(),
        "ended": ended.isoformat(),
        "duration_s": round(duration, 3),
        "rows_per_s": round(c["rows_scored"] / duration, 1) if duration > 0 else None,
        "model": dict(model),
        "input": dict(input_record),
        "output": output,
        "settings": dict(settings),
        "files_total": files_total,
        "files_succeeded": c["files_succeeded"],
        "files_failed": c["files_failed"],
        "files_skipped": files_skipped,
        "files_rows_unknown": c["files_rows_unknown"],
        "rows_read": c["rows_read"],
        "rows_scored": c["rows_scored"],
        "rows_failed": c["rows_failed"],
        "error_records": c["error_records"],
        "model_loads": loads,
        "python_workers": workers,
        "spark_version": spark_version,
        "python_version": platform.python_version(),
        **dict(extra or {}),
    }
