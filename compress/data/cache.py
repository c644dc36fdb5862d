"""Decoded pixels of one subset in one buffer, decoded once: from the images already held in memory, or
from a memory-mapped file beside the data (``<root>/.compress-cache/``), keyed by the subset's files,
sizes and modification times, so a changed split or a changed image builds a new one.

The buffer keeps the source's own dtype (uint8 for JPEG/PNG: 1 byte a pixel and band) and moves to a
GPU in one copy; images are views ``[H, W, bands]`` into it, any size each.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from compress.data.folder import ImageSource
from compress.data.images import ImageReadError, read_image
from compress.errors import DataError
from compress.io import sha256_text, write_json_atomic

CACHE_DIR = ".compress-cache"  # hidden: class-folder scans skip it
# dtypes whose conversion to float every torch device supports (torch's uint16/uint32 are barebones)
CACHEABLE = {np.dtype(t) for t in ("uint8", "int8", "int16", "int32", "float16", "float32")}

ProgressFn = Callable[[int, int], None]


@dataclass
class PixelCache:
    """``buffer [sum(H·W·C)]`` in the source dtype; image ``i`` is ``buffer[offsets[i]:][:H·W·C]``."""

    buffer: torch.Tensor
    offsets: np.ndarray  # int64 [N]
    shapes: np.ndarray  # int64 [N, 3]: H, W, bands
    path: str | None = None  # the memory-mapped file, when there is one

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def nbytes(self) -> int:
        return int(self.buffer.numel() * self.buffer.element_size())

    @property
    def device(self) -> torch.device:
        return self.buffer.device

    def image(self, i: int) -> torch.Tensor:
        """Image ``i`` as a view ``[H, W, bands]`` in the source dtype."""
        h, w, c = (int(v) for v in self.shapes[i])
        start = int(self.offsets[i])
        return self.buffer[start:start + h * w * c].view(h, w, c)

    def to(self, device: torch.device | str) -> "PixelCache":
        device = torch.device(device)
        if self.buffer.device == device:
            return self
        return PixelCache(self.buffer.to(device), self.offsets, self.shapes, self.path)


def cacheable(source: ImageSource) -> bool:
    return np.dtype(source.dtype) in CACHEABLE


def _layout(shapes: np.ndarray) -> tuple[np.ndarray, int]:
    sizes = shapes.prod(axis=1)
    offsets = np.zeros(len(sizes), dtype=np.int64)
    if len(sizes) > 1:
        offsets[1:] = np.cumsum(sizes)[:-1]
    return offsets, int(sizes.sum())


def from_arrays(arrays: Sequence[np.ndarray]) -> PixelCache:
    """A cache over decoded ``[H, W, bands]`` arrays (copied into one buffer)."""
    shapes = np.array([a.shape for a in arrays], dtype=np.int64).reshape(-1, 3)
    offsets, total = _layout(shapes)
    buf = np.empty(total, dtype=arrays[0].dtype if len(arrays) else np.uint8)
    for a, o in zip(arrays, offsets):
        buf[o:o + a.size] = a.reshape(-1)
    return PixelCache(torch.from_numpy(buf), offsets, shapes)


def cache_key(source: ImageSource, indices: np.ndarray) -> str:
    """Names the subset's files with their sizes and modification times: any change, a new key."""
    parts = [source.root, source.dtype]
    for i in indices:
        key = source.keys[int(i)]
        st = os.stat(Path(source.root) / key)
        parts.append(f"{key}|{st.st_size}|{st.st_mtime_ns}")
    return sha256_text("\n".join(parts))[:20]


def cache_folder(source: ImageSource) -> Path:
    """``<data root>/.compress-cache`` when the data folder is writable, else the user's cache folder."""
    beside = Path(source.root) / CACHE_DIR
    if os.access(source.root, os.W_OK) and (not beside.exists() or os.access(beside, os.W_OK)):
        return beside
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "compress-edge"


def memmap_cache(source: ImageSource, indices: np.ndarray, folder: Path | None = None, threads: int = 2,
                 progress: ProgressFn | None = None) -> PixelCache:
    """The subset's pixels in a memory-mapped file, decoded once and reused by every later run on the same
    files (a different split or a changed image makes a different key, hence a new file)."""
    indices = np.asarray(indices, dtype=np.int64)
    folder = Path(folder) if folder is not None else cache_folder(source)
    key = cache_key(source, indices)
    data, index = folder / f"{key}.bin", folder / f"{key}.json"
    if data.is_file() and index.is_file():
        try:
            meta = json.loads(index.read_text())
            shapes = np.array(meta["shapes"], dtype=np.int64).reshape(-1, 3)
        except (OSError, ValueError, KeyError, TypeError):  # a damaged index: the file is simply rebuilt
            meta, shapes = {}, np.zeros((0, 3), dtype=np.int64)
        offsets, total = _layout(shapes)
        if meta.get("dtype") == source.dtype and len(shapes) == len(indices) and \
                data.stat().st_size == total * np.dtype(source.dtype).itemsize:
            return _mapped(data, source.dtype, offsets, shapes, total)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [Path(source.root) / source.keys[int(i)] for i in indices]
    shapes = np.empty((len(paths), 3), dtype=np.int64)
    tmp = folder / f".{key}.bin.{os.getpid()}.tmp"
    try:  # one decoding pass, appended in order (the pixels are never all in memory at once)
        with open(tmp, "wb") as fh, ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for j, a in enumerate(pool.map(_read, paths)):
                shapes[j] = a.shape
                fh.write(np.ascontiguousarray(a, dtype=source.dtype).tobytes())
                if progress and ((j + 1) % 64 == 0 or j + 1 == len(paths)):
                    progress(j + 1, len(paths))
        os.replace(tmp, data)
    finally:
        if tmp.exists():
            tmp.unlink()
    write_json_atomic(index, {"dtype": source.dtype, "shapes": shapes.tolist(), "root": source.root})
    offsets, total = _layout(shapes)
    return _mapped(data, source.dtype, offsets, shapes, total)


def _read(path: Path) -> np.ndarray:
    try:
        return read_image(path)
    except ImageReadError as exc:
        raise DataError(f"'{path}' could not be read while building the pixel cache ({exc}); it was readable "
                        "when the data was scanned: restore it and run again.") from None


def _mapped(path: Path, dtype: str, offsets: np.ndarray, shapes: np.ndarray, total: int) -> PixelCache:
    # copy-on-write: a writable view for torch that can never change the file
    arr = np.memmap(path, dtype=dtype, mode="c", shape=(total,)) if total else np.empty(0, dtype=dtype)
    return PixelCache(torch.from_numpy(arr), offsets, shapes, str(path))


def subset_cache(source: ImageSource, indices: np.ndarray, *, memmap: bool = True,
                 progress: ProgressFn | None = None) -> PixelCache | None:
    """The subset's pixels: from memory when the source holds them, else a memory-mapped file
    (``memmap``); ``None`` when neither can be had (a dtype torch cannot convert everywhere)."""
    if not cacheable(source):
        return None
    if source.arrays is not None:
        return from_arrays([source.arrays[int(i)] for i in indices])
    if not memmap:
        return None
    return memmap_cache(source, indices, progress=progress)
