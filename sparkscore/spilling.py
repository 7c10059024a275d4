"""Where a mini-batch's predictions wait for its commit: in memory up to a budget the mini-batch's
files share, past it in one local spill file.

A task commits a mini-batch's predictions only when every file of it is scored, so they wait
somewhere. The budget is the mini-batch's, not each file's: a task's memory then stays flat
however many files a mini-batch holds (a per-file budget let a task of 16 large files hold all
of their predictions). Past it, batches go to one file per mini-batch, not one per file, so a
mini-batch of thousands of small files past its budget makes one file; each batch is an Arrow
IPC stream of its own at a known offset, so a file's batches read back by offset, a failed
file's are simply not read, and spilling costs a copy, not a Parquet encoding.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from sparkscore.scoring import Sink

__all__ = ["SPILL_BYTES", "SpillBuffer", "SpillFile", "spill_buffers"]

SPILL_BYTES = 32 << 20


class SpillFile:
    """A mini-batch's memory budget for waiting predictions, and its spill file past it.

    The file is made when a first batch spills and deleted when the last buffer with batches
    in it is discarded.
    """

    def __init__(self, limit: int = SPILL_BYTES) -> None:
        self.limit = limit
        self.held = 0  # bytes the buffers sharing it hold in memory
        self._path: str | None = None
        self._file: pa.NativeFile | None = None  # written through Arrow's own file
        self._fd: int | None = None  # read through a plain descriptor
        self._users = 0  # buffers with batches in the file

    def fits(self, nbytes: int) -> bool:
        return self.held + nbytes <= self.limit

    def join(self) -> None:
        """A buffer starts spilling here."""
        if self._file is None:
            self._fd, self._path = tempfile.mkstemp(prefix="sparkscore-spill-", suffix=".arrows")
            self._file = pa.OSFile(self._path, "wb")
        self._users += 1

    def leave(self) -> None:
        """A buffer with batches here is discarded: the last one deletes the file."""
        self._users -= 1
        if self._users == 0 and self._file is not None:
            self._file.close()
            assert self._fd is not None and self._path is not None
            os.close(self._fd)
            os.unlink(self._path)
            self._file = self._fd = self._path = None

    def write(self, batch: pa.RecordBatch) -> tuple[int, int]:
        """Append one batch, written straight to the file; its offset and length."""
        assert self._file is not None  # join() came first
        offset = self._file.tell()
        with pa.ipc.new_stream(self._file, batch.schema) as writer:
            writer.write_batch(batch)
        return offset, self._file.tell() - offset

    def read(self, offset: int, length: int) -> pa.RecordBatch:
        """One batch, copied from the file: a memory map would keep every batch read back
        resident until the mini-batch is done, where a copy lives as long as its batch."""
        assert self._fd is not None
        return pa.ipc.open_stream(os.pread(self._fd, length, offset)).read_next_batch()


class SpillBuffer(Sink):
    """A file's prediction batches, held while its mini-batch's budget allows, then spilled:
    once a buffer spills, all its batches are in the file, so they read back in order."""

    def __init__(self, spill: SpillFile | None = None) -> None:
        self.spill = spill or SpillFile()
        self._batches: list[pa.RecordBatch] = []
        self._bytes = 0
        self._spilled: list[tuple[int, int]] | None = None  # (offset, length) of each batch
        self.rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        nbytes = batch.nbytes
        if self._spilled is None and self.spill.fits(nbytes):
            self._batches.append(batch)
            self._bytes += nbytes
            self.spill.held += nbytes
            return
        if self._spilled is None:
            self.spill.join()
            self._spilled = [self.spill.write(held) for held in self._batches]
            self.spill.held -= self._bytes
            self._batches, self._bytes = [], 0
        self._spilled.append(self.spill.write(batch))

    def batches(self) -> Iterator[pa.RecordBatch]:
        for offset, length in self._spilled or ():
            yield self.spill.read(offset, length)
        yield from self._batches

    def discard(self) -> None:
        if self._spilled is not None:
            self._spilled = None
            self.spill.leave()
        self.spill.held -= self._bytes
        self._batches, self._bytes, self.rows = [], 0, 0


def spill_buffers() -> tuple[list[SpillBuffer], Callable[[Any], SpillBuffer]]:
    """A mini-batch's sinks, one per file in the order scoring asks for them (see
    scoring.score_batch), sharing one budget, and the function that makes each."""
    buffers: list[SpillBuffer] = []
    spill = SpillFile()

    def sink_for(_file: Any) -> SpillBuffer:
        buffers.append(SpillBuffer(spill))
        return buffers[-1]

    return buffers, sink_for
