"""Images to the arrays a model takes: decode with Pillow, then shape and type by the signature.

Seed 002 hands image files (.png .jpg .jpeg .tiff .bmp .gif) to the model as an `np.ndarray`,
reshaped to the input TensorSpec and cast to its dtype, or, when the model has no signature, as
uint8. The same rules serve the job (one file, one output row) and the UDF (a binary column of
encoded images, or an array column), so a model sees the same arrays either way. Each image
becomes a tensor with a batch dimension of one; the caller stacks images of one shape into a
single `predict` call.
"""

from __future__ import annotations

import io
import math
import posixpath
import re
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyarrow import fs as pafs

from sparkscore.errors import (
    BatchTimeoutError,
    ImageShapeError,
    ReadError,
    SchemaEnforcementError,
    one_line,
)
from sparkscore.listing import SUPPORTED_EXTENSIONS, InputFile
from sparkscore.signature import ColSpec, DataType, Schema, TensorSpec
from sparkscore.unreadable import removed

__all__ = [
    "UNSIGNED_DTYPE",
    "Decoded",
    "ImageInput",
    "batch_key",
    "decode",
    "read_bytes",
    "row_tensors",
    "stack_runs",
]

# What a model without a signature receives (seed 002: "tensors of type np.uint8").
UNSIGNED_DTYPE = np.dtype(np.uint8)


@dataclass(frozen=True, eq=False)
class Decoded:
    """An image's pixels, and the Pillow mode they came from (named in errors)."""

    array: np.ndarray
    mode: str | None


def read_bytes(fs: pafs.FileSystem, file: InputFile) -> bytes:
    """A whole image file; images are read whole, one at a time, inside the task."""
    if file.size == 0:
        raise ReadError(file=file.name, reason="the file is empty (0 bytes).")
    try:
        with fs.open_input_stream(file.path) as f:
            data: bytes = f.read()
            return data
    except OSError as e:
        if removed(fs, file, e):
            reason = "the file no longer exists: it was removed after the job was planned."
        else:
            reason = f"the file cannot be read ({one_line(e)})."
        raise ReadError(file=file.name, reason=reason) from None


def decode(data: bytes, *, name: str, source: str = "the file") -> Decoded:
    """Pixels as Pillow decodes them (first frame); a palette image becomes its colors.

    A palette (GIF, some PNG) holds indices into a color table, which mean nothing to a model:
    a grayscale palette decodes to mode L, any other to RGB (RGBA with transparency), so a
    digit saved as GIF or as PNG gives the same array. Raises ReadError, naming `name`, for
    bytes that are not a readable image.
    """
    image_module = _pillow()
    kind = _format(name)
    if not data:
        raise ReadError(file=name, reason=f"{source} is empty (0 bytes).")
    try:
        with image_module.open(io.BytesIO(data)) as image:
            image.load()
            mode = image.mode
            array = np.array(_without_palette(image))
    except BatchTimeoutError:
        raise
    except image_module.UnidentifiedImageError:
        raise ReadError(
            file=name,
            reason=f"{source} is not a readable {kind}image: Pillow recognizes no "
            "image format in it.",
        ) from None
    except image_module.DecompressionBombError as e:
        raise ReadError(file=name, reason=_too_large(source, kind, e, image_module)) from None
    except Exception as e:  # Pillow's decoders raise OSError, SyntaxError, ValueError, ...
        raise ReadError(
            file=name,
            reason=f"{source} is not a readable {kind}image; it may be truncated or "
            f"corrupt ({one_line(e)}).",
        ) from None
    if not array.dtype.isnative:  # 16-bit big-endian TIFF and PNG
        array = array.astype(array.dtype.newbyteorder("="))
    return Decoded(array, mode)


