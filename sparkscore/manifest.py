"""The manifest: what a task says it committed for one mini-batch, the driver<->task contract.

A task writes `_manifest/batch-NNNNN.json` last (the mini-batch is committed once it exists) and
hands the same record back to the driver; the driver accounts, summarizes and resumes from it.
This module is the one place its JSON is written and read: the keys are those earlier runs
wrote, since a resume reads their manifests and other tools read them too.

    {"batch": 3, "files": [{"file_name": "a.csv", "status": "succeeded", "rows_read": 5,
     "rows_scored": 5, "rows_failed": 0}, ...], "prediction_rows": 5, "error_records": 0,
     "attempt": 0, "worker": "host:4242", "model_loads": 1, "isolated": false,
     "profile": {...}}

`profile` (sparkscore.profile) is the scored rows' profile, its bins as grid keys
(`bin_keys`, `bin_counts`: a third of the JSON of their edges, and 3 to 4 times faster to write
and read); a manifest written without one (by an earlier version, or with `profile: false`)
reads as None, one with bins as edges as it was. A mini-batch run through a scoring
script also says how many elements its run returned (`items`: its prediction rows, counted as
Azure counts successful items) and where the files it wrote were staged (`script_output`,
sparkscore.scriptoutput); both keys are written only then.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sparkscore.profile import Profile

if TYPE_CHECKING:
    from sparkscore.scoring import FileResult

__all__ = ["FileRecord", "Manifest", "TaskRun"]


@dataclass(frozen=True, kw_only=True)
class FileRecord:
    """What came of one input file (or of its slice, for a file split over mini-batches).

    `rows_unknown`: the file failed before its rows could be told apart (removed, compressed, an
    unreadable Parquet footer), so its rows are in no count; the key is written only when true.
    """

    file_name: str
    status: Literal["succeeded", "failed"]
    rows_read: int
    rows_scored: int
    rows_failed: int
    rows_unknown: bool = False

    @classmethod
    def of(cls, result: FileResult) -> FileRecord:
        return cls(
            file_name=result.name,
            status="failed" if result.failed else "succeeded",
            rows_read=result.rows_read,
            rows_scored=result.rows_scored,
            rows_failed=result.rows_failed,
            rows_unknown=result.rows_unknown,
        )

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def failed_whole(self) -> FileRecord:
        """This slice failed with its file: none of the rows it read count as scored."""
        return dataclasses.replace(self, status="failed", rows_scored=0, rows_failed=self.rows_read)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "file_name": self.file_name,
            "status": self.status,
            "rows_read": self.rows_read,
            "rows_scored": self.rows_scored,
            "rows_failed": self.rows_failed,
        }
        if self.rows_unknown:
            doc["rows_unknown"] = True
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> FileRecord:
        return cls(
            file_name=doc["file_name"],
            status=doc["status"],
            rows_read=doc["rows_read"],
            rows_scored=doc["rows_scored"],
            rows_failed=doc["rows_failed"],
            rows_unknown=bool(doc.get("rows_unknown", False)),
        )


@dataclass(frozen=True, kw_only=True)
class TaskRun:
    """Which task attempt committed a mini-batch, in which Python worker, and how many times
    that worker had loaded the model by then. None (and left out of the JSON) where a manifest
    was committed outside a Spark task."""

    attempt: int | None = None
    worker: str | None = None
    model_loads: int | None = None
    isolated: bool | None = None  # its files were scored in forked children (isolation)
    threads: int | None = None  # the most threads a native pool in the worker could start

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TaskRun:
        return cls(
            attempt=doc.get("attempt"),
            worker=doc.get("worker"),
            model_loads=doc.get("model_loads"),
            isolated=doc.get("isolated"),
            threads=doc.get("threads"),
        )


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """One committed mini-batch: its files' outcomes, and the rows its parts hold."""

    batch: int
    files: tuple[FileRecord, ...]
    prediction_rows: int
    error_records: int
    task: TaskRun = TaskRun()
    profile: Profile | None = None
    items: int | None = None  # elements a scoring script's run returned; None: no script
    script_output: str | None = None  # its staged folder of files, under OUT/_script_output

    def to_json(self) -> dict[str, Any]:
        doc = {
            "batch": self.batch,
            "files": [f.to_json() for f in self.files],
            "prediction_rows": self.prediction_rows,
            "error_records": self.error_records,
            **self.task.to_json(),
        }
        if self.profile is not None:
            doc["profile"] = self.profile.to_json(keys=True)
        if self.items is not None:
            doc["items"] = self.items
        if self.script_output is not None:
            doc["script_output"] = self.script_output
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Manifest:
        return cls(
            batch=int(doc["batch"]),
            files=tuple(FileRecord.from_json(f) for f in doc["files"]),
            prediction_rows=doc["prediction_rows"],
            error_records=doc["error_records"],
            task=TaskRun.from_json(doc),
            profile=Profile.from_json(doc["profile"]) if "profile" in doc else None,
            items=doc.get("items"),
            script_output=doc.get("script_output"),
        )

    def dumps(self) -> str:
        """As one line of JSON: how a task hands it back to the driver."""
        return json.dumps(self.to_json())

    @classmethod
    def loads(cls, text: str) -> Manifest:
        return cls.from_json(json.loads(text))
