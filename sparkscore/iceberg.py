"""Apache Iceberg tables (output_format: iceberg), written with `pyiceberg`: no JVM, no jars.

The tables live in a pyiceberg catalog (`iceberg_catalog`: its properties; by default a SQLite
SQL catalog at OUT/catalog.db with its warehouse at OUT/warehouse), as `iceberg_table` and
`<iceberg_table>_errors`. A run's parts are added in one append snapshot per table whose summary
carries the job id (`sparkscore.job_id`) and the run summary (`sparkscore.summary`). Before
committing, the table's snapshots are searched for that job id, so a resumed or retried commit is
skipped, never made twice. A commit that loses a race with another writer (the catalog refuses a
stale metadata pointer) is tried again on the new metadata, the job id checked again first, so
two attempts of one job racing commit once; pyiceberg's own retries, which skip that check, are
off on the tables created here. An incremental run's commit that supersedes files
(TableCommit.replaces) deletes those files' rows (dropping the data files that hold only them,
rewriting those that hold others too) and adds the run's, in one transaction.

The parts are registered as they are (`add_files`), not copied: the tasks write them with the
job id as a column (`add_files` takes a file's partition value from its own column statistics),
and the tables created here keep their data files at the output location (`write.data.path`:
OUT and OUT_errors, where the tasks write), so the table owns its parts as a Delta table does
(its metadata stays in the catalog's warehouse). Where a part cannot be taken as it is (a table
created elsewhere or before, whose data path is not the output; parts without the job id
column), the parts' rows are appended as Arrow data instead, a copy in the table's data path.
"""

from __future__ import annotations

import json
import os
import random
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import cast

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.expressions import AlwaysTrue, BooleanExpression, In
from pyiceberg.io.pyarrow import _ConvertToIcebergWithoutIDs, schema_to_pyarrow, visit_pyarrow
from pyiceberg.partitioning import PARTITION_FIELD_ID_START, PartitionField, PartitionSpec
from pyiceberg.schema import Schema, assign_fresh_schema_ids
from pyiceberg.table import Table, TableProperties
from pyiceberg.transforms import IdentityTransform

from sparkscore.errors import SettingsError
from sparkscore.layout import JOB_ID, errors_table
from sparkscore.settings import Settings
from sparkscore.storage import URI_SCHEME, resolve, split_query
from sparkscore.tables import TableCommit, run_rows

__all__ = ["DEFAULT_TABLE", "JOB_KEY", "SUMMARY_KEY", "IcebergFormat", "for_output"]

# The snapshot summary keys that hold the job id and the run summary.
JOB_KEY = "sparkscore.job_id"
SUMMARY_KEY = "sparkscore.summary"
DEFAULT_TABLE = "sparkscore.predictions"
# Commits lost to other writers that are tried again before the run fails: each other writer
# can make a commit lose once, so this many writers at once all commit.
_RETRIES = 10


class IcebergFormat:
    """The Iceberg `TableFormat` of one output: its catalog and its two tables' names."""

    def __init__(self, output: str, properties: Mapping[str, str], table: str) -> None:
        self.metadata = ("catalog.db", "warehouse")  # the default catalog's entries at OUT
        self._properties = dict(properties)
        self._names = {output: table, errors_table(output): f"{table}_errors"}
        self._catalog: Catalog | None = None

    def catalog(self) -> Catalog:
        """The catalog, opened on first use: the default one's file is made then, at OUT."""
        if self._catalog is None:
            warehouse = self._properties.get("warehouse", "")
            if warehouse.startswith("file://"):
                os.makedirs(warehouse.removeprefix("file://"), exist_ok=True)
            self._catalog = load_catalog("sparkscore", **self._properties)
        return self._catalog

    def name(self, uri: str) -> str:
        """The table's identifier: the output location stands for it in the steps all formats
        share."""
        return self._names[uri]

    def _load(self, uri: str) -> Table | None:
        try:
            return self.catalog().load_table(self.name(uri))
        except NoSuchTableError:
            return None

    def schema(self, uri: str) -> pa.Schema | None:
        table = self._load(uri)
        return None if table is None else _arrow(table.schema())

    def stored(self, schema: pa.Schema) -> pa.Schema:
        # An Arrow schema visited is an Iceberg schema (a field would be an IcebergType).
        return _arrow(cast(Schema, visit_pyarrow(schema, _ConvertToIcebergWithoutIDs())))

    def committed(self, uri: str, job_id: str) -> tuple[bool, int | None]:
        table = self._load(uri)
        return (False, None) if table is None else _snapshot(table, job_id)

    def add_columns(self, uri: str, fields: Sequence[pa.Field]) -> None:
        table = self.catalog().load_table(self.name(uri))
        with table.update_schema() as update:
            update.union_by_name(pa.schema(fields))

    def commit(self, commit: TableCommit, schema: pa.Schema) -> int | None:
        properties = {JOB_KEY: commit.job_id, SUMMARY_KEY: json.dumps(commit.summary, default=str)}
        existing = self._load(commit.uri)
        table = existing or self._create(commit.uri, schema)
        parts = _addable(table, commit)
        added: list[str] | pa.Table = run_rows(commit, schema) if parts is None else parts
        attempt = 0
        while True:
            try:
                with table.transaction() as transaction, warnings.catch_warnings():
                    # A run whose files have no rows in this table yet: nothing to delete.
                    warnings.filterwarnings("ignore", "Delete operation did not match")
                    if commit.overwrite:
                        transaction.delete(AlwaysTrue(), snapshot_properties=properties)
                    elif commit.replaces and existing is not None:
                        superseded = _among(commit.replaces)
                        transaction.delete(superseded, snapshot_properties=properties)
                    if isinstance(added, list):
                        transaction.add_files(added, snapshot_properties=properties)
                    else:
                        transaction.append(added, snapshot_properties=properties)
                return _snapshot(table, commit.job_id)[1]
            except CommitFailedException:
                # Lost to another writer. If that was an attempt of this same job, raising lets
                # the caller find its snapshot and skip; else try again on the new metadata.
                attempt += 1
                table = self.catalog().load_table(self.name(commit.uri))
                if attempt > _RETRIES or _snapshot(table, commit.job_id)[0]:
                    raise
                time.sleep(min(0.05 * 2**attempt, 2.0) * random.uniform(1.0, 1.5))

    def _create(self, uri: str, schema: pa.Schema) -> Table:
        """The table, partitioned by job id so each run's rows are files of their own, with
        pyiceberg's own commit retries off: they would append again without checking the job
        id, so `commit` retries instead."""
        name = self.name(uri)
        catalog = self.catalog()
        catalog.create_namespace_if_not_exists(name.rsplit(".", 1)[0])
        fields = assign_fresh_schema_ids(
            cast(Schema, visit_pyarrow(schema, _ConvertToIcebergWithoutIDs()))
        )
        job = fields.find_field(JOB_ID)
        spec = PartitionSpec(
            PartitionField(job.field_id, PARTITION_FIELD_ID_START, IdentityTransform(), JOB_ID)
        )
        return catalog.create_table_if_not_exists(
            name,
            schema=fields,
            partition_spec=spec,
            properties={
                TableProperties.COMMIT_NUM_RETRIES: "0",
                TableProperties.WRITE_DATA_PATH: _location(uri),
            },
        )


