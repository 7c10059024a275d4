"""The CSV output's text: values quoted only where needed, as pandas' `to_csv` and Spark write.

pyarrow's CSV writer quotes every string (`"row","prediction","file_name"`, `0,1.5,"a.csv"`);
Azure's predictions.csv, pandas and Spark quote a value only when it holds a comma, a quote or
a line break (and an empty string, as `""`, to tell it from a missing value, as Spark does).
Values are turned to text by Arrow's own casts (the text pyarrow's writer would write), quoted
where needed and joined into lines, column by column: no Python loop over rows. Nested values
(struct, array) are written as JSON text first (`csv_ready`), as CSV has none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["csv_header", "csv_lines", "csv_ready"]

_NEEDS_QUOTES = '^$|[",\r\n]'


def _quoted(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Each value that needs it enclosed in quotes, its own quotes doubled (RFC 4180)."""
    needs = pc.match_substring_regex(text, _NEEDS_QUOTES)
    if not pc.any(needs).as_py():  # most columns (file names, ids): nothing to quote
        return text
    enclosed = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    return pc.if_else(needs, enclosed, text)


def _plain(t: pa.DataType) -> bool:
    """A number or a boolean: its text is never empty and holds no comma, quote or line break."""
    return any(
        check(t)
        for check in (
            pa.types.is_integer,
            pa.types.is_floating,
            pa.types.is_boolean,
            pa.types.is_decimal,
        )
    )


def csv_header(names: Sequence[str]) -> bytes:
    """The header line: the column names, quoted where needed."""
    return (",".join(_quoted(pa.array(list(names), pa.string())).to_pylist()) + "\n").encode()


def csv_lines(table: pa.Table) -> bytes:
    """The table's rows as CSV lines (no header); a missing value is an empty field."""
    if table.num_rows == 0:
        return b""
    texts = []
    for column in table.columns:
        if _plain(column.type):
            texts.append(pc.cast(column, pa.string()))
        else:
            text = column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
            texts.append(_quoted(text))
    lines = pc.binary_join_element_wise(*texts, ",", null_handling="replace", null_replacement="")
    ended = pc.binary_join_element_wise(lines, "", "\n")  # each line and its line break
    if isinstance(ended, pa.ChunkedArray):
        ended = ended.combine_chunks()
    # The lines, end to end, are the array's data between its first and last offset.
    offsets = np.frombuffer(ended.buffers()[1], dtype=np.int32)
    start, end = offsets[ended.offset], offsets[ended.offset + len(ended)]
    return bytes(ended.buffers()[2].to_pybytes()[start:end])


def csv_ready(table: pa.Table) -> pa.Table:
    """Nested predictions (struct, array) become JSON text, as CSV has no nested values."""
    for i, column in enumerate(table.columns):
        if pa.types.is_nested(column.type):
            text = pa.array([json.dumps(v) for v in column.to_pylist()], pa.string())
            table = table.set_column(i, table.field(i).name, text)
    return table
