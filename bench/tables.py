"""The cost of a table output: the LR job on the perf data (parquet16) written as a Parquet folder
and as a Delta table, alternately, in one local[*] session.

    .venv/bin/python bench/tables.py [--scale S] [--runs N]

Prints, for each output, the median seconds of the whole job and, for Delta, of its commit (the
summary's `table.seconds`: both tables' commits, skip checks included), and the ratio of the
Delta job to the Parquet job. Every Delta run is read back with deltalake to check it holds
every input row once.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import datasets
import run

OUT = run.OUT / "tables"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    from deltalake import DeltaTable

    import sparkscore

    root = datasets.scale_root(args.scale)
    spec = datasets.specs(args.scale)["parquet16"]
    data = datasets.ensure(root, spec, datasets.default_row_group_rows(args.scale))
    model = datasets.ensure_models(datasets.DATA)["lr"]
    spark, _ = run.start_session()
    seconds: dict[str, list[float]] = {"parquet": [], "delta": []}
    commits: list[float] = []
    # One run of each first, untimed: the Python workers and the model load are then warm.
    for i in range(args.runs + 1):
        for fmt in ("parquet", "delta"):
            out = OUT / f"{fmt}-{i}"
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(Path(f"{out}_errors"), ignore_errors=True)
            started = time.perf_counter()
            summary = sparkscore.score(
                spark, model, data.path, out, output_format=fmt, passthrough_columns=["id"]
            )
            took = time.perf_counter() - started
            if fmt == "delta":
                rows = DeltaTable(str(out)).to_pyarrow_table(columns=["id"]).column("id")
                assert len(rows) == len(set(rows.to_pylist())) == data.rows, "rows lost or doubled"
            if i:
                seconds[fmt].append(took)
                if fmt == "delta":
                    commits.append(summary["table"]["seconds"])
    parquet, delta = statistics.median(seconds["parquet"]), statistics.median(seconds["delta"])
    commit = statistics.median(commits)
    print(f"{data.rows:,} rows in {data.files} files, {args.runs} timed runs of each (median):")
    print(f"  parquet job {parquet:.2f} s, delta job {delta:.2f} s: ratio {delta / parquet:.2f}")
    low = {fmt: min(times) for fmt, times in seconds.items()}
    print(
        f"  fastest runs: parquet {low['parquet']:.2f} s, delta {low['delta']:.2f} s: "
        f"ratio {low['delta'] / low['parquet']:.2f}"
    )
    print(f"  delta commit {commit:.3f} s ({commit / delta:.0%} of the delta job)")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
