"""The output folder: where each output lives under it, and claiming, staging and replacing it.

Layout of OUT/:
  predictions/part-NNNNN.parquet  one per mini-batch with rows (Parquet output)
  errors/part-NNNNN.parquet       one per mini-batch with error records
  _manifest/batch-NNNNN.json      written last: a mini-batch is committed when this exists
  _run.json                       the run that started this output (sparkscore.resume)
  _summary.json                   the run record
  _profile.json                   the scored rows' profile (sparkscore.profile)
  <output_file_name>              with output_format: csv, consolidated from _staging/

A table output (output_format: delta, iceberg) is two tables, OUT and OUT_errors (for Iceberg,
tables in a catalog that these folders stand for); each run writes its
parts into its own partition folder of each, and its own records into a folder Delta readers and
VACUUM leave alone:
  OUT/job_id=<job id>/part-NNNNN.parquet         the run's prediction parts (for Iceberg,
                                                 with the job id as a column too)
  OUT_errors/job_id=<job id>/part-NNNNN.parquet  the run's error parts
  OUT/_sparkscore/<job id>/                      _run.json, _manifest/, _summary.json
The parts become rows only when the driver commits them to the tables (sparkscore.tables).

An incremental run (`incremental: true`, sparkscore.ledger) into a Parquet folder writes its
parts the same way, each run its own partition folder, and its records beside them:
  OUT/predictions/job_id=<job id>/part-NNNNN.parquet
  OUT/errors/job_id=<job id>/part-NNNNN.parquet
  OUT/_sparkscore/<job id>/                      _run.json, _manifest/, _summary.json
  OUT/_sparkscore/ledger.parquet                 every input file scored, and by which run

An overwrite run writes into a staging folder beside OUT, `.OUT.sparkscore-<job id>`, which
replaces OUT once the run has succeeded; one left behind is a run a resume can finish. What is
written into the folder, and how, is sparkscore.writers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from pyarrow import fs as pafs

from sparkscore.errors import OutputError
from sparkscore.profile import PROFILE_FILE
from sparkscore.storage import resolve, split_query

__all__ = [
    "JOB_ID",
    "LEDGER_FILE",
    "RUNS_FOLDER",
    "TABLE_FORMATS",
    "OutputLayout",
    "abandoned_staging",
    "claim_output",
    "claim_table",
    "errors_table",
    "is_empty",
    "ledger_path",
    "prepare_output",
    "remove_dir",
    "replace_dir",
    "run_layout",
    "staging",
    "sweep_temporary",
    "table_run",
    "table_runs",
]

TABLE_FORMATS = ("delta", "iceberg")
# Where a table output keeps each run's records: a folder whose name starts with `_`, which Delta
# readers and VACUUM leave alone.
RUNS_FOLDER = "_sparkscore"
# The partition column naming the run that wrote a row: each run's parts are its own partition.
JOB_ID = "job_id"
# An incremental output's ledger, in its runs folder (a file: only folders there are runs).
LEDGER_FILE = "ledger.parquet"


log = logging.getLogger("sparkscore")


@dataclass(frozen=True)
class OutputLayout:
    """Where each output lives under the output root; picklable, rebuilt into a filesystem in
    tasks."""

    uri: str
    root: str
    output_format: str = "parquet"
    output_file_name: str = "predictions.csv"
    # a table's or an incremental output's location; root is then its run's records folder
    table: str = ""
    run: str = ""  # the job id of the run whose parts this layout holds

    @classmethod
    def at(
        cls, uri: str, output_format: str = "parquet", output_file_name: str = "predictions.csv"
    ) -> OutputLayout:
        _, root = resolve(uri)
        return cls(uri, root.rstrip("/"), output_format, output_file_name)

    def filesystem(self) -> pafs.FileSystem:
        return resolve(self.uri)[0]

    @property
    def is_table(self) -> bool:
        return self.output_format in TABLE_FORMATS

    @property
    def job_column(self) -> bool:
        """Whether the run's parts carry the job id as a column of their own: an Iceberg
        table's parts do, since `add_files` takes a file's partition value from its own column
        (a Delta table keeps it in its log, a Parquet folder in the folder's name)."""
        return self.output_format == "iceberg" and bool(self.table)

    @property
    def predictions(self) -> str:
        if self.table and self.is_table:
            return f"{self.table}/{JOB_ID}={self.run}"
        if self.table:
            return f"{self.table}/predictions/{JOB_ID}={self.run}"
        if self.output_format == "csv":
            return f"{self.root}/_staging/predictions"
        return f"{self.root}/predictions"

    @property
    def errors(self) -> str:
        if self.table and self.is_table:
            return f"{errors_table(self.table)}/{JOB_ID}={self.run}"
        if self.table:
            return f"{self.table}/errors/{JOB_ID}={self.run}"
        return f"{self.root}/errors"

    @property
    def manifests(self) -> str:
        return f"{self.root}/_manifest"

    @property
    def summary(self) -> str:
        return f"{self.root}/_summary.json"

    @property
    def profile(self) -> str:
        return f"{self.root}/{PROFILE_FILE}"

    @property
    def csv(self) -> str:
        return f"{self.root}/{self.output_file_name}"

    def part(self, directory: str, index: int) -> str:
        return f"{directory}/part-{index:05d}.parquet"

    def manifest(self, index: int) -> str:
        return f"{self.manifests}/batch-{index:05d}.json"


def errors_table(location: str) -> str:
    """Where a table output's errors table is: beside the predictions table, `OUT_errors`."""
    base, query = split_query(location)
    return f"{base.rstrip('/')}_errors{query}"


def ledger_path(final: OutputLayout) -> str:
    """Where the incremental output `final` keeps its ledger (sparkscore.ledger)."""
    return f"{final.root}/{RUNS_FOLDER}/{LEDGER_FILE}"


def table_run(final: OutputLayout, job_id: str) -> OutputLayout:
    """The layout of one run into the table (or incremental) output `final`."""
    root = f"{final.root}/{RUNS_FOLDER}/{job_id}"
    return replace(final, root=root, table=final.root, run=job_id)


def table_runs(fs: pafs.FileSystem, final: OutputLayout) -> list[str]:
    """The job ids of the runs that wrote into the table output `final`, oldest first (job ids
    start with their start time)."""
    folder = f"{final.root}/{RUNS_FOLDER}"
    if fs.get_file_info(folder).type != pafs.FileType.Directory:
        return []
    entries = fs.get_file_info(pafs.FileSelector(folder))
    return sorted(e.base_name for e in entries if e.type == pafs.FileType.Directory)


def prepare_output(
    fs: pafs.FileSystem,
    layout: OutputLayout,
    *,
    overwrite: bool,
    resume: bool,
    interrupted: bool = False,
) -> None:
    """Refuse to clobber an existing output unless the user said overwrite or resume.

    `interrupted`: an overwrite run into this output left its staging folder, which resume
    finishes."""
    info = fs.get_file_info(layout.root)
    if info.type == pafs.FileType.File:
        raise OutputError(path=layout.uri, reason="is a file; --output must be a folder.")
    if not overwrite and not resume and not is_empty(fs, layout.root):
        finish = (
            "set resume: true to finish the overwrite run into it that was interrupted"
            if interrupted
            else "set resume: true to finish that run"
        )
        raise OutputError(
            path=layout.uri,
            reason=f"already exists and is not empty; nothing was touched. Choose a new "
            f"output folder, or {finish}, or overwrite: true to replace it once this run "
            "succeeds.",
        )
    fs.create_dir(layout.root, recursive=True)


def claim_table(
    fs: pafs.FileSystem,
    final: OutputLayout,
    layout: OutputLayout,
    metadata: tuple[str, ...],
    *,
    advice: str = "which no table there accounts for; nothing was touched. Choose an empty "
    "location or an existing table.",
) -> None:
    """Refuse a table location that holds anything but a table and sparkscore's runs into it
    (`metadata`: the format's own entries, `_delta_log`; for an incremental folder,
    `predictions` and `errors`), saying `advice`; else make this run's folder."""
    info = fs.get_file_info(final.root)
    if info.type == pafs.FileType.File:
        raise OutputError(path=final.uri, reason="is a file; --output must be a table location.")
    if info.type == pafs.FileType.Directory:
        ours = (*metadata, RUNS_FOLDER)
        foreign = sorted(
            e.base_name
            for e in fs.get_file_info(pafs.FileSelector(final.root))
            if e.base_name not in ours and not e.base_name.startswith(f"{JOB_ID}=")
        )
        if foreign:
            raise OutputError(
                path=final.uri,
                reason=f"holds {', '.join(foreign[:3])}, {advice}",
            )
    fs.create_dir(layout.root, recursive=True)


def is_empty(fs: pafs.FileSystem, path: str) -> bool:
    """True for a folder with nothing in it, or for no folder at all."""
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return True
    return not fs.get_file_info(pafs.FileSelector(path))


def staging(layout: OutputLayout, job_id: str) -> OutputLayout:
    """Where an overwrite run writes, beside the output it replaces once it has succeeded."""
    parent, name = layout.root.rsplit("/", 1)
    return replace(layout, root=f"{parent}/.{name}.sparkscore-{job_id}")


def abandoned_staging(fs: pafs.FileSystem, layout: OutputLayout) -> list[OutputLayout]:
    """Staging folders of overwrite runs into `layout` that never finished, oldest first.

    A finished run moves its staging folder into place, so any still here was left by a run
    that was killed or failed; job ids start with their start time, so names sort by age.
    """
    parent, name = layout.root.rsplit("/", 1)
    prefix = f".{name}.sparkscore-"
    if fs.get_file_info(parent).type != pafs.FileType.Directory:
        return []
    found = sorted(
        e.base_name
        for e in fs.get_file_info(pafs.FileSelector(parent))
        if e.type == pafs.FileType.Directory and e.base_name.startswith(prefix)
    )
    return [replace(layout, root=f"{parent}/{base}") for base in found]


def replace_dir(fs: pafs.FileSystem, source: str, target: str) -> None:
    """Put the finished output of an overwrite run where the old output was."""
    if fs.get_file_info(target).type == pafs.FileType.Directory:
        fs.delete_dir(target)
    fs.move(source, target)


def remove_dir(fs: pafs.FileSystem, path: str) -> None:
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir(path)


def sweep_temporary(fs: pafs.FileSystem, layout: OutputLayout) -> None:
    """Remove the hidden half-written files of attempts that died before moving them into place."""
    for directory in (layout.root, layout.predictions, layout.errors, layout.manifests):
        if fs.get_file_info(directory).type != pafs.FileType.Directory:
            continue
        for entry in fs.get_file_info(pafs.FileSelector(directory)):
            if entry.base_name.startswith(".") and entry.base_name.endswith(".tmp"):
                fs.delete_file(entry.path)


def run_layout(
    fs: pafs.FileSystem,
    final: OutputLayout,
    *,
    overwrite: bool,
    resume: bool,
    job_id: str,
    abandoned: list[OutputLayout],
) -> OutputLayout:
    """Where this run writes: the output itself; with overwrite, a staging folder beside it
    that replaces it once this run has succeeded (a failed run leaves the old output intact);
    with resume, the staging folder of an overwrite run that was interrupted, if there is one,
    since that run is the one to finish."""
    if resume and abandoned:
        log.warning(
            "resuming the overwrite run that was interrupted in %s; its output "
            "replaces %s when it succeeds",
            abandoned[-1].root,
            final.uri,
        )
        return abandoned[-1]
    if overwrite and not resume and not is_empty(fs, final.root):
        return staging(final, job_id)
    return final


def claim_output(
    fs: pafs.FileSystem,
    final: OutputLayout,
    layout: OutputLayout,
    *,
    overwrite: bool,
    resume: bool,
    abandoned: list[OutputLayout],
) -> None:
    """Refuse an output that is not this run's to write; else clear what interrupted overwrite
    runs left beside it (all but the one this run finishes) and make the folder it writes."""
    prepare_output(fs, final, overwrite=overwrite, resume=resume, interrupted=bool(abandoned))
    for old in abandoned:
        if old.root != layout.root:
            remove_dir(fs, old.root)
            log.warning(
                "removed %s: the staging folder of an overwrite run that did not finish", old.root
            )
    fs.create_dir(layout.root, recursive=True)
