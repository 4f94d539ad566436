"""Reading images for the face backends: one policy, one place, clear errors.

Every image that reaches a face backend is an RGB ``uint8`` array of shape (H, W, 3), C-contiguous
(dlib rejects strided views such as ``img[:, ::-1]``). Conversion policy:

- grayscale (``L``, ``1``) -> RGB by replicating the channel;
- 16-bit grayscale (``I;16``, ``I``) -> 8-bit by ``round(v * 255 / 65535)``, so the full 16-bit range
  maps onto the full 8-bit range (PIL's own ``convert("L")`` clips everything above 255 to white);
  16-bit RGB PNGs are reduced to 8 bits by PIL when it opens them;
- alpha (``RGBA``, ``LA``, ``PA``, palette with transparency) -> composited on WHITE: transparent
  portrait backgrounds are meant as white paper, and black would put a dark halo round cut-out hair;
- palette (``P``), ``CMYK``, ``YCbCr`` and other modes -> RGB through PIL;
- float images (``F``) are refused: their range is not knowable; save them as 8- or 16-bit PNG;
- EXIF orientation is applied (a phone photo stored sideways would otherwise hide its face from the
  frontal detectors); multi-frame files (GIF, TIFF) use their first frame.

Size limits: each side must be at least ``MIN_SIDE`` pixels (no face detector can work below that),
and at most ``MAX_SIDE`` pixels and ``MAX_PIXELS`` pixels in all. The upper limits are checked on the
header, before any pixel is decoded, so a "decompression bomb" costs nothing.

Example:
    >>> import numpy as np
    >>> from idrift.faces.image_io import as_rgb_uint8
    >>> as_rgb_uint8(np.zeros((64, 48), dtype=np.uint8)).shape
    (64, 48, 3)
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from idrift.errors import ImageError

MIN_SIDE = 32
MAX_SIDE = 8192
MAX_PIXELS = 50_000_000


def load_image(path_or_bytes: str | os.PathLike | bytes, *, name: str | None = None) -> np.ndarray:
    """Read an image file (or its bytes) as an RGB uint8 (H, W, 3) array.

    `name` is what error messages call the input (default: the path, or "<bytes>").
    Raises `ImageError` for a missing, empty, unreadable, too small or too large image.
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
        label = name or "<bytes>"
    elif isinstance(path_or_bytes, (str, os.PathLike)):
        path = Path(path_or_bytes)
        label = name or str(path)
        if not path.exists():
            raise ImageError(f"image {label}: file not found; check the path")
        if path.is_dir():
            raise ImageError(f"image {label}: is a folder, not an image file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(f"image {label}: cannot be read ({exc.strerror or exc}); check its permissions") from exc
    else:
        raise TypeError(f"load_image expects a path or bytes, got {type(path_or_bytes).__name__}")
    if not data:
        raise ImageError(f"image {label}: the file is empty (0 bytes); re-export or re-download it")
    try:
        pil = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise ImageError(
            f"image {label}: not a readable image ({len(data)} bytes, format not recognised); use a PNG or JPEG file"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"image {label}: too large ({exc}); the limit is {MAX_SIDE} px a side and {MAX_PIXELS:,} pixels"
        ) from exc
    # The header is read; check the size before decoding any pixels.
    _check_size(pil.size, label)
    return _pil_to_rgb_uint8(pil, label)


def as_rgb_uint8(image, *, name: str = "image") -> np.ndarray:
    """An in-memory image (PIL image, or a numpy array (H, W, 3) / (H, W) / (H, W, 4) of uint8) as
    a C-contiguous RGB uint8 (H, W, 3) array, with the same conversions and size checks as `load_image`."""
    if isinstance(image, Image.Image):
        _check_size(image.size, name)
        return _pil_to_rgb_uint8(image, name)
    if not isinstance(image, np.ndarray):
        raise ImageError(
            f"{name}: expected a PIL image or a numpy uint8 array of shape (H, W, 3), got {type(image).__name__}; "
            "convert tensors with .cpu().numpy() and images with np.asarray(...)"
        )
    if image.dtype != np.uint8:
        raise ImageError(
            f"{name}: expected dtype uint8 (0..255), got {image.dtype}; convert a float image in [0, 1] "
            "with (img * 255).round().clip(0, 255).astype(np.uint8)"
        )
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = _composite_on_white(image)
    elif not (image.ndim == 3 and image.shape[2] == 3):
        raise ImageError(
            f"{name}: expected shape (H, W, 3) RGB (or (H, W) gray, (H, W, 4) RGBA), got {tuple(image.shape)}; "
            "channels-first arrays need .transpose(1, 2, 0)"
        )
    _check_size((image.shape[1], image.shape[0]), name)
    return np.ascontiguousarray(image)


def _check_size(size: tuple[int, int], label: str) -> None:
    width, height = size
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"image {label}: {width}x{height} px is too small; each side must be at least {MIN_SIDE} px")
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageError(
            f"image {label}: {width}x{height} px is too large; the limit is {MAX_SIDE} px a side and "
            f"{MAX_PIXELS:,} pixels in all (this also guards against decompression bombs); downscale it"
        )


def _pil_to_rgb_uint8(pil: Image.Image, label: str) -> np.ndarray:
    try:
        pil.seek(0)  # first frame of a GIF or multi-page TIFF
    except (EOFError, AttributeError):
        pass
    try:
        pil.load()
        pil = ImageOps.exif_transpose(pil)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image {label}: too large ({exc}); the limit is {MAX_SIDE} px a side") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        # Truncated or corrupt data: PIL reads the header lazily and fails here.
        raise ImageError(
            f"image {label}: corrupt or truncated image data ({exc}); re-export it as PNG or JPEG"
        ) from exc
    mode = pil.mode
    if mode == "RGB":
        return np.ascontiguousarray(np.asarray(pil, dtype=np.uint8))
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(pil).astype(np.float64)
        if values.min() < 0 or values.max() > 65535:
            raise ImageError(
                f"image {label}: {mode} pixel values span [{values.min():g}, {values.max():g}], outside 16-bit "
                "[0, 65535]; save it as an 8- or 16-bit PNG"
            )
        gray = np.round(values * (255.0 / 65535.0)).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "F":
        raise ImageError(
            f"image {label}: floating-point pixels (mode F) have no known range; save it as an 8- or 16-bit PNG"
        )
    if mode in ("L", "1"):
        gray = np.asarray(pil.convert("L"), dtype=np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in pil.info
    if has_alpha:
        return _composite_on_white(np.asarray(pil.convert("RGBA"), dtype=np.uint8))
    try:
        return np.ascontiguousarray(np.asarray(pil.convert("RGB"), dtype=np.uint8))
    except (ValueError, OSError) as exc:
        raise ImageError(
            f"image {label}: pixel mode {mode} cannot be converted to RGB ({exc}); save it as an RGB PNG"
        ) from exc


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    rgb = rgba[:, :, :3].astype(np.float32)
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
    out = rgb * alpha + 255.0 * (1.0 - alpha)
    return np.ascontiguousarray(np.round(out).astype(np.uint8))
