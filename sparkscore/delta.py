"""Delta Lake tables (output_format: delta), written with `deltalake` (delta-rs): no JVM, no jars.

A run's parts are added in one Delta transaction that carries an application transaction (a
`txn` action) whose id is the job id, and the run summary in its commit info. Before committing,
the table's log is asked whether that job id committed already, so a resumed or retried commit
is skipped, never made twice. Other writers appending to the same table race through delta-rs's
optimistic concurrency: a commit that loses is retried on the new version (blind appends do not
conflict), so neither corrupts the table nor loses the other's rows. Two attempts of the same job
committing at once may both pass the check, but they add the same part paths, and a Delta table
holds a path once (the last add of a path wins), so its rows are still there once.

An incremental run's commit that supersedes files (TableCommit.replaces) is a predicate overwrite
instead: one transaction that deletes the table's rows of those files (rewriting the data files
that hold them) and writes the run's rows, read from its parts, as the table's own files beside
them (the parts stay, outside the log, until VACUUM). It carries the same transaction id.

The table is partitioned by `job_id`: the column is in the log, not in the parts, which is why
tasks write the same parts as for a folder output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Schema, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from deltalake.schema import Field
from deltalake.transaction import AddAction, create_table_with_add_actions

from sparkscore.layout import JOB_ID
from sparkscore.settings import Settings
from sparkscore.storage import URI_SCHEME, split_query
from sparkscore.tables import TableCommit, run_rows

__all__ = ["FORMAT", "SUMMARY_KEY", "DeltaFormat", "for_output", "location"]

# The commit info key that holds the run summary (`DeltaTable.history()` returns it).
SUMMARY_KEY = "sparkscore"
# The application transaction's version: a job commits once, so any fixed number serves.
_TXN_VERSION = 1
_UNSIGNED = {
    pa.uint8(): pa.int16(),
    pa.uint16(): pa.int32(),
    pa.uint32(): pa.int64(),
    pa.uint64(): pa.int64(),
}
# How far back the log is read for the version a job committed, when it is asked again.
_HISTORY = 100


def location(uri: str) -> str:
    """The table URI delta-rs opens: a local path made absolute, a URI without pyarrow's query
    options (delta-rs reads object-store credentials from the environment)."""
    base, _ = split_query(uri)
    if URI_SCHEME.match(base):
        return base
    return os.path.abspath(base)


def _open(uri: str) -> DeltaTable | None:
    try:
        return DeltaTable(location(uri))
    except TableNotFoundError:
        return None


class DeltaFormat:
    """The Delta Lake `TableFormat`."""

    metadata = ("_delta_log",)

    def name(self, uri: str) -> str:
        return uri

    def schema(self, uri: str) -> pa.Schema | None:
        table = _open(uri)
        return None if table is None else pa.schema(table.schema().to_arrow())

    def committed(self, uri: str, job_id: str) -> tuple[bool, int | None]:
        table = _open(uri)
        if table is None or table.transaction_version(job_id) is None:
            return False, None
        for entry in table.history(_HISTORY):
            summary = entry.get(SUMMARY_KEY)
            if isinstance(summary, dict) and summary.get("job_id") == job_id:
                return True, int(entry["version"])
        return True, None

    def stored(self, schema: pa.Schema) -> pa.Schema:
        # Delta has no unsigned integers (delta-rs would read uint8 as int8): each takes the
        # next wider signed type. Large strings and binaries are Delta's one string and binary.
        widened = pa.schema([pa.field(f.name, _UNSIGNED.get(f.type, f.type)) for f in schema])
        return pa.schema(Schema.from_arrow(widened).to_arrow())

    def add_columns(self, uri: str, fields: Sequence[pa.Field]) -> None:
        DeltaTable(location(uri)).alter.add_columns([Field.from_arrow(f) for f in fields])

    def commit(self, commit: TableCommit, schema: pa.Schema) -> int | None:
        actions = [
            AddAction(
                part.path,
                part.size,
                {JOB_ID: commit.job_id},
                part.modified_ms,
                True,
                json.dumps({"numRecords": part.rows}),
            )
            for part in commit.parts
        ]
        properties = CommitProperties(
            custom_metadata={SUMMARY_KEY: _plain(commit.summary)},
            app_transactions=[Transaction(commit.job_id, _TXN_VERSION)],
        )
        uri = location(commit.uri)
        table = _open(commit.uri)
        if table is None:
            try:
                create_table_with_add_actions(
                    uri,
                    Schema.from_arrow(schema),
                    actions,
                    mode="error",
                    partition_by=[JOB_ID],
                    commit_properties=properties,
                )
                return 0
            except CommitFailedError:
                # Another writer created the table first: append to it like any other.
                table = DeltaTable(uri)
        if commit.replaces and not commit.overwrite:
            write_deltalake(
                table,
                run_rows(commit, schema),
                mode="overwrite",
                predicate=_among(commit.replaces),
                partition_by=[JOB_ID],
                commit_properties=properties,
            )
            return self.committed(commit.uri, commit.job_id)[1]
        mode = "overwrite" if commit.overwrite else "append"
        table.create_write_transaction(
            [*actions],
            mode,
            schema,
            partition_by=[JOB_ID],
            commit_properties=properties,
        )
        return self.committed(commit.uri, commit.job_id)[1]


def _among(names: Sequence[str]) -> str:
    """The SQL predicate of the rows of these input files."""
    quoted = ", ".join("'" + name.replace("'", "''") + "'" for name in names)
    return f"file_name IN ({quoted})"


def _plain(value: Any) -> Any:
    """The summary as JSON has it (commit info takes JSON values only)."""
    return json.loads(json.dumps(value, default=str))


FORMAT = DeltaFormat()


def for_output(settings: Settings, output: str) -> DeltaFormat:
    """The format of a Delta output: the same for every one, since `--output` is the table."""
    return FORMAT
