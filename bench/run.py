"""`make bench`: sparkscore's throughput, memory and fixed cost against issues 6 and 22's targets.

    .venv/bin/python bench/run.py [--scale S] [--only PATTERNS] [--memory] [--list]

One run, on one set of generated data (bench/data/, made once and reused) and two models saved by
the real mlflow, measures every case, prints the figures against their targets and the per-case
table, and writes both with the machine and versions to bench/RESULTS.md (a full run: scale 1, no
--only) or bench/out/RESULTS.md (a partial or scaled-down run), or to --results PATH.

Cases (see `--list`; --only takes comma-separated shell patterns of case ids, e.g.
`--only 'lr-*-job,lr-*-spark_udf,skew-*'`; the LIMIT and bare-session cases a selected case needs
are added):
- limit-MODEL            the model's single-core predict rate (LIMIT), in this process, no Spark
- MODEL-FMT-job          sparkscore.score(spark, ...) in this process's local[*] session, defaults
- MODEL-FMT-submit       spark-submit jobs/score.py (a new JVM per run); rows/s after subtracting
                         the bare session start (session-bare)
- MODEL-FMT-spark_udf    mlflow.pyfunc.spark_udf(env_manager="local"), spark.read, write Parquet
- MODEL-FMT-pbudf        pyspark.ml.functions.predict_batch_udf(batch_size=10000), same work
- MODEL-FMT-loop         one process: pyarrow stream, to_pandas, predict, a Parquet file per file
- skew-1file/-16files    the job (RandomForest) on one 2M-row Parquet file / the same rows in 16
- small-20000files/-20files  the job (LogisticRegression) on 20,000 files of 100 rows / 20 files
- small-20000files-read  pyarrow alone reading the 20,000 files, one thread: what bounds figure 4
- small-20000files-spark_udf  mlflow's spark_udf on the same 20,000 files: figure 4's peer
- MODEL-parquet-udf / -spark_udf_noop  sparkscore.spark_udf / mlflow's over spark.read into the
                         noop sink (figure 10); rf-parquet-udf-16m: spark.read in 16 MB
                         partitions (spark.sql.files.maxPartitionBytes) instead of 128 MB
- udf-bound              an Arrow UDF given the same columns, returning a constant, into the noop
                         sink: what bounds figure 10
- fixed-10rows           spark-submit jobs/score.py on a 10-row file, each run paired with a
                         bare spark-submit start just before it
- memory-200mb/-2gb      the job (LogisticRegression) on one ~200 MB / ~2 GB CSV (--memory only)
MODEL is lr (LogisticRegression) or rf (StandardScaler + 100-tree RandomForest); FMT is parquet
(16 files x 200k rows) or csv (the same rows).
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")

import cases  # noqa: E402
import datasets  # noqa: E402
from cases import Result, Timing  # noqa: E402
from rss import PeakRss  # noqa: E402

OUT = HERE / "out"
MODELS = ("lr", "rf")
# Models measured alone as LIMIT: gbm (LightGBM, one OpenMP thread per core by default) is the
# thread-budget figure's model.
LIMIT_MODELS = (*MODELS, "gbm")
FORMATS = {"parquet": "parquet16", "csv": "csv16"}
KINDS = ("job", "submit", "spark_udf", "pbudf", "loop")
# session-bare and fixed-10rows take seconds whatever the scale, and figure 7 subtracts one from
# the other: at least this many timed runs each, so one noisy start does not decide it.
FIXED_MIN_RUNS = 3
# The parallel predict limit's batch: the job's auto batch on the perf data's ten doubles.
PLIMIT_BATCH = 200_000


OFF = (("threads", "off"),)
SPLIT = (("max_partition_bytes", "16m"),)
NOTEBOOK = ("udf", "spark_udf_noop")  # sparkscore.spark_udf, mlflow's, into the noop sink


@dataclass(frozen=True)
class Case:
    id: str
    # limit | bare | job | submit | fixed | spark_udf | pbudf | loop | read | udf | spark_udf_noop
    # | udf_bound | plimit
    kind: str
    model: str | None = None
    dataset: str | None = None
    single_run: bool = False  # no warm-up, one timed run (the memory cases)
    settings: tuple[tuple[str, Any], ...] = ()  # the job's settings beyond the defaults


def all_cases(memory: bool) -> list[Case]:
    out = [Case(f"limit-{m}", "limit", m) for m in LIMIT_MODELS]
    out.append(Case("session-bare", "bare"))
    for m in MODELS:
        for fmt, ds in FORMATS.items():
            out += [Case(f"{m}-{fmt}-{k}", k, m, ds) for k in KINDS]
    out += [
        Case("skew-1file", "job", "rf", "skew1"),
        Case("skew-16files", "job", "rf", "skew16"),
        Case("small-20000files", "job", "lr", "small20000"),
        Case("small-20files", "job", "lr", "small20"),
        Case("small-20000files-read", "read", None, "small20000"),
        Case("small-20000files-spark_udf", "spark_udf", "lr", "small20000"),
        Case("fixed-10rows", "fixed", "lr", "tiny"),
        # The thread budget (figure 8): each worker held to its task's cores, the default,
        # against each library's own default (threads: off), on a model that starts threads.
        Case("gbm-parquet-job", "job", "gbm", "parquet16"),
        Case("gbm-parquet-job-threads_off", "job", "gbm", "parquet16", settings=OFF),
        Case("rf-parquet-job-threads_off", "job", "rf", "parquet16", settings=OFF),
        # The notebook path (figure 10): each UDF over spark.read into Spark's noop sink.
        *(Case(f"{m}-parquet-{k}", k, m, "parquet16") for m in MODELS for k in NOTEBOOK),
        # Spark's default 128 MB read partitions make 3 of the 16 files: on 2 cores the third
        # runs alone. In 16 MB partitions every core has work to the end.
        Case("rf-parquet-udf-16m", "udf", "rf", "parquet16", settings=SPLIT),
        Case("udf-bound", "udf_bound", None, "parquet16"),
    ]
    # The real predict limit (figures 9 and 10): the models in cores plain processes at once.
    out += [Case(f"plimit-{m}", "plimit", m, "parquet16") for m in MODELS]
    if memory:
        # Through spark-submit: a new JVM and new Python workers, so the worker peak is this
        # input's alone (in our session, workers would hold models cached by earlier cases).
        out += [
            Case("memory-200mb", "submit", "lr", "mem200m", single_run=True),
            Case("memory-2gb", "submit", "lr", "mem2g", single_run=True),
        ]
    return out


def select(cases_: list[Case], only: str | None) -> list[Case]:
    if not only:
        return cases_
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    chosen = {c.id for c in cases_ for p in patterns if fnmatch.fnmatchcase(c.id, p)}
    unknown = [p for p in patterns if not any(fnmatch.fnmatchcase(c.id, p) for c in cases_)]
    if unknown:
        sys.exit(
            f"error: --only {', '.join(unknown)} matches no case; cases: "
            + " ".join(c.id for c in cases_)
        )
    # What the selected cases need: LIMIT for the RF job figure, the bare session for spark-submit.
    if any(c.id in chosen and c.kind == "submit" for c in cases_):
        chosen.add("session-bare")  # fixed-10rows measures its own bare starts, in pairs
    for m in LIMIT_MODELS:
        if any(c.id in chosen and c.kind == "job" and c.id.startswith(f"{m}-") for c in cases_):
            chosen.add(f"limit-{m}")
        wanted = any(c.id in chosen and c.kind in ("job", "udf") and c.model == m for c in cases_)
        if wanted and m in MODELS:
            chosen.add(f"plimit-{m}")
    return [c for c in cases_ if c.id in chosen]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply row and file counts (e.g. 0.05 for a quick smoke run)",
    )
    p.add_argument("--only", help="comma-separated patterns of case ids (see --list)")
    p.add_argument(
        "--memory",
        action="store_true",
        help="also the 200 MB and 2 GB CSV memory cases (writes ~2.2 GB x scale once)",
    )
    p.add_argument(
        "--min-seconds",
        type=float,
        default=None,
        help="timed seconds per case (default 30 x scale)",
    )
    p.add_argument("--max-runs", type=int, default=50, help="at most this many timed runs per case")
    p.add_argument(
        "--row-group-rows",
        type=int,
        default=None,
        help="Parquet row group size (default 1,048,576 x scale: pyarrow's default at scale 1)",
    )
    p.add_argument(
        "--fresh-session",
        action="store_true",
        help="restart the SparkSession (new SparkContext, new Python workers; the JVM "
        "stays) before each in-process case, so worker peak RSS is that case's alone",
    )
    p.add_argument("--results", type=Path, default=None, help="where to write the markdown table")
    p.add_argument("--list", action="store_true", help="list the case ids and exit")
    args = p.parse_args(argv)

    chosen = select(all_cases(args.memory), args.only)
    if args.list:
        print("\n".join(c.id for c in chosen))
        return 0
    full = args.scale == 1 and not args.only
    results_path = args.results or (HERE / "RESULTS.md" if full else OUT / "RESULTS.md")
    timing = Timing(
        min_seconds=args.min_seconds if args.min_seconds is not None else 30.0 * args.scale,
        max_runs=args.max_runs,
    )
    started = time.time()
    stamp = datetime.datetime.now().astimezone()
    load_start = os.getloadavg()[0]
    if load_start > 0.5:
        print(
            f"warning: load average {load_start:.1f} before the bench starts; other work on "
            "this machine will skew the figures",
            flush=True,
        )

    # 1. Data and models, before anything is timed.
    print(
        f"sparkscore bench: scale {args.scale:g}, {len(chosen)} cases, "
        f"{timing.min_seconds:g} s timed per case",
        flush=True,
    )
    root = datasets.scale_root(args.scale)
    rg = args.row_group_rows or datasets.default_row_group_rows(args.scale)
    specs = datasets.specs(args.scale)
    data = {
        name: datasets.ensure(root, specs[name], rg)
        for name in dict.fromkeys(c.dataset for c in chosen if c.dataset)
    }
    models = datasets.ensure_models(datasets.DATA)
    print(
        f"data in {root}: "
        + ", ".join(
            f"{d.name} ({d.files} files, {d.rows:,} rows, {d.bytes / 1e6:,.0f} MB)"
            for d in data.values()
        ),
        flush=True,
    )

    results: dict[str, Result] = {}
    limits: dict[str, dict[str, Any]] = {}
    session_starts: dict[str, float] = {}
    case_out = OUT / "cases"
    logs = OUT / "logs"
    me = os.getpid()

    def log_result(r: Result) -> None:
        results[r.case] = r
        if r.error:
            return
        rate = f"{r.rate:,.0f} rows/s" if r.rate else ""
        med = f"median {r.median_s:.2f} s of {len(r.times)}" if r.times else ""
        rss = r.rss
        print(
            f"    {r.case}: {rate} {med}; peak RSS MiB driver {rss.get('driver_mib')}, "
            f"JVM {rss.get('jvm_mib')}, worker {rss.get('worker_mib')}",
            flush=True,
        )

    # 2. LIMIT, in this process before any Spark starts.
    for c in chosen:
        if c.kind == "limit":
            print(f"[{c.id}]", flush=True)
            try:
                limits[c.model] = cases.limit(
                    models[c.model], seconds=3.0 if args.scale >= 0.5 else 0.5
                )
            except Exception as e:
                cases.record_error(Result(c.id), e)

    for c in chosen:
        if c.kind == "plimit":
            print(f"[{c.id}]", flush=True)
            try:
                limits[c.id] = cases.parallel_limit(
                    models[c.model], os.cpu_count() or 1, data[c.dataset].rows, PLIMIT_BATCH
                )
            except Exception as e:
                cases.record_error(Result(c.id), e)

    # 3. Everything through spark-submit (no session of ours is up yet, so no idle JVM around).
    for c in chosen:
        if c.kind == "bare":
            print(f"[{c.id}]", flush=True)
            r = cases.bare_session_case(
                Result(c.id),
                logs,
                timing=timing,
                peak=PeakRss([], reset=False),
                min_runs=FIXED_MIN_RUNS,
            )
            log_result(r)
            if r.median_s:
                session_starts["spark-submit"] = r.median_s
    for c in chosen:
        if c.kind in ("submit", "fixed"):
            print(f"[{c.id}]", flush=True)
            ds = data[c.dataset]
            r = Result(c.id, rows=ds.rows)
            try:
                if c.kind == "fixed":
                    cases.fixed_case(
                        r,
                        models[c.model],
                        ds,
                        case_out / c.id,
                        logs,
                        timing=timing,
                        peak=PeakRss([], reset=False),
                        min_runs=FIXED_MIN_RUNS,
                    )
                else:
                    cases.submit_case(
                        r,
                        models[c.model],
                        ds,
                        case_out / c.id,
                        logs,
                        session_starts.get("spark-submit"),
                        timing=timing,
                        peak=PeakRss([], reset=False),
                        warmup=not c.single_run,
                        runs=1 if c.single_run else None,
                    )
            except Exception as e:
                cases.record_error(r, e)
            log_result(r)

    # 4. In this process's local[*] session: the job, spark_udf, predict_batch_udf, and the loop.
    inproc = [
        c
        for c in chosen
        if c.kind in ("job", "spark_udf", "pbudf", "loop", "read", "udf_bound", *NOTEBOOK)
    ]
    spark = None
    if inproc:
        spark, session_starts["in-process"] = start_session()
        print(
            f"in-process session: local[*] started in {session_starts['in-process']:.1f} s "
            f"(Spark {spark.version})",
            flush=True,
        )
    for i, c in enumerate(inproc):
        print(f"[{c.id}]", flush=True)
        if args.fresh_session and i:
            spark.stop()
            spark, _ = start_session()
        ds = data[c.dataset]
        model = models[c.model] if c.model else None
        out = case_out / c.id
        kw = {
            "timing": timing,
            "peak": PeakRss([me], driver_pid=me),
            "warmup": not c.single_run,
            "runs": 1 if c.single_run else None,
        }
        r = Result(c.id, rows=ds.rows)
        try:
            if c.kind == "job":
                cases.job_case(r, spark, model, ds, out, **dict(c.settings), **kw)
            elif c.kind == "spark_udf":
                cases.spark_udf_case(r, spark, model, ds, out, **kw)
            elif c.kind == "pbudf":
                cases.pbudf_case(r, spark, model, ds, out, **kw)
            elif c.kind == "udf":
                cases.sparkscore_udf_case(r, spark, model, ds, out, **dict(c.settings), **kw)
            elif c.kind == "spark_udf_noop":
                cases.mlflow_udf_noop_case(r, spark, model, ds, out, **kw)
            elif c.kind == "read":
                cases.read_case(r, ds, **kw)
            elif c.kind == "udf_bound":
                cases.udf_bound_case(r, spark, ds, **kw)
            else:
                cases.loop_case(r, model, ds, out, **kw)
        except Exception as e:  # setting a case up failed (measure() catches the runs' errors)
            cases.record_error(r, e)
        log_result(r)
    if spark is not None:
        spark.stop()

    # 5. Report.
    checks = consistency(chosen, results, data)
    figs = figures(chosen, results, limits, data)
    loads = (load_start, os.getloadavg()[0])
    text = report(
        args,
        stamp,
        time.time() - started,
        chosen,
        results,
        limits,
        session_starts,
        figs,
        checks,
        data,
        loads,
    )
    print()
    print(text)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(text)
    print(f"written to {results_path}")
    return 0


def timing_note(args: argparse.Namespace) -> str:
    seconds = args.min_seconds if args.min_seconds is not None else 30.0 * args.scale
    return f">= {seconds:g} s (at most {args.max_runs} runs)"


def start_session(master: str = "local[*]") -> tuple[Any, float]:
    from pyspark.sql import SparkSession

    t = time.perf_counter()
    spark = (
        SparkSession.builder.master(master)
        .appName("sparkscore-bench")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.range(1).count()
    return spark, time.perf_counter() - t


# ---------------------------------------------------------------------------------------------
# Figures


def consistency(
    chosen: list[Case], results: dict[str, Result], data: dict[str, datasets.Dataset]
) -> dict[str, str]:
    """Each case wrote every row, and the same predictions as every case on the same rows."""
    first: dict[tuple[str, str], tuple[str, float]] = {}
    out: dict[str, str] = {}
    for c in chosen:
        r = results.get(c.id)
        if r is None or r.error or r.check is None:
            continue
        ds = data[c.dataset]
        rows, total = r.check
        if rows != ds.rows:
            out[c.id] = f"wrote {rows:,} of {ds.rows:,} rows"
            continue
        key = (c.model, ds.rowset)
        if key not in first:
            first[key] = (c.id, total)
            out[c.id] = "ok"
        elif abs(first[key][1] - total) > 1e-6 * max(1.0, abs(total)):
            out[c.id] = (
                f"predictions differ from {first[key][0]} (sum {total:g} vs {first[key][1]:g})"
            )
        else:
            out[c.id] = "ok"
    return out


@dataclass
class Figure:
    number: int
    name: str
    measured: str
    baseline: str
    ratio: float | None
    target: str
    passed: bool | None  # None: not run
    bound: bool = False  # a ceiling measured to explain a figure, not a target

    @property
    def verdict(self) -> str:
        if self.bound:
            return "bound" if self.ratio is not None else "not run"
        return "not run" if self.passed is None else ("PASS" if self.passed else "FAIL")


def figures(
    chosen: list[Case],
    results: dict[str, Result],
    limits: dict[str, dict],
    data: dict[str, datasets.Dataset],
) -> list[Figure]:
    cores = os.cpu_count() or 1
    ok = {k: r for k, r in results.items() if not r.error and r.rate}

    def rate(case: str) -> str:
        r = ok.get(case)
        return (
            f"{r.rate:,.0f} rows/s ({case})"
            if r
            else f"{case}: " + ("error" if case in results else "not run")
        )

    def ratio(num: str, den: str) -> float | None:
        if num in ok and den in ok:
            return ok[num].rate / ok[den].rate
        return None

    def verdict(value: float | None, good) -> bool | None:
        return None if value is None else bool(good(value))

    figs: list[Figure] = []
    for fmt in FORMATS:
        case = f"rf-{fmt}-job"
        lim = limits.get("rf")
        value = ok[case].rate / (cores * lim["rate"]) if case in ok and lim else None
        base = (
            f"{cores} cores x LIMIT {lim['rate']:,.0f} = {cores * lim['rate']:,.0f} rows/s"
            if lim
            else "LIMIT not run"
        )
        figs.append(
            Figure(
                1,
                f"predict-bound: RF job on {fmt} / (cores x LIMIT)",
                rate(case),
                base,
                value,
                ">= 0.85",
                verdict(value, lambda v: v >= 0.85),
            )
        )
    for fmt, want in (("parquet", 3.0), ("csv", 4.0)):
        v = ratio(f"lr-{fmt}-job", f"lr-{fmt}-spark_udf")
        figs.append(
            Figure(
                2,
                f"I/O-bound: LR job / spark_udf on {fmt}",
                rate(f"lr-{fmt}-job"),
                rate(f"lr-{fmt}-spark_udf"),
                v,
                f">= {want:g}",
                verdict(v, lambda x, w=want: x >= w),
            )
        )
    for fmt in FORMATS:
        v = ratio(f"lr-{fmt}-job", f"lr-{fmt}-loop")
        figs.append(
            Figure(
                2,
                f"I/O-bound: LR job / single-process loop on {fmt}",
                rate(f"lr-{fmt}-job"),
                rate(f"lr-{fmt}-loop"),
                v,
                ">= 1.6",
                verdict(v, lambda x: x >= 1.6),
            )
        )
    v = ratio("skew-1file", "skew-16files")
    figs.append(
        Figure(
            3,
            "skew: one file / the same rows in 16 files (RF job)",
            rate("skew-1file"),
            rate("skew-16files"),
            v,
            ">= 0.8",
            verdict(v, lambda x: x >= 0.8),
        )
    )
    v = ratio("small-20000files", "small-20files")
    n_small = data["small20000"].files if "small20000" in data else 20000
    figs.append(
        Figure(
            4,
            f"small files: {n_small:,} files / the same rows in 20 (LR job)",
            rate("small-20000files"),
            rate("small-20files"),
            v,
            ">= 0.5",
            verdict(v, lambda x: x >= 0.5),
        )
    )
    read = ok.get("small-20000files-read")
    if read and "small-20files" in ok:
        # Not a target: the ceiling of figure 4 when every core does nothing but read the files.
        figs.append(
            Figure(
                4,
                f"small files, its bound: cores x pyarrow reading the {n_small:,} "
                "files alone / the 20-file job",
                f"{cores} cores x {read.rate:,.0f} = {cores * read.rate:,.0f} rows/s "
                "(small-20000files-read)",
                rate("small-20files"),
                cores * read.rate / ok["small-20files"].rate,
                "(a bound, not a target)",
                None,
                bound=True,
            )
        )
    figs += small_file_figures(ok, rate, n_small, cores)
    done = {k: r for k, r in results.items() if not r.error and r.times}
    big, mid = done.get("memory-2gb"), done.get("memory-200mb")
    big_w = big.rss.get("worker_mib") if big else None
    mid_w = mid.rss.get("worker_mib") if mid else None
    big_s = (
        f"{big_w:,.0f} MiB ({data['mem2g'].bytes / 1e9:.2f} GB CSV)"
        if big_w
        else "memory-2gb: not run (--memory)"
    )
    mid_s = (
        f"{mid_w:,.0f} MiB ({data['mem200m'].bytes / 1e6:.0f} MB CSV)"
        if mid_w
        else "memory-200mb: not run (--memory)"
    )
    figs.append(
        Figure(
            5,
            "flat memory: worker peak RSS on the 2 GB CSV",
            big_s,
            "1 GiB",
            big_w / 1024 if big_w else None,
            "< 1 GiB",
            verdict(big_w, lambda x: x < 1024),
        )
    )
    v = big_w / mid_w if big_w and mid_w else None
    figs.append(
        Figure(
            5,
            "flat memory: worker peak 2 GB CSV / 200 MB CSV",
            big_s,
            mid_s,
            v,
            "<= 1.2",
            verdict(v, lambda x: x <= 1.2),
        )
    )
    runs = [
        (k, loads, workers)
        for k, r in results.items()
        if not r.error
        for loads, workers in r.job_runs
    ]
    if runs:
        worst = max(runs, key=lambda t: (t[1] / t[2]) if t[2] else float("inf"))
        bad = [t for t in runs if t[2] == 0 or t[1] != t[2]]
        worst_ratio = worst[1] / worst[2] if worst[2] else None
        figs.append(
            Figure(
                6,
                "model loads per Python worker, every job run",
                f"{len(runs)} runs; worst: {worst[1]} loads / {worst[2]} workers ({worst[0]})",
                "_summary.json model_loads / python_workers",
                worst_ratio,
                "== 1 in every run",
                not bad,
            )
        )
    else:
        figs.append(
            Figure(
                6,
                "model loads per Python worker, every job run",
                "no job run",
                "",
                None,
                "== 1 in every run",
                None,
            )
        )
    fixed = done.get("fixed-10rows")
    if fixed and "extra_s" in fixed.notes:
        extra = fixed.notes["extra_s"]
        figs.append(
            Figure(
                7,
                "fixed cost: spark-submit job on 10 rows - bare session start",
                f"{fixed.median_s:.1f} s (fixed-10rows, job end to end)",
                f"{fixed.notes['bare_s']:.1f} s (bare start, paired runs)",
                extra,
                "<= 5 s (median of paired differences)",
                extra <= 5.0,
            )
        )
    else:
        figs.append(
            Figure(
                7,
                "fixed cost: spark-submit job on 10 rows - bare session start",
                "not run",
                "",
                None,
                "<= 5 s",
                None,
            )
        )
    figs += thread_figures(ok, limits, rate, ratio, verdict)
    figs += parallel_figures(ok, limits, rate, ratio, verdict)
    return figs


def small_file_figures(ok, rate, n_small: int, cores: int) -> list[Figure]:
    """Figure 4 against its bound (issue 22): the job and mlflow's spark_udf, its peer, on the
    small files, each against cores x pyarrow reading them and nothing else."""
    read = ok.get("small-20000files-read")
    figs = []
    for case, target in (("small-20000files", 0.9), ("small-20000files-spark_udf", None)):
        value = ok[case].rate / (cores * read.rate) if case in ok and read else None
        figs.append(
            Figure(
                4,
                f"small files: {'LR job' if target else 'peer: mlflow spark_udf (LR)'} on "
                f"{n_small:,} files / (cores x pyarrow reading them)",
                rate(case),
                f"{cores} cores x {read.rate:,.0f} = {cores * read.rate:,.0f} rows/s"
                if read
                else "small-20000files-read: not run",
                value,
                f">= {target:g}" if target else "(the peer, for comparison)",
                None if value is None or target is None else value >= target,
                bound=target is None,
            )
        )
    return figs + small_file_ceiling(ok, rate, n_small, cores)


def small_file_ceiling(ok, rate, n_small: int, cores: int) -> list[Figure]:
    """What figure 4's bound leaves out: the job must also predict and write the rows, which the
    20-file job does for the same rows. Its ceiling is the time of both, reading the files
    (cores x pyarrow) and the 20-file job, with nothing spent per file beyond the reading."""
    read, twenty = ok.get("small-20000files-read"), ok.get("small-20files")
    if not (read and twenty):
        return []
    bound = cores * read.rate
    ceiling = 1 / (1 / bound + 1 / twenty.rate)
    job = ok.get("small-20000files")
    where = f"{cores} cores x pyarrow reading the {n_small:,} files, then the 20-file job"
    figs = [
        Figure(
            4,
            f"small files, its ceiling: {where} / the reading bound",
            f"{ceiling:,.0f} rows/s",
            f"{bound:,.0f} rows/s",
            ceiling / bound,
            "(the most figure 4 can reach)",
            None,
            bound=True,
        )
    ]
    if job:
        figs.append(
            Figure(
                4,
                "small files: LR job / its ceiling (what the job spends per file beyond reading)",
                rate("small-20000files"),
                f"{ceiling:,.0f} rows/s",
                job.rate / ceiling,
                "(for comparison)",
                None,
                bound=True,
            )
        )
    return figs


def parallel_figures(ok, limits, rate, ratio, verdict) -> list[Figure]:
    """Figures 9 and 10: the jobs and the notebook path against the real predict limit, the
    model predicting in cores plain processes at once."""
    figs = []
    for number, case, target in (
        (9, "rf-parquet-job", 0.95),
        (9, "rf-csv-job", 0.9),
        (10, "rf-parquet-udf", 0.8),
        (10, "rf-parquet-udf-16m", 0.8),
    ):
        lim = limits.get("plimit-rf")
        value = ok[case].rate / lim["rate"] if case in ok and lim else None
        figs.append(
            Figure(
                number,
                f"{'notebook path' if number == 10 else 'real predict limit'}: {case} "
                "/ parallel LIMIT",
                rate(case),
                f"{lim['processes']} processes: {lim['rate']:,.0f} rows/s (plimit-rf)"
                if lim
                else "plimit-rf: not run",
                value,
                f">= {target:g}",
                verdict(value, lambda v, t=target: v >= t),
            )
        )
    v = ratio("lr-parquet-udf", "lr-parquet-spark_udf_noop")
    figs.append(
        Figure(
            10,
            "notebook path: LR sparkscore.spark_udf / mlflow spark_udf (noop sink)",
            rate("lr-parquet-udf"),
            rate("lr-parquet-spark_udf_noop"),
            v,
            ">= 4",
            verdict(v, lambda x: x >= 4),
        )
    )
    # Not targets: what any UDF on this path costs (Spark reading, Arrow both ways), as the most
    # the LR ratio could reach, and how much of that ceiling sparkscore's UDF reaches.
    for name, num, den in (
        (
            "notebook path, its bound: an Arrow UDF returning a constant / mlflow spark_udf",
            "udf-bound",
            "lr-parquet-spark_udf_noop",
        ),
        ("notebook path: LR sparkscore.spark_udf / its bound", "lr-parquet-udf", "udf-bound"),
    ):
        v = ratio(num, den)
        if v is not None:
            figs.append(
                Figure(10, name, rate(num), rate(den), v, "(a bound, not a target)", None, True)
            )
    return figs


def thread_figures(ok, limits, rate, ratio, verdict) -> list[Figure]:
    """Figure 8: the thread budget, on LightGBM (threads of its own) and the RF (none)."""
    cores = os.cpu_count() or 1
    lim = limits.get("gbm")
    base = (
        f"{cores} cores x LIMIT {lim['rate']:,.0f} = {cores * lim['rate']:,.0f} rows/s"
        if lim
        else "LIMIT not run"
    )
    figs = []
    for case, target in (("gbm-parquet-job", 0.9), ("gbm-parquet-job-threads_off", None)):
        value = ok[case].rate / (cores * lim["rate"]) if case in ok and lim else None
        figs.append(
            Figure(
                8,
                f"threads: LightGBM job ({'budget' if target else 'threads: off'}) "
                "/ (cores x LIMIT)",
                rate(case),
                base,
                value,
                f">= {target:g}" if target else "(today's default, for comparison)",
                verdict(value, lambda v, t=target: v >= t) if target else None,
                bound=target is None,
            )
        )
    v = ratio("rf-parquet-job", "rf-parquet-job-threads_off")
    figs.append(
        Figure(
            8,
            "threads: RF job with the budget / with threads: off",
            rate("rf-parquet-job"),
            rate("rf-parquet-job-threads_off"),
            v,
            ">= 0.97 (no worse)",
            verdict(v, lambda x: x >= 0.97),
        )
    )
    return figs


# ---------------------------------------------------------------------------------------------
# Report


def md_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    return "\n".join(
        [
            line(header),
            "|" + "|".join("-" * (w + 2) for w in widths) + "|",
            *(line(r) for r in rows),
        ]
    )


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        with open("/proc/meminfo") as f:
            mem = next(int(row.split()[1]) for row in f if row.startswith("MemTotal"))
        memory = f"{mem / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        memory = "unknown"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
    }


def versions() -> dict[str, str]:
    import mlflow
    import pandas
    import pyarrow
    import pyspark
    import sklearn

    java = "unknown"
    try:
        java = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, timeout=30
        ).stderr.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        pass
    commit = "unknown"
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "sparkscore", "jobs", "conf"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        commit = commit or "unknown (not a git checkout)"
        if dirty:
            commit += " + uncommitted changes in sparkscore/ jobs/ conf/"
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "python": platform.python_version(),
        "pyspark": pyspark.__version__,
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
        "scikit-learn": sklearn.__version__,
        "mlflow": mlflow.__version__,
        "java": java,
        "sparkscore": commit,
    }


def fmt_num(x: float | None, spec: str = ",.0f") -> str:
    return "" if x is None else format(x, spec)


def report(
    args: argparse.Namespace,
    stamp: datetime.datetime,
    elapsed: float,
    chosen: list[Case],
    results: dict[str, Result],
    limits: dict[str, dict],
    session_starts: dict[str, float],
    figs: list[Figure],
    checks: dict[str, str],
    data: dict[str, datasets.Dataset],
    loads: tuple[float, float],
) -> str:
    m, v = machine(), versions()
    cmd = "bench/run.py " + " ".join(sys.argv[1:])
    out = [
        "# sparkscore benchmark results",
        "",
        f"Run {stamp:%Y-%m-%d %H:%M %Z} with `{cmd.strip()}` (scale {args.scale:g}; "
        f"{elapsed / 60:.1f} min). Targets: issues 6 (figures 1-7) and 22 (4 against its "
        f"bound, 8-10). Machine: {m['cpu']}, {m['cores']} cores, "
        f"{m['memory']}, {m['os']}.",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        f"Load average (1 min): {loads[0]:.2f} at the start, {loads[1]:.2f} at the end (the "
        "bench's own load shows in the second; anything else running skews every figure).",
        "How cost grows with rows and files (issue 22's other figures): RESULTS-scale.md, from "
        "`make bench-scale`, which `make bench` runs next.",
        "",
        "## Figures",
        "",
        md_table(
            ["#", "figure", "measured", "baseline", "ratio", "target", "result"],
            [
                [
                    str(f.number),
                    f.name,
                    f.measured,
                    f.baseline,
                    fmt_num(f.ratio, ".2f"),
                    f.target,
                    f.verdict,
                ]
                for f in figs
            ],
        ),
        "",
        "## Cases",
        "",
    ]
    rows = []
    for key, lim in limits.items():
        if "processes" in lim:
            note = f"{lim['processes']} plain processes at once, batches of {lim['batch']:,} rows"
        else:
            by = ", ".join(f"{s // 1000}k: {r:,.0f}" for s, r in lim["by_batch"].items())
            note = f"single thread, best batch {lim['batch']:,} rows ({by})"
        rows.append(
            [
                key if key.startswith("plimit-") else f"limit-{key}",
                "",
                fmt_num(lim["rate"]),
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                note,
            ]
        )
    for c in chosen:
        r = results.get(c.id)
        if c.kind == "limit" or r is None:
            continue
        if r.error:
            rows.append([c.id, fmt_num(r.rows), "", "", "", "", "", "", "", "ERROR", r.error])
            continue
        rss = r.rss
        workers = (
            f"{fmt_num(rss.get('worker_mib'))} ({rss.get('workers')})"
            if rss.get("worker_mib")
            else ""
        )
        notes = []
        if c.kind == "fixed":
            notes.append(
                "each run paired with a bare start just before it: "
                + ", ".join(f"{j:.1f}-{b:.1f}" for b, j in r.notes.get("pairs", []))
                + f" s; median difference {r.notes.get('extra_s', 0):.1f} s"
            )
        if c.kind == "submit":
            net = r.net_s
            notes.append(
                f"end to end {r.median_s:.1f} s ({r.notes.get('e2e_rows_per_s', 0):,.0f}"
                f" rows/s) - session start {r.subtract_s:.1f} s = {net:.1f} s"
                + (" (no rows/s: not longer than a bare start)" if net <= 0 else "")
            )
        if c.kind == "bare":
            notes.append("spark-submit: SparkSession + spark.range(1).count()")
        if r.notes.get("job_rows_per_s"):
            notes.append(f"job's own rows_per_s {r.notes['job_rows_per_s']:,.0f}")
        if r.notes.get("mini_batches"):
            notes.append(f"{r.notes['mini_batches']} mini-batches")
        if r.notes.get("partitions"):
            notes.append(f"spark.read: {r.notes['partitions']} partitions")
        if r.job_runs:
            loads = sorted({f"{a}/{b}" for a, b in r.job_runs})
            notes.append("model_loads/python_workers " + ", ".join(loads))
        if rss and not rss.get("reset_ok", True):
            notes.append("peak RSS could not be reset: includes earlier cases")
        rows.append(
            [
                c.id,
                fmt_num(r.rows),
                fmt_num(r.rate) if c.kind != "fixed" else "",
                fmt_num(r.median_s, ".2f"),
                f"{len(r.times)}" + (f" (+{r.warmup_s:.1f} s warm-up)" if r.warmup_s else ""),
                fmt_num(r.spread * 100 if r.spread is not None else None, ".0f"),
                fmt_num(rss.get("driver_mib")),
                fmt_num(rss.get("jvm_mib")),
                workers,
                checks.get(c.id, ""),
                "; ".join(notes),
            ]
        )
    out.append(
        md_table(
            [
                "case",
                "rows",
                "rows/s",
                "median s",
                "timed runs",
                "spread %",
                "driver MiB",
                "JVM MiB",
                "worker MiB (procs)",
                "output check",
                "notes",
            ],
            rows,
        )
    )
    starts = ", ".join(f"{k} {s:.1f} s" for k, s in session_starts.items())
    out += [
        "",
        f"Session start: {starts or 'not measured'}.",
        "",
        "## How to read this",
        "",
        "- rows/s: input rows / median wall seconds of the timed runs (after one untimed warm-up;"
        f" timed runs until they add up to {timing_note(args)}, one run if a run is longer). For "
        "`*-submit` the bare spark-submit session start (session-bare) is subtracted first; the "
        "end-to-end time is in the notes.",
        "- LIMIT: the raw scikit-learn model's predict on an in-memory pandas frame, one thread "
        "(threadpoolctl, n_jobs=1), best of 10k/50k/200k-row batches; ideal = LIMIT x cores.",
        "- job: `sparkscore.score(spark, model, input, out, overwrite=True, report=False)`, "
        "default settings but for the report (profiled; report.html is a fixed cost per run, "
        "0.25 to 0.55 s on the driver, measured by bench/profile_cost.py), in "
        "this process's `local[*]` session (one session for all in-process cases"
        + (", restarted before each case (--fresh-session)" if args.fresh_session else "")
        + "); it writes file_name, row, prediction. spark_udf "
        "(`mlflow.pyfunc.spark_udf(spark, model, env_manager='local')`, whose default Spark type "
        "for this [-1] int64 tensor output is a one-element array<bigint>) and pbudf "
        "(`predict_batch_udf`, batch_size 10000, long) read with spark.read (CSV: header, explicit "
        "schema) and write id + prediction to Parquet; each UDF is made once per case, untimed. "
        "loop: one process, pyarrow batches (Parquet 65,536 rows, CSV 16 MiB blocks), mlflow "
        "pyfunc predict, one Parquet file of id + prediction per input file.",
        "- skew, small files: the in-process job. small-20000files-read: this process alone, one "
        "thread, `pq.ParquetFile(pa.BufferReader(bytes)).read()` of each of the 20,000 files "
        "and nothing else; cores "
        "times its rate is the most any pyarrow-based scorer could reach on them (the 'bound' "
        "row under figure 4). udf-bound: an Arrow UDF (`arrow_udf`) given the ten feature columns "
        "in one struct as the other UDFs are, returning 0.0 for each row without reading them, "
        "over spark.read into the noop sink: Spark's reading and the Arrow transfer both ways, "
        "the least any UDF on figure 10's path costs. memory-*: spark-submit jobs/score.py, one "
        "run, no warm-up, so the Python workers are new and the peak is that input's alone. "
        "session-bare: at least 3 timed runs. fixed-10rows: at least 3 timed pairs of (a bare "
        "start, then the job on 10 rows), figure 7 = the median of the pairs' differences.",
        "- Peak RSS (MiB): the largest VmHWM of any one process of that role during the case "
        "(warm-up and timed runs); procs: Python daemon and worker processes seen. At the case "
        "start every live process's VmHWM is reset (/proc/<pid>/clear_refs) to its current RSS: "
        "a reused process (our driver, our JVM, reused Python workers) therefore counts at least "
        "what it already held, e.g. models cached by earlier cases, unless --fresh-session. "
        "Sampled every 0.25 s so processes that exit during the case count. The in-process driver "
        "is the benchmark process itself. RSS includes shared pages.",
        "- output check: every case's output holds every input row, and the same predictions "
        "(sum of the prediction column) as every other case on the same rows and model.",
        "- Data: "
        + "; ".join(
            f"{d.name}: {d.files:,} {d.fmt} files, {d.rows:,} rows, {d.bytes / 1e6:,.0f} MB"
            for d in data.values()
        )
        + ".",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
