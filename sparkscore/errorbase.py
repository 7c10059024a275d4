"""The root of sparkscore's exception tree, and the helpers every error module shares.

`SparkscoreError` is here, apart from the error modules (`errors.py` and the concept modules it
re-exports, `modelerrors.py` and `inputerrors.py`), so that each of them imports only this
module and none imports another; callers import errors from `sparkscore.errors` alone.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["SparkscoreError", "one_line", "python_version"]


class SparkscoreError(Exception):
    """Base class: catch this to catch every sparkscore failure."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its message and fields: each error takes keyword-only fields, which
        Exception's own pickling (the message as the one positional argument) cannot give back,
        and an error crosses processes (a forked child, a model's own process, Spark Connect)."""
        return (_restore, (type(self), self.args, dict(self.__dict__)))


def _restore(cls: type[SparkscoreError], args: tuple[Any, ...], fields: dict[str, Any]) -> Any:
    error = cls.__new__(cls, *args)
    Exception.__init__(error, *args)
    error.__dict__.update(fields)
    return error


def python_version() -> str:
    """This interpreter's version as MLmodel files write it ('3.11.9'), for comparing the two."""
    return ".".join(map(str, sys.version_info[:3]))


def one_line(error: BaseException) -> str:
    """An exception's text on one line, for a one-line error record or message."""
    return " ".join(str(error).split())
