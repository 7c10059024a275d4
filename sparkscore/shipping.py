"""Get a model directory to every executor through Spark itself, and load it once per worker.

Executors may not share the driver's disk, so the model travels as a zip registered with
`SparkContext.addFile`; each worker process unpacks it once (atomically, since several Python
workers on one machine may race) and keeps the loaded model for every later task. A model's own
environment (env_manager: virtualenv) travels the same way, as a tar.gz of its site-packages,
and so does a Spark Connect run's plan, from which each task reads its own mini-batch.

The zip holds the model directory's files as `model_files` lists them (nothing from outside it)
and lives in one `sparkscore-ship-*` folder per driver process: Spark serves it from there for
as long as the session runs, so it goes when the process does (see sparkscore.scratch).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import pickle
import shutil
import subprocess
import tarfile
import uuid
import weakref
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from pyspark import SparkContext, SparkFiles
from pyspark.sql import SparkSession

from sparkscore.envbuild import BuiltEnvironment, packed
from sparkscore.errors import ModelEnvironmentError, python_version
from sparkscore.loader import Model
from sparkscore.model import MLMODEL, ModelSpec, read_spec
from sparkscore.modelfiles import directory_sha256, model_sha256
from sparkscore.planner import MiniBatch
from sparkscore.scratch import process_dir
from sparkscore.script import ScoringScript
from sparkscore.worker import WORKER

__all__ = [
    "SHIP_PREFIX",
    "PackedModel",
    "ShippedCode",
    "ShippedEnvironment",
    "ShippedModel",
    "ShippedPlan",
    "Spark",
    "context_of",
    "is_connect",
    "pack_model",
    "ship_code",
    "ship_environment",
    "ship_model",
    "ship_plan",
]

_ARCHIVE_PREFIX = "sparkscore-model-"
_CODE_PREFIX = "sparkscore-code-"
_PLAN_PREFIX = "sparkscore-plan-"
SHIP_PREFIX = "sparkscore-ship-"
_T = TypeVar("_T")


@dataclass(frozen=True)
class ShippedEnvironment:
    """Where a task finds the model's environment: in place on a local master, else unpacked
    from the archive the driver registered."""

    key: str
    archive: str | None = None
    path: str | None = None
    python: str = ""  # what it was built for: an executor with another Python cannot use it

    def site_packages(self) -> str:
        here = python_version()
        if self.python.split(".")[:2] != here.split(".")[:2]:
            raise ModelEnvironmentError(
                path=self.archive or self.path or self.key,
                reason=f"it was built on the driver for Python {self.python} but this executor "
                f"runs Python {here}; give the executors the driver's Python version "
                "(PYSPARK_PYTHON).",
            )
        if self.path is not None:
            return self.path
        assert self.archive is not None
        return _unpacked(SparkFiles.get(self.archive), self.archive[: -len(".tar.gz")])


@dataclass(frozen=True)
class ShippedModel:
    """What a task needs to find the model that the driver shipped: picklable and small.

    `spec` is the driver's parse of MLmodel without its free-form `metadata` (which loading
    never uses, and which can be megabytes): workers need not parse it again.
    """

    archive: str
    sha256: str
    environment: ShippedEnvironment | None = None
    spec: ModelSpec | None = None

    def local_path(self) -> str:
        """The unpacked model directory on this executor (unpacked on first use)."""
        return _unpacked(SparkFiles.get(self.archive), self.archive[: -len(".zip")])

    def azure_model_dir(self, name: str | None) -> str:
        """Azure's AZUREML_MODEL_DIR: a folder holding the model as its one subfolder, `name`
        (its folder's name on the driver), or a single model file itself (`name` None), as
        Azure places each; unpacked there once per executor (a symbolic link would not do:
        mlflow refuses a model whose files resolve outside its folder)."""
        archive = SparkFiles.get(self.archive)
        # One folder per content and name: the same files may ship under two names.
        named = hashlib.sha256((name or "").encode()).hexdigest()[:8]
        holder = os.path.join(
            os.path.dirname(archive), f"sparkscore-azureml-{self.sha256[:20]}-{named}"
        )
        if not os.path.isdir(holder):
            staging = f"{holder}.{uuid.uuid4().hex}.tmp"
            with zipfile.ZipFile(archive) as z:
                z.extractall(os.path.join(staging, name or ""))
            try:
                os.rename(staging, holder)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
        return holder

    def load(self) -> Model:
        """The model, loaded at most once in this worker process (in its environment's child
        process when it has one): see sparkscore.worker."""
        local = self.local_path()
        spec = dataclasses.replace(self.spec, path=local) if self.spec else None
        if self.environment is not None:
            return WORKER.load_isolated(
                local, self.environment.site_packages(), key=self.sha256, spec=spec
            )
        return WORKER.load_cached(local, key=self.sha256, spec=spec)


@dataclass(frozen=True)
class ShippedCode:
    """A scoring script's `code` folder (or the script alone), shipped as the model is."""

    archive: str
    sha256: str
    relative: str  # the script inside the unpacked folder

    @property
    def key(self) -> str:
        """The script in the worker (imported, and init() called, once per key and process)."""
        return f"{self.sha256}:{self.relative}"

    def local_path(self) -> str:
        """The unpacked code folder on this executor (unpacked on first use)."""
        return _unpacked(SparkFiles.get(self.archive), self.archive[: -len(".zip")])


def _unpacked(archive: str, name: str) -> str:
    """Unpack beside the archive once per executor; a rename makes racing workers safe."""
    target = os.path.join(os.path.dirname(archive), name)
    if not os.path.isdir(target):
        staging = f"{target}.{uuid.uuid4().hex}.tmp"
        os.makedirs(staging)
        if archive.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                z.extractall(staging)
        elif shutil.which("tar"):
            subprocess.run(["tar", "-xzf", archive, "-C", staging], check=True)
        else:
            with tarfile.open(archive) as tar:
                tar.extractall(staging, filter="tar")
        try:
            os.rename(staging, target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return target


# What a job runs on: a session, or a classic one's SparkContext alone (the job needs no SQL).
Spark = SparkSession | SparkContext


# What this driver process registered with each live session, by content hash. Keyed by the
# session itself, weakly: a session that is gone takes its entries with it, so a new one (which
# may get the old one's `id`) registers its files again instead of its executors missing them.
_SHIPPED: weakref.WeakKeyDictionary[Spark, dict[str, ShippedModel]] = weakref.WeakKeyDictionary()
_CODE: weakref.WeakKeyDictionary[Spark, dict[str, str]] = weakref.WeakKeyDictionary()
_PLANS: weakref.WeakKeyDictionary[Spark, dict[str, str]] = weakref.WeakKeyDictionary()
_ENVIRONMENTS: weakref.WeakKeyDictionary[Spark, dict[str, ShippedEnvironment]] = (
    weakref.WeakKeyDictionary()
)


def _registered(
    registry: weakref.WeakKeyDictionary[Spark, dict[str, _T]],
    spark: Spark,
) -> dict[str, _T]:
    """What was registered with `spark`'s context (its Spark Connect session: it has none)."""
    sc = context_of(spark)
    owner = spark if sc is None else sc
    found = registry.get(owner)
    if found is None:
        found = registry[owner] = {}
    return found


def is_connect(spark: Spark) -> bool:
    """A Spark Connect session: no SparkContext, files go up with addArtifacts."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def context_of(spark: Spark) -> SparkContext | None:
    """The SparkContext behind `spark`; None on Spark Connect, which has none."""
    if isinstance(spark, SparkContext):
        return spark
    return None if is_connect(spark) else spark.sparkContext


@dataclass(frozen=True)
class PackedModel:
    """A model directory zipped, and the content hash that names the zip."""

    archive: str  # a local zip in this process's scratch folder
    sha256: str


def pack_model(path: str) -> PackedModel:
    """The model directory zipped, named by its content hash, once per driver process.

    The job packs in prepare (which needs the hash) while the session starts. A run of the same
    content in this process reuses the zip: hashing costs 20 ms where zipping a 37 MB forest
    costs 0.2 s, twice what its predict loses on a core while the driver packs. Deflate's
    fastest level: 0.22 s and 8.2 MB for that forest, where the default level took 0.67 s for
    6.5 MB (less time than the extra megabytes take on any network).
    """
    folder = process_dir(SHIP_PREFIX)
    sha256 = model_sha256(path)
    if os.path.exists(archive := _model_archive(folder, sha256)):
        return PackedModel(archive=archive, sha256=sha256)
    partial = os.path.join(folder, f"{uuid.uuid4().hex}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        # Hashed again as it is zipped: a model changed since the first read is named for
        # what the zip holds.
        sha256 = model_sha256(path, into=z)
    archive = _model_archive(folder, sha256)
    os.replace(partial, archive)
    return PackedModel(archive=archive, sha256=sha256)


def _model_archive(folder: str, sha256: str) -> str:
    return os.path.join(folder, f"{_ARCHIVE_PREFIX}{sha256[:20]}.zip")


def ship_model(
    spark: Spark,
    path: str,
    environment: BuiltEnvironment | None = None,
    *,
    spec: ModelSpec | None = None,
    packed: PackedModel | None = None,
) -> ShippedModel:
    """Register the model directory (zipped) with Spark, once per session and model content.

    Classic sessions use `SparkContext.addFile`; Spark Connect sessions `addArtifacts(file=True)`,
    which tasks find the same way, through `SparkFiles`. `packed` (the directory zipped and
    hashed) and `spec` (its MLmodel, parsed) are what the caller already has: neither is made
    again. A model without MLmodel (files only a scoring script loads) ships with no spec.
    """
    shipped_here = _registered(_SHIPPED, spark)
    env = ship_environment(spark, environment) if environment is not None else None
    if packed is None or packed.sha256 not in shipped_here:
        if packed is None or not os.path.exists(packed.archive):
            packed = pack_model(path)
        if packed.sha256 not in shipped_here:
            _register(spark, packed.archive)
            if spec is None and os.path.isfile(os.path.join(path, MLMODEL)):
                spec = read_spec(path)
            shipped_here[packed.sha256] = ShippedModel(
                archive=os.path.basename(packed.archive),
                sha256=packed.sha256,
                spec=None if spec is None else dataclasses.replace(spec, metadata=None),
            )
    return dataclasses.replace(shipped_here[packed.sha256], environment=env)


def ship_code(spark: Spark, script: ScoringScript) -> ShippedCode:
    """Zip the script's `code` folder (its files as a model's are read: nothing from outside
    it), or the script alone, and register it with Spark once per session and content."""
    partial = os.path.join(process_dir(SHIP_PREFIX), f"{uuid.uuid4().hex}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
        if script.folder is not None:
            sha256 = directory_sha256(script.folder, into=z)
        else:
            z.write(script.path, script.relative)
            with open(script.path, "rb") as f:
                sha256 = hashlib.sha256(script.relative.encode() + b"\0" + f.read()).hexdigest()
    name = f"{_CODE_PREFIX}{sha256[:20]}.zip"
    shipped_here = _registered(_CODE, spark)
    if sha256 not in shipped_here:
        archive = os.path.join(os.path.dirname(partial), name)
        os.replace(partial, archive)
        _register(spark, archive)
        shipped_here[sha256] = name
    else:
        os.unlink(partial)
    return ShippedCode(archive=name, sha256=sha256, relative=script.relative)


def _register(spark: Spark, file: str) -> None:
    """Make `file` reachable through SparkFiles in every task of `spark`."""
    sc = context_of(spark)
    if sc is not None:
        sc.addFile(file)
    elif not isinstance(spark, SparkContext):
        spark.addArtifacts(file, file=True)  # Spark Connect: no SparkContext


def ship_environment(spark: Spark, built: BuiltEnvironment) -> ShippedEnvironment:
    """Make the environment reachable from every task, once per session and environment.

    A local master's tasks run on this machine and use the cache in place. Elsewhere the archive
    goes through `addFile` (`addArtifacts` on Spark Connect) and each executor unpacks it once
    with `tar`: `addArchive` would do the same through Java's untar, which measured 24 s on the
    driver and again on each executor for a 20,000-file environment that tar unpacks in seconds.
    """
    sc = context_of(spark)
    shipped_here = _registered(_ENVIRONMENTS, spark)
    if built.key not in shipped_here:
        if sc is not None and (sc.master or "").startswith("local"):
            shipped = ShippedEnvironment(
                key=built.key, path=built.site_packages, python=built.python
            )
        else:
            _register(spark, packed(built))
            shipped = ShippedEnvironment(
                key=built.key, archive=built.archive_name, python=built.python
            )
        shipped_here[built.key] = shipped
    return shipped_here[built.key]


@dataclass(frozen=True)
class ShippedPlan:
    """Mini-batches in one file that every task can reach, each pickled alone, so that a task
    reads and unpickles its own only: where a partition cannot hold its mini-batch (Spark
    Connect), the whole plan rode in the task closure and every task unpickled every file: a
    million files' plan is 93 MB, 5.7 s to unpickle, where one mini-batch of it takes 0.04 s."""

    archive: str
    offsets: tuple[int, ...]  # where each mini-batch's bytes start, then the file's end

    def batch(self, position: int) -> MiniBatch:
        start, stop = self.offsets[position], self.offsets[position + 1]
        with open(SparkFiles.get(self.archive), "rb") as f:
            f.seek(start)
            batch: MiniBatch = pickle.loads(f.read(stop - start))
        return batch


def ship_plan(spark: Spark, todo: Sequence[MiniBatch]) -> ShippedPlan:
    """Register the mini-batches with Spark as one file, once per session and content."""
    pickles = [pickle.dumps(b, protocol=pickle.HIGHEST_PROTOCOL) for b in todo]
    content = b"".join(pickles)
    name = f"{_PLAN_PREFIX}{hashlib.sha256(content).hexdigest()[:20]}.pickle"
    shipped_here = _registered(_PLANS, spark)
    if name not in shipped_here:
        path = os.path.join(process_dir(SHIP_PREFIX), name)
        with open(path, "wb") as f:
            f.write(content)
        _register(spark, path)
        if is_connect(spark):
            os.unlink(path)  # uploaded: the server keeps its own copy for the session
        shipped_here[name] = name
    return ShippedPlan(
        archive=name, offsets=tuple(itertools.accumulate(map(len, pickles), initial=0))
    )
