"""Table outputs: every input row once in the table, read back with deltalake (and pyiceberg for
what every format shares), whatever is retried, resumed, killed or raced."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from model_zoo import chaos_model
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import NoSuchTableError
from table_rows import by_row

import sparkscore
from sparkscore.console import summary_line
from sparkscore.delta import FORMAT
from sparkscore.iceberg import DEFAULT_TABLE
from sparkscore.layout import OutputLayout, table_run
from sparkscore.manifest import Manifest
from sparkscore.settings import Settings
from sparkscore.tables import TableCommit, TablePart, commit_run, commit_table

ROOT = Path(__file__).resolve().parents[1]
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"


def write_inputs(folder: Path, files: int, rows: int, bad: int | None = None) -> dict:
    """CSV files predicting a * 2 + b; file `bad` has text in column `a`, so it fails whole."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for i in range(files):
        a = [float(i * 100 + r) for r in range(rows)]
        frame = pd.DataFrame({"a": a, "b": list(range(rows))})
        if i == bad:
            frame["a"] = frame["a"].astype(object)
            frame.loc[3, "a"] = "oops"
        name = f"part-{i:02d}.csv"
        frame.to_csv(folder / name, index=False)
        if i != bad:
            expected.update({(name, r): a[r] * 2 + r for r in range(rows)})
    return expected


def iceberg_catalog(out: Path) -> Catalog:
    """The default catalog of an Iceberg output at `out`."""
    return load_catalog(
        "sparkscore",
        type="sql",
        uri=f"sqlite:///{out}/catalog.db",
        warehouse=f"file://{out}/warehouse",
    )


def table_rows(out: Path, fmt: str) -> list[dict] | None:
    """The rows of the predictions table of a Delta or Iceberg output; None while it has none."""
    if fmt == "delta":
        return rows(out) if DeltaTable.is_deltatable(str(out)) else None
    try:
        table = iceberg_catalog(out).load_table(DEFAULT_TABLE)
    except NoSuchTableError:
        return None
    return table.scan().to_arrow().to_pylist()


def rows(table: Path) -> list[dict]:
    return DeltaTable(str(table)).to_pyarrow_table().to_pylist()


@pytest.fixture(scope="module")
def model(chaos):
    return chaos


def test_delta_output_holds_every_row_once_and_its_errors(spark, model, tmp_path):
    expected = write_inputs(tmp_path / "in", files=3, rows=5, bad=1)
    out = tmp_path / "out"
    summary = sparkscore.score(
        spark, model, tmp_path / "in", out, output_format="delta", mini_batch_size=1
    )
    job = summary["job_id"]
    assert by_row(rows(out), job) == expected
    assert DeltaTable(str(out)).schema().to_arrow().names == [
        "file_name",
        "row",
        "prediction",
        "job_id",
    ]
    errors = rows(tmp_path / "out_errors")
    assert [(e["file_name"], e["row"], e["stage"], e["job_id"]) for e in errors] == [
        ("part-01.csv", 3, "validate", job)
    ]
    assert summary["table"]["seconds"] > 0
    assert summary["table"] == {
        "seconds": summary["table"]["seconds"],
        "format": "delta",
        "job_id": job,
        "errors": {"uri": f"{out}_errors", "version": 0, "already_committed": False},
        "predictions": {"uri": str(out), "version": 0, "already_committed": False},
    }
    written = json.loads((out / "_sparkscore" / job / "_summary.json").read_text())
    assert written == summary
    assert summary_line(summary).endswith(
        f"summary in {out}/_sparkscore/{job}/_summary.json, report in "
        f"{out}/_sparkscore/{job}/report.html; rows in the delta tables {out} "
        f"(version 0) and {out}_errors"
    )
    commit = DeltaTable(str(out)).history(1)[0]
    assert (commit["sparkscore"]["job_id"], commit["sparkscore"]["rows_scored"]) == (job, 10)


