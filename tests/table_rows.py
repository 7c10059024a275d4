"""Reading back what a run committed to a table, shared by the Delta, Iceberg and incremental
tests."""

from __future__ import annotations

from typing import Any


def by_row(rows: list[dict[str, Any]], job_id: str) -> dict[tuple[str, int], Any]:
    """One run's predictions by (file, row), checking that none is there twice."""
    found = [r for r in rows if r["job_id"] == job_id]
    keys = [(r["file_name"], r["row"]) for r in found]
    assert len(keys) == len(set(keys)), "a row was committed twice"
    return {(r["file_name"], r["row"]): r["prediction"] for r in found}