def _location(uri: str) -> str:
    """The output location `uri` as a URI pyiceberg reads: where the run's parts are."""
    base = split_query(uri)[0].rstrip("/")
    return base if URI_SCHEME.match(base) else f"file://{os.path.abspath(base)}"


def _addable(table: Table, commit: TableCommit) -> list[str] | None:
    """The parts' URIs, if `add_files` can take them as they are: they are in the table's data
    path, hold its job id column, and each column has the table's type (a column the table has
    and the run lacks: an optional one, read as null). Else None, and the rows are copied."""
    location = _location(commit.uri)
    if table.location_provider().data_path != location:
        return None
    held = {f.name: f.type for f in _arrow(table.schema())}
    fs, root = resolve(commit.root)
    for part in commit.parts:
        columns = pq.read_schema(f"{root}/{part.path}", filesystem=fs)
        if JOB_ID not in columns.names or any(held.get(f.name) != f.type for f in columns):
            return None
        absent = set(held) - set(columns.names)
        if any(table.schema().find_field(name).required for name in absent):
            return None
    return [f"{location}/{part.path}" for part in commit.parts]


def _snapshot(table: Table, job_id: str) -> tuple[bool, int | None]:
    """Whether a snapshot of `table` carries `job_id`, and the id of the last that does (an
    overwrite's commit makes a delete snapshot, then the one that adds the run's rows)."""
    for snapshot in reversed(table.snapshots()):
        if snapshot.summary is not None and snapshot.summary.get(JOB_KEY) == job_id:
            return True, snapshot.snapshot_id
    return False, None


def _among(names: Sequence[str]) -> BooleanExpression:
    """The rows of these input files. `In`'s pydantic fields are not its constructor's
    arguments, which mypy's reading of it cannot tell."""
    among = cast(Callable[[str, Sequence[str]], BooleanExpression], In)
    return among("file_name", names)


def _arrow(schema: Schema) -> pa.Schema:
    """An Iceberg schema as the Arrow types sparkscore's parts use (no large strings)."""
    return pa.schema(
        [
            pa.field(f.name, _small(f.type))
            for f in schema_to_pyarrow(schema, include_field_ids=False)
        ]
    )


def _small(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_large_list(t) or pa.types.is_list(t):
        return pa.list_(_small(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _small(f.type)) for f in t])
    return t


def for_output(settings: Settings, output: str) -> IcebergFormat:
    """The format of the output at `output`: the settings' catalog, else the default one."""
    table = settings.iceberg_table or DEFAULT_TABLE
    if settings.iceberg_catalog is not None:
        return IcebergFormat(output, settings.iceberg_catalog, table)
    if URI_SCHEME.match(output) and not output.startswith("file://"):
        raise SettingsError(
            key="iceberg_catalog",
            value=None,
            reason=f"must be given for an output that is not a local folder ({output}): the "
            "default catalog is a SQLite file in the output; give a catalog's properties, e.g. "
            "{type: sql, uri: 'postgresql+psycopg2://...', warehouse: 's3://...'}",
        )
    base = os.path.abspath(output.removeprefix("file://"))
    properties = {
        "type": "sql",
        "uri": f"sqlite:///{base}/catalog.db",
        "warehouse": f"file://{base}/warehouse",
    }
    return IcebergFormat(output, properties, table)
