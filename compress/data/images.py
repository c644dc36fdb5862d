"""Reading one image file into an ``H×W×bands`` numpy array (JPEG/PNG/BMP via Pillow, TIFF via tifffile)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

RASTER_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
_PIL_BANDS = {"1": "L", "L": "L", "I;16": None, "I": None, "F": None, "RGB": "RGB", "RGBA": "RGB",
              "P": "RGB", "LA": "L", "CMYK": "RGB", "YCbCr": "RGB"}


class ImageReadError(Exception):
    """Raised for a file that cannot be decoded (truncated, corrupt, unsupported layout)."""


# One limit for every format, checked on the header before any pixel is decoded (a 10 MB TIFF can declare
# 60000 × 60000 pixels). Pillow's own bomb check is replaced by it. COMPRESS_MAX_PIXELS or --max-pixels raise it.
DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's error threshold (2 × its warning threshold)
_max_pixels = [int(os.environ.get("COMPRESS_MAX_PIXELS", DEFAULT_MAX_PIXELS) or DEFAULT_MAX_PIXELS)]


def check_max_pixels(n: int | None) -> int | None:
    if n is not None and n < 1:
        from compress.errors import DataError

        raise DataError(f"--max-pixels must be ≥ 1 (height × width), got {n}.")
    return n


def set_max_pixels(n: int | None) -> None:
    """Pixels (height × width) an image may declare; ``None`` keeps the default (or COMPRESS_MAX_PIXELS)."""
    if n is not None:
        _max_pixels[0] = int(n)


def _check_pixels(h: int, w: int) -> None:
    if h * w > _max_pixels[0]:
        raise ImageReadError(f"the image declares {w}×{h} = {h * w:,} pixels, over the limit of {_max_pixels[0]:,}; "
                             "raise it with --max-pixels (or COMPRESS_MAX_PIXELS) if the file is genuine")


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        page = tif.pages[0]
        _check_pixels(int(page.imagelength), int(page.imagewidth))
        arr = np.asarray(tif.asarray())
    if arr.ndim == 2:
        return arr[:, :, None]
    if arr.ndim == 3:
        # Band-first files (C, H, W) are common for multispectral rasters; bands are few, pixels many.
        if arr.shape[0] <= 32 and arr.shape[0] < min(arr.shape[1], arr.shape[2]) and arr.shape[2] > 32:
            arr = np.transpose(arr, (1, 2, 0))
        return arr
    raise ImageReadError(f"TIFF with {arr.ndim} dimensions (shape {arr.shape}); expected H×W or H×W×bands")


def _read_pil(path: Path) -> np.ndarray:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # the limit above applies instead, to every format alike
    with Image.open(path) as img:
        _check_pixels(img.size[1], img.size[0])
        img.load()  # forces a full decode: truncated files fail here, not mid-epoch
        target = _PIL_BANDS.get(img.mode, "RGB")
        if target is not None and img.mode != target:
            img = img.convert(target)
        arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr


def read_image(path: str | Path) -> np.ndarray:
    """Decode ``path`` to an ``[H, W, bands]`` array of its native dtype (uint8, uint16, float32...)."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            arr = _read_tiff(path)
        else:
            arr = _read_pil(path)
    except ImageReadError:
        raise
    except Exception as exc:  # Pillow/tifffile raise many types for bad files
        raise ImageReadError(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    if arr.size == 0:
        raise ImageReadError("image has no pixels")
    return np.ascontiguousarray(arr)


def value_scale(dtype: np.dtype) -> float:
    """Factor that maps the dtype's range to [0, 1] (integers) or leaves floats unchanged."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        return 1.0 / float(np.iinfo(dtype).max)
    return 1.0
