"""Images to model inputs: Pillow decoding, seed 002's reshape and cast rules, and the errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from model_zoo import digit_images
from PIL import Image
from pyarrow import fs as pafs

from sparkscore.errors import ImageShapeError, ReadError, SchemaEnforcementError
from sparkscore.images import (
    Decoded,
    ImageInput,
    batch_key,
    decode,
    read_bytes,
    row_tensors,
    stack_runs,
)
from sparkscore.listing import InputFile
from sparkscore.signature import Schema

DIGIT = digit_images(1)[0]  # 8x8 uint8


def encoded(pixels: np.ndarray | Image.Image, fmt: str = "PNG") -> bytes:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def tensor_input(dtype: str, shape: list[int]) -> ImageInput:
    schema = Schema.from_list([{"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}}])
    return ImageInput.for_schema(schema)


def rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# Decoding


def test_images_decode_gives_pillow_pixels_for_each_mode():
    color = rgb(4, 6)
    sixteen = DIGIT.astype(np.uint16) * 257
    cases = {
        "gray.png": (encoded(DIGIT), "L", DIGIT),
        "gray.bmp": (encoded(DIGIT, "BMP"), "L", DIGIT),
        "gray.tiff": (encoded(DIGIT, "TIFF"), "L", DIGIT),
        "color.png": (encoded(color), "RGB", color),
        "color.tiff": (encoded(color, "TIFF"), "RGB", color),
        "alpha.png": (
            encoded(np.dstack([color, color[..., :1]])),
            "RGBA",
            np.dstack([color, color[..., :1]]),
        ),
        "sixteen.png": (encoded(Image.fromarray(sixteen)), "I;16", sixteen),
    }
    for name, (data, mode, pixels) in cases.items():
        image = decode(data, name=name)
        assert image.mode == mode, name
        assert image.array.dtype == pixels.dtype, name
        np.testing.assert_array_equal(image.array, pixels, err_msg=name)
        assert image.array.flags.writeable, name


def test_images_decode_palette_to_colors_so_a_gif_equals_its_png():
    gray = decode(encoded(DIGIT, "GIF"), name="digit.gif")
    assert (gray.mode, gray.array.dtype, gray.array.shape) == ("P", np.uint8, (8, 8))
    np.testing.assert_array_equal(gray.array, decode(encoded(DIGIT), name="digit.png").array)

    palette = Image.fromarray(rgb(4, 6)).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    colors = decode(encoded(palette, "PNG"), name="few-colors.png")
    assert (colors.mode, colors.array.shape) == ("P", (4, 6, 3))
    np.testing.assert_array_equal(colors.array, np.asarray(palette.convert("RGB")))


def test_images_decode_jpeg_as_pillow_does():
    data = encoded(rgb(16, 16), "JPEG")
    image = decode(data, name="photo.jpg")
    np.testing.assert_array_equal(image.array, np.asarray(Image.open(io.BytesIO(data))))
    assert (image.mode, image.array.shape) == ("RGB", (16, 16, 3))


def test_images_corrupt_truncated_and_empty_files_are_read_errors_naming_the_file():
    whole = encoded(rgb(64, 64))
    cases = {
        "half.png": whole[: len(whole) // 2],
        "junk.jpg": b"this is not an image",
        "empty.gif": b"",
    }
    got = {}
    for name, data in cases.items():
        with pytest.raises(ReadError) as info:
            decode(data, name=name)
        assert info.value.file == name
        got[name] = str(info.value)
    assert got == {
        "half.png": "half.png: the file is not a readable PNG image; it may be truncated or "
        "corrupt (image file is truncated).",
        "junk.jpg": "junk.jpg: the file is not a readable JPG image: Pillow recognizes no "
        "image format in it.",
        "empty.gif": "empty.gif: the file is empty (0 bytes).",
    }


def test_images_read_bytes_reads_a_whole_file_and_refuses_an_empty_one(tmp_path: Path):
    (tmp_path / "a.png").write_bytes(encoded(DIGIT))
    (tmp_path / "e.png").write_bytes(b"")
    local = pafs.LocalFileSystem()

    def file(name: str) -> InputFile:
        path = tmp_path / name
        return InputFile(path=str(path), name=name, size=path.stat().st_size, kind="image")

    assert read_bytes(local, file("a.png")) == encoded(DIGIT)
    with pytest.raises(ReadError) as info:
        read_bytes(local, file("e.png"))
    assert str(info.value) == "e.png: the file is empty (0 bytes)."


# ---------------------------------------------------------------------------------------------
# Reshape and cast (seed 002: reshaped to the TensorSpec, cast to its dtype; else uint8)


@pytest.mark.parametrize(
    "dtype, shape, pixels, want_shape",
    [
        ("float32", [-1, 8, 8], (8, 8), (1, 8, 8)),
        ("uint8", [-1, 64], (8, 8), (1, 64)),
        ("float64", [-1, 8, 8, 1], (8, 8), (1, 8, 8, 1)),
        ("int64", [-1, -1], (8, 8), (1, 64)),
        ("uint8", [-1, -1, -1, 3], (5, 7, 3), (1, 5, 7, 3)),
        ("uint8", [-1, -1, -1, 1], (5, 7), (1, 5, 7, 1)),
        ("float32", [-1, 7, -1], (5, 7, 3), (1, 7, 15)),
        ("uint8", [1, 64], (8, 8), (1, 64)),
    ],
)
def test_images_tensor_takes_the_spec_shape_and_dtype(dtype, shape, pixels, want_shape):
    array = np.arange(np.prod(pixels), dtype=np.uint8).reshape(pixels)
    tensor = tensor_input(dtype, shape).tensor(Decoded(array, "L"), file="x.png")
    assert tensor.shape == want_shape
    assert tensor.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(tensor.reshape(-1), array.reshape(-1))


def test_images_without_signature_are_uint8_with_a_batch_dimension():
    how = ImageInput.for_schema(None)
    tensor = how.tensor(Decoded(DIGIT, "L"), file="x.png")
    assert (tensor.dtype, tensor.shape, how.batchable) == (np.uint8, (1, 8, 8), True)
    np.testing.assert_array_equal(tensor[0], DIGIT)
    flags = how.tensor(Decoded(np.array([[True, False]]), "1"), file="x.png")
    assert (flags.dtype, flags.tolist()) == (np.uint8, [[[1, 0]]])


def test_images_object_vector_spec_gets_each_image_whole():
    how = tensor_input("object", [-1])
    color = rgb(5, 7)
    tensor = how.tensor(Decoded(color, "RGB"), file="x.png")
    assert (tensor.dtype, tensor.shape) == (np.dtype(object), (1,))
    assert tensor[0] is color


def test_images_a_fixed_first_dimension_predicts_each_image_alone():
    assert tensor_input("uint8", [1, 64]).batchable is False
    assert tensor_input("uint8", [-1, 64]).batchable is True


def test_images_shape_that_does_not_fit_names_file_decoded_and_expected_shape():
    with pytest.raises(ImageShapeError) as info:
        tensor_input("float32", [-1, 8, 8]).tensor(Decoded(rgb(8, 8), "RGB"), file="cat.png")
    e = info.value
    assert (e.file, e.row, e.shape, e.expected_shape, e.mode) == (
        "cat.png",
        None,
        (8, 8, 3),
        (-1, 8, 8),
        "RGB",
    )
    assert isinstance(e, SchemaEnforcementError)
    assert str(e) == (
        "cat.png: the image has shape [8, 8, 3] (Pillow mode RGB), which cannot be reshaped to "
        "the signature's tensor shape [-1, 8, 8] (-1 is any size); convert the images to that "
        "shape, or save the model with a signature that takes this one."
    )


def test_images_cast_refuses_pixels_that_would_change():
    sixteen = np.array([[0, 300]], dtype=np.uint16)
    with pytest.raises(SchemaEnforcementError) as info:
        tensor_input("uint8", [-1, 1, 2]).tensor(Decoded(sixteen, "I;16"), file="deep.png")
    assert str(info.value) == (
        "deep.png: the image's pixels are uint16 (Pillow mode I;16), and a value (e.g. 300) "
        "cannot be converted safely to uint8, the signature's tensor type; save the model with "
        "a tensor type that holds uint16 values."
    )
    with pytest.raises(SchemaEnforcementError) as info:
        ImageInput.for_schema(None).tensor(Decoded(sixteen, "I;16"), file="deep.png")
    assert "to uint8, the type a model without a signature receives;" in str(info.value)
    wide = tensor_input("float32", [-1, 1, 2]).tensor(Decoded(sixteen, "I;16"), file="deep.png")
    assert wide.tolist() == [[[0.0, 300.0]]]


def test_images_for_schema_decides_once_what_a_model_takes():
    table = Schema.from_list([{"type": "double", "name": "a"}, {"type": "long", "name": "b"}])
    refused = ImageInput.for_schema(table)
    assert refused.refusal == (
        "the model's signature takes columns (a: double, b: long), not images; image files need "
        "a model whose input is one tensor (TensorSpec) or one binary column. Leave the image "
        "files out of the input, or score them with a model that takes images."
    )
    with pytest.raises(SchemaEnforcementError) as info:
        refused.model_input(encoded(DIGIT), name="x.png")
    assert str(info.value) == "x.png: this is an image file, but " + refused.refusal

    two = Schema.from_list(
        [
            {"type": "tensor", "name": "left", "tensor-spec": {"dtype": "uint8", "shape": [-1, 8]}},
            {
                "type": "tensor",
                "name": "right",
                "tensor-spec": {"dtype": "uint8", "shape": [-1, 8]},
            },
        ]
    )
    assert ImageInput.for_schema(two).refusal == (
        "the model takes 2 named tensors (left, right), and an image fills only one; score "
        "image files with a model whose input is one tensor."
    )

    binary = ImageInput.for_schema(Schema.from_list([{"type": "binary", "name": "image"}]))
    frame = binary.model_input(b"\x89PNG...", name="x.png")
    assert frame.to_dict("list") == {"image": [b"\x89PNG..."]}


# ---------------------------------------------------------------------------------------------
# The UDF's rows: encoded bytes or arrays, shaped by the same rules, stacked by shape


def test_images_row_tensors_decode_a_binary_column_and_shape_an_array_column():
    how_schema = Schema.from_list(
        [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 8, 8]}}]
    )
    digits = digit_images(3)
    encoded_rows = pd.DataFrame({"content": [encoded(d) for d in digits]})
    tensors = row_tensors(encoded_rows, how_schema)
    assert [t.shape for t in tensors] == [(1, 8, 8)] * 3
    np.testing.assert_array_equal(np.concatenate(tensors), digits.astype(np.float32))

    nested = pd.DataFrame(
        {"pixels": [np.array([np.array(r) for r in d], dtype=object) for d in digits]}
    )
    flat = pd.DataFrame({"pixels": [d.reshape(64) for d in digits]})
    for frame in (nested, flat):
        np.testing.assert_array_equal(
            np.concatenate(row_tensors(frame, how_schema)), digits.astype(np.float32)
        )

    table = Schema.from_list([{"type": "double", "name": "a"}])
    assert row_tensors(pd.DataFrame({"a": [1.0]}), table) is None
    assert row_tensors(pd.DataFrame({"a": [1.0]}), how_schema) is None
    assert row_tensors(pd.DataFrame({"a": [[1.0]], "b": [[2.0]]}), how_schema) is None


def test_images_row_tensors_name_the_column_for_bad_rows():
    schema = Schema.from_list(
        [{"type": "tensor", "tensor-spec": {"dtype": "uint8", "shape": [-1, 8, 8]}}]
    )
    with pytest.raises(ReadError) as info:
        row_tensors(pd.DataFrame({"content": [encoded(DIGIT), b"junk"]}), schema)
    assert str(info.value) == (
        "column 'content': a value is not a readable image: Pillow "
        "recognizes no image format in it."
    )
    with pytest.raises(SchemaEnforcementError) as info:
        row_tensors(pd.DataFrame({"content": [encoded(DIGIT), None]}), schema)
    assert str(info.value) == (
        "column 'content' holds a null where an image is expected; "
        "filter out the nulls before scoring."
    )
    with pytest.raises(ImageShapeError) as info:
        row_tensors(pd.DataFrame({"pixels": [np.zeros(10)]}), schema)
    assert str(info.value) == (
        "an image in column 'pixels' has shape [10], which cannot be reshaped to the "
        "signature's tensor shape [-1, 8, 8] (-1 is any size); convert the images to that "
        "shape, or save the model with a signature that takes this one."
    )


def test_images_stack_runs_keeps_order_and_stacks_equal_shapes():
    a, b, c = (np.zeros((1, 4, 6, 3)), np.ones((1, 4, 6, 3)), np.zeros((1, 5, 5, 3)))
    runs = list(stack_runs([a, b, c, a], batchable=True))
    assert [r.shape for r in runs] == [(2, 4, 6, 3), (1, 5, 5, 3), (1, 4, 6, 3)]
    assert runs[0][1].max() == 1.0
    assert [r.shape for r in stack_runs([a, b], batchable=False)] == [(1, 4, 6, 3)] * 2
    assert batch_key(pd.DataFrame({"x": [1]}), True) == "frame"
    assert batch_key(a, True) == ("array", "<f8", (4, 6, 3))
    assert batch_key(a, False) is None


# ---------------------------------------------------------------------------------------------
# Messages that say what is wrong: an image too large for Pillow, a file gone since planning


def png_header_only(width: int, height: int) -> bytes:
    """A PNG as far as its IHDR chunk says (8-bit grayscale): all Pillow reads before it checks
    the pixel count, so a huge image costs a few bytes here."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def test_images_decompression_bomb_names_its_size_and_pillows_limit():
    limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ReadError) as info:
        decode(png_header_only(30_000, 20_000), name="huge.png")
    assert (info.value.file, str(info.value)) == (
        "huge.png",
        (
            f"huge.png: the file is a PNG image of 600,000,000 pixels, more than Pillow decodes "
            f"({2 * limit:,}: twice PIL.Image.MAX_IMAGE_PIXELS), its guard against decompression "
            "bombs; resize the image, or leave it out of the input."
        ),
    )
    with pytest.raises(ReadError) as info:
        row_tensors(pd.DataFrame({"content": [png_header_only(30_000, 20_000)]}), None)
    assert str(info.value).startswith(
        "column 'content': a value is an image of 600,000,000 pixels, more than Pillow decodes"
    )


def test_images_file_removed_after_planning_says_so(tmp_path: Path):
    path = tmp_path / "gone.png"
    path.write_bytes(encoded(DIGIT))
    planned = InputFile(path=str(path), name="gone.png", size=path.stat().st_size, kind="image")
    path.unlink()
    with pytest.raises(ReadError) as info:
        read_bytes(pafs.LocalFileSystem(), planned)
    assert str(info.value) == (
        "gone.png: the file no longer exists: it was removed after the job was planned."
    )
