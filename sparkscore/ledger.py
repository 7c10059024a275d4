"""The ledger of an incremental output (`incremental: true`): every input file scored into it,
its size and modification time then, whether it succeeded, the run that scored it and that
run's model; a later run scores only the files it does not hold unchanged.

The rule it keeps: for each `file_name`, the rows of the latest run that scored it are current.
Tables hold only those (sparkscore.tables deletes the superseded rows in the run's commit); a
Parquet folder keeps every run's parts, each under its `job_id=` folder, and the ledger says
which run is current for each file, so reading the rule is one join with it.

It is one Parquet file, OUT/_sparkscore/ledger.parquet (a folder Delta readers and VACUUM leave
alone), rewritten whole by each run as its very last step, after its parts (and any table
commit) and its summary: a run killed before that has changed nothing a reader follows, and its
resume finishes it under its own job id. A file that failed is scored again by the next run,
changed or not: a failure may be passing (a file still being written, a storage error), and its
error rows are superseded like any others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from sparkscore.errors import LedgerModelError, OutputError, SettingsError
from sparkscore.layout import (
    RUNS_FOLDER,
    OutputLayout,
    claim_table,
    ledger_path,
    table_run,
    table_runs,
)
from sparkscore.listing import InputFile, list_input
from sparkscore.manifest import Manifest
from sparkscore.settings import Settings
from sparkscore.writers import write_part

__all__ = [
    "SCHEMA",
    "Ledger",
    "LedgerEntry",
    "admit",
    "claim_folder",
    "pending",
    "run_into",
]

log = logging.getLogger("sparkscore")

SCHEMA = pa.schema(
    [
        pa.field("file_name", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("modified_ns", pa.int64(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("job_id", pa.string(), nullable=False),
        pa.field("model_sha256", pa.string(), nullable=False),
    ]
)


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    """One input file as the run that last scored it found it."""

    file_name: str
    size: int
    modified_ns: int  # 0 where the filesystem gave none: then the size alone tells a change
    status: Literal["succeeded", "failed"]
    job_id: str
    model_sha256: str


@dataclass(frozen=True)
class Ledger:
    """The ledger at `path`, by file name; empty before the first incremental run commits."""

    path: str
    entries: Mapping[str, LedgerEntry]

    @classmethod
    def read(cls, fs: pafs.FileSystem, path: str) -> Ledger:
        if fs.get_file_info(path).type != pafs.FileType.File:
            return cls(path, {})
        rows = pq.read_table(path, filesystem=fs, schema=SCHEMA).to_pylist()
        return cls(path, {r["file_name"]: LedgerEntry(**r) for r in rows})

    @property
    def latest(self) -> LedgerEntry | None:
        """The entry of the latest run (job ids start with their start time)."""
        return max(self.entries.values(), key=lambda e: e.job_id, default=None)

    def unchanged(self, file: InputFile) -> bool:
        """Whether `file` was scored, successfully, as it is now: it need not be scored again."""
        entry = self.entries.get(file.name)
        return (
            entry is not None
            and entry.status == "succeeded"
            and (entry.size, entry.modified_ns) == (file.size, file.modified_ns)
        )

    def to_score(self, settings: Settings) -> Callable[[InputFile], bool]:
        """Which listed files a run scores: all under `rescore`, else those not unchanged."""
        return (lambda _: True) if settings.rescore else (lambda f: not self.unchanged(f))

    def after(
        self, *, job_id: str, sha256: str, files: Sequence[InputFile], manifests: Sequence[Manifest]
    ) -> Ledger:
        """The ledger once the run `job_id` has committed `manifests`: each file it scored
        (failed if any slice of it failed) recorded as the run found it, the others kept."""
        found = {f.name: f for f in files}  # whole files: a plan slices only its mini-batches
        failed = {r.file_name for m in manifests for r in m.files if r.failed}
        entries = dict(self.entries)
        for name in sorted({r.file_name for m in manifests for r in m.files}):
            file = found[name]
            entries[name] = LedgerEntry(
                file_name=name,
                size=file.size,
                modified_ns=file.modified_ns,
                status="failed" if name in failed else "succeeded",
                job_id=job_id,
                model_sha256=sha256,
            )
        return replace(self, entries=entries)

    def write(self, fs: pafs.FileSystem) -> None:
        """Replace the ledger whole (a temporary file moved into place)."""
        rows = [asdict(self.entries[name]) for name in sorted(self.entries)]
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        write_part(fs, self.path, SCHEMA, iter(table.to_batches()))


def admit(
    fs: pafs.FileSystem, final: OutputLayout, settings: Settings, sha256: str
) -> Ledger | None:
    """The ledger an incremental run into `final` plans from (None: not an incremental run),
    once the settings and the model fit it; a run that is not incremental is refused an output
    that holds incremental runs, since it would add a second copy of their files' rows."""
    path = ledger_path(final)
    if not settings.incremental:
        if settings.rescore:
            raise SettingsError(
                key="rescore", value=True, reason="needs incremental: true; set both"
            )
        _refuse_plain_run(fs, final, settings, path)
        return None
    if settings.output_format == "csv":
        raise SettingsError(
            key="output_format",
            value="csv",
            reason="cannot take incremental runs (incremental: true): a CSV output is one file, "
            "rewritten whole by each run; use output_format: parquet, delta or iceberg",
        )
    if settings.overwrite:
        raise SettingsError(
            key="overwrite",
            value=True,
            reason="cannot be used with incremental: true, which adds to the output; set "
            "rescore: true to score every file again (superseding their rows), or choose a new "
            "output",
        )
    ledger = Ledger.read(fs, path)
    latest = ledger.latest
    if latest is not None and latest.model_sha256 != sha256 and not settings.rescore:
        raise LedgerModelError(
            output=final.uri, ledger_sha256=latest.model_sha256, model_sha256=sha256
        )
    return ledger


