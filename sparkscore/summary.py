"""The run record, `_summary.json`: what ran, on what, with which settings, and what came of it.

`RunRecord` is built once at the end of a run and writes the keys once, in `to_json`; the
counts come from the committed manifests, which are also checked here to account for every
row read exactly once. Other tools read these keys; keep the names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sparkscore.drift import Drift
from sparkscore.envbuild import BuiltEnvironment
from sparkscore.errors import AccountingError, python_version
from sparkscore.manifest import Manifest
from sparkscore.model import ModelSpec, bare_record
from sparkscore.planner import Plan
from sparkscore.requirements import Mismatch
from sparkscore.settings import Settings

__all__ = [
    "EnvironmentRecord",
    "Probe",
    "RunRecord",
    "check_invariant",
    "counts",
    "model_loads",
    "now",
]


def now() -> datetime:
    return datetime.now(UTC)


def counts(manifests: Sequence[Manifest]) -> dict[str, int]:
    """File and row counts over committed mini-batches (a split file counts once).

    `files_rows_unknown`: failed files whose rows could not be counted (removed after planning,
    compressed, an unreadable Parquet footer); their rows are in none of the row counts.
    """
    files = [f for m in manifests for f in m.files]
    failed = {f.file_name for f in files if f.failed}
    names = {f.file_name for f in files}
    return {
        "files_succeeded": len(names - failed),
        "files_failed": len(failed),
        "files_rows_unknown": len({f.file_name for f in files if f.rows_unknown}),
        "rows_read": sum(f.rows_read for f in files),
        "rows_scored": sum(f.rows_scored for f in files),
        "rows_failed": sum(f.rows_failed for f in files),
        "error_records": sum(m.error_records for m in manifests),
    }


def check_invariant(manifests: Sequence[Manifest]) -> None:
    """Every row read is in predictions or counted as failed, exactly once, and a file whose rows
    are unknown failed and counts none: else we say so."""
    for m in manifests:
        # A scoring script's rows are the elements its run returned, not counted per file.
        scored = m.items if m.items is not None else sum(f.rows_scored for f in m.files)
        if scored != m.prediction_rows:
            raise AccountingError(
                where=f"mini-batch {m.batch}",
                detail=f"it wrote {m.prediction_rows} prediction rows but scored {scored}",
            )
        for f in m.files:
            if f.rows_read != f.rows_scored + f.rows_failed:
                raise AccountingError(
                    where=f.file_name,
                    detail=f"{f.rows_read} rows read but "
                    f"{f.rows_scored} scored and {f.rows_failed} failed",
                )
            if f.rows_unknown and (not f.failed or f.rows_read):
                raise AccountingError(
                    where=f.file_name,
                    detail=f"its rows are recorded as unknown, but it "
                    f"{f.status} with {f.rows_read} rows read",
                )


def model_loads(manifests: Sequence[Manifest]) -> tuple[int, int]:
    """(model loads, Python worker processes) over the run's tasks."""
    per_worker: dict[str, int] = {}
    for m in manifests:
        worker = m.task.worker
        if worker:
            per_worker[worker] = max(per_worker.get(worker, 0), m.task.model_loads or 0)
    return sum(per_worker.values()), len(per_worker)


@dataclass(frozen=True, kw_only=True)
class Probe:
    """The model loaded once in its own environment on the driver, before any task: one that
    cannot load fails the run by name, before Spark runs anything."""

    seconds: float
    loaded_with: Mapping[str, str]  # the packages the model loaded with there
    python: str


