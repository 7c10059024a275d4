"""`make bench-scale`'s last step: its outputs in one file, bench/RESULTS-scale.md.

    .venv/bin/python bench/scale_results.py

rows.py, files.py, cpu_split.py and small_files.py each write their own figures under
bench/out/ (each can be run alone); this joins the latest of each, with when each was written,
the machine and the targets of issue 22 they answer.
"""

from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
PARTS = (
    (
        "rows-grow-files.md",
        "Rows (item 1)",
        "time per row at 16x within 10% of 1x; driver and worker peak RSS flat (<= 1.2x).",
    ),
    (
        "files.txt",
        "Files on the driver (items 2 and 7)",
        "planning linear in files and under 60 s for 1M local files; driver peak RSS under "
        "1 GiB for 1M files; the resume check under 10 s for 100k committed files; CSV "
        "consolidation not the bottleneck.",
    ),
    (
        "cpu_split.txt",
        "The real predict limit: where the rest goes (item 5)",
        "the RF job >= 0.95 of the parallel predict limit (figure 9 in RESULTS.md); this is "
        "bench/cpu_split.py's account of the job's CPU by process and JVM thread.",
    ),
    (
        "small_files.txt",
        "Small files, per file in one process (item 3)",
        "the tasks' CPU per file >= 0.9 of pyarrow's reading alone (the job's figure is "
        "figure 4 in RESULTS.md).",
    ),
    (
        "remote_files.txt",
        "Small files on object storage, one task (item 3, beyond local disk)",
        "no target of its own: a mini-batch of small files on S3 (moto behind a proxy that "
        "holds each request as a store's round trip does) should cost its reading, not a round "
        "trip per file.",
    ),
)


def main() -> int:
    out = [
        "# How sparkscore's cost grows: rows, files, small files",
        "",
        f"Joined {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC} by "
        f"`bench/scale_results.py` from `make bench-scale`'s outputs; {os.cpu_count()} cores. "
        "Each part says when it was measured; the one-size figures are in RESULTS.md.",
    ]
    missing = []
    for name, title, targets in PARTS:
        path = OUT / name
        out += ["", f"## {title}", "", f"Targets (issue 22): {targets}", ""]
        if not path.exists():
            missing.append(name)
            out.append(f"Not measured: bench/out/{name} is missing.")
            continue
        written = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)
        text = path.read_text().strip()
        if name.endswith(".md"):  # rows.py's own page, dated: its title becomes this section's
            out.append("\n".join(text.splitlines()[1:]).strip())
        else:
            out += [f"Measured {written:%Y-%m-%d %H:%M UTC} (bench/out/{name}):", ""]
            out.append("```\n" + text + "\n```")
    (HERE / "RESULTS-scale.md").write_text("\n".join(out) + "\n")
    print(f"written to {HERE / 'RESULTS-scale.md'}" + (f"; missing: {missing}" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
