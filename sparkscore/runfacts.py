"""The facts of a finished (or stopped) run, read from its output folder into one frozen record:
what `report.html` draws and `sparkscore show` prints (sparkscore.report renders them; nothing
here draws, so both say the same thing).

Sources, each optional, so a run that failed, stopped early or ran without a profile still has
facts: `_summary.json` (status and counts; without it, the counts of the committed manifests),
`errors/` (grouped by stage and type), the manifests' commit times (throughput), `predictions/`
(the prediction's distribution, overall and per file), `_profile.json` and the reference's
profile (each input column's distribution). Distributions are binned here
(sparkscore.distributions) into buckets a chart can draw as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pyarrow.dataset as ds
from pyarrow import fs as pafs

from sparkscore import distributions
from sparkscore.distributions import Distribution, Predictions
from sparkscore.drift import read_reference
from sparkscore.errors import NoRunError, ReferenceProfileError
from sparkscore.layout import RUNS_FOLDER, OutputLayout, table_run, table_runs
from sparkscore.manifest import Manifest
from sparkscore.profile import Profile
from sparkscore.storage import resolve
from sparkscore.summary import counts
from sparkscore.writers import read_json

__all__ = [
    "TOP_FILES",
    "ColumnFacts",
    "Counts",
    "ErrorGroup",
    "RunFacts",
    "REPORT_FILE",
    "gather",
    "gather_at",
]

TOP_FILES = 3  # files named per error group
REPORT_FILE = "report.html"

Status = Literal["succeeded", "failed", "unfinished"]


@dataclass(frozen=True, kw_only=True)
class Counts:
    """Files and rows, as `_summary.json` has them (or the committed manifests, without it)."""

    files_total: int | None  # None: no run record says how many were planned
    files_succeeded: int
    files_failed: int
    files_skipped: int
    rows_read: int
    rows_scored: int
    rows_failed: int
    error_records: int


@dataclass(frozen=True, kw_only=True)
class ErrorGroup:
    """The error records of one stage and type: how many, in how many files, the files with the
    most, and the first message (each message names its file and row)."""

    stage: str
    error_type: str
    records: int
    files: int
    top_files: tuple[tuple[str, int], ...]
    example: str


@dataclass(frozen=True, kw_only=True)
class ColumnFacts:
    """One input column (or the prediction) as profiled, against the reference's when there is
    one. `psi` and `flagged` come from the summary's drift section."""

    name: str
    distribution: Distribution | None  # None: not a numeric or categorical column
    reference: Distribution | None
    count: int
    nulls: int
    psi: float | None = None
    flagged: bool = False
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class RunFacts:
    """Everything the report and `show` present, read once from the output folder."""

    output: str  # the run's records: the output folder, or a table output's run folder
    report: str  # where report.html is
    job_id: str | None
    status: Status
    error: str | None
    started: str | None
    duration_s: float | None
    rows_per_s: float | None
    counts: Counts
    errors: tuple[ErrorGroup, ...]
    commits: tuple[tuple[float, int], ...]  # (seconds since the start, rows) per mini-batch
    mini_batches: int | None  # planned
    prediction: Predictions  # overall, the reference's, the files that differ most
    profiled: bool
    reference: str | None
    reference_note: str | None  # why the reference could not be read
    flagged: tuple[str, ...]
    drifts: tuple[tuple[str, float | None, bool], ...]  # (column, PSI, flagged), the prediction too
    columns: tuple[ColumnFacts, ...]  # drifted first, then in the model's order


def gather(uri: str) -> RunFacts:
    """The facts of the run whose output is at `uri` (a folder, or a table output's location:
    its latest run)."""
    fs, root = resolve(uri)
    root = root.rstrip("/")
    layout = _layout(fs, uri, root)
    where = f"{uri.rstrip('/')}{layout.root[len(root) :]}"
    return gather_at(fs, layout, output=where)


