"""What progress looks like: a `Snapshot` of a running job, as a log line or as a live bar on a
terminal, and progress counted from the committed manifests where Spark has no accumulators.

The bar is rich's (a dependency: kept by a large community, already what pip and many CLIs
draw with, and it redraws one line in place on a terminal and draws nothing elsewhere). It goes
to stderr, only when stderr is a terminal; logs (a file, a pipe, CI) get the periodic lines as
before. sparkscore.progress decides which and reads the counts (no pyspark here).

Spark Connect has no accumulators: there a `ManifestTally` lists the output's `_manifest/`
folder and reads each manifest once, as it appears (a mini-batch is committed when its manifest
exists), skipping those an earlier run committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from pyarrow import fs as pafs
from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from sparkscore.layout import OutputLayout
from sparkscore.manifest import Manifest
from sparkscore.writers import read_json

__all__ = ["BAR_WIDTH", "LiveBar", "ManifestTally", "Snapshot", "render"]

BAR_WIDTH = 20  # cells: the bar and its text fit one 80-column line


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """Where a job is: mini-batches committed of `total`, rows scored, files failed, and the
    seconds since it started."""

    done: int
    total: int
    rows: int
    failed_files: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.rows / max(self.elapsed, 1e-9)

    @property
    def eta(self) -> str:
        if self.done >= self.total:
            return "0s"
        if not self.done:
            return "unknown"
        return f"{self.elapsed / self.done * (self.total - self.done):.0f}s"

    def line(self) -> str:
        """The log line, every few seconds when stderr is not a terminal."""
        return (
            f"progress: {self.done}/{self.total} mini-batches, {self.rows:,} rows scored, "
            f"{self.rate:,.0f} rows/s, {self.failed_files} files failed, ETA {self.eta}"
        )


def render(snapshot: Snapshot) -> Table:
    """The live bar: the mini-batches as a bar, then rows, rate, ETA and failures."""
    grid = Table.grid(padding=(0, 1))
    grid.add_row(
        ProgressBar(total=max(snapshot.total, 1), completed=snapshot.done, width=BAR_WIDTH),
        Text(
            f"{snapshot.done}/{snapshot.total} mini-batches · {snapshot.rows:,} rows · "
            f"{snapshot.rate:,.0f} rows/s · ETA {snapshot.eta} · "
            f"{snapshot.failed_files} files failed",
            style="red" if snapshot.failed_files else "",
            no_wrap=True,
            overflow="ellipsis",  # a narrower terminal cuts the line, never wraps it
        ),
    )
    return grid


class LiveBar:
    """The bar redrawn in place on stderr from start to stop, from `snapshot` each time; its
    last state stays on the terminal."""

    def __init__(self, snapshot: Callable[[], Snapshot], *, console: Console | None = None) -> None:
        self._live = Live(
            console=console or Console(stderr=True),
            get_renderable=lambda: render(snapshot()),
            refresh_per_second=2,
            redirect_stderr=False,
        )

    def start(self) -> None:
        self._live.start()

    def stop(self) -> None:
        """Draw the last state once more, and leave it."""
        self._live.stop()


class ManifestTally:
    """Mini-batches, rows and failed files from the manifests committed under `layout`, each
    read once; those in `committed` (an earlier run's, which a resume skips) are not counted.
    The folder is listed at most once every `interval` seconds."""

    def __init__(
        self, layout: OutputLayout, committed: Collection[int] = (), *, interval: float = 2.0
    ) -> None:
        self.layout, self.interval = layout, interval
        self._fs = layout.filesystem()
        self._skip = set(committed)
        self._seen: set[str] = set()
        self._listed = -float("inf")
        self.batches = self.rows = self.failed_files = 0

    def poll(self, *, now: bool = False) -> None:
        """Read the manifests committed since the last listing (`now`: however recent)."""
        moment = time.monotonic()
        if not now and moment - self._listed < self.interval:
            return
        self._listed = moment
        if self._fs.get_file_info(self.layout.manifests).type != pafs.FileType.Directory:
            return
        for entry in self._fs.get_file_info(pafs.FileSelector(self.layout.manifests)):
            name = entry.base_name
            if name in self._seen or not (name.startswith("batch-") and name.endswith(".json")):
                continue
            self._seen.add(name)
            manifest = Manifest.from_json(read_json(self._fs, entry.path))
            if manifest.batch in self._skip:
                continue
            self.batches += 1
            self.rows += sum(f.rows_scored for f in manifest.files)
            self.failed_files += sum(f.failed for f in manifest.files)
