"""The cost of a table output: the LR job on the perf data (parquet16) written as a Parquet folder,
a Delta table and an Iceberg table, in turn, in one local[*] session; then incremental runs.

    .venv/bin/python bench/tables.py [--scale S] [--runs N]

Prints, for each output, the median seconds of the whole job and, for the tables, of their
commit (the summary's `table.seconds`: both tables' commits, skip checks included), and the
ratio of each table job to the Parquet job. Every table run is read back (deltalake, pyiceberg)
to check it holds every input row once. Then, on a copy of the data, for each output: an
incremental run over all 16 files, a timed one after one file changed (scoring it alone, its
commit deleting its earlier rows), and a timed one with nothing new (no Spark task).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import datasets
import run

OUT = run.OUT / "tables"
FORMATS = ("parquet", "delta", "iceberg")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    root = datasets.scale_root(args.scale)
    spec = datasets.specs(args.scale)["parquet16"]
    data = datasets.ensure(root, spec, datasets.default_row_group_rows(args.scale))
    model = datasets.ensure_models(datasets.DATA)["lr"]
    spark, _ = run.start_session()
    seconds: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
    commits: dict[str, list[float]] = {fmt: [] for fmt in FORMATS[1:]}
    # One run of each first, untimed: the Python workers and the model load are then warm.
    for i in range(args.runs + 1):
        for fmt in FORMATS:
            out = fresh(OUT / f"{fmt}-{i}")
            started = time.perf_counter()
            summary = score(spark, model, data.path, out, fmt)
            took = time.perf_counter() - started
            check(out, fmt, data.rows)
            if i:
                seconds[fmt].append(took)
                if fmt != "parquet":
                    commits[fmt].append(summary["table"]["seconds"])
    parquet = statistics.median(seconds["parquet"])
    print(f"{data.rows:,} rows in {data.files} files, {args.runs} timed runs of each (median):")
    print(f"  parquet job {parquet:.2f} s (fastest {min(seconds['parquet']):.2f} s)")
    for fmt, times in commits.items():
        job, commit = statistics.median(seconds[fmt]), statistics.median(times)
        print(
            f"  {fmt} job {job:.2f} s: ratio {job / parquet:.2f} (fastest runs "
            f"{min(seconds[fmt]) / min(seconds['parquet']):.2f}); its commit {commit:.3f} s "
            f"({commit / job:.0%} of the job)"
        )
    incremental(spark, model, data, args.runs)
    spark.stop()
    return 0


def incremental(spark: Any, model: Path, data: datasets.Dataset, runs: int) -> None:
    """Per output: one file changed, then nothing new, each timed `runs` times (median)."""
    landing = fresh(OUT / "landing")
    shutil.copytree(data.path, landing)
    changed = sorted(landing.iterdir())[0]
    print(f"incremental runs, one of {data.files} files changed, {runs} times (median):")
    for fmt in FORMATS:
        out = fresh(OUT / f"incremental-{fmt}")
        score(spark, model, landing, out, fmt, incremental=True)
        one, commit, quiet = [], [], []
        for _ in range(runs):
            os.utime(changed)  # a new modification time: the file is scored again
            started = time.perf_counter()
            summary = score(spark, model, landing, out, fmt, incremental=True)
            one.append(time.perf_counter() - started)
            assert summary["files_total"] == 1, summary["files_total"]
            commit.append(summary["table"]["seconds"] if "table" in summary else 0.0)
            check(out, fmt, data.rows)
            started = time.perf_counter()
            summary = score(spark, model, landing, out, fmt, incremental=True)
            quiet.append(time.perf_counter() - started)
            assert summary["files_total"] == 0, summary["files_total"]
        committed = f" (its commit {statistics.median(commit):.3f} s)" if fmt != "parquet" else ""
        print(
            f"  {fmt}: one changed file {statistics.median(one):.2f} s{committed}, "
            f"nothing new {statistics.median(quiet):.2f} s"
        )


def score(spark: Any, model: Path, data: Path, out: Path, fmt: str, **settings: Any) -> Any:
    import sparkscore

    return sparkscore.score(
        spark, model, data, out, output_format=fmt, passthrough_columns=["id"], **settings
    )


def fresh(out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(Path(f"{out}_errors"), ignore_errors=True)
    return out


def check(out: Path, fmt: str, rows: int) -> None:
    """The output holds every input row once (a Parquet folder: by the ledger's rule)."""
    import pandas as pd
    from deltalake import DeltaTable
    from pyiceberg.catalog import load_catalog

    if fmt == "delta":
        ids = DeltaTable(str(out)).to_pyarrow_table(columns=["id"]).column("id").to_pylist()
    elif fmt == "iceberg":
        catalog = load_catalog(
            "sparkscore",
            type="sql",
            uri=f"sqlite:///{out.resolve()}/catalog.db",
            warehouse=f"file://{out.resolve()}/warehouse",
        )
        table = catalog.load_table("sparkscore.predictions")
        ids = table.scan(selected_fields=("id",)).to_arrow().column("id").to_pylist()
    elif (out / "_sparkscore" / "ledger.parquet").exists():
        ledger = out / "_sparkscore/ledger.parquet"
        current = pd.read_parquet(ledger, columns=["file_name", "job_id"])
        ids = pd.read_parquet(out / "predictions").merge(current)["id"].tolist()
    else:
        ids = pd.read_parquet(out / "predictions", columns=["id"])["id"].tolist()
    assert len(ids) == len(set(ids)) == rows, f"{out}: rows lost or doubled"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
