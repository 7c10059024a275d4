"""sparkscore: score MLflow models over folders of files on Apache Spark."""

from __future__ import annotations

from sparkscore.errors import *  # noqa: F403
from sparkscore.errors import __all__ as _errors_all
from sparkscore.loader import Model, load_model
from sparkscore.job import score
from sparkscore.settings import Settings
from sparkscore.udf import spark_udf

__version__ = "0.1.0"

__all__ = sorted(["Model", "Settings", "load_model", "score", "spark_udf", "__version__", *_errors_all])
