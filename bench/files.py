"""Files on the driver: listing, planning, a full run and a resume over many tiny files.

    python bench/files.py [--counts 10000,100000,1000000] [--run 100000] [--csv-rows 3200000]
        [--s3 100000]

For each count, a folder of that many one-row CSV files (the perf data's ten columns, made once
under bench/data/files/) is planned in a fresh Python process: `planner.plan` with two task
slots, its seconds and the process's peak RSS (what the driver pays to list and plan).
`sparkscore plan` (which also reads each file's header against the signature) runs on the
counts up to --run. On the --run count, `sparkscore score` scores every file (local[2]), then
`job.prepare` with `resume: true` measures the resume check: listing, planning and reading the
committed manifests, with no Spark. Targets (issue 22): planning linear in files and under 60 s
for 1M local files, driver peak RSS under 1 GiB for 1M files, resume's check under 10 s for
100k committed files. Last, `output_format: csv` consolidation on the driver
(`writers.write_csv`) of --csv-rows predictions in 16 parts (issue 22, item 7); --run 0 and
--csv-rows 0 leave those two out.

With --s3 N, a local S3 server (moto, as the tests use) runs in this process and N such files
are put straight into its in-memory store (~15k files/s; through HTTP moto takes 55-180 a
second). `planner.plan` of `s3://bench/files-N` is then measured as the local folder's is,
listing through pyarrow's S3 filesystem, 1,000 keys a request, beside a bare recursive
`get_file_info` of the same keys (which also counts them). Both grow faster than linear for
moto's reasons, not ours: moto answers each page by scanning and sorting every key in the
bucket, so N keys cost N/1000 scans of N keys (its listing code, 0.3 s in all at 10k keys, 32 s
at 100k); the plan's own work is ~20 us a file at each count.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import datasets  # noqa: E402

# Peak RSS is the kernel's VmHWM, which starts afresh at exec: getrusage's ru_maxrss would
# carry this (parent) process's peak over into the child and report it instead.
PEAK = """
def peak_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""

PLAN = (
    PEAK
    + """
import json, sys, time
from sparkscore.planner import plan
t = time.perf_counter()
p = plan(sys.argv[1], parallelism=2)
print(json.dumps({"seconds": time.perf_counter() - t, "files": len(p.files),
                  "batches": len(p.batches),
                  "rss_mib": peak_mib()}))
"""
)

RESUME = (
    PEAK
    + """
import json, sys, time
from sparkscore.preparation import prepare
from sparkscore.settings import Settings
model, folder, out = sys.argv[1:]
t = time.perf_counter()
job = prepare(model, folder, out, Settings(resume=True), parallelism=2)
todo = [b for b in job.plan.batches if b.index not in job.committed]
print(json.dumps({"seconds": time.perf_counter() - t, "committed": len(job.committed),
                  "todo": len(todo),
                  "rss_mib": peak_mib()}))
"""
)

CONSOLIDATE = (
    PEAK
    + """
import json, sys, time
import numpy as np, pyarrow as pa
from sparkscore.layout import OutputLayout
from sparkscore.writers import write_csv, write_part
root, rows = sys.argv[1], int(sys.argv[2])
layout = OutputLayout.at(root, "csv")
fs = layout.filesystem()
each = rows // 16
for i in range(16):  # the parts 16 tasks commit: row, a float prediction, file_name, an id
    table = pa.table({"row": np.arange(each), "prediction": np.random.default_rng(i).random(each),
                      "file_name": [f"data-{i:03d}.parquet"] * each,
                      "id": np.arange(each) + i * each})
    write_part(fs, layout.part(layout.predictions, i), table.schema, iter(table.to_batches()))
t, cpu = time.perf_counter(), time.process_time()
written = write_csv(fs, layout, list(range(16)), ["id"])
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - cpu,
                  "rows": written, "rss_mib": peak_mib()}))
"""
)


def tiny_files(count: int) -> Path:
    """`count` one-row CSV files of the perf data's columns, written once."""
    folder = datasets.DATA / "files" / str(count)
    done = folder / "_complete"
    if done.exists():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    print(f"  writing {count:,} files in {folder} ...", flush=True)
    for i in range(count):
        (folder / f"f{i:07d}.csv").write_text(tiny_csv(i))
    done.touch()
    return folder


def tiny_csv(i: int) -> str:
    """File `i` of a tiny-files folder: the header and one row."""
    header = ",".join(["id", *datasets.FEATURES])
    values = ",".join(f"{((i * 7 + j) % 13) / 13:.3f}" for j in range(10))
    return f"{header}\n{i},{values}\n"


