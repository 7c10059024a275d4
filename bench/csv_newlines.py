"""What `newlines_in_values` costs Arrow's streaming CSV reader, as a task reads a file.

sparkscore reads CSV with `newlines_in_values=True`, so a quoted field holding a newline parses at
any file size (without it, Arrow cuts 1 MiB blocks at any newline, and a quoted one on a block
boundary fails the file). This prints the parse rate of a ~100 MB CSV shaped like the benchmark's
(`id` and ten doubles; pyarrow writes no quotes) with the option off and on, and of a ~100 MB CSV
with a quoted text column holding newlines (parseable only with it on), with and without Arrow's
threads. Standalone: `python bench/csv_newlines.py [MB]`; it writes its files to a temporary
folder and removes them.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

BLOCK = 1 << 20  # what sparkscore.readers reads with
REPEATS = 5


def numbers(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns = {"id": pa.array(np.arange(rows, dtype=np.int64))}
    columns.update({f"x{i}": pa.array(rng.normal(size=rows)) for i in range(10)})
    return pa.table(columns)


def with_text(rows: int, seed: int) -> pa.Table:
    """Numbers plus a note that every third row breaks over two lines (quoted by the writer)."""
    table = numbers(rows, seed)
    notes = np.where(np.arange(rows) % 3 == 0, "first line\nsecond, line", "one line")
    return table.append_column("note", pa.array(notes))


def write(path: Path, make, target_bytes: int) -> int:
    """Write `target_bytes` of CSV in chunks of 200k rows; return the rows written."""
    rows = 0
    with pacsv.CSVWriter(str(path), make(1, 0).schema) as writer:
        seed = 0
        while path.stat().st_size < target_bytes:
            chunk = make(200_000, seed)
            writer.write_table(chunk)
            rows += chunk.num_rows
            seed += 1
    return rows


def parse(path: Path, *, newlines: bool, threads: bool) -> tuple[float, int]:
    start = time.perf_counter()
    reader = pacsv.open_csv(
        str(path),
        read_options=pacsv.ReadOptions(block_size=BLOCK, use_threads=threads),
        parse_options=pacsv.ParseOptions(newlines_in_values=newlines),
    )
    rows = sum(batch.num_rows for batch in reader)
    return time.perf_counter() - start, rows


def main(megabytes: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        plain, quoted = Path(folder) / "plain.csv", Path(folder) / "quoted.csv"
        plain_rows = write(plain, numbers, megabytes << 20)
        quoted_rows = write(quoted, with_text, megabytes << 20)
        cases = [
            ("plain", plain, plain_rows, False, True),
            ("plain", plain, plain_rows, True, True),
            ("plain", plain, plain_rows, False, False),
            ("plain", plain, plain_rows, True, False),
            ("quoted newlines", quoted, quoted_rows, True, True),
            ("quoted newlines", quoted, quoted_rows, True, False),
        ]
        print(
            f"pyarrow {pa.__version__}, {BLOCK >> 20} MiB blocks, median of {REPEATS} reads "
            "after one warm-up read (file in the page cache)"
        )
        print(
            f"{'file':<16} {'MB':>6} {'rows':>10} {'newlines_in_values':>18} {'threads':>7} "
            f"{'MB/s':>7} {'rows/s':>11}"
        )
        for label, path, rows, newlines, threads in cases:
            parse(path, newlines=newlines, threads=threads)
            times = []
            for _ in range(REPEATS):
                seconds, got = parse(path, newlines=newlines, threads=threads)
                assert got == rows, (label, got, rows)
                times.append(seconds)
            median = statistics.median(times)
            size = path.stat().st_size / 1e6
            print(
                f"{label:<16} {size:>6.0f} {rows:>10,} {newlines!s:>18} {threads!s:>7} "
                f"{size / median:>7.0f} {rows / median:>11,.0f}"
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
