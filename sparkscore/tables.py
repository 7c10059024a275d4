"""Table outputs: a run's parts made rows of a table in one commit per table, exactly once.

Tasks write Parquet parts as they do for a folder output (sparkscore.writers), into the run's
own partition folder of each table (sparkscore.layout); no reader sees them until the driver,
once every mini-batch is accounted for, adds them to the table in one commit carrying the job
id. A commit that an earlier attempt of the same job already made is skipped.

Each table format is a module beside this one, behind `TableFormat` (sparkscore.delta,
sparkscore.iceberg); what is
the same for every format is here: which parts a run adds, whether the run's columns fit the
table's (`fit_schema`, and under `schema_mode: merge` the parts cast to the table's types), and
what the run summary says of the commit.

An incremental run (sparkscore.ledger) supersedes: its commit deletes every row the table holds
of the files it scored, from whichever run, and adds its own, in the same commit (Delta: a
predicate overwrite; Iceberg: an overwrite with a filter), so the table holds only current rows.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from sparkscore.errors import OutputError, SettingsError, TableSchemaError
from sparkscore.failures import ERROR_SCHEMA
from sparkscore.layout import (
    JOB_ID,
    OutputLayout,
    claim_table,
    errors_table,
    table_run,
    table_runs,
)
from sparkscore.manifest import Manifest
from sparkscore.settings import SchemaMode, Settings
from sparkscore.storage import resolve
from sparkscore.writers import write_part

__all__ = [
    "Committed",
    "TableCommit",
    "TableFormat",
    "TablePart",
    "claim",
    "commit_run",
    "commit_table",
    "fit_schema",
    "run_into",
    "run_rows",
    "table_format",
]

log = logging.getLogger("sparkscore")

# Each format's module, imported only when a run writes that format.
_FORMATS = {"delta": "sparkscore.delta", "iceberg": "sparkscore.iceberg"}


@dataclass(frozen=True)
class TablePart:
    """One Parquet part a run adds to a table."""

    path: str  # relative to the table location, as table logs record it
    rows: int
    size: int
    modified_ms: int


@dataclass(frozen=True, kw_only=True)
class TableCommit:
    """What one run commits to one table: its parts, under its job id."""

    uri: str  # the table location
    root: str  # its path on the output's filesystem
    job_id: str  # the transaction id that makes the commit happen once
    # the parts' columns but JOB_ID, which the partition holds (an Iceberg run's parts have it
    # as a column too, sparkscore.layout.OutputLayout.job_column)
    schema: pa.Schema
    parts: tuple[TablePart, ...]
    overwrite: bool  # the run's rows replace the table's, in the same commit
    # the input files whose rows the run's rows replace, in the same commit (incremental runs)
    replaces: tuple[str, ...] = ()
    summary: Mapping[str, Any]  # the run record, carried in the commit's metadata


@dataclass(frozen=True)
class Committed:
    """One table's commit of a run, as the run summary records it."""

    uri: str  # the table's name (sparkscore.iceberg) or location (sparkscore.delta)
    version: int | None  # the table version that added the run's rows, where the log says
    already: bool  # an earlier attempt of this job had committed it; this one was skipped

    def to_json(self) -> dict[str, Any]:
        return {"uri": self.uri, "version": self.version, "already_committed": self.already}


class TableFormat(Protocol):
    """What a table format does for a run; the rest of the commit is the same for all."""

    # the format's own entries at a table location, e.g. `_delta_log`
    metadata: tuple[str, ...]

    def name(self, uri: str) -> str:
        """What the run summary and errors call the table at the output location `uri`."""
        ...

    def schema(self, uri: str) -> pa.Schema | None:
        """The table's columns, JOB_ID among them; None when there is no table yet."""
        ...

    def stored(self, schema: pa.Schema) -> pa.Schema:
        """`schema` with the types the format stores its columns as."""
        ...

    def committed(self, uri: str, job_id: str) -> tuple[bool, int | None]:
        """Whether `job_id` committed to the table, and the version that holds it if known."""
        ...

    def add_columns(self, uri: str, fields: Sequence[pa.Field]) -> None: ...

    def commit(self, commit: TableCommit, schema: pa.Schema) -> int | None:
        """Add the parts in one commit marked with the job id, creating the table if there is
        none (`schema`: the table's columns after it); the version it made, where known."""
        ...


def table_format(settings: Settings, output: str) -> TableFormat:
    """The format of the table output at `output`, its module imported now: its library is an
    extra (`sparkscore[tables]`)."""
    name = settings.output_format
    try:
        module = importlib.import_module(_FORMATS[name])
    except ImportError as e:
        raise SettingsError(
            key="output_format",
            value=name,
            reason=f"needs a package that is not installed ({e}); "
            "install it with: pip install 'sparkscore[tables]'",
        ) from None
    fmt: TableFormat = module.for_output(settings, output)
    return fmt


