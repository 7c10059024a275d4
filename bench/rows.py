"""How the job's cost grows with rows (issue 22, item 1): the same jobs on 1x, 4x and 16x the
perf data, in one run.

    .venv/bin/python bench/rows.py [--scales 1,4,16] [--models lr,rf] [--runs N] [--rf-max-scale S]
        [--grow files|rows]

For each scale, the perf data's rows at that scale (3.2M rows at 1x, 12.8M at 4x, 51.2M at 16x,
the larger sets starting with the smaller ones' rows: same seed), grown one of two ways:

- `--grow files` (the default): more files of the 1x shape, 200,000 rows each in one row group
  (16 x scale files). Only the amount of work changes, so this is the figure for "cost grows
  only with the work".
- `--grow rows`: the `parquet16` set at that scale, 16 files of 200,000 x scale rows, with
  row groups of 1,048,576 rows (pyarrow's default): longer files, whose row groups (up to 1M
  rows, 88 MB of decoded columns each) a reader holds whole, as Parquet's layout asks. The
  scale-1 set `run.py` uses already is this; a set whose row groups differ is regenerated.

In one `local[2]` session, in this process, each model's job (`sparkscore.score`, default settings,
as `run.py`'s MODEL-parquet-job cases) on each scale: one untimed warm-up, then --runs timed runs
(median), peak RSS of the driver and of the Python workers over the case (rss.py). Every figure is
against the first scale of --scales, the base, for the same model. Targets (issue 22): time per row
within 10% of the base's (ratio <= 1.10), and driver and worker peak RSS flat (<= 1.2x the base's).
The RandomForest runs only up to --rf-max-scale (at 16x a run takes about 5 minutes on 2 cores).
Prints the table and writes it to bench/out/rows-grow-GROW.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cases
import datasets
import pyarrow as pa
import run
from cases import Result, Timing
from rss import PeakRss

ROW_GROUP_ROWS = datasets.PYARROW_DEFAULT_ROW_GROUP
MODELS = ("lr", "rf")
TIME_TARGET = 1.10  # time per row against the base scale's
RSS_TARGET = 1.2  # peak RSS against the base scale's


@dataclass(frozen=True)
class Measured:
    model: str
    scale: float
    result: Result


def main(argv: list[str]) -> int:
    args = parse(argv)
    started, stamp, load_start = time.time(), datetime.datetime.now().astimezone(), load()
    if load_start > 0.5:
        print(f"warning: load average {load_start:.1f}: other work will skew the figures")
    wanted = [(m, s) for m in args.models for s in args.scales if m != "rf" or s <= args.rf_max]
    skipped = [f"{m} at {s:g}x" for m in args.models for s in args.scales if (m, s) not in wanted]
    data = {s: ensure(s, args.grow) for s in dict.fromkeys(s for _, s in wanted)}
    models = datasets.ensure_models(datasets.DATA)
    spark, took = run.start_session("local[2]")
    print(f"local[2] session started in {took:.1f} s (Spark {spark.version})", flush=True)
    measured = [
        Measured(m, s, job(spark, models[m], data[s], f"{m}-{s:g}x", args.runs))
        for m, s in wanted  # model by model: a worker's cached models stay the same per model
    ]
    spark.stop()
    notes = []
    if skipped:
        notes.append(
            f"{', '.join(skipped)} skipped: the RandomForest runs only up to --rf-max-scale "
            f"{args.rf_max:g} (about 5 minutes a run at 16x on 2 cores); pass --rf-max-scale "
            f"{max(args.scales):g} to measure it"
        )
    notes += [
        f"{x.result.case}: peak RSS could not be reset before the case (clear_refs refused): "
        "its driver and worker peaks may be an earlier case's"
        for x in measured
        if x.result.rss and not x.result.rss.get("reset_ok")
    ]
    loads = (load_start, load())
    text = report(args, stamp, time.time() - started, measured, data, notes, loads)
    print()
    print(text)
    results = run.OUT / f"rows-grow-{args.grow}.md"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(text)
    print(f"\nwritten to {results}")
    return 1 if any(x.result.error for x in measured) else 0


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/rows.py", description=__doc__.split("\n")[0])
    p.add_argument(
        "--scales",
        default="1,4,16",
        help="comma-separated scales of the perf data (fractions allowed); the first is the base",
    )
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated: lr, rf")
    p.add_argument("--runs", type=int, default=3, help="timed runs per case, after one warm-up")
    p.add_argument(
        "--grow",
        choices=("files", "rows"),
        default="files",
        help="files: 16 x scale files of 200,000 rows (default); rows: 16 longer files",
    )
    p.add_argument(
        "--rf-max-scale",
        dest="rf_max",
        type=float,
        default=4.0,
        help="skip the RandomForest above this scale (default 4: at 16x a run takes minutes)",
    )
    args = p.parse_args(argv)
    try:
        args.scales = [float(s) for s in args.scales.split(",") if s.strip()]
    except ValueError:
        p.error(f"--scales {args.scales!r}: give numbers, e.g. 1,4,16 or 0.02,0.08")
    if not args.scales or min(args.scales) <= 0 or len(set(args.scales)) < len(args.scales):
        p.error("--scales: give distinct positive numbers, the base first")
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.models or set(args.models) - set(MODELS):
        p.error(f"--models {','.join(args.models)}: choose among {', '.join(MODELS)}")
    if args.runs < 1:
        p.error("--runs: at least 1")
    return args


def ensure(scale: float, grow: str) -> datasets.Dataset:
    """The rows at this scale: in 16 x scale files of the 1x shape (grow "files"), or the
    parquet16 set at this scale with row groups of ROW_GROUP_ROWS rows (grow "rows")."""
    root, spec = datasets.scale_root(scale), datasets.specs(scale)["parquet16"]
    if grow == "files" and scale != 1:
        files = max(1, round(16 * scale))
        spec = replace(spec, name=f"parquet{files}x200k", files=files)
    marker = root / f"{spec.name}.json"
    if marker.exists():
        saved = json.loads(marker.read_text()).get("params", {})
        if saved.get("row_group_rows") != ROW_GROUP_ROWS:
            print(
                f"  {root / spec.name} has row groups of {saved.get('row_group_rows')} rows: "
                f"regenerating it with {ROW_GROUP_ROWS:,}",
                flush=True,
            )
    ds = datasets.ensure(root, spec, ROW_GROUP_ROWS)
    print(
        f"{scale:g}x: {ds.path} ({ds.files} files, {ds.rows:,} rows, {ds.bytes / 1e6:,.0f} MB)",
        flush=True,
    )
    return ds


def job(spark: Any, model: Path, ds: datasets.Dataset, case: str, runs: int) -> Result:
    """run.py's job case: one warm-up, `runs` timed runs, peak RSS over all of them."""
    print(f"[{case}]", flush=True)
    out = run.OUT / "cases" / f"rows-{case}"
    me = os.getpid()
    r = Result(case, rows=ds.rows)
    timing = Timing(min_seconds=0.0, max_runs=runs)
    try:
        cases.job_case(  # with the report: this figure is the whole run, fixed costs too
            r,
            spark,
            model,
            ds,
            out,
            report=True,
            timing=timing,
            peak=PeakRss([me], driver_pid=me),
            runs=runs,
        )
    except Exception as e:  # setting the case up failed (measure() catches the runs' errors)
        cases.record_error(r, e)
    shutil.rmtree(out, ignore_errors=True)  # 16x predictions take a few hundred MB
    # Reading the predictions back (the check, after the case) leaves up to 400 MB in Arrow's
    # pool at 16x: the next case's driver peak starts from this process's RSS, so return it.
    pa.default_memory_pool().release_unused()
    if r.check and r.check[0] != ds.rows:
        r.error = f"{r.check[0]:,} predictions written for {ds.rows:,} rows"
    if not r.error:
        print(
            f"    {r.rate:,.0f} rows/s, median {r.median_s:.2f} s of {len(r.times)}; peak RSS "
            f"MiB driver {r.rss.get('driver_mib')}, worker {r.rss.get('worker_mib')}",
            flush=True,
        )
    return r


def ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else value / base


def verdict(x: float | None, target: float, is_base: bool) -> str:
    if is_base:
        return "1.00 (base)" if x is not None else "n/a"
    if x is None:
        return "n/a"
    return f"{x:.2f} {'PASS' if x <= target else 'FAIL'}"


def table_row(x: Measured, base: Measured | None) -> list[str]:
    r, b = x.result, base.result if base else None
    if r.error:
        return [r.case, f"{r.rows:,}", f"ERROR: {r.error}", *[""] * 6]
    is_base = base is x
    per_row = ratio(r.median_s / r.rows, b.median_s / b.rows if b and b.median_s else None)
    cells = [r.case, f"{r.rows:,}", f"{r.median_s:.2f}", run.fmt_num(r.rate)]
    cells.append(verdict(per_row, TIME_TARGET, is_base))
    for role in ("driver_mib", "worker_mib"):
        mib = r.rss.get(role)
        cells.append(run.fmt_num(mib))
        cells.append(verdict(ratio(mib, b.rss.get(role) if b else None), RSS_TARGET, is_base))
    return cells


def columns(base: float, runs: int) -> list[str]:
    vs = f"vs {base:g}x (<= {RSS_TARGET})"
    return [
        "case",
        "rows",
        f"median s of {runs}",
        "rows/s",
        f"time/row vs {base:g}x (<= {TIME_TARGET:.2f})",
        "driver peak MiB",
        vs,
        "worker peak MiB",
        vs,
    ]


