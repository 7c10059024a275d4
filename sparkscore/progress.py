"""Progress of a running job on the driver: mini-batches done, rows, rate, failures and an ETA.

Tasks add to Spark accumulators when they commit (Spark applies a successful task's updates
once, so retries do not double count); Spark Connect has none, and there the committed
manifests are counted (sparkscore.progressbar.ManifestTally). On a terminal a live bar shows
them; elsewhere a driver thread logs a line every few seconds while the job's one action runs
(what each looks like is sparkscore.progressbar).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from types import TracebackType

from pyspark import Accumulator, SparkContext

from sparkscore.layout import OutputLayout
from sparkscore.manifest import Manifest
from sparkscore.progressbar import LiveBar, ManifestTally, Snapshot

__all__ = ["Counters", "Progress"]

log = logging.getLogger("sparkscore")


@dataclass(frozen=True)
class Counters:
    """The accumulators a task adds to; small and picklable."""

    batches: Accumulator[int]
    rows: Accumulator[int]
    failed_files: Accumulator[int]

    def add(self, manifest: Manifest) -> None:
        self.batches.add(1)
        self.rows.add(sum(f.rows_scored for f in manifest.files))
        self.failed_files.add(sum(f.failed for f in manifest.files))


class Progress:
    """Progress while the block runs: on a terminal (stderr is one), a live bar; elsewhere a
    log line every `interval` seconds and one at the end."""

    def __init__(
        self,
        sc: SparkContext | None,
        total: int,
        layout: OutputLayout,
        committed: Collection[int] = (),
        *,
        interval: float = 5.0,
        live: bool | None = None,
    ) -> None:
        """With a SparkContext, tasks add to accumulators; without one (Spark Connect) the
        committed manifests are counted. `live`: draw the bar (default: stderr is a terminal)."""
        self.total, self.interval = total, interval
        self.counters = (
            None
            if sc is None
            else Counters(sc.accumulator(0), sc.accumulator(0), sc.accumulator(0))
        )
        self._tally = ManifestTally(layout, committed) if sc is None else None
        self._live = sys.stderr.isatty() if live is None else live
        self._bar: LiveBar | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sparkscore-progress", daemon=True)
        self._started = 0.0

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        if self._live:
            self._bar = LiveBar(self.snapshot)
            self._bar.start()
        else:
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._tally is not None:
            self._tally.poll(now=True)  # the last mini-batches, before the last line or bar
        if self._bar is not None:
            self._bar.stop()
            return
        self._stop.set()
        self._thread.join()
        if kind is None:
            log.info(self.snapshot().line())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            log.info(self.snapshot().line())

    def snapshot(self) -> Snapshot:
        if self.counters is not None:
            done, rows = self.counters.batches.value, self.counters.rows.value
            failed = self.counters.failed_files.value
        else:
            assert self._tally is not None
            self._tally.poll()
            done, rows, failed = self._tally.batches, self._tally.rows, self._tally.failed_files
        return Snapshot(
            done=done,
            total=self.total,
            rows=rows,
            failed_files=failed,
            elapsed=time.monotonic() - self._started,
        )
