"""Plan a batch job: the listed files grouped into mini-batches, one Spark task each.

With `mini_batch_size: auto` mini-batches hold about equal bytes: large Parquet files are split
at row groups and small files packed, so one huge file or fifty thousand tiny ones still use
every core. The plan holds only names and sizes, so it pickles to the executors and can be
compared on resume.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import pyarrow as pa
from pyarrow.fs import FileSystem

from sparkscore.errors import SettingsError
from sparkscore.listing import InputFile, list_input

__all__ = [
    "MAX_TASK_BYTES",
    "MIN_FILE_BYTES",
    "MIN_IMAGE_BYTES",
    "MIN_TASK_BYTES",
    "TASKS_PER_CORE",
    "MiniBatch",
    "Plan",
    "balance",
    "group",
    "plan",
]


@dataclass(frozen=True)
class MiniBatch:
    """The files one Spark task scores."""

    index: int
    files: tuple[InputFile, ...]

    @property
    def bytes(self) -> int:
        """Total size, to see how evenly the work is spread."""
        return sum(f.size for f in self.files)

    @property
    def names(self) -> tuple[str, ...]:
        """The files' names, for logs and error records."""
        return tuple(f.name for f in self.files)


@dataclass(frozen=True)
class Plan:
    """What a run scores; plain data so it ships to executors and can be compared on resume."""

    uri: str
    root: str
    files: tuple[InputFile, ...]
    batches: tuple[MiniBatch, ...]
    skipped: tuple[str, ...]
    # Symbolic links whose target does not exist: named in the plan and the summary, not scored.
    broken_links: tuple[str, ...] = ()
    # Listed but left out by an incremental run: scored before and unchanged (sparkscore.ledger).
    unchanged: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        """Size of all files to score, for the run record and progress."""
        return sum(f.size for f in self.files)

    @property
    def listing_digest(self) -> str:
        """A sha256 of the (name, size) listing: a resumed run checks it sees the same input."""
        listing = sorted((f.name, f.size) for f in self.files)
        return hashlib.sha256(json.dumps(listing).encode("utf-8")).hexdigest()


def group(files: Sequence[InputFile], mini_batch_size: int) -> tuple[MiniBatch, ...]:
    """Cut files, in order, into mini-batches of `mini_batch_size` files (Azure's files per task).

    Kept apart from listing so a byte-balanced strategy can replace it without touching either.
    """
    if mini_batch_size < 1:
        raise SettingsError(key="mini_batch_size", value=mini_batch_size, reason="must be >= 1")
    return tuple(
        MiniBatch(index=i, files=tuple(files[start : start + mini_batch_size]))
        for i, start in enumerate(range(0, len(files), mini_batch_size))
    )


# `mini_batch_size: auto`: a few tasks per core so a slow one does not hold the job, none so
# small that per-task cost dominates, none so large that a retry repeats much work.
TASKS_PER_CORE = 4
MIN_TASK_BYTES = 4 << 20
MAX_TASK_BYTES = 256 << 20
# Opening, reading and accounting for a file costs a fixed time whatever its size (a 100-row
# Parquet file costs what reading ~100 KB of a large one does, bench/: small-20000files-read), so
# for balancing a file weighs at least this much: a folder of thousands of tiny files still
# spreads over every core. An image costs more again (a 2 KB PNG becomes a tensor, and a model
# call).
MIN_FILE_BYTES = 16 << 10
MIN_IMAGE_BYTES = 64 << 10


def balance(fs: FileSystem, files: Sequence[InputFile], parallelism: int) -> tuple[MiniBatch, ...]:
    """Mini-batches of about equal bytes: large Parquet files split at row groups, small files
    packed.

    One huge file and fifty thousand tiny ones both keep every core busy; the order of files
    (and of rows within a file) is kept, so lineage and CSV output order are unchanged. The count
    is a multiple of the task slots where there is enough to share, so the last wave of tasks
    fills every slot: 16 equal files on 2 slots make 8 tasks of 2 files, not 9 of 1 or 2.
    """
    slots = max(1, parallelism)
    total = sum(_weight(f) for f in files)
    count = min(slots * TASKS_PER_CORE, -(-total // MIN_TASK_BYTES))
    count = max(1, count, -(-total // MAX_TASK_BYTES))
    if count > slots:
        count = -(-count // slots) * slots
    target = max(1, -(-total // count))
    units: list[InputFile] = []
    for f in files:
        units.extend(_slices(fs, f, target) if f.kind == "parquet" and f.size > target else [f])
    # Each unit goes to the batch its middle byte falls in: equal shares of the bytes, in order
    # (of the units' weights: a slice of a file weighs at least what a tiny file does).
    batches: dict[int, list[InputFile]] = {}
    before, weights = 0, sum(_weight(u) for u in units)
    for unit in units:
        weight = _weight(unit)
        at = min(count - 1, (before + weight // 2) * count // max(1, weights))
        batches.setdefault(at, []).append(unit)
        before += weight
    return tuple(
        MiniBatch(index=i, files=tuple(batches[at])) for i, at in enumerate(sorted(batches))
    )


def _weight(file: InputFile) -> int:
    """Bytes a file counts for when balancing mini-batches: its size, more for a tiny file."""
    return max(file.size, MIN_IMAGE_BYTES if file.kind == "image" else MIN_FILE_BYTES)


def _slices(fs: FileSystem, file: InputFile, target: int) -> list[InputFile]:
    """A Parquet file cut at row-group boundaries into parts of about `target` bytes."""
    import pyarrow.parquet as pq

    try:
        with fs.open_input_file(file.path) as f:
            meta = pq.ParquetFile(f).metadata
    except (pa.ArrowException, OSError):
        return [file]  # unreadable: the task that reads it records why
    rows = meta.num_rows
    if meta.num_row_groups < 2 or rows == 0:
        return [file]
    parts: list[InputFile] = []
    groups: list[int] = []
    first = start = 0
    for i in range(meta.num_row_groups):
        groups.append(i)
        start += meta.row_group(i).num_rows
        est = file.size * (start - first) // rows
        if est >= target or i == meta.num_row_groups - 1:
            parts.append(replace(file, row_groups=tuple(groups), first_row=first, size=est))
            groups, first = [], start
    return parts if len(parts) > 1 else [file]


def plan(
    uri: str,
    *,
    mini_batch_size: int | str = "auto",
    recursive: bool = False,
    ignore_unsupported: bool = False,
    parallelism: int = 1,
    keep: Callable[[InputFile], bool] | None = None,
    any_type: bool = False,
) -> Plan:
    """List the input and group it into mini-batches: all the driver decides before scoring.

    A number keeps Azure's meaning (files per task); `auto` balances bytes over `parallelism`.
    `keep`: which listed files to score (an incremental run's); the others are `unchanged`.
    `any_type`: every file is listed, whole (a scoring script reads them; see listing).
    """
    listing = list_input(
        uri, recursive=recursive, ignore_unsupported=ignore_unsupported, any_type=any_type
    )
    files = listing.files
    unchanged: tuple[str, ...] = ()
    if keep is not None:
        chosen = {f.name for f in files if keep(f)}
        unchanged = tuple(f.name for f in files if f.name not in chosen)
        files = tuple(f for f in files if f.name in chosen)
    batches = (
        balance(listing.fs, files, parallelism)
        if mini_batch_size == "auto"
        else group(files, int(mini_batch_size))
    )
    return Plan(
        uri=uri,
        root=listing.root,
        files=files,
        batches=batches,
        skipped=listing.unsupported,
        broken_links=listing.broken_links,
        unchanged=unchanged,
    )
