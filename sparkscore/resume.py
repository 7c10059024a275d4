"""The resume protocol: `_run.json` says which run an output belongs to, and a resume goes on
from the mini-batches that run committed, only if it would write the same thing.

The run that starts an output records its identity (the model's sha256, the input listing, the
mini-batch plan and the settings that shape a committed mini-batch) and its task slots, so that
a resumed run plans the same mini-batches; a resume that differs in any of them is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from sparkscore.errors import ResumeError
from sparkscore.layout import OutputLayout
from sparkscore.manifest import Manifest
from sparkscore.planner import Plan
from sparkscore.settings import Settings
from sparkscore.writers import committed_manifests, read_json, write_json

__all__ = ["RESUME_SETTINGS", "RunIdentity", "committed_batches", "previous_run"]

# Settings that shape what a committed mini-batch holds: a resume must not change them.
RESUME_SETTINGS = (
    "output_format",
    "output_action",
    "passthrough_columns",
    "bad_rows",
    "result_type",
    "params",
)

# What a resume must match, and how its refusal names each.
_MATCHED = (
    ("model_sha256", "model (sha256)"),
    ("listing_digest", "input listing"),
    ("mini_batches", "mini-batch plan"),
    ("output", "output settings"),
)


@dataclass(frozen=True, kw_only=True)
class RunIdentity:
    """`_run.json`: the run that started an output. Fields an older file lacks are None."""

    model_sha256: str | None
    listing_digest: str | None
    mini_batches: int | None
    output: Mapping[str, Any] | None  # the RESUME_SETTINGS, by name
    job_id: str | None = None
    parallelism: int | None = None  # the task slots it planned with

    @classmethod
    def of(
        cls, *, sha256: str, plan: Plan, settings: Settings, job_id: str, parallelism: int
    ) -> RunIdentity:
        chosen = settings.to_dict()
        return cls(
            model_sha256=sha256,
            listing_digest=plan.listing_digest,
            mini_batches=len(plan.batches),
            output={k: chosen[k] for k in RESUME_SETTINGS},
            job_id=job_id,
            parallelism=parallelism,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "model_sha256": self.model_sha256,
            "listing_digest": self.listing_digest,
            "mini_batches": self.mini_batches,
            "output": None if self.output is None else dict(self.output),
            "job_id": self.job_id,
            "parallelism": self.parallelism,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RunIdentity:
        return cls(
            model_sha256=doc.get("model_sha256"),
            listing_digest=doc.get("listing_digest"),
            mini_batches=doc.get("mini_batches"),
            output=doc.get("output"),
            job_id=doc.get("job_id"),
            parallelism=doc.get("parallelism"),
        )


def _path(layout: OutputLayout) -> str:
    return f"{layout.root}/_run.json"


def previous_run(fs: pa.fs.FileSystem, layout: OutputLayout) -> RunIdentity | None:
    """The run that started the output at `layout`, if one did."""
    if fs.get_file_info(_path(layout)).type != pa.fs.FileType.File:
        return None
    return RunIdentity.from_json(read_json(fs, _path(layout)))


def committed_batches(
    fs: pa.fs.FileSystem, layout: OutputLayout, identity: RunIdentity, previous: RunIdentity | None
) -> dict[int, Manifest]:
    """Resuming `previous`, the mini-batches it committed, once it is known to match this run;
    with nothing to resume, none, and this run's identity is recorded."""
    if previous is None:
        write_json(fs, _path(layout), identity.to_json())
        return {}
    for key, label in _MATCHED:
        then, now = getattr(previous, key), getattr(identity, key)
        if then != now:
            raise ResumeError(
                path=layout.uri,
                reason=f"the {label} differs from the run that wrote it "
                f"({then} then, {now} now); resume with the same model, "
                "input and mini_batch_size, or use overwrite: true.",
            )
    return committed_manifests(fs, layout)
