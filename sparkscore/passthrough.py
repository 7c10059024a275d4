"""The one output type of each passthrough column, decided on the driver from every table file.

Files of one input may give a passthrough column different types (integers in one, text in
another); the output holds one column, so its type is chosen here once, by a rule that does not
depend on file order, or the job is refused naming the files of each type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
from pyarrow import fs as pafs

from sparkscore.errors import PassthroughConflictError, ReadError
from sparkscore.listing import InputFile
from sparkscore.readers import peek_schema

__all__ = ["common_type", "passthrough_types"]


def passthrough_types(
    fs: pafs.FileSystem, files: Sequence[InputFile], columns: Sequence[str], *, uri: str
) -> dict[str, pa.DataType]:
    """The one output type of each passthrough column, from every table file's footer or header.

    Read on threads (footers and headers are small reads, mostly waiting on storage). A file that
    cannot be read is left out: its task records why. See `common_type` for the rule.
    """
    if not columns:
        return {}
    tables = [f for f in files if f.kind != "image"]
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(tables)))) as pool:
        schemas = list(pool.map(lambda f: _schema_or_none(fs, f), tables))
    types = {}
    for column in columns:
        found = {}
        for file, schema in zip(tables, schemas):
            index = -1 if schema is None else schema.get_field_index(column)
            if schema is not None and index >= 0:  # -1: absent, or twice (the file fails)
                found[file.name] = schema.field(index).type
        types[column] = common_type(column, found, uri=uri)
    return types


def _schema_or_none(fs: pafs.FileSystem, file: InputFile) -> pa.Schema | None:
    try:
        return peek_schema(fs, file)
    except (pa.ArrowException, OSError, UnicodeDecodeError, ReadError):
        return None


def common_type(column: str, found: Mapping[str, pa.DataType], *, uri: str) -> pa.DataType:
    """The type a passthrough column is written with, whatever order the files come in.

    Dictionary-encoded values count as their values' type, and a column that is all empty in a
    CSV's first block (null) counts as nothing. One type: that one. Text in some files and
    integers in others: text, the integers written as their decimal digits (a CSV column is then
    read as text, so `007` stays `007`). Otherwise Arrow's permissive promotion: integers widen
    (int32 and int64 to int64), integers and floats to float64 (a value a float64 cannot hold
    exactly then fails its file), timestamps to the finer unit, lists and structs field by field.
    Types none of these join are refused, naming the files of each type. No file has the
    column: string.
    """
    kinds: dict[pa.DataType, list[str]] = {}
    for name, t in sorted(found.items()):
        t = t.value_type if pa.types.is_dictionary(t) else t
        if not pa.types.is_null(t):
            kinds.setdefault(t, []).append(name)
    if not kinds:
        return pa.string()
    if len(kinds) == 1:
        return next(iter(kinds))
    text = [t for t in kinds if pa.types.is_string(t) or pa.types.is_large_string(t)]
    if text and all(t in text or pa.types.is_integer(t) for t in kinds):
        return pa.string()
    try:
        return (
            pa.unify_schemas(
                [pa.schema([(column, t)]) for t in kinds], promote_options="permissive"
            )
            .field(0)
            .type
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        types = {str(t): names for t, names in kinds.items()}
        raise PassthroughConflictError(path=uri, column=column, types=types) from None
