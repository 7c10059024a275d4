"""Drift: this run's profile against a reference run's, per column, and which columns to flag.

Per column, the population stability index (PSI) of its values and the share of its rows that
are null. PSI is `sum((a - e) * ln(a / e))` over buckets, `e` the reference's share of values in
a bucket and `a` this run's; a share of 0 counts as PSI_FLOOR (1e-4, as Evidently and most
implementations do), so a bucket only one side has costs a large but finite amount.

Buckets: for a numeric column, the reference's histogram bins (sparkscore.profile's fixed grid,
so both runs' bins are the same) grouped into PSI_GROUPS groups of about equal reference rows
(its deciles, as PSI is usually computed), plus one bucket below the reference's smallest bin and
one above its largest, so values outside everything the reference saw count as drift. For a
string column, each of the reference's top values, and one bucket for every other value.

Defaults (settings, see docs/settings.md): a column is flagged at PSI >= 0.25 and when its null
share moves by more than 0.05. PSI 0.25 is the common industry rule of thumb (from credit
scorecard monitoring: below 0.1 no significant change, 0.1 to 0.25 a moderate one, 0.25 and
above a significant shift); flagging at the significant level keeps a warning worth reading.
The null share has no such rule: 5 points is our choice, above the noise of a feed that is
sometimes late and below what a broken upstream join does.

On the driver (`check`): the run's profile is merged from every committed manifest (those of an
earlier run this one resumes too), written to `_profile.json`, and compared with the reference
read before Spark started (`read_reference`); each flagged column is a warning line.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyarrow import fs as pafs

from sparkscore.errors import InputError, ReferenceProfileError
from sparkscore.layout import OutputLayout
from sparkscore.manifest import Manifest
from sparkscore.profile import PROFILE_FILE, ColumnProfile, Profile
from sparkscore.settings import Settings
from sparkscore.storage import resolve
from sparkscore.writers import write_json

__all__ = [
    "PSI_FLOOR",
    "PSI_GROUPS",
    "ColumnDrift",
    "Drift",
    "check",
    "compare",
    "psi",
    "read_reference",
]

log = logging.getLogger("sparkscore")

PSI_FLOOR = 1e-4  # the share a bucket with no rows counts as
PSI_GROUPS = 10  # numeric buckets between the reference's extremes: its deciles


@dataclass(frozen=True, kw_only=True)
class ColumnDrift:
    """One column against the reference. `psi` None: not comparable (`note` says why)."""

    psi: float | None
    null_share: float | None
    reference_null_share: float | None
    flagged_psi: bool
    flagged_nulls: bool
    note: str | None = None

    @property
    def flagged(self) -> bool:
        return self.flagged_psi or self.flagged_nulls

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "psi": None if self.psi is None else round(self.psi, 4),
            "null_share": _rounded(self.null_share),
            "reference_null_share": _rounded(self.reference_null_share),
            "flagged": self.flagged,
            "flagged_psi": self.flagged_psi,
            "flagged_null_share": self.flagged_nulls,
        }
        if self.note is not None:
            doc["note"] = self.note
        return doc


@dataclass(frozen=True, kw_only=True)
class Drift:
    """Every input column the model used, and the prediction, against `reference`."""

    reference: str
    psi_threshold: float
    null_threshold: float
    columns: Mapping[str, ColumnDrift]

    @property
    def flagged(self) -> list[str]:
        return [name for name, c in self.columns.items() if c.flagged]

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "psi_threshold": self.psi_threshold,
            "null_share_threshold": self.null_threshold,
            "flagged": self.flagged,
            "columns": {name: c.to_json() for name, c in self.columns.items()},
        }

    def warnings(self) -> list[str]:
        """One line for each flagged column, as the job logs them."""
        lines = []
        for name, c in self.columns.items():
            if not c.flagged:
                continue
            psi = "n/a" if c.psi is None else f"{c.psi:.3f}"
            lines.append(
                f"drift: column '{name}' has PSI {psi} (flagged at {self.psi_threshold:g}) and "
                f"null share {_share(c.null_share)} (reference {_share(c.reference_null_share)}, "
                f"flagged past a change of {self.null_threshold:g}) against {self.reference}"
            )
        return lines


def read_reference(uri: str) -> Profile:
    """The profile at `uri`: an output folder's _profile.json, or that file itself."""
    try:
        fs, path = resolve(uri)
        if fs.get_file_info(path).type == pafs.FileType.Directory:
            path = f"{path.rstrip('/')}/{PROFILE_FILE}"
        info = fs.get_file_info(path)
        if info.type != pafs.FileType.File:
            raise ReferenceProfileError(
                reference=uri,
                reason=f"there is no {path}; a run writes it unless it ran with profile: false",
            )
        with fs.open_input_stream(path) as f:
            doc = json.loads(f.read().decode())
        return Profile.from_json(doc)
    except (InputError, OSError, ValueError, KeyError, TypeError) as e:
        raise ReferenceProfileError(reference=uri, reason=f"cannot be read ({e})") from None


