"""Where a job's CPU goes (issue 22, item 5): each process's and each JVM thread's share.

    .venv/bin/python bench/cpu_split.py [--model rf] [--dataset parquet16] [--kind job|udf]
        [--runs 3] [--plimit ROWS_PER_S]

Figure 9 compares the RF job with the parallel predict limit (the model predicting in cores
plain processes). This accounts for the rest: in one `local[2]` session, after one warm-up, each
timed run of the job (or of `sparkscore.spark_udf` over spark.read into the noop sink) is
bracketed by readings of /proc/<pid>/stat (user + system CPU) of this process (the driver), the
JVM and its Python workers, and of /proc/<jvm>/task/*/stat by thread name. Per run: the wall
time, the cores' capacity (wall x cores), each role's CPU seconds, what no process used (idle)
and the JVM's busiest thread groups; printed and written to bench/out/cpu_split.txt. The
workers' CPU is set against what plain processes spend predicting the same rows (rows / (the
parallel limit / cores), the limit given with --plimit or measured as run.py's plimit case
does), so the rest is the workers' own overhead: reading, enforcing, Arrow, writing.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cases  # noqa: E402
import datasets  # noqa: E402
import rss  # noqa: E402
import run  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(stat_path: str) -> float | None:
    try:
        with open(stat_path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def thread_name(path: str) -> str:
    try:
        with open(path) as f:
            name = f.read().strip()
    except OSError:
        return "?"
    return re.sub(r"[\d-]+$", "", name).strip() or name


def snapshot(me: int) -> dict[tuple[str, str], float]:
    """CPU seconds so far by (role, name): processes by role, the JVM's threads by name."""
    out: Counter[tuple[str, str]] = Counter()
    for pid in rss.tree(me):
        role = rss.role(pid, rss._cmdline(pid), me) or "other"
        if role == "jvm":
            for tid in os.listdir(f"/proc/{pid}/task"):
                cpu = cpu_seconds(f"/proc/{pid}/task/{tid}/stat")
                if cpu is not None:
                    out[("jvm", thread_name(f"/proc/{pid}/task/{tid}/comm"))] += cpu
            continue
        cpu = cpu_seconds(f"/proc/{pid}/stat")
        if cpu is not None:
            out[(role, "")] += cpu
    return dict(out)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="rf", choices=("lr", "rf"))
    p.add_argument("--dataset", default="parquet16")
    p.add_argument("--kind", default="job", choices=("job", "udf"))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--plimit", type=float, default=0, help="the parallel limit, rows/s")
    p.add_argument(
        "--max-partition-bytes",
        default=None,
        help="spark.sql.files.maxPartitionBytes for --kind udf (default: Spark's, 128m)",
    )
    args = p.parse_args(argv)
    root = datasets.scale_root(1.0)
    ds = datasets.ensure(
        root, datasets.specs(1.0)[args.dataset], datasets.default_row_group_rows(1.0)
    )
    model = datasets.ensure_models(root)[args.model]
    cores = os.cpu_count() or 1
    plimit = args.plimit or cases.parallel_limit(model, cores, ds.rows, run.PLIMIT_BATCH)["rate"]
    spark, _ = run.start_session("local[2]")
    if args.max_partition_bytes:
        spark.conf.set("spark.sql.files.maxPartitionBytes", args.max_partition_bytes)
    once = _work(args.kind, spark, model, ds)
    once()  # warm-up: the workers forked and the model loaded
    me = os.getpid()
    lines: list[str] = []
    for i in range(args.runs):
        before, t = snapshot(me), time.perf_counter()
        once()
        wall, after = time.perf_counter() - t, snapshot(me)
        used = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
        roles: Counter[str] = Counter()
        for (role, _), s in used.items():
            roles[role] += s
        predict = ds.rows / (plimit / cores)
        lines.append(
            f"run {i + 1}: {ds.rows:,} rows in {wall:.2f} s ({ds.rows / wall:,.0f} rows/s, "
            f"{ds.rows / wall / plimit:.2f} of the parallel limit {plimit:,.0f}); "
            f"capacity {wall * cores:.2f} CPU s"
        )
        for role, s in roles.most_common():
            lines.append(f"  {role:8} {s:6.2f} s  {s / (wall * cores):5.1%}")
        idle = wall * cores - sum(roles.values())
        lines.append(f"  {'idle':8} {idle:6.2f} s  {idle / (wall * cores):5.1%}")
        lines.append(
            f"  workers' CPU beyond plain processes' predict of the same rows ({predict:.2f} s): "
            f"{roles['worker'] - predict:.2f} s"
        )
        jvm = sorted(((s, n) for (r, n), s in used.items() if r == "jvm" and s > 0), reverse=True)
        lines.append("  JVM threads: " + ", ".join(f"{n} {s:.2f} s" for s, n in jvm[:8]))
    spark.stop()
    print("\n".join(lines))
    (run.OUT / "cpu_split.txt").write_text(
        f"{args.kind}, {args.model} on {args.dataset}, local[{cores}]:\n" + "\n".join(lines) + "\n"
    )
    return 0


def _work(kind: str, spark, model: Path, ds: datasets.Dataset):
    import sparkscore

    out = run.OUT / "cpu_split"
    if kind == "job":
        return lambda: sparkscore.score(
            spark, str(model), str(ds.path), str(out), overwrite=True, report=False
        )
    udf = sparkscore.spark_udf(spark, str(model))

    def noop() -> None:
        from pyspark.sql import functions as F

        df = cases.spark_read(spark, ds)
        print(f"spark.read: {df.rdd.getNumPartitions()} partitions", flush=True)
        scored = df.withColumn("prediction", udf(*[F.col(c) for c in cases.FEATURES]))
        scored.select("id", "prediction").write.format("noop").mode("overwrite").save()

    return noop


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
