"""sparkscore: score MLflow models over folders of files on Apache Spark.

The public names below load on first use (PEP 562), so `import sparkscore.loader` costs no
pyspark import: the model's own environment (env_manager: virtualenv) imports the loader
without having pyspark at all.
"""

from __future__ import annotations

import importlib
from typing import Any

from sparkscore.errors import *  # noqa: F403
from sparkscore.errors import __all__ as _errors_all

__version__ = "0.1.0"

_LAZY = {
    "Model": "sparkscore.loader",
    "load_model": "sparkscore.loader",
    "score": "sparkscore.job",
    "Settings": "sparkscore.settings",
    "spark_udf": "sparkscore.udf",
    "transform": "sparkscore.sparkml",
}

# Built from the lazy names and the error tree, so a new error is public once; a test pins it.
__all__ = sorted([*_LAZY, "__version__", *_errors_all])  # noqa: PLE0605


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sparkscore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
