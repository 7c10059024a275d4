"""A run prepared on the driver, before Spark: the model checked, the input planned, the
output claimed, all in one `Job` record.

Everything that can be refused is refused here, before a session costs seconds to start (the
command line prepares while the session starts on a thread). `sparkscore.job` executes the
`Job`; a resumed run reads here what its first run committed, and an incremental run its
output's ledger.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
from pyarrow import fs as pafs

from sparkscore import drift as drifts
from sparkscore import summary as summaries
from sparkscore import tables
from sparkscore.envbuild import BuiltEnvironment, ensure_environment
from sparkscore.environment import read_environment
from sparkscore.errors import SettingsError
from sparkscore.layout import (
    TABLE_FORMATS,
    OutputLayout,
    abandoned_staging,
    claim_output,
    errors_table,
    run_layout,
)
from sparkscore.ledger import Ledger, admit, claim_folder
from sparkscore.ledger import run_into as incremental_run
from sparkscore.listing import check_output_apart
from sparkscore.loader import load_parsed, warn_untrusted
from sparkscore.manifest import Manifest
from sparkscore.model import ModelSpec, read_spec
from sparkscore.modelprocess import ModelProcess
from sparkscore.passthrough import passthrough_types
from sparkscore.planner import Plan, plan
from sparkscore.predictiontype import prediction_type
from sparkscore.profile import Profile
from sparkscore.readers import csv_column_types
from sparkscore.registry import local_model_dir
from sparkscore.requirements import Mismatch, mismatches, read_pins
from sparkscore.resume import RunIdentity, committed_batches, previous_run
from sparkscore.scoring import ScoringSpec
from sparkscore.script import ScoringScript, checked_script, script_model
from sparkscore.settings import Settings
from sparkscore.shipping import (
    PackedModel,
    pack_model,
)
from sparkscore.storage import resolve
from sparkscore.summary import Probe

__all__ = ["Job", "prepare"]

log = logging.getLogger("sparkscore")


@dataclass(frozen=True, kw_only=True)
class Job:
    """Everything decided before Spark starts: the model, the plan, the output and its state."""

    job_id: str
    started: datetime
    model_uri: str
    model_path: str  # a local directory, wherever model_uri points
    model: ModelSpec | None  # None: no MLmodel, files only a scoring script's init() loads
    packed: PackedModel  # the model directory zipped, with its content hash
    located: Mapping[str, str | None]  # how a registry or remote model URI resolved
    input_uri: str
    output_uri: str
    plan: Plan
    final: OutputLayout
    layout: OutputLayout  # where this run writes: `final`, or a staging folder beside it
    settings: Settings
    scoring: ScoringSpec
    committed: Mapping[int, Manifest]  # by an earlier run this one resumes
    mismatched: tuple[Mismatch, ...] = ()  # the model's pins that differ from what runs here
    environment: BuiltEnvironment | None = None  # the model's own, when not env_manager: local
    probe: Probe | None = None  # the model loaded in that environment
    reference: Profile | None = None  # the profile to compare with (settings.reference)
    ledger: Ledger | None = None  # an incremental run's, as it was before this run
    script: ScoringScript | None = None  # Azure's batch driver, which scores instead of predict

    @property
    def sha256(self) -> str:
        return self.packed.sha256

    @property
    def nothing_new(self) -> bool:
        """An incremental run that found every file unchanged: it claims and writes nothing."""
        return self.ledger is not None and not self.plan.files


def prepare(
    model_uri: str, input_uri: str, output_uri: str, settings: Settings, *, parallelism: int
) -> Job:
    """Check the model, plan the input and claim the output, without Spark.

    Everything that can be refused is refused here, before a session costs seconds to start.
    `parallelism` (task slots) sizes `mini_batch_size: auto`; a resumed run reuses the one its
    first run planned with, so it sees the same mini-batches.
    """
    started = summaries.now()
    # Job ids sort by start time, to the microsecond: which run is the latest is read from them
    # (sparkscore.ledger, sparkscore.tables), and two runs may start within a second.
    job_id = f"{started:%Y%m%dT%H%M%S.%f}-{uuid.uuid4().hex[:8]}"
    check_output_apart(input_uri, output_uri, recursive=settings.recursive)
    script = checked_script(settings)
    reference = _reference(settings)
    model_path, located = local_model_dir(model_uri, mlmodel=script is None)
    spec: ModelSpec | None
    if script is None:
        spec = read_spec(model_path)  # what is not a model is refused before it is read whole
        packed = pack_model(model_path)  # hashed and zipped (once a process) as the session starts
        environment, probe, mismatched = _model_environment(
            model_path, spec, packed.sha256, settings
        )
    else:  # the script's init() loads the model, in each worker: it is only read, if at all
        spec, environment, probe, mismatched = script_model(model_path), None, None, ()
        packed = pack_model(model_path)
    sha = packed.sha256
    final = OutputLayout.at(output_uri, settings.output_format, settings.output_file_name)
    out_fs = final.filesystem()
    ledger = admit(out_fs, final, settings, sha)
    if final.is_table or ledger is not None:
        if final.is_table:
            check_output_apart(input_uri, errors_table(output_uri), recursive=settings.recursive)
        # A resumed run finishes the run it resumes, under its job id: the id of the commit.
        if ledger is not None:
            layout = incremental_run(out_fs, final, job_id, settings, ledger)
        else:
            layout = tables.run_into(out_fs, final, job_id, settings)
        job_id, abandoned = layout.run, []
    else:
        abandoned = abandoned_staging(out_fs, final)
        layout = run_layout(
            out_fs,
            final,
            overwrite=settings.overwrite,
            resume=settings.resume,
            job_id=job_id,
            abandoned=abandoned,
        )
    previous = previous_run(out_fs, layout) if settings.resume else None
    if previous is not None and previous.parallelism is not None:
        parallelism = previous.parallelism
    the_plan = plan(
        input_uri,
        mini_batch_size=settings.mini_batch_size,
        recursive=settings.recursive,
        ignore_unsupported=settings.ignore_unsupported,
        parallelism=parallelism,
        keep=None if ledger is None else ledger.to_score(settings),
        any_type=script is not None,
    )
    scoring = _scoring_spec(spec, settings, the_plan)
    committed: Mapping[int, Manifest] = {}
    if ledger is None or the_plan.files:
        _claim(out_fs, final, layout, scoring, settings, abandoned, incremental=ledger is not None)
        committed = committed_batches(
            out_fs,
            layout,
            RunIdentity.of(
                sha256=sha, plan=the_plan, settings=settings, job_id=job_id, parallelism=parallelism
            ),
            previous,
        )
    log.info(
        "planned %d files (%d bytes) into %d mini-batches; %d already committed%s",
        len(the_plan.files),
        the_plan.total_bytes,
        len(the_plan.batches),
        len(committed),
        f"; {len(the_plan.unchanged)} unchanged since they were scored" if ledger else "",
    )
    return Job(
        job_id=job_id,
        started=started,
        model_uri=model_uri,
        model_path=model_path,
        model=spec,
        packed=packed,
        located=located,
        input_uri=input_uri,
        output_uri=output_uri,
        plan=the_plan,
        final=final,
        layout=layout,
        settings=settings,
        scoring=scoring,
        committed=committed,
        mismatched=mismatched,
        environment=environment,
        probe=probe,
        reference=reference,
        ledger=ledger,
        script=script,
    )


def _claim(
    fs: pafs.FileSystem,
    final: OutputLayout,
    layout: OutputLayout,
    scoring: ScoringSpec,
    settings: Settings,
    abandoned: list[OutputLayout],
    *,
    incremental: bool,
) -> None:
    """Refuse an output this run may not write, else make the folder it writes."""
    if final.is_table:
        tables.claim(fs, layout, scoring.output_schema, settings)
    elif incremental:
        claim_folder(fs, final, layout)
    else:
        claim_output(
            fs,
            final,
            layout,
            overwrite=settings.overwrite,
            resume=settings.resume,
            abandoned=abandoned,
        )


def _reference(settings: Settings) -> Profile | None:
    """The reference profile, read before anything costs time: one that is missing fails now."""
    if settings.reference is None:
        return None
    return drifts.read_reference(settings.reference)


# The content hashes of the models that loaded in this process: loading is deterministic for
# the same files and packages, so a notebook's next run of the same model is not held up by it
# (0.7 s for a 100-tree forest, while no task runs).
_LOADED_HERE: set[str] = set()


def _model_environment(
    model_path: str, spec: ModelSpec, sha256: str, settings: Settings
) -> tuple[BuiltEnvironment | None, Probe | None, tuple[Mismatch, ...]]:
    """Load the model where it will run: here (warning of each pin that differs), or in its own
    environment, built (or found in the cache) now, before any task starts."""
    _check_spark_settings(spec, settings)
    if settings.env_manager == "local":
        warn_untrusted(spec, trusted=settings.trust_model)
        # The one load on the driver, on purpose: a model that cannot load here is refused before
        # any task starts; each worker loads its own copy. A Spark MLlib model is loaded once,
        # in the JVM, when the job runs (sparkscore.sparkml).
        if spec.sparkml is None and sha256 not in _LOADED_HERE:
            load_parsed(spec)
            _LOADED_HERE.add(sha256)
        mismatched = tuple(mismatches(read_pins(spec)))
        for m in mismatched:
            log.warning(
                "the model pins %s==%s but %s is installed",
                m.package,
                m.pinned,
                m.installed or "nothing",
            )
        return None, None, mismatched
    warn_untrusted(spec, trusted=settings.trust_model)
    built = ensure_environment(read_environment(spec), settings.env_manager, settings.env_cache)
    log.info(
        "model environment %s: %s in %.1fs",
        built.key[:12],
        "reused from the cache" if built.reused else f"built with {built.tool}",
        built.seconds,
    )
    # Load the model once in its environment here: one that cannot load fails now, by name.
    started = time.perf_counter()
    process = ModelProcess(model_path, built.site_packages)
    process.close()
    return (
        built,
        Probe(
            seconds=time.perf_counter() - started,
            loaded_with=process.info["packages"],
            python=process.info["python"],
        ),
        (),
    )


def _check_spark_settings(spec: ModelSpec, settings: Settings) -> None:
    """Refuse settings a Spark MLlib model cannot take (or that only one can), before Spark."""
    if spec.sparkml is None:
        if settings.spark_output_columns is not None:
            raise SettingsError(
                key="spark_output_columns",
                value=list(settings.spark_output_columns),
                reason="applies to Spark MLlib models (the spark flavor) only; this model's "
                f"flavor is {spec.flavor}",
            )
        return
    if settings.env_manager != "local":
        raise SettingsError(
            key="env_manager",
            value=settings.env_manager,
            reason="must be local for a Spark MLlib model, which runs in Spark's JVM, not in "
            "a Python environment",
        )
    if settings.spark_output_columns is not None and settings.output_format in TABLE_FORMATS:
        raise SettingsError(
            key="spark_output_columns",
            value=list(settings.spark_output_columns),
            reason=f"cannot be used with output_format: {settings.output_format}, whose "
            "columns are fixed before Spark starts; use parquet or csv output",
        )


def _scoring_spec(spec: ModelSpec | None, settings: Settings, the_plan: Plan) -> ScoringSpec:
    signature = None if spec is None else spec.signature
    schema = signature.inputs if signature else None
    column_types = csv_column_types(schema)
    passthrough = []
    if settings.passthrough_columns:
        # A column the signature types is read as that type; any other takes one type from
        # every file (passthrough.common_type), or the job is refused here, naming the files.
        in_fs, _ = resolve(the_plan.uri)
        found = passthrough_types(
            in_fs,
            the_plan.files,
            [name for name in settings.passthrough_columns if name not in column_types],
            uri=the_plan.uri,
        )
        passthrough = [
            (name, column_types.get(name) or found[name]) for name in settings.passthrough_columns
        ]
        # A column written as text is read from CSV as text: `007` stays `007`.
        column_types = {
            **column_types,
            **{name: t for name, t in found.items() if pa.types.is_string(t)},
        }
    read_columns = None
    if schema is not None and schema.has_names and not schema.is_tensor:
        # As mlflow, predict sees only the signature's columns: no other needs decoding.
        read_columns = tuple(dict.fromkeys([*schema.names(), *(n for n, _ in passthrough)]))
    return ScoringSpec(
        prediction_type=prediction_type(signature, settings.result_type),
        passthrough=tuple(passthrough),
        column_types=column_types,
        batch_rows=None if settings.batch_rows == "auto" else settings.batch_rows,
        bad_rows=settings.bad_rows,
        params=None if spec is None else spec.params(settings.params),
        read_columns=read_columns,
        profile=settings.profiling,
    )
