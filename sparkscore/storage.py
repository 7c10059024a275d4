"""Locations users type: their query options, where two of them overlap, and what may be shown.

A location is a local path, a `file://` URI or any URI pyarrow's filesystems open (`s3://`,
`gs://`, `hdfs://`, `abfss://`). `resolve` is the one place a location becomes a filesystem and
a path on it (a glob, by the folder before its first wildcard). Three more things about
locations are decided here, once:

- a URI's query (`s3://b/in?endpoint_override=localhost:9000&scheme=http`) is filesystem options
  for pyarrow, not part of the path, and never a glob;
- whether an output location overlaps an input location, after `..`, symlinks and URI forms are
  resolved, so a run can never write over (or delete) what it reads;
- what of a location may be printed or recorded: credentials in a URI's userinfo
  (`s3://KEY:SECRET@bucket/...`) or in secret-like query values never are.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pyarrow.fs import FileSystem

from sparkscore.errors import InputError

__all__ = [
    "REDACTED",
    "URI_SCHEME",
    "Place",
    "RedactingFilter",
    "place",
    "redact",
    "redact_record",
    "resolve",
    "split_glob",
    "split_query",
]

# Two or more letters, so that a Windows drive ("C:\\data") is read as a local path.
URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
# A query of filesystem options: key=value pairs joined by '&' (pyarrow.fs.FileSystem.from_uri).
_QUERY = re.compile(r"\?([A-Za-z_][\w.-]*=[^&?#]*(?:&[A-Za-z_][\w.-]*=[^&?#]*)*)$")
# Userinfo of a URI: everything between '//' and '@' in the authority.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]+://)(?P<userinfo>[^/@\s'\"]+)@")
# `name=value` pairs in a URI query or in text, and the names whose values are secrets
# (pyarrow's S3 options, Azure SAS signatures, GCS and generic tokens).
_PAIR = re.compile(r"(?P<name>(?<![\w.-])[A-Za-z_][\w.-]*)=(?P<value>[^&\s'\"#,;)]+)")
_SECRET_NAME = re.compile(
    r"secret|password|passwd|token|credential|signature|access[-_]?key|account[-_]?key|api[-_]?key"
    r"|^sig$|^key$|^sas$",
    re.IGNORECASE,
)
# The keys of a record whose text is a secret (catalog properties): narrower than a URI's query
# names, since a record's `key` or `signature` (a cache key, a model signature) is no secret.
_SECRET_KEY = re.compile(
    r"secret|password|passwd|token|credential|access[-_]?key|account[-_]?key|api[-_]?key",
    re.IGNORECASE,
)
REDACTED = "***"


def split_query(uri: str) -> tuple[str, str]:
    """`uri` without its query of filesystem options, and that query ('' when none, or local).

    A local path has no query: there '?' is a glob character, as in the shell.
    """
    if not URI_SCHEME.match(uri) or uri.lower().startswith("file:"):
        return uri, ""
    m = _QUERY.search(uri)
    if not m:
        return uri, ""
    return uri[: m.start()], m.group(0)


_GLOB_CHARS = "*?["


def resolve(uri: str) -> tuple[FileSystem, str]:
    """Turn a location a user typed into a filesystem and a path on it.

    The single place where user strings become filesystems, so input, model and output locations
    accept the same forms: local paths (made absolute), `file://` and every URI pyarrow knows
    (`s3://`, `gs://`, `hdfs://`, `abfss://`). A glob resolves to the folder before its first
    wildcard. Raises `InputError` when the location cannot be opened; callers resolving a model or
    an output location re-raise it under their own error.

    Examples
    --------
    >>> fs, path = resolve("file:///data/in/*.csv")
    >>> type(fs).__name__, path
    ('LocalFileSystem', '/data/in')
    """
    path, query = split_query(uri)
    location, _ = split_glob(path)
    if not URI_SCHEME.match(location):
        location = os.path.abspath(location or ".")
    try:
        fs, path = FileSystem.from_uri(location + query)
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise InputError(
            path=uri,
            reason=(
                f"cannot be opened ({exc}). Check the scheme (a local path, file://, s3://, gs://, "
                "hdfs:// or abfss://) and that this pyarrow build and its credentials support it."
            ),
        ) from exc
    return fs, path


def split_glob(uri: str) -> tuple[str, str | None]:
    """Split a glob into the folder before its first wildcard and the pattern after it."""
    first = min((i for i in map(uri.find, _GLOB_CHARS) if i >= 0), default=-1)
    if first < 0:
        return uri, None
    cut = uri.rfind("/", 0, first)
    head = uri[:cut] if cut > 0 else ""
    # Keep the slash when cutting there would leave a root or a bare scheme ("/", "file:///").
    prefix = head if head and not head.endswith(("/", ":")) else uri[: cut + 1]
    return prefix, uri[cut + 1 :]


def redact(text: str) -> str:
    """`text` with every URI credential replaced by ***: userinfo and secret-like query values.

    Applied to whatever sparkscore prints or records (log lines, error lines, the run summary),
    so a secret typed into `--input s3://KEY:SECRET@bucket/in` is not copied anywhere.

    Examples
    --------
    >>> redact("s3://AKIA:wJalr@bucket/in?endpoint_override=localhost:9000&secret_key=wJalr")
    's3://***@bucket/in?endpoint_override=localhost:9000&secret_key=***'
    """
    if "@" in text:
        text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    if "=" in text:
        text = _PAIR.sub(
            lambda m: (
                f"{m.group('name')}={REDACTED}"
                if _SECRET_NAME.search(m.group("name"))
                else m.group(0)
            ),
            text,
        )
    return text


def redact_record(value: Any) -> Any:
    """A JSON-like record with `redact` applied to every string in it (keys stay), and the text
    under a key that names a secret (`password`, `s3.secret-access-key`, as catalog properties
    carry them) replaced whole."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED
            if isinstance(k, str) and isinstance(v, str) and _SECRET_KEY.search(k)
            else redact_record(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_record(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """Redacts the message of every record that passes a handler or logger it is added to."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


# Every log line sparkscore writes passes through this filter, whoever configured the handler.
logging.getLogger("sparkscore").addFilter(RedactingFilter())


@dataclass(frozen=True)
class Place:
    """A location reduced to what identifies it: the filesystem kind and an absolute path on it
    with `..` and (on local disk) symlinks resolved. Two places with one `kind` and nested paths
    overlap, whatever form each was typed in."""

    kind: str
    path: str

    def contains(self, other: Place) -> bool:
        """True when `other` is this place or lies below it."""
        if self.kind != other.kind:
            return False
        mine = self.path.rstrip("/")
        return other.path == mine or other.path.startswith(mine + "/") or mine == ""


def place(uri: str) -> Place:
    """Where `uri` is, for comparing locations; the location need not exist yet."""
    location, _ = split_query(uri)
    scheme = URI_SCHEME.match(location)
    if scheme is None or location.lower().startswith("file:"):
        if scheme is not None:
            location = re.sub(r"^file:(//)?", "", location, flags=re.IGNORECASE)
            if location.startswith("localhost/"):
                location = location[len("localhost") :]
        return Place("local", os.path.realpath(os.path.abspath(location or ".")))
    kind = scheme.group(0)[:-1].lower()
    rest = location[scheme.end() :].lstrip("/")
    authority = rest.split("/", 1)[0]
    if "@" in authority:  # credentials do not change the place
        rest = rest[authority.rindex("@") + 1 :]
    kind = {"s3a": "s3", "s3n": "s3", "gcs": "gs", "abfs": "abfss"}.get(kind, kind)
    return Place(kind, posixpath.normpath("/" + rest))