def test_delta_second_run_appends_its_own_rows_and_a_retried_commit_is_skipped(
    spark, model, tmp_path
):
    expected = write_inputs(tmp_path / "in", files=2, rows=4)
    out = tmp_path / "out"
    first = sparkscore.score(spark, model, tmp_path / "in", out, output_format="delta")
    second = sparkscore.score(spark, model, tmp_path / "in", out, output_format="delta")
    assert first["job_id"] != second["job_id"]
    assert by_row(rows(out), first["job_id"]) == by_row(rows(out), second["job_id"]) == expected
    assert len(rows(out)) == 2 * len(expected)
    assert second["table"]["predictions"]["version"] == 1
    # Killed after its commit, before its summary: the resume commits nothing again.
    (out / "_sparkscore" / second["job_id"] / "_summary.json").unlink()
    resumed = sparkscore.score(
        spark, model, tmp_path / "in", out, output_format="delta", resume=True
    )
    assert resumed["job_id"] == second["job_id"]
    assert resumed["table"]["predictions"] == {
        "uri": str(out),
        "version": 1,
        "already_committed": True,
    }
    assert DeltaTable(str(out)).version() == 1
    assert len(rows(out)) == 2 * len(expected)
    # overwrite: the run's one commit replaces the table's rows.
    third = sparkscore.score(
        spark, model, tmp_path / "in", out, output_format="delta", overwrite=True
    )
    assert by_row(rows(out), third["job_id"]) == expected
    assert (len(rows(out)), DeltaTable(str(out)).version()) == (len(expected), 2)