def _refuse_plain_run(
    fs: pafs.FileSystem, final: OutputLayout, settings: Settings, path: str
) -> None:
    if final.is_table:
        held = fs.get_file_info(path).type == pafs.FileType.File
        fix = "choose a new table"
    else:
        runs = f"{final.root}/{RUNS_FOLDER}"
        held = not settings.overwrite and fs.get_file_info(runs).type == pafs.FileType.Directory
        fix = "set overwrite: true to replace it"
    if held:
        raise OutputError(
            path=final.uri,
            reason=f"holds incremental runs (a ledger in {RUNS_FOLDER}/), whose rows a run "
            f"without incremental: true would repeat; nothing was touched. Set incremental: "
            f"true to add to it, or {fix}.",
        )


def run_into(
    fs: pafs.FileSystem, final: OutputLayout, job_id: str, settings: Settings, ledger: Ledger
) -> OutputLayout:
    """The run this one is into the incremental output `final`: with resume, the latest run
    if the ledger does not name it (it was stopped before its last step), under its job id;
    else a new one, `job_id`. A finished run is never resumed: resume: true on every run of a
    schedule scores what is new."""
    runs = table_runs(fs, final)
    named = {e.job_id for e in ledger.entries.values()}
    if runs and runs[-1] not in named:
        if settings.resume:
            log.info("resuming run %s into %s", runs[-1], final.uri)
            return table_run(final, runs[-1])
        log.warning(
            "run %s into %s did not finish; this run scores its files again (resume: true "
            "would finish it instead)",
            runs[-1],
            final.uri,
        )
    return table_run(final, job_id)


def claim_folder(fs: pafs.FileSystem, final: OutputLayout, layout: OutputLayout) -> None:
    """Refuse a Parquet folder that holds anything but incremental runs; else make the run's
    folder."""
    claim_table(
        fs,
        final,
        layout,
        ("predictions", "errors"),
        advice="which incremental runs do not write (was it written without incremental: "
        "true?); nothing was touched. Choose a new output folder for incremental runs.",
    )


def pending(input_uri: str, output_uri: str, settings: Settings) -> bool:
    """Whether an incremental run has any file to score, from the listing and the ledger only:
    the command line asks before it starts Spark, which a run with nothing new never needs."""
    if settings.rescore:
        return True
    final = OutputLayout.at(output_uri, settings.output_format, settings.output_file_name)
    ledger = Ledger.read(final.filesystem(), ledger_path(final))
    listing = list_input(
        input_uri, recursive=settings.recursive, ignore_unsupported=settings.ignore_unsupported
    )
    return not ledger.entries or not all(ledger.unchanged(f) for f in listing.files)
