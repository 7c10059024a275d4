"""What each setting's value may be: one check per kind of value, each returning the value
normalised or raising `Invalid` with the reason alone (sparkscore.settings adds the setting's
name, the value and where it came from)."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args

__all__ = [
    "BadRows",
    "Check",
    "EnvManager",
    "Invalid",
    "LoggingLevel",
    "OutputAction",
    "OutputFormat",
    "SchemaMode",
    "catalog",
    "choice",
    "columns",
    "directory",
    "file_name",
    "flag",
    "integer",
    "or_auto",
    "output_columns",
    "params",
    "positive_number",
    "positive_seconds",
    "reference",
    "script",
    "share",
    "spark_type",
    "table_name",
    "threads",
    "variables",
]

OutputAction = Literal["append_row", "summary_only"]
OutputFormat = Literal["parquet", "csv", "delta", "iceberg"]
SchemaMode = Literal["strict", "merge"]
LoggingLevel = Literal["debug", "info", "warning", "error"]
BadRows = Literal["fail_file", "skip"]
EnvManager = Literal["local", "virtualenv", "uv"]

Check = Callable[[Any], Any]


class Invalid(Exception):
    """A check's verdict; carries only the reason, the caller adds key, value and source."""


def integer(minimum: int) -> Check:
    """Accept whole numbers only: a bool or 2.0 in an int setting is a mistake, not a count."""

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise Invalid("must be an integer")
        if value < minimum:
            raise Invalid(f"must be >= {minimum}")
        return int(value)

    return check


def positive_seconds(value: Any) -> float | None:
    """Accept ints for a float setting, since ``timeout: 30`` means 30.0 seconds."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Invalid("must be a number of seconds or null")
    if not math.isfinite(value):
        raise Invalid("must be a finite number of seconds")
    if value <= 0:
        raise Invalid("must be > 0")
    return float(value)


def choice(options: Any) -> Check:
    """Check against a Literal alias, so the allowed words are written once, in the type."""
    allowed: tuple[str, ...] = get_args(options)

    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise Invalid(f"must be one of {', '.join(allowed)}")
        return value

    return check


def flag(value: Any) -> bool:
    """Accept real booleans only: the string "false" is truthy and would silently mean true."""
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


def file_name(value: Any) -> str:
    """Keep the output inside the output directory: a name, never a path."""
    if not isinstance(value, str) or value in ("", ".", "..") or "/" in value or "\\" in value:
        raise Invalid("must be a plain file name, without '/'")
    return value


def columns(value: Any) -> tuple[str, ...]:
    """Let YAML say ``id`` or ``[id, ts]``; store a tuple so Settings stays immutable."""
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(
        isinstance(name, str) and name for name in names
    ):
        raise Invalid("must be a column name or a list of column names")
    if len(set(names)) != len(names):
        raise Invalid("must not name a column twice")
    return tuple(names)


def output_columns(value: Any) -> tuple[str, ...] | None:
    """A Spark MLlib model's output columns; None: its prediction alone."""
    return None if value is None else columns(value)


def directory(value: Any) -> str | None:
    """A local directory, `~` expanded; None keeps the default."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise Invalid("must be a directory path or null")
    return os.path.expanduser(value)


def script(value: Any) -> str | None:
    """A scoring script: a `.py` file, relative to `code` when that is set; None: no script."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip().endswith(".py"):
        raise Invalid("must be a .py file (Azure's scoring_script), or null")
    return os.path.expanduser(value.strip())


def variables(value: Any) -> dict[str, str] | None:
    """Environment variables for the scoring script's workers: names and values as text."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(key, str) and key and "=" not in key for key in value
    ):
        raise Invalid("must be a mapping of variable name to value, or null")
    return {key: "" if item is None else str(item) for key, item in value.items()}


def spark_type(value: Any) -> str | None:
    """Keep the DDL string as written; Spark parses it at the edge, this module imports no Spark."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise Invalid("must be a Spark DDL type such as 'double' or 'array<double>', or null")
    return value


def params(value: Any) -> dict[str, Any] | None:
    """Copy into a plain dict so the caller's mapping cannot change a frozen Settings."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise Invalid("must be a mapping of parameter name to value, or null")
    return dict(value)


def catalog(value: Any) -> dict[str, str] | None:
    """pyiceberg catalog properties, copied: every key and value a string, as pyiceberg reads
    them (a number from YAML becomes its text)."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise Invalid("must be a mapping of pyiceberg catalog property to value, or null")
    return {key: str(item) for key, item in value.items()}


def table_name(value: Any) -> str | None:
    """An Iceberg table identifier, `namespace.table` (a namespace may have levels: a.b.table)."""
    if value is None:
        return None
    parts = value.split(".") if isinstance(value, str) else []
    if len(parts) < 2 or not all(p.strip() for p in parts):
        raise Invalid("must be namespace.table, or null")
    return str(value)


def reference(value: Any) -> str | None:
    """An earlier run's output folder or its _profile.json, as a path or URI; None: no drift."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise Invalid("must be an output folder or a _profile.json, or null")
    return value


def positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value) > 0:
        raise Invalid("must be a number > 0")
    return float(value)


def share(value: Any) -> float:
    """A change in a share of rows: 0 flags any change, 1 would flag none."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Invalid("must be a number from 0 up to 1")
    if not 0 <= float(value) < 1:
        raise Invalid("must be a number from 0 up to 1")
    return float(value)


def or_auto(check: Check) -> Check:
    """`auto` lets sparkscore size it; a number is the user's explicit choice."""

    def either(value: Any) -> Any:
        if value == "auto":
            return "auto"
        try:
            return check(value)
        except Invalid as e:
            raise Invalid(f"{e} or auto") from None

    return either


def threads(value: Any) -> int | str:
    """`auto` (the task's cores), `off` (the libraries' defaults), or a number per worker.

    YAML reads a bare `off` as false: both mean off."""
    if value is False or value == "off":
        return "off"
    if value == "auto":
        return "auto"
    try:
        return int(integer(minimum=1)(value))
    except Invalid as e:
        raise Invalid(f"{e}, auto or off") from None
