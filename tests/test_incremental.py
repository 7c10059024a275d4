"""Incremental runs (`incremental: true`): a folder that gains files and changes one between runs,
scored into a Parquet folder, a Delta table and an Iceberg table, with exactly the current rows
read back after each run (pandas with the README's one-line read, deltalake, pyiceberg)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable
from model_zoo import chaos_model
from test_tables import iceberg_catalog

import sparkscore
from sparkscore.iceberg import DEFAULT_TABLE

ROOT = Path(__file__).resolve().parents[1]


def write_file(folder: Path, name: str, start: int, rows: int, *, bad: bool = False) -> dict:
    """A CSV file predicting a * 2 + b with a = start + row; `bad` puts text in column `a` of
    row 1, which fails the file whole. Its expected predictions by (file, row)."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"a": [float(start + r) for r in range(rows)], "b": list(range(rows))})
    if bad:
        frame["a"] = frame["a"].astype(object)
        frame.loc[1, "a"] = "oops"
    frame.to_csv(folder / name, index=False)
    return {} if bad else {(name, r): (start + r) * 2.0 + r for r in range(rows)}


def current(out: Path, fmt: str, table: str = "predictions") -> list[tuple]:
    """The output's current rows, (file_name, row, prediction or stage, job_id), sorted: for a
    Parquet folder the README's one-line read, for a table every row it holds."""
    if fmt == "parquet":
        ledger = out / "_sparkscore/ledger.parquet"
        rows = (
            pd.read_parquet(out / table)
            .merge(pd.read_parquet(ledger, columns=["file_name", "job_id"]))
            .to_dict("records")
        )
    elif fmt == "delta":
        location = out if table == "predictions" else Path(f"{out}_errors")
        rows = DeltaTable(str(location)).to_pyarrow_table().to_pylist()
    else:
        name = DEFAULT_TABLE if table == "predictions" else f"{DEFAULT_TABLE}_errors"
        rows = iceberg_catalog(out).load_table(name).scan().to_arrow().to_pylist()
    value = "prediction" if table == "predictions" else "stage"
    return sorted((r["file_name"], r["row"], r[value], str(r["job_id"])) for r in rows)


def expect(values: dict, jobs: dict) -> list[tuple]:
    return sorted((f, r, v, jobs[f]) for (f, r), v in values.items())


@pytest.fixture(scope="module")
def model(chaos):
    return chaos


def incremental(spark, model, inp: Path, out: Path, fmt: str, **settings) -> dict:
    return sparkscore.score(
        spark, model, inp, out, output_format=fmt, incremental=True, mini_batch_size=2, **settings
    )


@pytest.mark.parametrize("fmt", ["parquet", "delta", "iceberg"])
def test_incremental_runs_score_new_and_changed_files_and_keep_only_current_rows(
    spark, model, tmp_path, fmt
):
    inp, out = tmp_path / "in", tmp_path / "out"
    a = write_file(inp, "a.csv", 0, 3)
    write_file(inp, "b.csv", 100, 3, bad=True)
    c = write_file(inp, "c.csv", 200, 2)
    first = incremental(spark, model, inp, out, fmt)
    one = first["job_id"]
    assert first["incremental"] == {
        "ledger": f"{out}/_sparkscore/ledger.parquet",
        "files_unchanged": 0,
        "files_superseded": 0,
        "rescore": False,
    }
    assert current(out, fmt) == expect({**a, **c}, {"a.csv": one, "c.csv": one})
    assert current(out, fmt, "errors") == [("b.csv", 1, "validate", one)]

    # a.csv changes (other values, one more row), d.csv arrives; b.csv, which failed, is
    # scored again though unchanged; c.csv is left alone.
    a = write_file(inp, "a.csv", 50, 4)
    d = write_file(inp, "d.csv", 300, 2)
    second = incremental(spark, model, inp, out, fmt)
    two = second["job_id"]
    assert (second["files_total"], second["files_succeeded"], second["files_failed"]) == (3, 2, 1)
    assert second["incremental"]["files_unchanged"] == 1
    assert second["incremental"]["files_superseded"] == 2
    assert current(out, fmt) == expect({**a, **c, **d}, {"a.csv": two, "c.csv": one, "d.csv": two})
    assert current(out, fmt, "errors") == [("b.csv", 1, "validate", two)]
    ledger = pd.read_parquet(out / "_sparkscore/ledger.parquet")
    assert ledger[["file_name", "status", "job_id"]].values.tolist() == [
        ["a.csv", "succeeded", two],
        ["b.csv", "failed", two],
        ["c.csv", "succeeded", one],
        ["d.csv", "succeeded", two],
    ]
    assert ledger["size"].tolist() == [os.path.getsize(inp / n) for n in ledger["file_name"]]
    assert set(ledger["model_sha256"]) == {first["model"]["sha256"]}


