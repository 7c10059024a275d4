"""Iceberg outputs: every input row once in the table, read back with pyiceberg, whatever is
retried or resumed."""

from __future__ import annotations

import json
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from table_rows import by_row
from test_tables import iceberg_catalog as catalog
from test_tables import write_inputs

import sparkscore
from sparkscore.console import summary_line
from sparkscore.iceberg import JOB_KEY, for_output
from sparkscore.layout import OutputLayout, table_run
from sparkscore.settings import Settings
from sparkscore.tables import TableCommit, TablePart, commit_table


def rows(out, table: str = "sparkscore.predictions") -> list[dict]:
    return catalog(out).load_table(table).scan().to_arrow().to_pylist()


@pytest.fixture(scope="module")
def model(chaos):
    return chaos


def test_iceberg_output_holds_every_row_once_and_its_errors(spark, model, tmp_path):
    expected = write_inputs(tmp_path / "in", files=3, rows=5, bad=1)
    out = tmp_path / "out"
    summary = sparkscore.score(
        spark, model, tmp_path / "in", out, output_format="iceberg", mini_batch_size=1
    )
    job = summary["job_id"]
    assert by_row(rows(out), job) == expected
    table = catalog(out).load_table("sparkscore.predictions")
    assert table.schema().column_names == ["file_name", "row", "prediction", "job_id"]
    errors = rows(out, "sparkscore.predictions_errors")
    assert [(e["file_name"], e["row"], e["stage"], e["job_id"]) for e in errors] == [
        ("part-01.csv", 3, "validate", job)
    ]
    snapshot = table.current_snapshot()
    assert snapshot is not None
    errors_snapshot = catalog(out).load_table("sparkscore.predictions_errors").current_snapshot()
    assert errors_snapshot is not None
    assert summary["table"] == {
        "seconds": summary["table"]["seconds"],
        "format": "iceberg",
        "job_id": job,
        "errors": {
            "uri": "sparkscore.predictions_errors",
            "version": errors_snapshot.snapshot_id,
            "already_committed": False,
        },
        "predictions": {
            "uri": "sparkscore.predictions",
            "version": snapshot.snapshot_id,
            "already_committed": False,
        },
    }
    assert snapshot.summary is not None
    assert snapshot.summary.get(JOB_KEY) == job
    assert json.loads(snapshot.summary.get("sparkscore.summary") or "")["rows_scored"] == 10
    written = json.loads((out / "_sparkscore" / job / "_summary.json").read_text())
    assert written == summary
    assert summary_line(summary).endswith(
        f"summary in {out}/_sparkscore/{job}/_summary.json, report in "
        f"{out}/_sparkscore/{job}/report.html; rows in the iceberg tables "
        f"sparkscore.predictions (version {snapshot.snapshot_id}) and "
        "sparkscore.predictions_errors"
    )


def data_files(out, table: str = "sparkscore.predictions") -> list[str]:
    """The data files the table's current snapshot references."""
    return sorted(t.file.file_path for t in catalog(out).load_table(table).scan().plan_files())


def test_iceberg_commit_adds_the_parts_the_tasks_wrote_without_copying_a_row(
    spark, model, tmp_path
):
    expected = write_inputs(tmp_path / "in", files=3, rows=5, bad=1)
    out = tmp_path / "out"
    settings = {"output_format": "iceberg", "mini_batch_size": 1}
    job = sparkscore.score(spark, model, tmp_path / "in", out, **settings)["job_id"]
    assert data_files(out) == [
        f"file://{out}/job_id={job}/part-00000.parquet",
        f"file://{out}/job_id={job}/part-00002.parquet",
    ]
    assert data_files(out, "sparkscore.predictions_errors") == [
        f"file://{out}_errors/job_id={job}/part-00001.parquet"
    ]
    assert pq.read_schema(out / f"job_id={job}" / "part-00000.parquet").names == [
        "file_name",
        "row",
        "prediction",
        "job_id",
    ]
    # schema_mode: merge casting the run's float predictions to the table's double: the parts
    # are cast where they are, then added as they are too.
    merge = {"result_type": "float", "schema_mode": "merge"}
    again = sparkscore.score(spark, model, tmp_path / "in", out, **settings, **merge)["job_id"]
    assert data_files(out) == sorted(
        f"file://{out}/job_id={j}/part-0000{i}.parquet" for j in (job, again) for i in (0, 2)
    )
    assert by_row(rows(out), job) == by_row(rows(out), again) == expected
    assert list((out / "warehouse").rglob("*.parquet")) == []


def test_iceberg_second_run_appends_its_own_rows_and_a_retried_commit_is_skipped(
    spark, model, tmp_path
):
    expected = write_inputs(tmp_path / "in", files=2, rows=4)
    out = tmp_path / "out"
    first = sparkscore.score(spark, model, tmp_path / "in", out, output_format="iceberg")
    second = sparkscore.score(spark, model, tmp_path / "in", out, output_format="iceberg")
    assert first["job_id"] != second["job_id"]
    assert by_row(rows(out), first["job_id"]) == by_row(rows(out), second["job_id"]) == expected
    assert len(rows(out)) == 2 * len(expected)
    snapshots = catalog(out).load_table("sparkscore.predictions").snapshots()
    assert [s.summary.get(JOB_KEY) for s in snapshots if s.summary] == [
        first["job_id"],
        second["job_id"],
    ]
    # Killed after its commit, before its summary: the resume commits nothing again.
    (out / "_sparkscore" / second["job_id"] / "_summary.json").unlink()
    resumed = sparkscore.score(
        spark, model, tmp_path / "in", out, output_format="iceberg", resume=True
    )
    assert resumed["job_id"] == second["job_id"]
    assert resumed["table"]["predictions"] == {
        "uri": "sparkscore.predictions",
        "version": snapshots[1].snapshot_id,
        "already_committed": True,
    }
    assert len(catalog(out).load_table("sparkscore.predictions").snapshots()) == 2
    assert len(rows(out)) == 2 * len(expected)
    # overwrite: the run's one commit replaces the table's rows, its snapshot the current one.
    third = sparkscore.score(
        spark, model, tmp_path / "in", out, output_format="iceberg", overwrite=True
    )
    assert by_row(rows(out), third["job_id"]) == expected
    assert len(rows(out)) == len(expected)
    table = catalog(out).load_table("sparkscore.predictions")
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    assert snapshot.summary.get(JOB_KEY) == third["job_id"]
    assert third["table"]["predictions"]["version"] == snapshot.snapshot_id


