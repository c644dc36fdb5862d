"""Reading one image file into an ``H×W×bands`` numpy array (JPEG/PNG/BMP via Pillow, TIFF via tifffile)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

RASTER_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
_PIL_BANDS = {"1": "L", "L": "L", "I;16": None, "I": None, "F": None, "RGB": "RGB", "RGBA": "RGB",
              "P": "RGB", "LA": "L", "CMYK": "RGB", "YCbCr": "RGB"}


class ImageReadError(Exception):
    """Raised for a file that cannot be decoded (truncated, corrupt, unsupported layout)."""


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    arr = np.asarray(tifffile.imread(str(path)))
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

    with Image.open(path) as img:
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