def fit_schema(uri: str, table: pa.Schema, run: pa.Schema, mode: SchemaMode) -> pa.Schema:
    """The schema this run's parts take in the table: refused where a column differs, unless
    `merge`, which keeps the table's type for a column both have and adds the run's new ones."""
    fix = (
        "Score with the types and columns the table has, set schema_mode: merge to add this "
        "run's new columns and cast its values to the table's types, or choose a new table."
    )
    fields = []
    for field in run:
        if field.name not in table.names:
            if mode == "strict":
                raise TableSchemaError(
                    table=uri, column=field.name, in_table="absent", in_run=str(field.type), fix=fix
                )
            fields.append(field)
            continue
        held = table.field(field.name).type
        if held != field.type and mode == "strict":
            raise TableSchemaError(
                table=uri, column=field.name, in_table=str(held), in_run=str(field.type), fix=fix
            )
        fields.append(pa.field(field.name, held))
    missing = [f for f in table if f.name != JOB_ID and f.name not in run.names]
    if missing and mode == "strict":
        f = missing[0]
        raise TableSchemaError(
            table=uri, column=f.name, in_table=str(f.type), in_run="absent", fix=fix
        )
    return pa.schema(fields)


def run_into(
    fs: pafs.FileSystem, final: OutputLayout, job_id: str, settings: Settings
) -> OutputLayout:
    """The run this one is into the table output `final`: with resume, the latest run into it
    that did not finish (else the latest, whose commit is then skipped), under its job id;
    else a new one, `job_id`."""
    runs = table_runs(fs, final)
    unfinished = [r for r in runs if not _finished(fs, table_run(final, r))]
    if settings.resume and runs:
        resumed = (unfinished or runs)[-1]
        log.info("resuming run %s into the table %s", resumed, final.uri)
        return table_run(final, resumed)
    if unfinished:
        log.warning(
            "run %s into the table %s did not finish; set resume: true to finish it",
            unfinished[-1],
            final.uri,
        )
    return table_run(final, job_id)


def claim(
    fs: pafs.FileSystem,
    layout: OutputLayout,
    schema: pa.Schema,
    settings: Settings,
) -> None:
    """Refuse, before Spark starts, a table location that holds something else, or tables the
    run's columns do not fit; else make the run's folder."""
    fmt = table_format(settings, layout.uri)
    final = replace(layout, root=layout.table)
    claim_table(fs, final, layout, fmt.metadata)
    if settings.overwrite:
        return
    for uri, run in ((layout.uri, schema), (errors_table(layout.uri), ERROR_SCHEMA)):
        held = fmt.schema(uri)
        if held is not None:
            fit_schema(fmt.name(uri), held, fmt.stored(run), settings.schema_mode)


def _finished(fs: pafs.FileSystem, layout: OutputLayout) -> bool:
    return bool(fs.get_file_info(layout.summary).type == pafs.FileType.File)


def commit_run(
    fs: pafs.FileSystem,
    layout: OutputLayout,
    manifests: Sequence[Manifest],
    schema: pa.Schema,
    settings: Settings,
    summary: Mapping[str, Any],
    supersede: Sequence[str] = (),
) -> dict[str, Any]:
    """Commit the run's parts to its two tables, each commit deleting the rows of the files in
    `supersede`; what the summary records (`seconds`: what committing took, the cost a table
    output adds to a folder output)."""
    started = time.perf_counter()
    fmt = table_format(settings, layout.uri)
    # summary_only: the predictions were dropped, and the predictions table gets none.
    kept = [] if settings.output_action == "summary_only" else manifests
    # Predictions first: only their values can fail a cast (schema_mode: merge), and then no
    # table has the run.
    tables = (
        ("predictions", layout.uri, layout.predictions, schema, kept),
        ("errors", errors_table(layout.uri), layout.errors, ERROR_SCHEMA, manifests),
    )
    # Every part found before either commit: a missing one commits neither table.
    commits = {
        name: TableCommit(
            uri=uri,
            root=folder.rsplit("/", 1)[0],
            job_id=layout.run,
            schema=run_schema,
            parts=_parts(fs, layout, folder, batches, name),
            overwrite=settings.overwrite,
            replaces=tuple(sorted(set(supersede))),
            summary=summary,
        )
        for name, uri, folder, run_schema, batches in tables
    }
    record: dict[str, Any] = {"format": settings.output_format, "job_id": layout.run}
    for name, commit in commits.items():
        record[name] = commit_table(fs, fmt, commit, settings.schema_mode).to_json()
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


