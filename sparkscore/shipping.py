"""Get a model directory to every executor through Spark itself, and load it once per worker.

Executors may not share the driver's disk, so the model travels as a zip registered with
`SparkContext.addFile`; each worker process unpacks it once (atomically, since several Python
workers on one machine may race) and keeps the loaded model for every later task.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import zipfile
from dataclasses import dataclass

from pyspark import SparkFiles
from pyspark.sql import SparkSession

from sparkscore.loader import Model, load_cached
from sparkscore.model import directory_sha256

_ARCHIVE_PREFIX = "sparkscore-model-"


@dataclass(frozen=True)
class ShippedModel:
    """What a task needs to find the model that the driver shipped: picklable and small."""

    archive: str
    sha256: str

    def local_path(self) -> str:
        """The unpacked model directory on this executor (unpacked on first use)."""
        archive = SparkFiles.get(self.archive)
        target = os.path.join(os.path.dirname(archive), self.archive[: -len(".zip")])
        if not os.path.isdir(target):
            staging = f"{target}.{uuid.uuid4().hex}.tmp"
            with zipfile.ZipFile(archive) as z:
                z.extractall(staging)
            try:
                os.rename(staging, target)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
        return target

    def load(self) -> Model:
        """The model, loaded at most once in this worker process."""
        return load_cached(self.local_path(), key=self.sha256)


_SHIPPED: dict[tuple[int, str], ShippedModel] = {}


def is_connect(spark: SparkSession) -> bool:
    """A Spark Connect session: no SparkContext, files go up with addArtifacts."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def ship_model(spark: SparkSession, path: str, sha256: str | None = None) -> ShippedModel:
    """Zip the model directory and register it with Spark, once per session and model content.

    Classic sessions use `SparkContext.addFile`; Spark Connect sessions `addArtifacts(file=True)`,
    which tasks find the same way, through `SparkFiles`.
    """
    sha = sha256 or directory_sha256(path)
    connect = is_connect(spark)
    key = (id(spark) if connect else id(spark.sparkContext), sha)
    if key in _SHIPPED:
        return _SHIPPED[key]
    name = f"{_ARCHIVE_PREFIX}{sha[:20]}.zip"
    folder = tempfile.mkdtemp(prefix="sparkscore-ship-")
    archive = os.path.join(folder, name)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for filename in sorted(filenames):
                full = os.path.join(dirpath, filename)
                z.write(full, os.path.relpath(full, path))
    if connect:
        spark.addArtifacts(archive, file=True)
    else:
        spark.sparkContext.addFile(archive)
    shipped = ShippedModel(archive=name, sha256=sha)
    _SHIPPED[key] = shipped
    return shipped