def test_incremental_run_with_nothing_new_exits_0_in_one_line_without_spark(spark, model, tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    expected = {**write_file(inp, "a.csv", 0, 2), **write_file(inp, "b.csv", 10, 2)}
    first = incremental(spark, model, inp, out, "parquet")
    written = sorted(p.relative_to(out) for p in out.rglob("*"))
    spark.sparkContext.setJobGroup("nothing_new", "nothing_new")
    try:
        again = incremental(spark, model, inp, out, "parquet")
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    assert spark.sparkContext.statusTracker().getJobIdsForGroup("nothing_new") == []
    assert (again["files_total"], again["rows_scored"]) == (0, 0)
    assert again["incremental"]["files_unchanged"] == 2
    # The command line starts no Spark at all: with no Java to start one, it still succeeds.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAVA_HOME": str(tmp_path / "no-java")}
    args = ["--model", str(model), "--input", str(inp), "--output", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "sparkscore.cli", "score", *args, "--set", "incremental=true"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout.splitlines()[-1]) == (
        0,
        f"sparkscore: nothing new: the 2 files of {inp} are unchanged since they were scored "
        f"into {out}; no Spark task ran.",
    )
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == written
    jobs = dict.fromkeys(["a.csv", "b.csv"], first["job_id"])
    assert current(out, "parquet") == expect(expected, jobs)


def test_incremental_refuses_a_changed_model_and_rescore_supersedes_every_row(
    spark, model, tmp_path
):
    inp, out = tmp_path / "in", tmp_path / "out"
    expected = {**write_file(inp, "a.csv", 0, 2), **write_file(inp, "b.csv", 10, 3)}
    first = incremental(spark, model, inp, out, "delta")
    other = chaos_model(tmp_path, sleep=0)
    write_file(inp, "c.csv", 20, 1)
    with pytest.raises(sparkscore.LedgerModelError) as refused:
        incremental(spark, other, inp, out, "delta")
    old, new = first["model"]["sha256"], refused.value.model_sha256
    assert old != new
    assert str(refused.value) == (
        f"{out}: its ledger says its files were scored by the model with sha256 {old}, but "
        f"this model's sha256 is {new}; nothing was scored. Score with that model, or set "
        "rescore: true to score every file again with this one (its rows then supersede the "
        "earlier ones)."
    )
    assert DeltaTable(str(out)).version() == 0
    rescored = incremental(
        spark,
        other,
        inp,
        out,
        "delta",
        rescore=True,
        passthrough_columns=["b"],
        schema_mode="merge",
    )
    job = rescored["job_id"]
    expected |= write_file(inp, "c.csv", 20, 1)
    assert rescored["incremental"] == {
        "ledger": f"{out}/_sparkscore/ledger.parquet",
        "files_unchanged": 0,
        "files_superseded": 2,
        "rescore": True,
    }
    jobs = dict.fromkeys(["a.csv", "b.csv", "c.csv"], job)
    assert current(out, "delta") == expect(expected, jobs)
    # schema_mode: merge added the column b in a commit of its own, before the run's one.
    assert DeltaTable(str(out)).version() == 2
    passed = DeltaTable(str(out)).to_pyarrow_table().column("b").to_pylist()
    assert sorted(passed) == [0, 0, 0, 1, 1, 2]
    # The new model is the ledger's now: the old one is refused in turn.
    with pytest.raises(sparkscore.LedgerModelError):
        incremental(spark, model, inp, out, "delta")


@pytest.mark.parametrize("fmt", ["parquet", "delta", "iceberg"])
def test_incremental_run_killed_before_its_ledger_update_resumes_to_every_row_once(
    spark, model, tmp_path, fmt
):
    inp, out = tmp_path / "in", tmp_path / "out"
    a = write_file(inp, "a.csv", 0, 2)
    first = incremental(spark, model, inp, out, fmt)
    ledger = out / "_sparkscore" / "ledger.parquet"
    before = ledger.read_bytes()
    a = write_file(inp, "a.csv", 5, 3)
    b = write_file(inp, "b.csv", 10, 2)
    second = incremental(spark, model, inp, out, fmt)
    # Killed after its parts, its table commit and its summary, before its ledger update.
    ledger.write_bytes(before)
    resumed = incremental(spark, model, inp, out, fmt, resume=True)
    assert resumed["job_id"] == second["job_id"]
    assert resumed["files_skipped"] == 2
    if fmt != "parquet":
        assert resumed["table"]["predictions"]["already_committed"] is True
    jobs = dict.fromkeys(["a.csv", "b.csv"], second["job_id"])
    assert current(out, fmt) == expect({**a, **b}, jobs)
    assert first["job_id"] not in pd.read_parquet(ledger)["job_id"].tolist()
    # resume: true on a run after a finished one starts a new run, of what is new.
    c = write_file(inp, "c.csv", 20, 1)
    third = incremental(spark, model, inp, out, fmt, resume=True)
    assert (third["files_total"], third["incremental"]["files_unchanged"]) == (1, 2)
    jobs["c.csv"] = third["job_id"]
    assert current(out, fmt) == expect({**a, **b, **c}, jobs)


def test_incremental_refuses_outputs_it_cannot_add_to(spark, model, tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    write_file(inp, "a.csv", 0, 2)
    with pytest.raises(sparkscore.SettingsError) as refused:
        incremental(spark, model, inp, out, "csv")
    assert str(refused.value) == (
        "output_format cannot take incremental runs (incremental: true): a CSV output is one "
        "file, rewritten whole by each run; use output_format: parquet, delta or iceberg, got "
        "'csv'"
    )
    with pytest.raises(sparkscore.SettingsError) as refused:
        incremental(spark, model, inp, out, "parquet", overwrite=True)
    assert str(refused.value) == (
        "overwrite cannot be used with incremental: true, which adds to the output; set "
        "rescore: true to score every file again (superseding their rows), or choose a new "
        "output, got True"
    )
    with pytest.raises(sparkscore.SettingsError) as refused:
        sparkscore.score(spark, model, inp, out, rescore=True)
    assert str(refused.value) == "rescore needs incremental: true; set both, got True"
    assert not out.exists()
    # A folder a plain run wrote is not an incremental output, nor the reverse.
    sparkscore.score(spark, model, inp, out)
    with pytest.raises(sparkscore.OutputError) as refused:
        incremental(spark, model, inp, out, "parquet")
    assert str(refused.value) == (
        f"{out}: holds _manifest, _profile.json, _run.json, which incremental runs do not "
        "write (was it written without incremental: true?); nothing was touched. Choose a new "
        "output folder for incremental runs."
    )
    table = tmp_path / "table"
    incremental(spark, model, inp, table, "delta")
    with pytest.raises(sparkscore.OutputError) as refused:
        sparkscore.score(spark, model, inp, table, output_format="delta", resume=True)
    assert str(refused.value) == (
        f"{table}: holds incremental runs (a ledger in _sparkscore/), whose rows a run without "
        "incremental: true would repeat; nothing was touched. Set incremental: true to add to "
        "it, or choose a new table."
    )