def gather_at(fs: pafs.FileSystem, layout: OutputLayout, *, output: str) -> RunFacts:
    """The facts of the run whose records are at `layout`, shown as the output `output` (where
    they are once a staged run replaced its output)."""
    summary = _read_optional(fs, layout.summary)
    manifests = _manifests(fs, layout)
    if summary is None and not manifests and not _exists(fs, f"{layout.root}/_run.json"):
        raise NoRunError(path=output)
    started = _started(fs, layout, summary, manifests)
    profile_doc = _read_optional(fs, layout.profile)
    drift = (summary or {}).get("drift") or {}
    reference_uri = ((summary or {}).get("settings") or {}).get("reference")
    reference, reference_note = _reference(reference_uri)
    prediction = _predictions(fs, layout, summary, reference)
    profile = None if profile_doc is None else Profile.from_json(profile_doc)
    return RunFacts(
        output=output,
        report=f"{output}/{REPORT_FILE}",
        job_id=(summary or {}).get("job_id"),
        status=_status(summary),
        error=(summary or {}).get("error"),
        started=(summary or {}).get("started"),
        duration_s=(summary or {}).get("duration_s"),
        rows_per_s=(summary or {}).get("rows_per_s"),
        counts=_counts(summary, [m for m, _ in manifests.values()]),
        errors=_errors(fs, layout),
        commits=tuple(
            sorted((round(when - started, 3), _rows(m)) for m, when in manifests.values())
        ),
        mini_batches=((summary or {}).get("input") or {}).get("mini_batches"),
        prediction=prediction,
        profiled=profile is not None,
        reference=reference_uri,
        reference_note=reference_note,
        flagged=tuple(drift.get("flagged") or ()),
        drifts=tuple(
            (name, c.get("psi"), bool(c.get("flagged")))
            for name, c in (drift.get("columns") or {}).items()
        ),
        columns=_columns(profile, reference, drift.get("columns") or {}),
    )


def _layout(fs: pafs.FileSystem, uri: str, root: str) -> OutputLayout:
    """A folder output, or the latest run's records of a table output."""
    folder = OutputLayout(uri, root)
    if fs.get_file_info(folder.summary).type == pafs.FileType.File:
        return folder
    runs = table_runs(fs, folder)
    if not runs:
        return folder
    record = _read_optional(fs, f"{root}/{RUNS_FOLDER}/{runs[-1]}/_summary.json") or {}
    output_format = (record.get("settings") or {}).get("output_format", "delta")
    return table_run(OutputLayout(uri, root, output_format), runs[-1])


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return bool(fs.get_file_info(path).type == pafs.FileType.File)


def _read_optional(fs: pafs.FileSystem, path: str) -> Any:
    if not _exists(fs, path):
        return None
    return read_json(fs, path)


def _status(summary: Mapping[str, Any] | None) -> Status:
    return "unfinished" if summary is None else summary["status"]


def _manifests(fs: pafs.FileSystem, layout: OutputLayout) -> dict[int, tuple[Manifest, float]]:
    """Each committed mini-batch, and when it was committed (its manifest's modification time,
    in seconds since the epoch)."""
    if fs.get_file_info(layout.manifests).type != pafs.FileType.Directory:
        return {}
    found = {}
    for entry in fs.get_file_info(pafs.FileSelector(layout.manifests)):
        if entry.base_name.startswith("batch-") and entry.base_name.endswith(".json"):
            manifest = Manifest.from_json(read_json(fs, entry.path))
            found[manifest.batch] = (manifest, entry.mtime.timestamp())
    return found


def _started(
    fs: pafs.FileSystem,
    layout: OutputLayout,
    summary: Mapping[str, Any] | None,
    manifests: Mapping[int, tuple[Manifest, float]],
) -> float:
    """When the run started: its record says; else when `_run.json` was written; else its first
    commit."""
    if summary is not None:
        return datetime.fromisoformat(summary["started"]).timestamp()
    run = fs.get_file_info(f"{layout.root}/_run.json")
    if run.type == pafs.FileType.File:
        return float(run.mtime.timestamp())
    return min((when for _, when in manifests.values()), default=0.0)


def _rows(manifest: Manifest) -> int:
    return sum(f.rows_scored for f in manifest.files)


