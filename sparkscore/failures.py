"""How a file fails, and the errors/ rows that say why.

Every failure a task records is one row of the errors/ output (ERROR_SCHEMA): a bad row names
its row, a failed file has a null row. A file fails in one way, `FileState.fail`, whatever failed
it (its reading, its columns, a bad row under `bad_rows: fail_file`, predict, a timeout): none of
its predictions are kept and all its rows count as failed, so the row accounting stays whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa

from sparkscore.errors import ReadError
from sparkscore.sample import Sample

if TYPE_CHECKING:  # scoring.py, the public surface, imports this module
    from sparkscore.scoring import FileResult, Sink

__all__ = ["ERROR_SCHEMA", "FileState", "Queue", "error_record"]

ERROR_SCHEMA = pa.schema(
    [
        pa.field("file_name", pa.string(), nullable=False),
        pa.field("row", pa.int64()),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("error_type", pa.string(), nullable=False),
        pa.field("message", pa.string(), nullable=False),
    ]
)


def error_record(file: str, row: int | None, stage: str, error: BaseException) -> dict[str, Any]:
    """One row of the errors/ output; `row` None: the whole file."""
    return {
        "file_name": file,
        "row": row,
        "stage": stage,
        "error_type": type(error).__name__,
        "message": str(error),
    }


class Queue(Protocol):
    """Where a file's rows wait for predict; a failed file's rows are dropped from it."""

    def drop(self, file: FileState) -> None: ...


@dataclass(eq=False)
class FileState:
    """A file while its rows are read, queued and predicted.

    `sink`: where its predictions go (None for a file failed from outside its own reading).
    `position`: its place in its mini-batch. `queue`: where its rows wait for predict.
    `sample`: its sampled rows predicted so far, kept or forgotten with the sink's batches.
    """

    result: FileResult
    sink: Sink | None = None
    position: int = 0
    queue: Queue | None = None
    sample: Sample | None = None

    @property
    def failed(self) -> bool:
        return self.result.failed

    def forget(self) -> None:
        """Forget what of the file was scored so far: its sink's batches, its rows waiting."""
        if self.queue is not None:
            self.queue.drop(self)
        if self.sink is not None:
            self.sink.discard()
        self.sample = None

    def fail(self, error: BaseException | None = None, stage: str | None = None) -> None:
        """The file fails whole: nothing of it is kept, and all its rows count as failed.

        `error`: one record with a null row says why, and replaces any such record before it;
        its `stage` defaults to the one of a failure met while the file is read or checked:
        `read` for the file itself, `validate` for its columns or passthrough values. None: the
        records of its bad rows say why (`bad_rows: fail_file`).
        """
        self.forget()
        result = self.result
        result.failed = True
        result.rows_scored, result.rows_failed = 0, result.rows_read
        if error is not None:
            result.errors = [r for r in result.errors if r["row"] is not None]
            if stage is None:
                stage = "read" if isinstance(error, ReadError) else "validate"
            result.errors.append(error_record(result.name, None, stage, error))

    def profiled(self, model_input: Any, prediction: pa.Array, sample: np.ndarray) -> None:
        """Add predicted rows to the file's sample (sparkscore.sample)."""
        if self.sample is None:
            self.sample = Sample()
        self.sample.add(model_input, prediction, sample)

    def finish(self) -> FileResult:
        """The file's result once all its rows are read and predicted."""
        r = self.result
        if not r.failed and r.rows_read == 0:
            self.fail(ReadError(file=r.name, reason="the file has no rows."))
        if r.failed:
            r.rows_scored, r.rows_failed = 0, r.rows_read
        else:
            r.rows_failed = r.rows_read - r.rows_scored
        # Row by row, whichever reading found them (ragged rows, bad values); the file's own
        # record last.
        r.errors.sort(key=lambda e: (e["row"] is None, e["row"] or 0))
        return r
