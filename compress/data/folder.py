"""Class-per-folder data sets (AID, NWPU-RESISC45, UC Merced, RSSCN7 layout) and the embedded default."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from compress.data.images import RASTER_EXTENSIONS, ImageReadError, read_image
from compress.errors import DataError

DIGITS = "digits"  # name of the embedded default source


@dataclass
class ImageSource:
    """All images of one root: keys (relative paths), labels, class names, decoded arrays if cached."""

    root: str
    keys: list[str]
    labels: np.ndarray
    class_names: list[str]
    bands: int
    dtype: str
    arrays: list[np.ndarray] | None = None
    bad_files: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)

    def load(self, index: int) -> np.ndarray:
        if self.arrays is not None:
            return self.arrays[index]
        return read_image(Path(self.root) / self.keys[index])


ProgressFn = Callable[[int, int], None]


def list_class_folders(root: Path) -> list[tuple[str, list[Path]]]:
    """Sorted (class name, sorted image files) pairs; empty class folders are an error."""
    if not root.is_dir():
        raise DataError(f"Data folder '{root}' does not exist; pass a folder with one sub-folder per class.")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"Data folder '{root}' has no class sub-folders; expected {root}/<class>/<image>.")
    out = []
    for cdir in classes:
        files = sorted(p for p in cdir.rglob("*") if p.is_file() and p.suffix.lower() in RASTER_EXTENSIONS)
        if not files:
            raise DataError(
                f"Class folder '{cdir}' holds no images ({', '.join(RASTER_EXTENSIONS)}); add images or remove it."
            )
        out.append((cdir.name, files))
    return out


def scan_folder(root: str | Path, *, cache: bool = True, cache_limit_gb: float = 4.0,
                threads: int = 2, progress: ProgressFn | None = None) -> ImageSource:
    """Decode every image once: bad files are collected (not raised), bands must agree.

    Decoding up front is what lets a bad file be reported once and skipped instead of killing an epoch.
    """
    root = Path(root)
    folders = list_class_folders(root)
    class_names = [name for name, _ in folders]
    files = [(f, ci) for ci, (_, fs) in enumerate(folders) for f in fs]
    arrays: list[np.ndarray | None] = [None] * len(files)
    errors: list[str | None] = [None] * len(files)
    budget = cache_limit_gb * (1 << 30)
    used = 0
    done = 0

    def decode(i: int) -> tuple[int, np.ndarray | None, str | None]:
        try:
            return i, read_image(files[i][0]), None
        except ImageReadError as exc:
            return i, None, str(exc)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for i, arr, err in pool.map(decode, range(len(files))):
            errors[i] = err
            if arr is not None:
                arrays[i] = arr
                used += arr.nbytes
                if not cache or used > budget:
                    cache = False
                    arrays[i] = _Shape(arr.shape, arr.dtype)  # keep what validation needs, drop pixels
            done += 1
            if progress and (done % 64 == 0 or done == len(files)):
                progress(done, len(files))

    bad = [(str(files[i][0].relative_to(root)), errors[i]) for i in range(len(files)) if errors[i] is not None]
    good = [i for i in range(len(files)) if errors[i] is None]
    if not good:
        raise DataError(f"None of the {len(files)} images under '{root}' could be read; first error: {bad[0][1]}.")
    bands_of = {i: arrays[i].shape[2] for i in good}
    counts: dict[int, int] = {}
    for b in bands_of.values():
        counts[b] = counts.get(b, 0) + 1
    bands = max(counts, key=counts.get)
    odd = [i for i in good if bands_of[i] != bands]
    if odd:
        f = files[odd[0]][0]
        raise DataError(
            f"Mixed band counts: '{f}' has {bands_of[odd[0]]} bands but most images have {bands} "
            f"({len(odd)} file(s) differ); convert them so every image has the same bands."
        )
    dtypes = {str(arrays[i].dtype) for i in good}
    if len(dtypes) > 1:
        raise DataError(f"Mixed pixel types {sorted(dtypes)} under '{root}'; store every image with one dtype.")
    labels = np.array([files[i][1] for i in good], dtype=np.int64)
    present = set(labels.tolist())
    for ci, name in enumerate(class_names):
        if ci not in present:
            raise DataError(f"Class folder '{root / name}' has no readable image; fix or remove it.")
    return ImageSource(
        root=str(root.resolve()), keys=[str(files[i][0].relative_to(root)) for i in good], labels=labels,
        class_names=class_names, bands=bands, dtype=dtypes.pop(),
        arrays=[arrays[i] for i in good] if cache else None, bad_files=bad,
    )


class _Shape:
    """Stand-in for a decoded array when pixels are not cached (shape/dtype/nbytes only)."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.shape, self.dtype, self.nbytes = shape, dtype, 0


def load_digits_source() -> ImageSource:
    """The embedded default: scikit-learn's 1,797 real 8×8 handwritten digits (10 classes, 1 band)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    # 0..16 grey levels → 0..255 so the digits look like any other 8-bit image to the pipeline.
    imgs = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, :, :, None]
    return ImageSource(
        root=DIGITS, keys=[f"{DIGITS}/{i:04d}" for i in range(len(imgs))], labels=d.target.astype(np.int64),
        class_names=[str(c) for c in d.target_names], bands=1, dtype="uint8", arrays=list(imgs),
    )