@dataclass(frozen=True)
class ImageInput:
    """What a model takes for one image, decided once from its input signature.

    `spec`: the tensor each image becomes. No spec and no column: uint8 with a batch dimension
    of one (a model without a signature). `column`: a model whose signature is one binary column
    gets the file's bytes in a DataFrame, as Azure's batch driver gives them. `refusal`: why this
    model cannot take images at all (a table model); each image file then fails alone.
    """

    spec: TensorSpec | None = None
    column: str | int | None = None
    refusal: str | None = None

    @classmethod
    def for_schema(cls, schema: Schema | None) -> ImageInput:
        if schema is None or not schema.specs:
            return cls()
        if schema.is_tensor:
            specs = [s for s in schema.specs if isinstance(s, TensorSpec)]
            if len(specs) > 1:
                names = ", ".join(str(s.name) for s in specs)
                return cls(
                    refusal=f"the model takes {len(specs)} named tensors ({names}), and "
                    "an image fills only one; score image files with a model whose "
                    "input is one tensor."
                )
            if not specs[0].shape:
                return cls(
                    refusal="the model's input tensor is a scalar (shape []), which "
                    "cannot hold an image."
                )
            return cls(spec=specs[0])
        only = schema.specs[0]
        if len(schema.specs) == 1 and isinstance(only, ColSpec) and only.type is DataType.binary:
            return cls(column=only.name if only.name is not None else 0)
        columns = ", ".join(
            f"{s.name or i}: {s.to_dict()['type']}"
            for i, s in enumerate(schema.specs)
            if isinstance(s, ColSpec)
        )
        return cls(
            refusal=f"the model's signature takes columns ({columns}), not images; image "
            "files need a model whose input is one tensor (TensorSpec) or one binary "
            "column. Leave the image files out of the input, or score them with a model "
            "that takes images."
        )

    @property
    def batchable(self) -> bool:
        """Whether images may share a predict call: the tensor's first dimension is -1."""
        return self.spec is None or self.spec.shape[0] == -1

    def check(self, *, name: str) -> None:
        """Raise, naming the file, when this model cannot take images at all."""
        if self.refusal is not None:
            raise SchemaEnforcementError(
                file=name,
                row=None,
                column="*",
                value="an image",
                expected="columns",
                reason=f"this is an image file, but {self.refusal}",
            )

    def model_input(self, data: bytes, *, name: str) -> np.ndarray | pd.DataFrame:
        """One encoded image as the model's input for one row (batch dimension one)."""
        self.check(name=name)
        if self.column is not None:
            if not data:
                raise ReadError(file=name, reason="the file is empty (0 bytes).")
            return pd.DataFrame({self.column: [data]})
        return self.tensor(decode(data, name=name), file=name)

    def tensor(self, image: Decoded, *, file: str | None, column: str | None = None) -> np.ndarray:
        """One image's pixels, reshaped and cast safely to what the model takes.

        Raises ImageShapeError when the pixels do not fit the tensor's shape, and
        SchemaEnforcementError when a pixel value does not survive the cast.
        """
        label = column or (self.spec.name if self.spec and self.spec.name else "the image")
        if self.spec is None:
            return _cast(
                image,
                UNSIGNED_DTYPE,
                file=file,
                column=label,
                why="the type a model without a signature receives",
            )[np.newaxis]
        spec = self.spec
        if spec.dtype == np.dtype(object) and spec.shape == (-1,):
            # Any array per row (mlflow's ragged tensor): the image itself, as one object.
            batch = np.empty(1, dtype=object)
            batch[0] = image.array
            return batch
        shape = self._shape(image, file=file, column=label)
        return _cast(
            image, spec.dtype, file=file, column=label, why="the signature's tensor type"
        ).reshape(shape)

    def _shape(self, image: Decoded, *, file: str | None, column: str) -> tuple[int, ...]:
        """The tensor shape for one image: its own shape where -1 allows, else a reshape."""
        assert self.spec is not None
        found = image.array.shape
        lead: tuple[int, ...]
        if self.spec.shape[0] == -1:
            lead, rest = (1,), self.spec.shape[1:]
        else:  # a fixed first dimension: the whole tensor is one image's
            lead, rest = (), self.spec.shape
        # Keep the image's own dimensions where the spec allows any size; a grayscale image
        # also fits a spec with one trailing channel.
        for candidate in (found, (*found, 1)):
            if len(candidate) == len(rest) and all(r in (-1, c) for r, c in zip(rest, candidate)):
                return (*lead, *candidate)
        size = math.prod(found)
        known = math.prod(r for r in rest if r != -1)
        unknown = sum(1 for r in rest if r == -1)
        if unknown == 0 and known == size:
            return (*lead, *rest)
        if unknown == 1 and known and size % known == 0:
            return (*lead, *(size // known if r == -1 else r for r in rest))
        raise ImageShapeError(
            file=file, column=column, shape=found, expected=self.spec.shape, mode=image.mode
        )


def row_tensors(frame: pd.DataFrame, schema: Schema | None) -> list[np.ndarray] | None:
    """The UDF's rows as image tensors, or None when this input is not images for this model.

    Images are one column holding encoded bytes (Spark's `binaryFile` `content`), for a model
    with one input tensor or no signature, or holding arrays, for a model with one input tensor.
    Each row is shaped by the same rules as an image file.
    """
    if frame.shape[1] != 1 or frame.empty:
        return None
    how = ImageInput.for_schema(schema)
    if how.refusal is not None or how.column is not None:
        return None
    values = frame.iloc[:, 0]
    column = str(frame.columns[0])
    first = next((v for v in values if v is not None), None)
    encoded = isinstance(first, (bytes, bytearray, memoryview))
    if not encoded and not (how.spec is not None and isinstance(first, (np.ndarray, list))):
        return None
    tensors = []
    for value in values:
        if value is None or (isinstance(value, float) and value != value):
            raise SchemaEnforcementError(
                file=None,
                row=None,
                column=column,
                value=None,
                expected="an image",
                reason=f"column '{column}' holds a null where an image is expected; filter out "
                "the nulls before scoring.",
            )
        if encoded:
            image = decode(bytes(value), name=f"column '{column}'", source="a value")
        else:
            image = Decoded(_dense(value), None)
        tensors.append(how.tensor(image, file=None, column=column))
    return tensors


def batch_key(data: Any, batchable: bool) -> Hashable | None:
    """Inputs with equal keys can share one predict call; None: predict this one alone."""
    if not batchable:
        return None
    if isinstance(data, pd.DataFrame):
        return "frame"
    if isinstance(data, np.ndarray) and data.ndim >= 1:
        return ("array", data.dtype.str, data.shape[1:])
    return None


def stack_runs(tensors: Sequence[np.ndarray], batchable: bool) -> Iterator[np.ndarray]:
    """Consecutive tensors of one shape and dtype, stacked: one predict call each, in order."""
    run: list[np.ndarray] = []
    for t in tensors:
        if run and (
            batch_key(t, batchable) is None
            or batch_key(t, batchable) != batch_key(run[-1], batchable)
        ):
            yield run[0] if len(run) == 1 else np.concatenate(run)
            run = []
        run.append(t)
    if run:
        yield run[0] if len(run) == 1 else np.concatenate(run)


def _cast(
    image: Decoded, dtype: np.dtype, *, file: str | None, column: str, why: str
) -> np.ndarray:
    """Cast pixels only when every value survives (a 16-bit 300 must not become uint8 44)."""
    array = image.array
    if array.dtype == dtype or dtype == np.dtype(object):
        return array
    with np.errstate(invalid="ignore", over="ignore"):
        try:
            cast = array.astype(dtype)
        except (TypeError, ValueError):
            cast = None
    if cast is not None:
        with np.errstate(invalid="ignore"):
            same = cast == array
            if array.dtype.kind == "f":
                same |= np.isnan(array) & np.isnan(cast.astype(array.dtype))
        if same.all():
            return cast
        example = f" (e.g. {array[~same].flat[0].item()!r})"
    else:
        example = ""
    pixels = f" (Pillow mode {image.mode})" if image.mode else ""
    raise SchemaEnforcementError(
        file=file,
        row=None,
        column=column,
        value=str(array.dtype),
        expected=str(dtype),
        reason=f"the image's pixels are {array.dtype}{pixels}, and a value{example} cannot be "
        f"converted safely to {dtype}, {why}; save the model with a tensor type that holds "
        f"{array.dtype} values.",
    )


def _without_palette(image: Any) -> Any:
    if image.mode not in ("P", "PA"):
        return image
    palette = image.getpalette() or []
    gray = all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette), 3))
    alpha = image.mode == "PA" or "transparency" in image.info
    if gray:
        return image.convert("LA" if alpha else "L")
    return image.convert("RGBA" if alpha else "RGB")


