"""A profile's sampled rows while they wait: taken at each predict call, profiled at once.

Profiling costs mostly a fixed amount per column each time it runs (a few numpy and Arrow calls,
0.1-0.3 ms a column), not per row: profiled at every predict call, the LR benchmark's tasks spent
14-18% more CPU (now about 6%: docs/performance.md#profilings-cost). So a predict call only takes
its sampled rows (one `take` of the frame and one of the predictions, 1 row in 64:
sparkscore.profile's sample) and keeps them with its file; the rows are profiled once a mini-
batch's files are known to be kept (a failed file's rows are forgotten with its sample), or sooner
when FOLD_CELLS sampled values wait, so that a huge mini-batch holds a bounded sample in memory.

Profiling the rows together rather than call by call gives the same profile (merging is exact;
sums may differ in the last bits), with top-k counts over the whole sample.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa

from sparkscore.profile import Profile

__all__ = ["FOLD_CELLS", "Sample"]

FOLD_CELLS = 1 << 22  # sampled values held before they are profiled: 32 MiB of floats

# One predict call's sampled rows: its inputs (None: a tensor), its predictions, its rows.
_Taken = tuple[pd.DataFrame | None, pa.Array, int]


class Sample:
    """The sampled rows of one file (or a task's files), waiting to be profiled: `profiled`
    holds what was already folded into a profile, `waiting` the rest."""

    def __init__(self) -> None:
        self.profiled = Profile()
        self.waiting: list[_Taken] = []
        self.cells = 0

    def add(
        self, model_input: pd.DataFrame | np.ndarray, prediction: pa.Array, sample: np.ndarray
    ) -> None:
        """A predict call's rows: what the model was given and returned, and which are sampled
        (sparkscore.profile.sample_of)."""
        frame = model_input.take(sample) if isinstance(model_input, pd.DataFrame) else None
        self.add_sampled(frame, prediction.take(sample), len(prediction))

    def add_sampled(self, frame: pd.DataFrame | None, prediction: pa.Array, rows: int) -> None:
        """Rows already sampled: their inputs, their predictions, and the rows they stand for."""
        self._wait((frame, prediction, rows))

    def extend(self, other: Sample) -> None:
        self.profiled = self.profiled.merge(other.profiled)
        for taken in other.waiting:
            self._wait(taken)

    def profile(self) -> Profile:
        self._fold()
        return self.profiled

    @classmethod
    def joined(cls, samples: Iterable[Sample]) -> Profile:
        """The profile of several files' samples together."""
        together = cls()
        for sample in samples:
            together.extend(sample)
        return together.profile()

    def _wait(self, taken: _Taken) -> None:
        frame, prediction, _ = taken
        self.waiting.append(taken)
        self.cells += len(prediction) * (1 + (0 if frame is None else frame.shape[1]))
        if self.cells >= FOLD_CELLS:
            self._fold()

    def _fold(self) -> None:
        """Profile the waiting rows, those with the same input columns together."""
        groups: dict[tuple[str, ...] | None, list[_Taken]] = {}
        for taken in self.waiting:
            frame = taken[0]
            key = None if frame is None else tuple(map(str, frame.columns))
            groups.setdefault(key, []).append(taken)
        for group in groups.values():
            frames = [f for f, _, _ in group if f is not None]
            predictions = pa.concat_arrays([p for _, p, _ in group])
            rows = sum(r for _, _, r in group)
            self.profiled = self.profiled.merge(Profile.of_sampled(frames, predictions, rows))
        self.waiting, self.cells = [], 0
