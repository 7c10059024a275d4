"""One local Spark session and one set of real mlflow-saved models for the whole test run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

sys.path.insert(0, str(Path(__file__).parent))

import model_zoo


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("sparkscore-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.python.worker.reuse", "true")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> model_zoo.Zoo:
    return model_zoo.Zoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="session")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model environments built during this test run (built for real from the package index,
    once per run, so that a run measures a build and its reuse)."""
    return tmp_path_factory.mktemp("envs")


@pytest.fixture(scope="session")
def versioned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PythonModel that reports its scikit-learn version; it pins an older one."""
    return model_zoo.versioned_model(tmp_path_factory.mktemp("versioned"))


@pytest.fixture(scope="session")
def light_chaos(tmp_path_factory: pytest.TempPathFactory):
    """Builds chaos models that pin only numpy, so their environment builds in seconds."""

    def build(**config: object) -> Path:
        path = model_zoo.chaos_model(tmp_path_factory.mktemp("chaos"), **config)
        (path / "requirements.txt").write_text("numpy\n")
        return path

    return build


@pytest.fixture(scope="session")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chaos model with no misbehaviour configured: a * 2 + b, one model for every table
    test."""
    return model_zoo.chaos_model(tmp_path_factory.mktemp("chaos"))