def test_iceberg_commit_of_a_committed_job_is_skipped(tmp_path):
    out = tmp_path / "out"
    settings = Settings(output_format="iceberg", iceberg_table="scores.lr")
    fmt = for_output(settings, str(out))
    layout = table_run(OutputLayout.at(str(out), "iceberg"), "j")
    (out / "job_id=j").mkdir(parents=True)
    data = pa.table({"file_name": ["f.csv", "f.csv"], "prediction": [0.5, 1.5]})
    pq.write_table(data, out / "job_id=j" / "part-00000.parquet")
    commit = TableCommit(
        uri=layout.uri,
        root=str(out),
        job_id="j",
        schema=data.schema,
        parts=(TablePart("job_id=j/part-00000.parquet", 2, 0, 0),),
        overwrite=False,
        summary={"job_id": "j"},
    )
    fs = pa.fs.LocalFileSystem()
    first = commit_table(fs, fmt, commit, "strict")
    again = commit_table(fs, fmt, commit, "strict")
    assert (first.already, again.already, again.version) == (False, True, first.version)
    assert rows(out, "scores.lr") == [
        {"file_name": "f.csv", "prediction": 0.5, "job_id": "j"},
        {"file_name": "f.csv", "prediction": 1.5, "job_id": "j"},
    ]


def test_iceberg_refuses_a_changed_prediction_type_unless_merge(spark, model, tmp_path):
    expected = write_inputs(tmp_path / "in", files=1, rows=3)
    out = tmp_path / "out"
    sparkscore.score(spark, model, tmp_path / "in", out, output_format="iceberg")
    with pytest.raises(sparkscore.TableSchemaError) as refused:
        sparkscore.score(
            spark, model, tmp_path / "in", out, output_format="iceberg", result_type="float"
        )
    assert str(refused.value) == (
        "sparkscore.predictions: column 'prediction' is double in the table but float in this "
        "run; nothing was committed. Score with the types and columns the table has, set "
        "schema_mode: merge to add this run's new columns and cast its values to the table's "
        "types, or choose a new table."
    )
    assert len(catalog(out).load_table("sparkscore.predictions").snapshots()) == 1
    merged = sparkscore.score(
        spark,
        model,
        tmp_path / "in",
        out,
        output_format="iceberg",
        result_type="float",
        schema_mode="merge",
        passthrough_columns=["b"],
    )
    table = catalog(out).load_table("sparkscore.predictions").scan().to_arrow()
    assert table.schema.field("prediction").type == pa.float64()
    assert table.schema.field("b").type == pa.int64()
    assert by_row(rows(out), merged["job_id"]) == expected
    assert sorted((r["job_id"] == merged["job_id"], r["b"]) for r in rows(out)) == [
        (False, None),
        (False, None),
        (False, None),
        (True, 0),
        (True, 1),
        (True, 2),
    ]


def test_iceberg_commits_racing_on_one_table_keep_every_run_once(tmp_path):
    """Runs committing at once: the catalog refuses all but one each round, the rest try again
    on the new metadata; an attempt of a job already committed is skipped."""
    out = tmp_path / "out"
    fmt = for_output(Settings(output_format="iceberg"), str(out))
    data = pa.table({"file_name": ["f.csv"], "prediction": [0.5]})

    def commit(job_id: str) -> TableCommit:
        (out / f"job_id={job_id}").mkdir(parents=True)
        pq.write_table(data, out / f"job_id={job_id}" / "part-00000.parquet")
        return TableCommit(
            uri=str(out),
            root=str(out),
            job_id=job_id,
            schema=data.schema,
            parts=(TablePart(f"job_id={job_id}/part-00000.parquet", 1, 0, 0),),
            overwrite=False,
            summary={"job_id": job_id},
        )

    fs = pa.fs.LocalFileSystem()
    commit_table(fs, fmt, commit("first"), "strict")
    racing = [commit(f"run-{i}") for i in range(6)]
    assert race(fs, out, racing) == [False] * 6  # a thread that raised appended nothing
    assert sorted(r["job_id"] for r in rows(out)) == ["first", *(c.job_id for c in racing)]
    assert commit_table(fs, fmt, racing[0], "strict").already
    # Three attempts of one job at once: one commits, the others find its snapshot.
    same = commit("again")
    assert race(fs, out, [same, same, same]) == [False, True, True]
    assert [r["job_id"] for r in rows(out)].count("again") == 1
    assert len(catalog(out).load_table("sparkscore.predictions").snapshots()) == 8


def race(fs: pa.fs.FileSystem, out, commits: list[TableCommit]) -> list[bool]:
    """Commit each at once, each on its own thread with its own catalog; whether each found it
    already committed."""
    start = threading.Barrier(len(commits))
    already: list[bool] = []

    def one(c: TableCommit) -> None:
        own = for_output(Settings(output_format="iceberg"), str(out))
        start.wait()
        already.append(commit_table(fs, own, c, "strict").already)

    threads = [threading.Thread(target=one, args=(c,)) for c in commits]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(already)
