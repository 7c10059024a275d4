"""The root of sparkscore's exception tree, and the helpers every error module shares.

`SparkscoreError` is here, apart from the error modules (`errors.py` and the concept modules it
re-exports, `modelerrors.py` and `inputerrors.py`), so that each of them imports only this
module and none imports another; callers import errors from `sparkscore.errors` alone.
"""

from __future__ import annotations

import sys

__all__ = ["SparkscoreError", "one_line", "python_version"]


class SparkscoreError(Exception):
    """Base class: catch this to catch every sparkscore failure."""


def python_version() -> str:
    """This interpreter's version as MLmodel files write it ('3.11.9'), for comparing the two."""
    return ".".join(map(str, sys.version_info[:3]))


def one_line(error: BaseException) -> str:
    """An exception's text on one line, for a one-line error record or message."""
    return " ".join(str(error).split())