def child(code: str, *args: str) -> dict:
    out = subprocess.run(
        # -P: the current folder is not put first on sys.path, so PYTHONPATH picks sparkscore.
        [sys.executable, "-P", "-c", code, *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed(command: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - t


def s3_plan(count: int) -> str:
    """`planner.plan` over `count` one-row files on a local S3 server, in a fresh process."""
    import logging
    import socket

    import pyarrow.fs as pafs
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.s3.models import s3_backends

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer("127.0.0.1", port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        fs = pafs.S3FileSystem(
            endpoint_override=endpoint, access_key="testing", secret_key="testing",
            region="us-east-1", scheme="http", allow_bucket_creation=True,
        )  # fmt: skip
        fs.create_dir("bench")
        # The server runs in this process, so the files go straight into its store: a PUT
        # through HTTP costs moto ~15 ms of Python under its one GIL, whatever the concurrency
        # (55 files/s through pyarrow, 180 through boto3), and 100k would take 10-30 minutes.
        store = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        prefix = f"files-{count}"
        t = time.perf_counter()
        for i in range(count):
            store.put_object("bench", f"{prefix}/f{i:07d}.csv", tiny_csv(i).encode())
        print(f"  put {count:,} files in {endpoint} in {time.perf_counter() - t:.1f} s")
        # The same listing bare, to tell moto's and pyarrow's share of the plan from ours.
        t = time.perf_counter()
        listed = fs.get_file_info(pafs.FileSelector(f"bench/{prefix}", recursive=True))
        bare = time.perf_counter() - t
        if len(listed) != count:
            raise RuntimeError(f"{len(listed):,} keys listed in s3://bench/{prefix}, not {count:,}")
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        out = subprocess.run(
            [sys.executable, "-P", "-c", PLAN, f"s3://bench/{prefix}"],
            check=True, capture_output=True, text=True, env={**os.environ, **env},
        )  # fmt: skip
        planned = json.loads(out.stdout.strip().splitlines()[-1])
        if planned["files"] != count:
            raise RuntimeError(f"{planned['files']:,} files planned on S3, not {count:,}")
    finally:
        server.stop()
    return (
        f"plan {count:>9,} files on S3 (moto, local): {planned['seconds']:7.2f} s "
        f"({planned['seconds'] / count * 1e6:5.1f} us/file), {planned['batches']} mini-batches, "
        f"peak RSS {planned['rss_mib']:,.0f} MiB; pyarrow's bare listing {bare:.2f} s "
        f"({bare / count * 1e6:.1f} us/key)"
    )


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench/files.py", description=__doc__.split("\n")[0])
    p.add_argument("--counts", default="10000,100000,1000000")
    p.add_argument("--run", type=int, default=100_000, help="the count scored and resumed")
    p.add_argument("--csv-rows", type=int, default=3_200_000, help="rows consolidated (0: none)")
    p.add_argument("--s3", type=int, default=0, help="files planned on a local S3 server (0: none)")
    args = p.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    model = datasets.ensure_models(datasets.DATA)["lr"]
    sparkscore = str(Path(sys.executable).parent / "sparkscore")
    rows = []
    for count in counts:
        folder = tiny_files(count)
        planned = child(PLAN, str(folder))
        line = (
            f"plan {count:>9,} files: {planned['seconds']:7.2f} s "
            f"({planned['seconds'] / count * 1e6:5.1f} us/file), {planned['batches']} "
            f"mini-batches, peak RSS {planned['rss_mib']:,.0f} MiB"
        )
        if count <= args.run:
            cli = timed([sparkscore, "plan", "--model", str(model), "--input", str(folder)])
            line += f"; sparkscore plan {cli:.1f} s"
        print(line, flush=True)
        rows.append(line)
    if args.run:
        folder = tiny_files(args.run)
        out = HERE / "out" / f"files-{args.run}"
        shutil.rmtree(out, ignore_errors=True)
        env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
        t = time.perf_counter()
        subprocess.run(
            [sparkscore, "score", "--master", "local[2]", "--model", str(model), "--input",
             str(folder), "--output", str(out)],
            check=True, capture_output=True, text=True, env=env,
        )  # fmt: skip
        scored = time.perf_counter() - t
        summary = json.loads((out / "_summary.json").read_text())
        resumed = child(RESUME, str(model), str(folder), str(out))
        line = (
            f"score {args.run:,} files: {scored:.1f} s end to end, {summary['rows_scored']:,} "
            f"rows, {summary['input']['mini_batches']} mini-batches; resume check "
            f"{resumed['seconds']:.2f} s ({resumed['committed']} committed, {resumed['todo']} "
            f"to do), peak RSS {resumed['rss_mib']:,.0f} MiB"
        )
        print(line, flush=True)
        rows.append(line)
    if args.csv_rows:
        out = HERE / "out" / "csv-consolidation"
        shutil.rmtree(out, ignore_errors=True)
        done = child(CONSOLIDATE, str(out), str(args.csv_rows))
        line = (
            f"csv consolidation {done['rows']:,} rows: {done['seconds']:.2f} s "
            f"({done['cpu']:.2f} s CPU, {done['rows'] / done['seconds'] / 1e6:.2f}M rows/s), "
            f"peak RSS {done['rss_mib']:,.0f} MiB"
        )
        print(line, flush=True)
        rows.append(line)
        shutil.rmtree(out, ignore_errors=True)
    if args.s3:
        line = s3_plan(args.s3)
        print(line, flush=True)
        rows.append(line)
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "files.txt").write_text("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
