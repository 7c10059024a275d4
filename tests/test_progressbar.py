"""Progress: the live bar as a terminal draws it, the log line, and progress counted from the
manifests a run commits (how a Spark Connect run, which has no accumulators, sees its own)."""

from __future__ import annotations

import io
import logging
import re
import time

from rich.console import Console

from sparkscore.layout import OutputLayout
from sparkscore.manifest import FileRecord, Manifest
from sparkscore.progress import Progress
from sparkscore.progressbar import LiveBar, ManifestTally, Snapshot, render
from sparkscore.writers import write_manifest


def drawn(renderable: object, *, terminal: bool = False) -> str:
    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None, force_terminal=terminal)
    console.print(renderable)
    return out.getvalue()


def test_progressbar_draws_batches_rows_rate_eta_and_failures():
    snapshot = Snapshot(done=3, total=12, rows=45_000, failed_files=2, elapsed=9.0)
    assert drawn(render(snapshot)) == (
        # without colours, the bar's remainder is blank; 3 of 12 is 5 of its 20 cells
        "━━━━━" + " " * 15 + " 3/12 mini-batches · 45,000 rows · 5,000 rows/s · "
        "ETA 27s · 2 files failed\n"
    )


def test_progressbar_cuts_its_line_on_a_narrow_terminal():
    snapshot = Snapshot(done=1, total=8, rows=10, failed_files=0, elapsed=1.0)
    out = io.StringIO()
    Console(file=out, width=60, color_system=None).print(render(snapshot))
    assert out.getvalue() == "━━╸" + " " * 17 + " 1/8 mini-batches · 10 rows · 10 rows/s…\n"


def test_progressbar_line_is_the_log_line_of_every_few_seconds():
    assert Snapshot(done=0, total=2, rows=0, failed_files=0, elapsed=5.0).line() == (
        "progress: 0/2 mini-batches, 0 rows scored, 0 rows/s, 0 files failed, ETA unknown"
    )
    assert Snapshot(done=2, total=2, rows=400_000, failed_files=1, elapsed=8.0).line() == (
        "progress: 2/2 mini-batches, 400,000 rows scored, 50,000 rows/s, 1 files failed, ETA 0s"
    )


def manifest(batch: int, *files: tuple[str, int, bool]) -> Manifest:
    records = tuple(
        FileRecord(
            file_name=name,
            status="failed" if failed else "succeeded",
            rows_read=rows,
            rows_scored=0 if failed else rows,
            rows_failed=rows if failed else 0,
        )
        for name, rows, failed in files
    )
    scored = sum(r.rows_scored for r in records)
    return Manifest(batch=batch, files=records, prediction_rows=scored, error_records=0)


def test_progressbar_tally_counts_each_manifest_once_and_skips_an_earlier_runs(tmp_path):
    layout = OutputLayout.at(str(tmp_path))
    fs = layout.filesystem()
    write_manifest(fs, layout, manifest(0, ("old.csv", 7, False)))  # the run it resumes
    tally = ManifestTally(layout, committed={0}, interval=3600)
    tally.poll()
    assert (tally.batches, tally.rows, tally.failed_files) == (0, 0, 0)
    write_manifest(fs, layout, manifest(1, ("a.csv", 5, False), ("b.csv", 4, True)))
    tally.poll()  # within the interval: not listed again
    assert tally.batches == 0
    tally.poll(now=True)
    tally.poll(now=True)
    assert (tally.batches, tally.rows, tally.failed_files) == (1, 5, 1)


def test_progressbar_without_accumulators_logs_the_committed_manifests(tmp_path, caplog):
    layout = OutputLayout.at(str(tmp_path))
    caplog.set_level(logging.INFO, logger="sparkscore")
    with Progress(None, 2, layout, interval=3600, live=False):
        write_manifest(layout.filesystem(), layout, manifest(0, ("a.csv", 5, False)))
    assert re.fullmatch(
        r"progress: 1/2 mini-batches, 5 rows scored, [0-9,]+ rows/s, 0 files failed, ETA \d+s",
        caplog.messages[-1],
    )


def test_progressbar_live_bar_leaves_its_last_state_on_the_terminal():
    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None, force_terminal=True)
    state = {"done": 0}

    def snapshot() -> Snapshot:
        return Snapshot(
            done=state["done"], total=2, rows=10 * state["done"], failed_files=0, elapsed=1.0
        )

    bar = LiveBar(snapshot, console=console)
    bar.start()
    time.sleep(0.2)
    state["done"] = 2
    bar.stop()
    assert "2/2 mini-batches · 20 rows · 20 rows/s · ETA 0s · 0 files failed" in out.getvalue()