def test_delta_refuses_a_location_that_holds_something_else(spark, model, tmp_path):
    write_inputs(tmp_path / "in", files=1, rows=2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(sparkscore.OutputError) as refused:
        sparkscore.score(spark, model, tmp_path / "in", tmp_path / "out", output_format="delta")
    assert str(refused.value) == (
        f"{tmp_path / 'out'}: holds notes.txt, which no table there accounts for; nothing was "
        "touched. Choose an empty location or an existing table."
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["notes.txt"]


def test_delta_refuses_a_changed_prediction_type_unless_merge(spark, model, tmp_path):
    expected = write_inputs(tmp_path / "in", files=2, rows=4)
    out = tmp_path / "out"
    sparkscore.score(spark, model, tmp_path / "in", out, output_format="delta")
    with pytest.raises(sparkscore.TableSchemaError) as refused:
        sparkscore.score(
            spark, model, tmp_path / "in", out, output_format="delta", result_type="float"
        )
    assert str(refused.value) == (
        f"{out}: column 'prediction' is double in the table but float in this run; nothing was "
        "committed. Score with the types and columns the table has, set schema_mode: merge to "
        "add this run's new columns and cast its values to the table's types, or choose a new "
        "table."
    )
    assert DeltaTable(str(out)).version() == 0
    merged = sparkscore.score(
        spark,
        model,
        tmp_path / "in",
        out,
        output_format="delta",
        result_type="float",
        schema_mode="merge",
        passthrough_columns=["b"],
    )
    table = DeltaTable(str(out)).to_pyarrow_table()
    assert table.schema.field("prediction").type == pa.float64()
    assert table.schema.field("b").type == pa.int64()
    assert by_row(rows(out), merged["job_id"]) == expected
    assert sorted(r["b"] for r in rows(out) if r["job_id"] == merged["job_id"]) == sorted(
        k[1] for k in expected
    )
    assert {r["b"] for r in rows(out) if r["job_id"] != merged["job_id"]} == {None}


def part(table: Path, job_id: str, values: list[float]) -> TablePart:
    """A run's one Parquet part, written in its partition folder as a task writes it."""
    folder = table / f"job_id={job_id}"
    folder.mkdir(parents=True, exist_ok=True)
    frame = pa.table({"file_name": ["f.csv"] * len(values), "prediction": values})
    pq.write_table(frame, folder / "part-00000.parquet")
    stat = os.stat(folder / "part-00000.parquet")
    return TablePart(
        f"job_id={job_id}/part-00000.parquet", len(values), stat.st_size, int(stat.st_mtime * 1000)
    )


def test_delta_commits_racing_on_one_table_keep_both_runs_once(tmp_path):
    table = tmp_path / "t"
    schema = pa.schema([("file_name", pa.string()), ("prediction", pa.float64())])
    fs = pa.fs.LocalFileSystem()

    def commit(job_id: str, values: list[float]) -> TableCommit:
        return TableCommit(
            uri=str(table),
            root=str(table),
            job_id=job_id,
            schema=schema,
            parts=(part(table, job_id, values),),
            overwrite=False,
            summary={"job_id": job_id},
        )

    commit_table(fs, FORMAT, commit("first", [0.5]), "strict")
    racing = [commit(f"run-{i}", [float(i)] * 3) for i in range(2)]
    assert race(fs, racing) == [False, False]
    found = sorted((r["job_id"], r["prediction"]) for r in rows(table))
    assert found == [("first", 0.5), *[("run-0", 0.0)] * 3, *[("run-1", 1.0)] * 3]
    assert DeltaTable(str(table)).version() == 2
    again = commit_table(fs, FORMAT, racing[0], "strict")
    assert (again.already, DeltaTable(str(table)).version(), len(rows(table))) == (True, 2, 7)
    # Two attempts of one job at once: both may commit (delta-rs does not always see the same
    # transaction id in a commit that raced), but they add the same part, which the table
    # holds once.
    same = commit("run-2", [2.0])
    assert False in race(fs, [same, same])
    assert [r["prediction"] for r in rows(table) if r["job_id"] == "run-2"] == [2.0]


def race(fs: pa.fs.FileSystem, commits: list[TableCommit]) -> list[bool]:
    """Commit each at once, each on its own thread; whether each found it already committed."""
    start = threading.Barrier(len(commits))
    already: list[bool] = []

    def one(c: TableCommit) -> None:
        start.wait()
        already.append(commit_table(fs, FORMAT, c, "strict").already)

    threads = [threading.Thread(target=one, args=(c,)) for c in commits]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(already)


def test_delta_stores_types_it_lacks_as_the_next_it_has(tmp_path):
    """Delta has no unsigned integers: a uint8 part is cast to int16 before its commit, so
    200 reads back as 200 (delta-rs would read the uint8 column as int8)."""
    table = tmp_path / "t"
    (table / "job_id=j").mkdir(parents=True)
    data = pa.table(
        {"id": pa.array([1, 200], pa.uint8()), "s": pa.array(["a", "b"], pa.large_string())}
    )
    pq.write_table(data, table / "job_id=j" / "part-00000.parquet")
    stat = os.stat(table / "job_id=j" / "part-00000.parquet")
    commit = TableCommit(
        uri=str(table),
        root=str(table),
        job_id="j",
        schema=data.schema,
        parts=(TablePart("job_id=j/part-00000.parquet", 2, stat.st_size, 0),),
        overwrite=False,
        summary={"job_id": "j"},
    )
    commit_table(pa.fs.LocalFileSystem(), FORMAT, commit, "strict")
    back = DeltaTable(str(table)).to_pyarrow_table()
    assert back.to_pylist() == [
        {"id": 1, "s": "a", "job_id": "j"},
        {"id": 200, "s": "b", "job_id": "j"},
    ]
    assert (back.schema.field("id").type, back.schema.field("s").type) == (pa.int16(), pa.string())


def test_delta_commits_nothing_when_a_committed_part_is_missing(tmp_path):
    """A part a manifest counts but the table location lacks (vacuumed before a resume) stops
    both commits, naming the part."""
    final = OutputLayout.at(str(tmp_path / "out"), "delta")
    layout = table_run(final, "j")
    fs = pa.fs.LocalFileSystem()
    manifests = [Manifest(batch=0, files=(), prediction_rows=3, error_records=0)]
    schema = pa.schema([("file_name", pa.string())])
    with pytest.raises(sparkscore.OutputError) as refused:
        commit_run(fs, layout, manifests, schema, Settings(output_format="delta"), {})
    part = tmp_path / "out" / "job_id=j" / "part-00000.parquet"
    assert str(refused.value) == (
        f"{part}: is missing, though mini-batch 0 wrote 3 rows of the predictions there (was "
        "the table vacuumed before this run was resumed?); nothing was committed. Run again "
        "without resume."
    )
    assert not DeltaTable.is_deltatable(str(tmp_path / "out_errors"))


@pytest.mark.parametrize("fmt", ["delta", "iceberg"])
def test_table_run_killed_before_its_commit_resumes_to_every_row_once(spark, tmp_path, fmt):
    expected = write_inputs(tmp_path / "in", files=4, rows=5)
    model = chaos_model(tmp_path, sleep=1.0)
    out = tmp_path / "out"
    args = ["--model", str(model), "--input", str(tmp_path / "in"), "--output", str(out)]
    args += ["--set", "mini_batch_size=1", "--set", f"output_format={fmt}"]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    cmd = [str(SPARK_SUBMIT), "--master", "local[1]", str(ROOT / "jobs" / "score.py"), *args]
    job = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list(out.glob("_sparkscore/*/_manifest/*")):
        assert job.poll() is None, job.stdout.read() if job.stdout else ""
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(timeout=30)
    parts = list(out.glob("job_id=*/part-*.parquet"))
    assert 1 <= len(parts) < 4, "the kill came too late to test resume"
    assert table_rows(out, fmt) is None, "the killed run committed"
    (killed,) = [p.name for p in (out / "_sparkscore").iterdir()]

    resumed = sparkscore.score(
        spark, model, tmp_path / "in", out, output_format=fmt, resume=True, mini_batch_size=1
    )
    assert resumed["job_id"] == killed
    assert resumed["files_skipped"] >= len(parts)
    found = table_rows(out, fmt) or []
    assert sorted((r["file_name"], r["row"], r["prediction"], r["job_id"]) for r in found) == [
        (*key, value, killed) for key, value in sorted(expected.items())
    ]