@dataclass(frozen=True, kw_only=True)
class EnvironmentRecord:
    """Where the model ran: here, with the pins that differ from what is installed; or in its
    own environment (built or reused, probed), shipped in place or as an archive."""

    mismatches: tuple[Mismatch, ...] = ()
    built: BuiltEnvironment | None = None
    probe: Probe | None = None
    shipped: Literal["in place", "archive"] | None = None  # None: no task ran
    archive_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"mismatches": [m.to_dict() for m in self.mismatches]}
        if self.built is not None:
            doc.update(self.built.record())
        if self.probe is not None:
            doc.update(
                probe_seconds=round(self.probe.seconds, 3),
                loaded_with=dict(self.probe.loaded_with),
                python=self.probe.python,
            )
        if self.shipped is not None:
            doc["shipped"] = self.shipped
        if self.archive_bytes is not None:
            doc["archive_bytes"] = self.archive_bytes
        return doc


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """One run as `_summary.json` tells it. `error` says why it failed (the error threshold, or
    drift under fail_on_drift); None when it succeeded."""

    job_id: str
    started: datetime
    ended: datetime
    error: str | None
    model: ModelSpec | None  # None: no MLmodel, files a scoring script's init() loads
    model_uri: str
    model_sha256: str
    model_located: Mapping[str, str | None]  # how a registry or remote URI resolved
    input_uri: str
    plan: Plan
    output_uri: str
    settings: Settings
    manifests: tuple[Manifest, ...]
    files_skipped: int  # committed by an earlier run, which this one resumed
    spark_version: str
    environment: EnvironmentRecord
    table: Mapping[str, Any] | None = None  # a table output's commits (sparkscore.tables)
    drift: Drift | None = None  # against settings.reference; None: no reference
    threads: int | None = None  # each worker's native thread budget; None: libraries' defaults
    # an incremental run's ledger and the files it left alone (sparkscore.ledger); None: not one
    incremental: Mapping[str, Any] | None = None

    @property
    def status(self) -> Literal["succeeded", "failed"]:
        return "failed" if self.error else "succeeded"

    def to_json(self) -> dict[str, Any]:
        doc = self._counted()
        if self.settings.scoring_script is not None:
            # Azure's count of successful items: the elements the script's run calls returned.
            doc["items_succeeded"] = sum(m.items or 0 for m in self.manifests)
        if self.table is not None:
            doc["table"] = dict(self.table)
        if self.incremental is not None:
            doc["incremental"] = dict(self.incremental)
        return doc

    def _counted(self) -> dict[str, Any]:
        duration = (self.ended - self.started).total_seconds()
        c = counts(self.manifests)
        loads, workers = model_loads(self.manifests)
        return {
            "job_id": self.job_id,
            "status": self.status,
            "error": self.error,
            "started": self.started.isoformat(),
            "ended": self.ended.isoformat(),
            "duration_s": round(duration, 3),
            "rows_per_s": round(c["rows_scored"] / duration, 1) if duration > 0 else None,
            "model": self._model(),
            "input": self._input(),
            "output": self.output_uri,
            "settings": self.settings.to_dict(),
            "files_total": len(self.plan.files),
            "files_succeeded": c["files_succeeded"],
            "files_failed": c["files_failed"],
            "files_skipped": self.files_skipped,
            "files_rows_unknown": c["files_rows_unknown"],
            "rows_read": c["rows_read"],
            "rows_scored": c["rows_scored"],
            "rows_failed": c["rows_failed"],
            "error_records": c["error_records"],
            "model_loads": loads,
            "python_workers": workers,
            "threads": self._threads(),
            "spark_version": self.spark_version,
            "python_version": python_version(),
            "environment": {"env_manager": self.settings.env_manager, **self.environment.to_json()},
            "drift": None if self.drift is None else self.drift.to_json(),
        }

    def _threads(self) -> dict[str, Any]:
        """The budget each worker was given, and the most threads a native pool in any worker
        could start once held to it (threadpoolctl's view: what a test or a user checks)."""
        pools = [m.task.threads for m in self.manifests if m.task.threads is not None]
        return {"budget": self.threads, "native_pool_max": max(pools) if pools else None}

    def _model(self) -> dict[str, Any]:
        """What MLmodel says (its free-form `metadata` too), where the model was found, and the
        sha256 of its directory (or of its one file); a model without MLmodel has flavor none."""
        spec = self.model
        described = bare_record(self.model_uri) if spec is None else spec.record()
        metadata = None if spec is None or spec.metadata is None else dict(spec.metadata)
        return {
            **described,
            "metadata": metadata,
            "path": self.model_uri,
            "sha256": self.model_sha256,
            **self.model_located,
        }

    def _input(self) -> dict[str, Any]:
        return {
            "uri": self.input_uri,
            "files": len(self.plan.files),
            "bytes": self.plan.total_bytes,
            "mini_batches": len(self.plan.batches),
            "listing_digest": self.plan.listing_digest,
            "unsupported_skipped": list(self.plan.skipped),
            "broken_links_skipped": list(self.plan.broken_links),
        }
