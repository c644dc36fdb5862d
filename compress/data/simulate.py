"""A SIMULATED panchromatic / multispectral pair set from any RGB class-per-folder set (no public
paired set can be downloaded here; DSRSID, the paper's set, is 1-band 256 px PAN + 4-band 64 px MS).

* PAN: full-resolution single band, the intensity ``0.299 R + 0.587 G + 0.114 B`` (a broad-band
  sensor seeing the visible range), after cropping to a multiple of the factor.
* MS: 4 bands ``R, G, B, NIR-proxy`` at 1/``factor`` resolution following Wald's protocol: blur with a
  Gaussian whose MTF is 0.3 at the low-resolution Nyquist frequency (σ = factor·√(−2 ln 0.3)/π ≈
  0.49·factor px), then keep every ``factor``-th pixel. The 4th band is NOT a measurement: a
  NIR stand-in ``clip(G + 0.5·(G − R) − 0.5·max(B − G, 0))`` that is bright on vegetation and dark
  on water, so the band carries scene-dependent information the RGB bands do not hold linearly.

Writes ``DST/pan/<class>/<name>.tif`` and ``DST/ms/<class>/<name>.tif`` (H×W×bands, the source dtype).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from compress.data.folder import list_class_folders
from compress.data.images import ImageReadError, read_image
from compress.errors import DataError, UserInputError
from compress.io import atomic_path, to_jsonable

MTF_AT_NYQUIST = 0.3
PAN_WEIGHTS = (0.299, 0.587, 0.114)


def gaussian_sigma(factor: int, mtf: float = MTF_AT_NYQUIST) -> float:
    """σ (px) of the Gaussian whose MTF exp(−2π²σ²f²) equals ``mtf`` at f = 1/(2·factor) cycles/px."""
    return factor * math.sqrt(-2.0 * math.log(mtf)) / math.pi


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of ``[H, W, C]`` float64 with reflected borders."""
    radius = max(1, int(math.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(img, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    rows = sum(k[i] * pad[i:i + img.shape[0]] for i in range(len(k)))
    return sum(k[i] * rows[:, i:i + img.shape[1]] for i in range(len(k)))


def nir_proxy(rgb: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` in [0, 1] → ``[H, W]`` simulated near-infrared band (see module docstring)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return np.clip(g + 0.5 * (g - r) - 0.5 * np.maximum(b - g, 0.0), 0.0, 1.0)


def simulate_pair(rgb: np.ndarray, factor: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """One RGB image ``[H, W, 3]`` (any dtype) → (PAN ``[h, w, 1]``, MS ``[h/f, w/f, 4]``) of the same dtype,
    h, w = H, W cropped (centred) to multiples of ``factor``."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DataError(f"simulate-pan-ms needs RGB images (3 bands), got shape {rgb.shape}.")
    h, w = (rgb.shape[0] // factor) * factor, (rgb.shape[1] // factor) * factor
    if h == 0 or w == 0:
        raise DataError(f"Image of {rgb.shape[0]}×{rgb.shape[1]} px is smaller than the factor {factor}.")
    top, left = (rgb.shape[0] - h) // 2, (rgb.shape[1] - w) // 2
    rgb = rgb[top:top + h, left:left + w]
    dtype = rgb.dtype
    vmax = float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0
    x = rgb.astype(np.float64) / vmax
    pan = (x @ np.asarray(PAN_WEIGHTS))[..., None]
    ms_full = np.concatenate([x, nir_proxy(x)[..., None]], axis=2)
    off = factor // 2  # sample the centre of each factor×factor cell
    ms = _blur(ms_full, gaussian_sigma(factor))[off::factor, off::factor][: h // factor, : w // factor]

    def back(a: np.ndarray) -> np.ndarray:
        a = np.clip(a, 0.0, 1.0) * vmax
        return np.round(a).astype(dtype) if np.issubdtype(dtype, np.integer) else a.astype(dtype)

    return back(pan), back(ms)


@dataclass
class SimulationResult:
    dst: str
    images: int
    classes: int
    pan_shape: tuple[int, ...]
    ms_shape: tuple[int, ...]
    factor: int
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return to_jsonable(self)


def simulate_pan_ms(src: str | Path, dst: str | Path, *, factor: int = 4,
                    progress: Callable[[int, int], None] | None = None) -> SimulationResult:
    """Write the simulated PAN/MS pair of every RGB image of ``src`` under ``dst/pan`` and ``dst/ms``.

    Refuses a non-empty ``dst``; unreadable images are skipped and listed in the result.
    """
    import tifffile

    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise UserInputError(f"factor must be an integer ≥ 2 (resolution ratio PAN:MS), got {factor!r}.")
    src, dst = Path(src), Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise UserInputError(f"'{dst}' already exists and is not empty; choose a new destination folder.")
    folders = list_class_folders(src)
    files = [(name, f) for name, fs in folders for f in fs]
    skipped: list[tuple[str, str]] = []
    pan_shape = ms_shape = ()
    for n, (cls, f) in enumerate(files, 1):
        rel = f.relative_to(src / cls).with_suffix(".tif")
        try:
            rgb = read_image(f)
            pan, ms = simulate_pair(rgb, factor)
        except (ImageReadError, DataError) as exc:
            skipped.append((str(f.relative_to(src)), str(exc)))
            continue
        for sub, arr in (("pan", pan), ("ms", ms)):
            out = dst / sub / cls / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out) as tmp:
                if arr.shape[2] == 1:
                    tifffile.imwrite(str(tmp), arr[:, :, 0], photometric="minisblack")
                else:
                    tifffile.imwrite(str(tmp), arr, photometric="minisblack", planarconfig="contig")
        pan_shape, ms_shape = pan.shape, ms.shape
        if progress is not None:
            progress(n, len(files))
    if len(skipped) == len(files):
        raise DataError(f"No image of '{src}' could be simulated (e.g. {skipped[0][0]}: {skipped[0][1]}).")
    return SimulationResult(dst=str(dst), images=len(files) - len(skipped), classes=len(folders),
                            pan_shape=tuple(pan_shape), ms_shape=tuple(ms_shape), factor=factor, skipped=skipped)
