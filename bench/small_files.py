"""Small files against their bound, in one process: what a task costs per 100-row file.

Issue 22, item 3, without Spark: the CPU time of what each task runs, `scoring.score_batch` and
`writers.commit_batch` over each mini-batch of the plan of the `small20000` set (into a scratch
folder under bench/out/), against the bound that
`run.py`'s small-20000files-read case measures (`pq.ParquetFile` of each file's bytes, `read()`,
nothing else), alternating so that load drifting on a shared machine touches both alike, after
one untimed run of each. `--profile N` prints the cProfile of one scoring run, N lines. Prints
the figures and writes them to bench/out/small_files.txt.

    PYTHONPATH=. .venv/bin/python bench/small_files.py --scale 0.25 --runs 5 [--profile 40]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parent / "out" / "small_files"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=0.25, help="data scale (bench/datasets.py)")
    p.add_argument("--runs", type=int, default=5, help="timed runs of each")
    p.add_argument("--profile", type=int, default=0, help="print this many profile lines")
    args = p.parse_args(argv)
    root = datasets.scale_root(args.scale)
    spec = datasets.specs(args.scale)["small20000"]
    ds = datasets.ensure(root, spec, datasets.default_row_group_rows(args.scale))
    model = datasets.ensure_models(root)["lr"]
    job, bound = tasks(model, ds.path), read(ds.path)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(job)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
        return 0
    job(), bound()  # untimed: the model loaded, the files in the page cache
    times: dict[str, list[float]] = {"job": [], "bound": []}
    for _ in range(args.runs):
        times["job"].append(job())
        times["bound"].append(bound())
    per_file = {k: statistics.median(v) / ds.files * 1e3 for k, v in times.items()}
    lines = [f"{ds.files:,} files of 100 rows, scale {args.scale:g}, {args.runs} runs each (CPU)"]
    for what, ms in per_file.items():
        lines.append(f"  {what}: {ms:.3f} ms a file {[round(t, 3) for t in times[what]]}")
    ratio = per_file["bound"] / per_file["job"]
    lines.append(f"  job / bound (per file, one process): {ratio:.2f} (target >= 0.9)")
    print("\n".join(lines))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    (OUT.parent / "small_files.txt").write_text("\n".join(lines) + "\n")
    return 0


def tasks(model: Path, data: Path) -> Callable[[], float]:
    """Every task's scoring and commit over the plan, in this process: its CPU seconds."""
    from pyarrow import fs as pafs

    from sparkscore.layout import OutputLayout
    from sparkscore.loader import load_model
    from sparkscore.manifest import TaskRun
    from sparkscore.planner import plan
    from sparkscore.predictiontype import prediction_type
    from sparkscore.scoring import ScoringSpec, score_batch
    from sparkscore.spilling import spill_buffers
    from sparkscore.threads import apply_budget
    from sparkscore.writers import commit_batch

    loaded = load_model(str(model), trust_model=True)
    # A worker's thread budget (threads: auto, one task core): without it OpenBLAS's idle
    # thread spins after each predict, 0.6 CPU s in every 1.5 s of this process.
    apply_budget(loaded.impl, 1)
    signature = loaded.spec.signature
    assert signature is not None and signature.inputs is not None
    the_plan = plan(str(data), parallelism=2)
    spec = ScoringSpec(
        prediction_type=prediction_type(signature, None),
        read_columns=tuple(signature.inputs.names()),
    )
    fs = pafs.LocalFileSystem()
    layout = OutputLayout.at(str(OUT))

    def once() -> float:
        shutil.rmtree(OUT, ignore_errors=True)
        started = time.process_time()
        for batch in the_plan.batches:
            buffers, sink_for = spill_buffers()
            result = score_batch(fs, batch, loaded, spec, sink_for)
            assert not result.errors, result.errors[:1]
            commit_batch(fs, layout, result, buffers, spec.output_schema, TaskRun())
        return time.process_time() - started

    return once


def read(data: Path) -> Callable[[], float]:
    """cases.read_case's loop: each file's bytes, parsed and read whole; its CPU seconds."""
    files = sorted(p for p in data.iterdir() if p.suffix == ".parquet")

    def once() -> float:
        started = time.process_time()
        for path in files:
            pq.ParquetFile(pa.BufferReader(path.read_bytes())).read(use_threads=False)
        return time.process_time() - started

    return once


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