def _counts(summary: Mapping[str, Any] | None, manifests: list[Manifest]) -> Counts:
    if summary is not None:
        return Counts(**{k: summary[k] for k in Counts.__dataclass_fields__})
    c = counts(manifests)
    return Counts(
        files_total=None,
        files_skipped=0,
        **{k: c[k] for k in Counts.__dataclass_fields__ if k in c},
    )


def _errors(fs: pafs.FileSystem, layout: OutputLayout) -> tuple[ErrorGroup, ...]:
    """The error records grouped by stage and type, most records first; read a batch at a
    time, so memory grows with the groups and files, not the records."""
    if fs.get_file_info(layout.errors).type != pafs.FileType.Directory:
        return ()
    dataset = ds.dataset(layout.errors, filesystem=fs, format="parquet")
    per_file: dict[tuple[str, str], dict[str, int]] = {}
    example: dict[tuple[str, str], str] = {}
    columns = ["file_name", "stage", "error_type", "message"]
    for batch in dataset.to_batches(columns=columns):
        rows = batch.to_pydict()
        for name, stage, kind, message in zip(*(rows[c] for c in columns)):
            files = per_file.setdefault((stage, kind), {})
            files[name] = files.get(name, 0) + 1
            example.setdefault((stage, kind), message)
    groups = [
        ErrorGroup(
            stage=stage,
            error_type=kind,
            records=sum(files.values()),
            files=len(files),
            top_files=tuple(sorted(files.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_FILES]),
            example=example[(stage, kind)],
        )
        for (stage, kind), files in per_file.items()
    ]
    return tuple(sorted(groups, key=lambda g: (-g.records, g.stage, g.error_type)))


def _predictions(
    fs: pafs.FileSystem,
    layout: OutputLayout,
    summary: Mapping[str, Any] | None,
    reference: Profile | None,
) -> Predictions:
    """The prediction's distribution over every row written (and the reference's), and the
    files that differ most."""
    settings = (summary or {}).get("settings") or {}
    if settings.get("output_action") == "summary_only":
        return Predictions(note="no predictions were written (output_action: summary_only)")
    if settings.get("output_format") == "csv":
        name = settings.get("output_file_name") or "predictions.csv"
        path, fmt = f"{layout.root}/{name}", "csv"
        present = fs.get_file_info(path).type == pafs.FileType.File
    else:
        # file_name read as the dictionary it was written as: decoded, a batch's names were
        # most of the driver's memory here (a file's path on each of its rows).
        path = layout.predictions
        fmt = ds.ParquetFileFormat(read_options={"dictionary_columns": ["file_name"]})
        present = fs.get_file_info(path).type == pafs.FileType.Directory
    if not present:
        return Predictions(note="no predictions were written")
    dataset = ds.dataset(path, filesystem=fs, format=fmt)
    return distributions.of_predictions(
        dataset, None if reference is None else reference.prediction
    )


def _reference(uri: str | None) -> tuple[Profile | None, str | None]:
    if uri is None:
        return None, None
    try:
        return read_reference(uri), None
    except ReferenceProfileError as e:
        return None, str(e)


def _columns(
    profile: Profile | None, reference: Profile | None, drift: Mapping[str, Mapping[str, Any]]
) -> tuple[ColumnFacts, ...]:
    """Each input column the model used, drifted ones first (largest PSI first)."""
    if profile is None:
        return ()
    theirs = {} if reference is None else reference.inputs
    found = []
    for name, column in profile.inputs.items():
        ours, their = distributions.of_columns(column, theirs.get(name))
        doc = drift.get(name) or {}
        found.append(
            ColumnFacts(
                name=name,
                distribution=ours,
                reference=their,
                count=column.count,
                nulls=column.nulls,
                psi=doc.get("psi"),
                flagged=bool(doc.get("flagged")),
                note=doc.get("note"),
            )
        )
    found.sort(key=lambda c: (not c.flagged, -(c.psi or 0.0) if c.flagged else 0.0))
    return tuple(found)
