"""What profiling the scored rows costs: the LR case with `profile: true` and `false`.

Two figures, each setting alternating with the other so that load drifting on a shared
machine touches both alike, after one untimed run of each:

- tasks: the CPU seconds (process time) of what every Spark task runs, `scoring.score_batch`
  over each mini-batch of the plan, in this process; steady on a busy machine, and where the
  whole cost of profiling is.
- job: the wall seconds of `sparkscore.score` in a local session, what a user waits for
  (noisy where other work shares the cores), with `report: false` on both sides so that the
  figure is profiling's alone.
- report: the wall seconds of writing `report.html` for the profiled run
  (`sparkscore report OUT`), a cost per run whatever its size: the charts of every input
  column are drawn only when there is a profile.

Issue 21's target: profiling costs under 3% of the job's time.

    PYTHONPATH=. .venv/bin/python bench/profile_cost.py --scale 0.25 --runs 7
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import datasets

OUT = Path(__file__).resolve().parent / "out" / "profile_cost"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=0.25, help="data scale (bench/datasets.py)")
    p.add_argument("--runs", type=int, default=7, help="timed runs of each setting")
    p.add_argument("--data", default="parquet16", choices=["parquet16", "csv16"])
    p.add_argument("--master", default="local[2]")
    p.add_argument("--tasks-only", action="store_true", help="skip the job figure")
    args = p.parse_args(argv)
    root = datasets.scale_root(args.scale)
    spec = datasets.specs(args.scale)[args.data]
    ds = datasets.ensure(root, spec, datasets.default_row_group_rows(args.scale))
    model = datasets.ensure_models(root)["lr"]
    print(f"{args.data}, {ds.rows} rows, scale {args.scale:g}, {args.runs} runs each")
    report("tasks (CPU s)", compare(tasks(model, ds.path), args.runs))
    if not args.tasks_only:
        report("job (wall s)", compare(job(model, ds.path, args.master, ds.rows), args.runs))
        report_seconds(args.runs)
    return 0


def tasks(model: Path, data: Path) -> Callable[[bool], float]:
    from pyarrow import fs as pafs

    from sparkscore.loader import load_model
    from sparkscore.planner import plan
    from sparkscore.predictiontype import prediction_type
    from sparkscore.scoring import ScoringSpec, score_batch
    from sparkscore.spilling import spill_buffers
    from sparkscore.threads import apply_budget

    loaded = load_model(str(model), trust_model=True)
    # A worker's thread budget (threads: auto, one task core): without it OpenBLAS's idle
    # thread spins after each predict, 0.6 CPU s in every 1.5 s of this process.
    apply_budget(loaded.impl, 1)
    signature = loaded.spec.signature
    assert signature is not None and signature.inputs is not None
    the_plan = plan(str(data), parallelism=2)
    base = ScoringSpec(
        prediction_type=prediction_type(signature, None),
        read_columns=tuple(signature.inputs.names()),
    )
    fs = pafs.LocalFileSystem()

    def once(profile: bool) -> float:
        spec = dataclasses.replace(base, profile=profile)
        started = time.process_time()
        for batch in the_plan.batches:
            _, sink_for = spill_buffers()
            score_batch(fs, batch, loaded, spec, sink_for)
        return time.process_time() - started

    return once


def job(model: Path, data: Path, master: str, rows: int) -> Callable[[bool], float]:
    from pyspark.sql import SparkSession

    import sparkscore

    session = SparkSession.builder.master(master).config("spark.ui.enabled", "false")
    spark = session.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")

    def once(profile: bool) -> float:
        out = OUT / f"profile-{profile}"
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        summary = sparkscore.score(
            spark, str(model), str(data), str(out), profile=profile, report=False
        )
        seconds = time.perf_counter() - started
        assert summary["rows_scored"] == rows, summary["error"]
        return seconds

    return once


def report_seconds(runs: int) -> None:
    """The report of the last profiled and unprofiled runs, each written `runs` times."""
    from sparkscore.report import rebuild

    for profile in (False, True):
        out = str(OUT / f"profile-{profile}")
        rebuild(out)  # untimed: matplotlib imported, its fonts found
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            rebuild(out)
            times.append(time.perf_counter() - started)
        print(
            f"  report.html (wall s), profile {str(profile).lower()}: median "
            f"{statistics.median(times):.3f} {[round(t, 3) for t in times]}"
        )


def compare(once: Callable[[bool], float], runs: int) -> dict[bool, list[float]]:
    once(False), once(True)  # untimed: workers started, model loaded, files in the page cache
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(runs):
        for profile in (False, True):
            times[profile].append(once(profile))
    return times


def report(what: str, times: dict[bool, list[float]]) -> None:
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"  {what}: profile false median {off:.3f}, true {on:.3f}: ratio {on / off:.4f}")
    print(f"    false {[round(t, 3) for t in times[False]]}")
    print(f"    true  {[round(t, 3) for t in times[True]]}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