def report(
    args: argparse.Namespace,
    stamp: datetime.datetime,
    seconds: float,
    measured: list[Measured],
    data: dict[float, datasets.Dataset],
    notes: list[str],
    loads: tuple[float, float],
) -> str:
    base = args.scales[0]
    bases = {x.model: x for x in measured if x.scale == base and not x.result.error}
    rows = [table_row(x, bases.get(x.model)) for x in measured]
    machine = run.machine()
    lines = [
        "# How the job's cost grows with rows",
        "",
        f"{stamp:%Y-%m-%d %H:%M %Z}, {seconds / 60:.1f} minutes: `bench/rows.py --scales "
        f"{','.join(f'{s:g}' for s in args.scales)} --models {','.join(args.models)} --runs "
        f"{args.runs} --rf-max-scale {args.rf_max:g} --grow {args.grow}`; {machine['cores']} cores "
        f"({machine['cpu']}), {machine['memory']}; load average {loads[0]:.1f} at the start, "
        f"{loads[1]:.1f} at the end.",
        "",
        ", ".join(f"{k} {v}" for k, v in run.versions().items()) + ".",
        "",
        "Each model's job (`sparkscore.score`, default settings) in one `local[2]` session, on "
        + (
            "16 x scale Parquet files of 200,000 rows (one row group each) at each scale"
            if args.grow == "files"
            else "the perf data's 16 Parquet files at each scale, row groups of "
            f"{ROW_GROUP_ROWS:,} rows"
        )
        + "; one warm-up, then the median of the timed runs; peak RSS over the whole case. "
        f"Ratios are against the same model at {base:g}x.",
        "",
        *(
            f"- {s:g}x: {d.rows:,} rows, {d.files} files, {d.bytes / 1e6:,.0f} MB"
            for s, d in data.items()
        ),
        "",
        run.md_table(columns(base, args.runs), rows),
        "",
        f"Targets: {sum('PASS' in c for r in rows for c in r)} PASS, "
        f"{sum('FAIL' in c for r in rows for c in r)} FAIL.",
        "",
        *(f"- {n}" for n in notes),
    ]
    return "\n".join(lines).rstrip() + "\n"


def load() -> float:
    return os.getloadavg()[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
