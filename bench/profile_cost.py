"""What profiling the scored rows costs: the LR job case with `profile: true` and `false`.

Runs sparkscore.score on the LR model over parquet16 (or csv16) in one local session, the two
settings alternating so that load drifting on a shared machine touches both alike, after one
untimed warm-up run of each; prints each setting's median seconds and their ratio. Issue 21's
target: profiling costs under 3% of the job's time.

    PYTHONPATH=. .venv/bin/python bench/profile_cost.py --scale 0.25 --runs 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datasets

OUT = Path(__file__).resolve().parent / "out" / "profile_cost"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=0.25, help="data scale (bench/datasets.py)")
    p.add_argument("--runs", type=int, default=5, help="timed runs of each setting")
    p.add_argument("--data", default="parquet16", choices=["parquet16", "csv16"])
    p.add_argument("--master", default="local[2]")
    args = p.parse_args(argv)

    from pyspark.sql import SparkSession

    import sparkscore

    root = datasets.scale_root(args.scale)
    spec = datasets.specs(args.scale)[args.data]
    ds = datasets.ensure(root, spec, datasets.default_row_group_rows(args.scale))
    model = datasets.ensure_models(root)["lr"]
    spark = SparkSession.builder.master(args.master).config("spark.ui.enabled", "false")
    session = spark.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")

    def once(profile: bool) -> float:
        out = OUT / f"profile-{profile}"
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        summary = sparkscore.score(session, str(model), str(ds.path), str(out), profile=profile)
        seconds = time.perf_counter() - started
        assert summary["rows_scored"] == ds.rows, summary["error"]
        return seconds

    times: dict[bool, list[float]] = {True: [], False: []}
    once(False), once(True)  # warm-up: workers started, model loaded, files in the page cache
    for _ in range(args.runs):
        for profile in (False, True):
            times[profile].append(once(profile))
    session.stop()
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"{args.data}, {ds.rows} rows, scale {args.scale:g}, {args.runs} runs each")
    print(f"  profile: false  median {off:.3f}s  runs {[round(t, 3) for t in times[False]]}")
    print(f"  profile: true   median {on:.3f}s  runs {[round(t, 3) for t in times[True]]}")
    print(f"  ratio on/off {on / off:.4f} ({(on / off - 1) * 100:+.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