def check(
    fs: pafs.FileSystem,
    layout: OutputLayout,
    manifests: Sequence[Manifest],
    settings: Settings,
    reference: Profile | None,
) -> Drift | None:
    """Write the run's profile, and compare it with the reference when there is one."""
    if not settings.profiling:
        return None
    profile = Profile.of_manifests([m.profile for m in manifests])
    write_json(fs, layout.profile, profile.to_json(), indent=None)  # thousands of bins: one line
    if reference is None or settings.reference is None:
        return None
    drift = compare(
        profile,
        reference,
        reference_name=settings.reference,
        psi_threshold=settings.drift_psi_threshold,
        null_threshold=settings.drift_null_threshold,
    )
    for line in drift.warnings():
        log.warning("%s", line)
    return drift


def compare(
    current: Profile,
    reference: Profile,
    *,
    reference_name: str,
    psi_threshold: float,
    null_threshold: float,
) -> Drift:
    """This run's columns (each input and the prediction) against the reference's."""
    theirs = reference.columns()
    columns = {}
    for name, ours in current.columns().items():
        columns[name] = _column(ours, theirs.get(name), psi_threshold, null_threshold)
    return Drift(
        reference=reference_name,
        psi_threshold=psi_threshold,
        null_threshold=null_threshold,
        columns=columns,
    )


def _column(
    ours: ColumnProfile, theirs: ColumnProfile | None, psi_threshold: float, null_threshold: float
) -> ColumnDrift:
    share = ours.nulls / ours.count if ours.count else None
    if theirs is None:
        return ColumnDrift(
            psi=None,
            null_share=share,
            reference_null_share=None,
            flagged_psi=False,
            flagged_nulls=False,
            note="not in the reference",
        )
    their_share = theirs.nulls / theirs.count if theirs.count else None
    value, note = _psi_of(ours, theirs)
    moved = None if share is None or their_share is None else abs(share - their_share)
    return ColumnDrift(
        psi=value,
        null_share=share,
        reference_null_share=their_share,
        flagged_psi=value is not None and value >= psi_threshold,
        flagged_nulls=moved is not None and moved > null_threshold,
        note=note,
    )


def _psi_of(ours: ColumnProfile, theirs: ColumnProfile) -> tuple[float | None, str | None]:
    if ours.kind != theirs.kind:
        return None, f"{ours.kind} here but {theirs.kind} in the reference"
    if ours.kind == "other":
        return None, "values of this type are not profiled"
    if ours.kind == "numeric":
        expected, actual = _numeric_buckets(theirs.bins), _numeric_buckets(theirs.bins, ours.bins)
    else:
        expected, actual = _top_buckets(theirs, theirs), _top_buckets(ours, theirs)
    if not sum(expected) or not sum(actual):
        return None, "no values here or in the reference"
    return psi(expected, actual), None


def psi(expected: Sequence[int], actual: Sequence[int]) -> float:
    """The population stability index of `actual` counts against `expected`, bucket by bucket."""
    e_total, a_total = sum(expected), sum(actual)
    total = 0.0
    for e, a in zip(expected, actual):
        e_share = max(e / e_total, PSI_FLOOR)
        a_share = max(a / a_total, PSI_FLOOR)
        total += (a_share - e_share) * math.log(a_share / e_share)
    return total


def _numeric_buckets(
    reference: Mapping[int, int], bins: Mapping[int, int] | None = None
) -> list[int]:
    """Counts of `bins` (default: the reference's own) in the buckets the reference's bins make:
    below its smallest, its PSI_GROUPS groups of about equal rows, above its largest."""
    keys = sorted(reference)
    total = sum(reference.values())
    uppers: list[int] = []  # the last key of each group
    seen = 0
    for key in keys:
        seen += reference[key]
        if seen * PSI_GROUPS >= total * (len(uppers) + 1):
            uppers.append(key)
    counts = [0] * (len(uppers) + 2)
    for key, n in (reference if bins is None else bins).items():
        where = 0 if key < keys[0] else 1 + bisect.bisect_left(uppers, key)
        counts[where] += n
    return counts


def _top_buckets(column: ColumnProfile, reference: ColumnProfile) -> list[int]:
    """Counts of `column`'s values in each of the reference's top values, and all others."""
    names = sorted(reference.top)
    counts = [column.top.get(name, 0) for name in names]
    counts.append(column.other + sum(n for v, n in column.top.items() if v not in reference.top))
    return counts


def _rounded(share: float | None) -> float | None:
    return None if share is None else round(share, 4)


def _share(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.3f}"