def _dense(value: Any) -> np.ndarray:
    """A row of an array column as one n-D array (Arrow gives nested lists as arrays of arrays)."""
    array = np.asarray(value)
    if array.dtype == object and array.size and isinstance(array.flat[0], (np.ndarray, list)):
        return np.stack([_dense(v) for v in array])
    return array


def _format(name: str) -> str:
    """'PNG ' for messages about `x.png`; '' when the name is not an image file's."""
    ext = posixpath.splitext(name)[1].lower()
    return f"{ext[1:].upper()} " if SUPPORTED_EXTENSIONS.get(ext) == "image" else ""


def _too_large(source: str, kind: str, e: BaseException, image_module: Any) -> str:
    """Pillow refuses to decode an image of more than twice MAX_IMAGE_PIXELS pixels, a guard
    against decompression bombs; say so, with the image's size, not that it is corrupt."""
    found = re.search(r"\((\d+) pixels\)", str(e))
    size = f"{int(found.group(1)):,} pixels" if found else "more pixels"
    limit = image_module.MAX_IMAGE_PIXELS
    most = f" ({2 * limit:,}: twice PIL.Image.MAX_IMAGE_PIXELS)" if limit else ""
    image = f"a {kind}image" if kind else "an image"
    return (
        f"{source} is {image} of {size}, more than Pillow decodes{most}, its guard "
        "against decompression bombs; resize the image, or leave it out of the input."
    )


def _pillow() -> Any:
    """Pillow's Image module, imported when the first image is decoded."""
    try:
        from PIL import Image
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "decoding images needs Pillow, which is not installed in this Python; install it "
            "with: pip install Pillow"
        ) from e
    return Image
