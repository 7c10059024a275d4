"""The input's errors: the input location, one file that cannot be read, data or parameters
that do not satisfy the model signature, and passthrough columns a file lacks or cannot type.

Re-exported by `sparkscore.errors`, where callers import them from and where the whole tree is
drawn; this module imports only `sparkscore.errorbase`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sparkscore.errorbase import SparkscoreError

__all__ = [
    "ImageShapeError",
    "InputError",
    "MissingColumnError",
    "MissingPassthroughError",
    "ParamError",
    "PassthroughConflictError",
    "PassthroughTypeError",
    "ReadError",
    "SchemaEnforcementError",
    "TensorShapeError",
    "UnsupportedInputError",
]


class SchemaEnforcementError(SparkscoreError):
    """A value cannot be converted safely to the type the signature declares."""

    def __init__(
        self,
        *,
        file: str | None,
        row: int | None,
        column: str,
        value: object,
        expected: str,
        reason: str | None = None,
    ) -> None:
        self.file, self.row, self.column = file, row, column
        self.value, self.expected, self.reason = value, expected, reason
        where = ", ".join(p for p in (file, None if row is None else f"row {row}") if p)
        prefix = f"{where}: " if where else ""
        text = reason or (
            f"column '{column}' has value {value!r}, "
            f"which cannot be converted safely to {expected}."
        )
        super().__init__(prefix + text)


class MissingColumnError(SchemaEnforcementError):
    """A column the signature requires is absent from the input."""

    def __init__(
        self,
        *,
        file: str | None,
        column: str,
        present: Sequence[str],
        missing: Sequence[str] = (),
    ) -> None:
        """`column` is the first missing column; `missing` all of them, when more than one."""
        self.present = list(present)
        self.missing = list(missing) or [column]
        what = (
            f"the column '{column}'"
            if len(self.missing) == 1
            else f"the columns {', '.join(repr(c) for c in self.missing)}"
        )
        super().__init__(
            file=file,
            row=None,
            column=column,
            value=None,
            expected="a required column",
            reason=(
                f"the input is missing {what}, which the model signature requires "
                f"(columns present: {', '.join(map(str, self.present)) or 'none'})."
            ),
        )


class TensorShapeError(SchemaEnforcementError):
    """A tensor input cannot be given the shape the signature declares."""

    def __init__(
        self,
        *,
        file: str | None,
        column: str,
        shape: Sequence[int],
        expected: Sequence[int],
        reason: str | None = None,
    ) -> None:
        """`reason` replaces the general text where the kind of tensor says more (an image)."""
        self.shape, self.expected_shape = tuple(shape), tuple(expected)
        super().__init__(
            file=file,
            row=None,
            column=column,
            value=self.shape,
            expected=str(list(expected)),
            reason=reason
            or (
                f"input '{column}' has shape {list(self.shape)}, which does not fit the "
                f"signature's tensor shape {list(expected)} (-1 is any size)."
            ),
        )


class ImageShapeError(TensorShapeError):
    """An image (a decoded file, or one row of an array column) does not fit the input tensor."""

    def __init__(
        self,
        *,
        file: str | None,
        column: str,
        shape: Sequence[int],
        expected: Sequence[int],
        mode: str | None = None,
    ) -> None:
        self.mode = mode
        subject = "the image" if file else f"an image in column '{column}'"
        pixels = f" (Pillow mode {mode})" if mode else ""
        super().__init__(
            file=file,
            column=column,
            shape=shape,
            expected=expected,
            reason=(
                f"{subject} has shape {list(shape)}{pixels}, which cannot be reshaped to the "
                f"signature's tensor shape {list(expected)} (-1 is any size); convert the images "
                "to that shape, or save the model with a signature that takes this one."
            ),
        )


class ParamError(SparkscoreError):
    """An inference parameter is not declared by the model or has the wrong type."""

    def __init__(self, *, name: str, reason: str) -> None:
        self.name, self.reason = name, reason
        super().__init__(f"Parameter '{name}': {reason}")


class InputError(SparkscoreError):
    """The input location cannot be listed or holds nothing to score."""

    def __init__(self, *, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


class UnsupportedInputError(InputError):
    """Files whose type we cannot score; named all at once, before any task starts."""

    def __init__(self, *, path: str, files: Sequence[str], supported: Sequence[str]) -> None:
        self.files, self.supported = list(files), list(supported)
        super().__init__(
            path=path,
            reason=(
                f"{len(self.files)} unsupported file(s): {', '.join(self.files)}. "
                f"Supported types are {', '.join(self.supported)}; remove the others "
                "or set ignore_unsupported: true to skip them."
            ),
        )


class PassthroughConflictError(InputError):
    """Files give a passthrough column types that no one output column can hold; refused before
    any task starts, so the outcome does not depend on which file a task reads first."""

    def __init__(self, *, path: str, column: str, types: Mapping[str, Sequence[str]]) -> None:
        self.column = column
        self.types = {t: list(files) for t, files in types.items()}
        listed = "; ".join(f"{t} in {_some(files)}" for t, files in self.types.items())
        super().__init__(
            path=path,
            reason=f"the passthrough column '{column}' has types that no one column can hold: "
            f"{listed}. Give the column one type in every file, or leave it out of "
            "passthrough_columns.",
        )


class ReadError(SparkscoreError):
    """One input file cannot be read or parsed."""

    def __init__(self, *, file: str, reason: str, row: int | None = None) -> None:
        self.file, self.reason, self.row = file, reason, row
        where = file if row is None else f"{file}, row {row}"
        super().__init__(f"{where}: {reason}")


class MissingPassthroughError(SparkscoreError):
    """A column named in passthrough_columns is absent from a file."""

    def __init__(self, *, file: str, column: str, present: Sequence[str]) -> None:
        self.file, self.column, self.present = file, column, list(present)
        super().__init__(
            f"{file}: the passthrough column '{column}' is not in this file (columns present: "
            f"{', '.join(map(str, present))}); fix passthrough_columns or the file."
        )


class PassthroughTypeError(SparkscoreError):
    """A passthrough column's values cannot be written with the type the column has elsewhere."""

    def __init__(self, *, file: str, column: str, expected: object, detail: str) -> None:
        self.file, self.column, self.expected, self.detail = file, column, expected, detail
        super().__init__(
            f"{file}: the passthrough column '{column}' cannot be written as {expected}, its type "
            f"in the output ({detail}); give the column one type in every file."
        )


def _some(names: Sequence[str], shown: int = 5) -> str:
    """'a.csv, b.csv and 3 more': a list of files short enough for one error line."""
    head = ", ".join(names[:shown])
    return head if len(names) <= shown else f"{head} and {len(names) - shown} more"
