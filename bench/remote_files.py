"""Small files on object storage: one task's mini-batch read with and without fetching ahead.

A local S3 server (moto, in its own process) answers at once, so this puts a proxy in front of
it that holds each request for `--delay-ms` before passing it on, as a store's round trip does
(S3 answers a small GET in tens of milliseconds). The task's work, `scoring.score_batch` over
one mini-batch of `--files` 100-row Parquet files (the small20000 set's), runs in this process
with the files fetched ahead (sparkscore.prefetch, the default) and read one after the other,
alternating, after one untimed run of each; it prints the wall seconds of each and their ratio.

    PYTHONPATH=. .venv/bin/python bench/remote_files.py [--files 400] [--delay-ms 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import datasets
from pyarrow import fs as pafs

OUT = Path(__file__).resolve().parent / "out"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=400)
    p.add_argument("--delay-ms", type=float, default=20.0)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)

    import sparkscore.scoring
    from sparkscore.listing import InputFile
    from sparkscore.loader import load_model
    from sparkscore.planner import MiniBatch
    from sparkscore.predictiontype import prediction_type
    from sparkscore.scoring import ScoringSpec, score_batch
    from sparkscore.spilling import spill_buffers
    from sparkscore.threads import apply_budget

    root = datasets.scale_root(0.25)
    ds = datasets.ensure(
        root, datasets.specs(0.25)["small20000"], datasets.default_row_group_rows(0.25)
    )
    loaded = load_model(str(datasets.ensure_models(root)["lr"]), trust_model=True)
    apply_budget(loaded.impl, 1)
    signature = loaded.spec.signature
    assert signature is not None and signature.inputs is not None
    spec = ScoringSpec(
        prediction_type=prediction_type(signature, None),
        read_columns=tuple(signature.inputs.names()),
    )
    sources = sorted(ds.path.glob("*.parquet"))[: args.files]

    with moto() as endpoint, delayed(endpoint, args.delay_ms / 1e3) as slow:
        upload = store(endpoint)
        upload.create_dir("data")
        for path in sources:
            with upload.open_output_stream(f"data/small/{path.name}") as f:
                f.write(path.read_bytes())
        fs = store(slow)
        infos = fs.get_file_info(pafs.FileSelector("data/small"))
        files = tuple(
            InputFile(path=i.path, name=i.base_name, size=i.size, kind="parquet")
            for i in sorted(infos, key=lambda i: i.path)
        )
        batch = MiniBatch(index=0, files=files)
        ahead = sparkscore.scoring.prefetching

        @contextlib.contextmanager
        def one_by_one(fs: pafs.FileSystem, _files: object) -> Iterator[pafs.FileSystem]:
            yield fs

        def run(prefetch: bool) -> float:
            sparkscore.scoring.prefetching = ahead if prefetch else one_by_one  # type: ignore
            _, sink_for = spill_buffers()
            started = time.perf_counter()
            result = score_batch(fs, batch, loaded, spec, sink_for)
            assert not result.errors, result.errors[:1]
            return time.perf_counter() - started

        run(True), run(False)
        times: dict[str, list[float]] = {"ahead": [], "one by one": []}
        for _ in range(args.runs):
            times["ahead"].append(run(True))
            times["one by one"].append(run(False))

    median = {k: statistics.median(v) for k, v in times.items()}
    lines = [
        f"{len(files)} files of 100 rows on S3 (moto behind a {args.delay_ms:g} ms proxy), "
        f"one task, {args.runs} runs each (wall)"
    ]
    for what, seconds in median.items():
        lines.append(
            f"  {what}: {seconds:.2f} s, {seconds / len(files) * 1e3:.1f} ms a file "
            f"{[round(t, 2) for t in times[what]]}"
        )
    lines.append(f"  one by one / ahead: {median['one by one'] / median['ahead']:.1f}x")
    print("\n".join(lines))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "remote_files.txt").write_text("\n".join(lines) + "\n")
    return 0


def store(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=endpoint,
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        scheme="http",
        allow_bucket_creation=True,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.2)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextlib.contextmanager
def delayed(endpoint: str, delay: float) -> Iterator[str]:
    """A TCP proxy to `endpoint` that holds what each client sends for `delay` seconds."""
    target_port = int(endpoint.rsplit(":", 1)[1])
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, wait: float) -> None:
        try:
            while data := await reader.read(1 << 16):
                if wait:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(
            pipe(reader, up_writer, delay), pipe(up_reader, writer, 0), return_exceptions=True
        )

    stop = asyncio.Event()

    async def serve() -> None:
        server = await asyncio.start_server(client, "127.0.0.1", port)
        started.set()
        async with server:
            await stop.wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
