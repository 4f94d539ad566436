"""Image reading: every bad input gets the documented error, every odd mode the documented conversion."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from idrift.errors import ImageError
from idrift.faces.image_io import (
    MAX_PIXELS,
    MAX_SIDE,
    MIN_SIDE,
    as_rgb_uint8,
    load_image,
)


def png_bytes(image: Image.Image, **save_kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=save_kw.pop("format", "PNG"), **save_kw)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with almost no pixel data (a decompression bomb's shape)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )


def truncated_png() -> bytes:
    data = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    return data[: len(data) // 2]


def float_tiff() -> bytes:
    return png_bytes(Image.fromarray(np.full((40, 40), 0.5, np.float32)), format="TIFF")


# (case, file bytes, a fragment the error must contain). Each is a file a user could really hand us.
BAD_FILES = [
    ("empty file", b"", "empty"),
    ("random bytes", b"this is not an image\x00\x01" * 20, "not a readable image"),
    ("truncated PNG", truncated_png(), "corrupt or truncated"),
    ("10x10 PNG", png_bytes(Image.new("RGB", (10, 10))), f"at least {MIN_SIDE} px"),
    ("40x20 PNG", png_bytes(Image.new("RGB", (40, 20))), f"at least {MIN_SIDE} px"),
    ("header claims 100000x100000", png_header_only(100_000, 100_000), f"{MAX_SIDE} px"),
    ("header claims 9000x40", png_header_only(9000, 40), f"{MAX_SIDE} px a side"),
    ("header claims 7100x7100 (50.4 MP)", png_header_only(7100, 7100), f"{MAX_PIXELS:,} pixels"),
    ("float TIFF (mode F)", float_tiff(), "no known range"),
]


@pytest.mark.parametrize("case,data,fragment", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_file_gets_clear_error_naming_the_file(tmp_path, case, data, fragment):
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    start = time.perf_counter()
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert fragment in str(info.value)
    assert str(path) in str(info.value)  # the message names the input
    assert time.perf_counter() - start < 1.0  # size limits are checked on the header, before decoding


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="file not found; check the path") as info:
        load_image(tmp_path / "nope.png")
    assert "nope.png" in str(info.value)
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_bytes_input_uses_given_name():
    with pytest.raises(ImageError, match=r"^image upload\.png: the file is empty"):
        load_image(b"", name="upload.png")
    with pytest.raises(ImageError, match=r"^image <bytes>: not a readable image"):
        load_image(b"garbage" * 10)


def test_bad_input_case_count():
    # The bad-input cases covered across this module (files, in-memory inputs, missing paths).
    cases = [c[0] for c in BAD_FILES] + ["missing file", "folder", "empty bytes", *IN_MEMORY_BAD_IDS]
    print(f"\nimage_io: {len(cases)} bad-input cases covered: {', '.join(cases)}")
    assert len(set(cases)) == len(cases) >= 15


# ------------------------------------------------------------------------------------------------
# Conversions (documented in idrift/faces/image_io.py)


def test_rgb_png_round_trips_exactly(tmp_path, astronaut):
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes(Image.fromarray(astronaut)))
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (512, 512, 3) and out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, astronaut)


def test_grayscale_is_replicated_to_rgb(astronaut):
    gray = Image.fromarray(astronaut).convert("L")
    out = load_image(png_bytes(gray))
    assert out.shape == (512, 512, 3)
    np.testing.assert_array_equal(out[:, :, 0], np.asarray(gray))
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])


def test_one_bit_image_is_black_and_white():
    bits = Image.fromarray((np.indices((40, 40)).sum(0) % 2 * 255).astype(np.uint8)).convert("1")
    out = load_image(png_bytes(bits))
    assert set(np.unique(out)) == {0, 255}


def test_16bit_grayscale_is_scaled_not_clipped():
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16).repeat(40, axis=0).repeat(10, axis=1)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    out = load_image(png_bytes(image))
    # round(v * 255 / 65535): 0 -> 0, 257 -> 1, 32768 -> 128, 65535 -> 255
    # (PIL's convert("L") would give 255 for all but 0)
    assert out[0, ::10, 0].tolist() == [0, 1, 128, 255]


def test_16bit_rgb_png_becomes_8bit(tmp_path):
    import cv2

    bgr16 = np.zeros((40, 40, 3), np.uint16)
    bgr16[..., 2] = 65535  # red, in OpenCV's BGR order
    bgr16[..., 1] = 32896  # green at half
    path = tmp_path / "rgb16.png"
    cv2.imwrite(str(path), bgr16)
    out = load_image(path)
    assert out.dtype == np.uint8
    assert out[0, 0].tolist() == [255, 128, 0]


def test_rgba_is_composited_on_white():
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 200  # red everywhere
    rgba[:, :10, 3] = 0  # transparent -> white
    rgba[:, 10:20, 3] = 255  # opaque -> the colour
    rgba[:, 20:, 3] = 128  # half -> blend
    out = load_image(png_bytes(Image.fromarray(rgba, "RGBA")))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 15].tolist() == [200, 0, 0]
    assert out[0, 30].tolist() == [round(200 * 128 / 255 + 255 * 127 / 255), 127, 127]


def test_gray_with_alpha_is_composited_on_white():
    la = Image.fromarray(np.stack([np.zeros((40, 40), np.uint8), np.zeros((40, 40), np.uint8)], -1), "LA")
    assert load_image(png_bytes(la))[0, 0].tolist() == [255, 255, 255]


def test_palette_image_keeps_its_colours_and_transparency_goes_white():
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[:, 20:] = [10, 200, 30]
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    out = load_image(png_bytes(palette))
    np.testing.assert_array_equal(out, rgb)
    transparent_index = palette.getpixel((0, 0))
    out = load_image(png_bytes(palette, transparency=transparent_index))
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 30].tolist() == [10, 200, 30]


def test_cmyk_jpeg_becomes_rgb():
    out = load_image(png_bytes(Image.new("CMYK", (40, 40), (0, 0, 0, 0)), format="JPEG"))
    assert out.shape == (40, 40, 3) and out.min() > 240  # no ink = white


def test_exif_orientation_is_applied():
    image = Image.fromarray(np.zeros((40, 64, 3), np.uint8))  # 64 wide, 40 high as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = load_image(png_bytes(image, format="JPEG", exif=exif))
    assert out.shape == (64, 40, 3)


def test_first_frame_of_an_animation():
    frames = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    out = load_image(buffer.getvalue())
    assert out[0, 0, 0] > 200 and out[0, 0, 2] < 50


def test_smallest_allowed_size_is_accepted():
    assert load_image(png_bytes(Image.new("RGB", (MIN_SIDE, MIN_SIDE)))).shape == (MIN_SIDE, MIN_SIDE, 3)


# ------------------------------------------------------------------------------------------------
# In-memory images


IN_MEMORY_BAD = [
    ("float array", np.zeros((40, 40, 3), np.float32), "uint8"),
    ("channels-first array", np.zeros((3, 40, 40), np.uint8), "transpose"),
    ("two-channel array", np.zeros((40, 40, 2), np.uint8), "(H, W, 3)"),
    ("tiny array", np.zeros((10, 10, 3), np.uint8), f"at least {MIN_SIDE} px"),
    ("list", [[0, 0, 0]], "PIL image or a numpy uint8 array"),
    ("tiny PIL image", Image.new("RGB", (10, 10)), f"at least {MIN_SIDE} px"),
]
IN_MEMORY_BAD_IDS = [c[0] for c in IN_MEMORY_BAD]


@pytest.mark.parametrize("case,value,fragment", IN_MEMORY_BAD, ids=IN_MEMORY_BAD_IDS)
def test_as_rgb_uint8_rejects_with_clear_error(case, value, fragment):
    with pytest.raises(ImageError) as info:
        as_rgb_uint8(value, name="generated sample 7")
    assert fragment in str(info.value) and "generated sample 7" in str(info.value)


def test_as_rgb_uint8_conversions(astronaut):
    flipped = astronaut[:, ::-1]
    assert not flipped.flags["C_CONTIGUOUS"]
    out = as_rgb_uint8(flipped)
    assert out.flags["C_CONTIGUOUS"]  # dlib refuses strided views
    np.testing.assert_array_equal(out, flipped)
    np.testing.assert_array_equal(as_rgb_uint8(Image.fromarray(astronaut)), astronaut)
    gray = as_rgb_uint8(astronaut[:, :, 1].copy())
    np.testing.assert_array_equal(gray[:, :, 0], gray[:, :, 2])
    rgba = np.concatenate([astronaut, np.zeros((512, 512, 1), np.uint8)], axis=2)
    assert as_rgb_uint8(rgba).min() == 255  # fully transparent -> white
