"""Progress of a running job on the driver: mini-batches done, rows, rate, failures and an ETA.

Tasks add to Spark accumulators when they commit (Spark applies a successful task's updates
once, so retries do not double count); a driver thread logs them every few seconds while the
job's one action runs. Nothing polls the output folder.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from types import TracebackType

from pyspark import Accumulator, SparkContext

from sparkscore.manifest import Manifest

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
    """Logs one line every `interval` seconds while the block runs, and one at the end."""

    def __init__(self, sc: SparkContext | None, total: int, *, interval: float = 5.0) -> None:
        """With no SparkContext (Spark Connect has none, so no accumulators) it stays quiet."""
        self.total, self.interval = total, interval
        self.counters = (
            None
            if sc is None
            else Counters(sc.accumulator(0), sc.accumulator(0), sc.accumulator(0))
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sparkscore-progress", daemon=True)
        self._started = 0.0

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        if self.counters is not None:
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.counters is None:
            return
        self._stop.set()
        self._thread.join()
        if kind is None:
            log.info(self.line())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            log.info(self.line())

    def line(self) -> str:
        assert self.counters is not None
        done = self.counters.batches.value
        rows = self.counters.rows.value
        elapsed = max(time.monotonic() - self._started, 1e-9)
        eta = (
            f"{elapsed / done * (self.total - done):.0f}s"
            if 0 < done < self.total
            else ("0s" if done >= self.total else "unknown")
        )
        return (
            f"progress: {done}/{self.total} mini-batches, {rows:,} rows scored, "
            f"{rows / elapsed:,.0f} rows/s, {self.counters.failed_files.value} files failed, "
            f"ETA {eta}"
        )
