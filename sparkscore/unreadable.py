"""Why an input file cannot be read, in words a user can act on.

The CSV, Parquet and image readers turn what pyarrow or the filesystem raised into one ReadError
reason here, so a file removed since planning, text that is not UTF-8 or a column named twice
reads the same whichever reader met it; text from a file is made printable before it is shown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pyarrow import fs as pafs

from sparkscore.errors import ReadError, one_line
from sparkscore.listing import InputFile

__all__ = ["duplicates", "printable", "read_error", "removed", "repeated_column"]


def read_error(fs: pafs.FileSystem, file: InputFile, e: BaseException) -> ReadError:
    """The ReadError for a table file that pyarrow or the filesystem could not read."""
    text = printable(one_line(e))
    lowered = text.lower()
    if removed(fs, file, e):
        reason = "the file no longer exists: it was removed after the job was planned."
    elif isinstance(e, UnicodeDecodeError):
        reason = "the file is not valid UTF-8 text; save it as UTF-8."
    elif "utf8" in lowered or "utf-8" in lowered:
        reason = f"the file is not valid UTF-8 text ({text}); save it as UTF-8."
    elif "empty" in lowered:
        reason = "the file is empty."
    elif file.kind == "parquet":
        reason = (
            f"the file is not a readable Parquet file; it may be truncated or corrupt ({text})."
        )
    else:
        reason = f"the file cannot be parsed as CSV ({text})."
    return ReadError(file=file.name, reason=reason)


def removed(fs: pafs.FileSystem, file: InputFile, e: BaseException) -> bool:
    """Whether a failure to read is the file having gone since the job listed it."""
    if isinstance(e, FileNotFoundError):
        return True
    if not isinstance(e, OSError):
        return False
    try:
        return bool(fs.get_file_info(file.path).type == pafs.FileType.NotFound)
    except OSError:
        return False


def duplicates(names: Sequence[str]) -> list[str]:
    """Column names that appear more than once, in the order they first appear."""
    counts = Counter(names)
    return [name for name in dict.fromkeys(names) if counts[name] > 1]


def repeated_column(repeated: list[str], names: Sequence[str], where: str) -> str:
    """The reason a file whose `where` (header, schema) names a column twice is refused."""
    name = repeated[0]
    times = names.count(name)
    how = "twice" if times == 2 else f"{times} times"
    return (
        f"the column '{printable(name, 80)}' appears {how} in the file's {where}, so which "
        "one to read is ambiguous; give each column its own name."
    )


def printable(text: str, limit: int = 300) -> str:
    """Text from a file or from pyarrow, safe to print: control characters escaped, and cut at
    `limit` characters."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