def _parts(
    fs: pafs.FileSystem,
    layout: OutputLayout,
    folder: str,
    manifests: Sequence[Manifest],
    table: str,
) -> tuple[TablePart, ...]:
    """The parts in `folder` that the manifests say hold rows of `table`; each must be there."""
    partition = folder.rsplit("/", 1)[1]
    parts = []
    for m in manifests:
        rows = m.prediction_rows if table == "predictions" else m.error_records
        if not rows:
            continue
        info = fs.get_file_info(layout.part(folder, m.batch))
        if info.type != pafs.FileType.File:
            raise OutputError(
                path=info.path,
                reason=f"is missing, though mini-batch {m.batch} wrote {rows} rows of the "
                f"{table} there (was the table vacuumed before this run was resumed?); nothing "
                "was committed. Run again without resume.",
            )
        modified = int(info.mtime.timestamp() * 1000) if info.mtime else 0
        parts.append(
            TablePart(f"{partition}/{info.base_name}", rows, int(info.size or 0), modified)
        )
    return tuple(parts)


def commit_table(
    fs: pafs.FileSystem, fmt: TableFormat, commit: TableCommit, mode: SchemaMode
) -> Committed:
    """One table's commit, skipped when this job already made it; under `merge`, the table
    gains the run's new columns and the parts take the table's types first."""
    done, version = fmt.committed(commit.uri, commit.job_id)
    if done:
        return Committed(fmt.name(commit.uri), version, already=True)
    table = fmt.schema(commit.uri)
    target = fmt.stored(commit.schema)
    if table is None or commit.overwrite:
        full = target.append(pa.field(JOB_ID, pa.string()))
    else:
        target = fit_schema(fmt.name(commit.uri), table, target, mode)
        new = [f for f in target if f.name not in table.names]
        if new:
            fmt.add_columns(commit.uri, new)
        full = pa.schema([*table, *new])
    if _types(target) != _types(commit.schema):
        commit = _conformed(fs, commit, target)
    try:
        return Committed(fmt.name(commit.uri), fmt.commit(commit, full), already=False)
    except Exception:
        # Another attempt of this same job committed first and the format refused this one as
        # a conflict on the transaction id: the rows are there once, which is what was asked.
        done, version = fmt.committed(commit.uri, commit.job_id)
        if done:
            return Committed(fmt.name(commit.uri), version, already=True)
        raise


def run_rows(commit: TableCommit, schema: pa.Schema) -> pa.Table:
    """The parts' rows with the job id, in the table's column order and types: what a format
    writes as its own copy where it cannot add the parts as they are."""
    fs, root = resolve(commit.root)
    parts = [pq.read_table(f"{root}/{p.path}", filesystem=fs) for p in commit.parts]
    data = pa.concat_tables(parts) if parts else commit.schema.empty_table()
    if JOB_ID not in data.column_names:
        data = data.append_column(JOB_ID, pa.array([commit.job_id] * data.num_rows, pa.string()))
    columns = [
        data[f.name].cast(f.type) if f.name in data.column_names else pa.nulls(len(data), f.type)
        for f in schema
    ]
    return pa.table(columns, schema=pa.schema([pa.field(f.name, f.type) for f in schema]))


def _types(schema: pa.Schema) -> list[tuple[str, pa.DataType]]:
    """What a part must hold to be read as the table says: names and types (nullability aside,
    which a table's log records as it likes)."""
    return [(f.name, f.type) for f in schema]


def _conformed(fs: pafs.FileSystem, commit: TableCommit, target: pa.Schema) -> TableCommit:
    """The parts rewritten with the types the table stores (a type the format lacks, or under
    schema_mode: merge the table's), each cast safely or the run refused naming the column; a
    part's JOB_ID column is kept."""
    parts = []
    for part in commit.parts:
        path = f"{commit.root}/{part.path}"
        table = pq.read_table(path, filesystem=fs)
        columns = []
        fields = [*target, *[f for f in table.schema if f.name == JOB_ID]]
        for field in fields:
            column = table[field.name]
            try:
                columns.append(column.cast(field.type, safe=True))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise TableSchemaError(
                    table=commit.uri,
                    column=field.name,
                    in_table=str(field.type),
                    in_run=str(column.type),
                    fix=f"Its values cannot be cast safely ({e}); choose a new table.",
                ) from None
        cast = pa.table(columns, schema=pa.schema(fields))
        write_part(fs, path, cast.schema, iter(cast.to_batches()))
        info = fs.get_file_info(path)
        modified = int(info.mtime.timestamp() * 1000) if info.mtime else part.modified_ms
        parts.append(TablePart(part.path, part.rows, int(info.size or 0), modified))
    return replace(commit, schema=target, parts=tuple(parts))
