"""The one way from "the images of a checkpoint" to a data set: its run's saved split, a new folder,
or the embedded default — preprocessed exactly as the checkpoint's manifest says.

Every consumer (``compress evaluate``, embedding evaluation, export parity and INT8 calibration,
the ensemble weight search) goes through :func:`checkpoint_dataset`, so the embedded digits, merged
``--val-dir/--test-dir`` roots and moved data folders are treated the same everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compress.data.dataset import SubsetDataset
from compress.data.folder import DIGITS, ImageSource, load_digits_source, scan_folder
from compress.data.images import RASTER_EXTENSIONS, ImageReadError, read_image
from compress.data.split import Split, find_split_file, load_split
from compress.data.transforms import EvalTransform, Normalize
from compress.errors import CheckpointError, DataError

PARTS = ("train", "val", "test")
DIGITS_FALLBACK = 360  # without a run folder, a digits checkpoint is checked on the last 360 digits


class EmptyPartError(DataError):
    """The saved split has no image in the part asked for (e.g. ``val`` with ``--val-fraction 0``)."""


@dataclass
class CheckpointData:
    """``dataset`` yields ``(image [C, H, W] normalised as the manifest says, label)``; ``description`` says what it is."""

    dataset: SubsetDataset
    split: Split | None
    part: str | None  # train | val | test, or None for "every image of a folder"
    description: str


def merged_roots(split_root: str) -> dict[str, Path] | None:
    """``train=/a|test=/b`` (a split made from --val-dir/--test-dir) → {"train": /a, "test": /b}; else None."""
    if not split_root.startswith("train="):
        return None
    return {p.split("=", 1)[0]: Path(p.split("=", 1)[1]) for p in split_root.split("|")}


def _key_path(root: str, key: str) -> Path:
    roots = merged_roots(root)
    if roots is None:
        return Path(root) / key
    part, rel = key.split(":", 1)
    return roots[part] / rel


def _class_of(key: str) -> str:
    rel = key.split(":", 1)[1] if ":" in key.split("/", 1)[0] else key
    return Path(rel).parts[0]


def keyed_source(root: str, keys: tuple[str, ...] | list[str], class_names: list[str]) -> ImageSource:
    """A lazily read source over a split's keys (no folder scan); labels from each key's class folder."""
    if root == DIGITS:
        src = load_digits_source()
        pos = {k: i for i, k in enumerate(src.keys)}
        idx = [pos[k] for k in keys]
        return ImageSource(root=DIGITS, keys=list(keys), labels=src.labels[idx], class_names=src.class_names,
                           bands=1, dtype="uint8", arrays=[src.arrays[i] for i in idx])
    try:
        labels = np.array([class_names.index(_class_of(k)) for k in keys], dtype=np.int64)
    except ValueError as exc:
        raise DataError(f"The saved split names a class that the checkpoint does not know ({exc}).") from exc
    src = ImageSource(root=root, keys=list(keys), labels=labels, class_names=list(class_names), bands=0, dtype="uint8")

    def load(i: int) -> np.ndarray:
        path = _key_path(root, src.keys[i])
        try:
            return read_image(path)
        except ImageReadError as exc:
            raise DataError(f"'{path}' of the saved split cannot be read ({exc}); restore the data or pass the "
                            "folder it moved to.") from exc

    src.load = load  # type: ignore[method-assign]
    first = src.load(0) if keys else None
    if first is not None:
        src.bands, src.dtype = int(first.shape[2]), str(first.dtype)
    return src


def _looks_like_digits(manifest: Any) -> bool:
    return manifest.in_chans == 1 and list(manifest.class_names) == [str(i) for i in range(10)]


def checkpoint_dataset(checkpoint_dir: str | Path, manifest: Any, *, data: str | None = None,
                       part: str | None = "test") -> CheckpointData:
    """Images for a checkpoint, preprocessed as its ``manifest`` (eval resize + its mean/std).

    * ``data`` None: the ``part`` of the run's ``split.json`` (found in the checkpoint folder or above).
      A checkpoint trained on the embedded digits and kept outside its run folder falls back to the
      last 360 digits.
    * ``data`` DIR and ``part`` None (or ``all``): every image of DIR, whose class folders must be the
      checkpoint's classes.
    * ``data`` DIR and ``part`` train/val/test: that part of the saved split, read from DIR (the same
      relative paths in a moved copy of the data).
    """
    if part == "all":
        part = None
    if part is not None and part not in PARTS:
        raise DataError(f"split part must be train, val, test or all, got '{part}'.")
    names = list(manifest.class_names)
    split_file = find_split_file(checkpoint_dir)
    split = load_split(split_file) if split_file is not None else None
    if data is not None and (part is None or split is None):
        source = scan_folder(data, cache=False)
        if source.class_names != names:
            raise CheckpointError(f"'{data}' has classes {source.class_names[:5]}... but the checkpoint was trained "
                                  f"on {names[:5]}...; use a folder with the same class sub-folders.")
        indices, desc, split, part = np.arange(len(source)), f"every image of {data} ({len(source)})", None, None
    elif split is None:
        if not _looks_like_digits(manifest):
            raise DataError(f"No split.json found above '{checkpoint_dir}' to take images from; keep the checkpoint "
                            "inside its run folder (runs/<name>/...) or pass --data DIR.")
        digits = load_digits_source()
        source, part = digits, None
        indices = np.arange(len(digits) - DIGITS_FALLBACK, len(digits))
        desc = f"embedded digits (last {DIGITS_FALLBACK} images)"
    else:
        keys = getattr(split, part)
        if not keys:
            raise EmptyPartError(f"The saved split has no '{part}' images; choose another part.")
        root = split.root if data is None else str(data)
        source = keyed_source(root, keys, names)
        indices = np.arange(len(keys))
        desc = f"{part} split of {root} ({len(keys)} images)"
    if source.bands != manifest.in_chans:
        raise DataError(f"The images have {source.bands} band(s) but the model takes {manifest.in_chans}; pass the "
                        "data of the source this model was trained on.")
    ds = SubsetDataset(source, indices, EvalTransform(int(manifest.image_size)), Normalize(manifest.mean, manifest.std))
    return CheckpointData(dataset=ds, split=split, part=part, description=desc)


def unlabeled_folder(path: str | Path, like: SubsetDataset) -> SubsetDataset:
    """Every image file under ``path`` (any layout, labels ignored), augmented and normalised like ``like``."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"--unlabeled '{path}' is not a folder of images.")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in RASTER_EXTENSIONS)
    arrays, keys = [], []
    for f in files:
        try:
            arrays.append(read_image(f))
            keys.append(str(f.relative_to(root)))
        except ImageReadError:
            continue
    if not arrays:
        raise DataError(f"--unlabeled '{path}' holds no readable image ({', '.join(RASTER_EXTENSIONS)}).")
    bands = {a.shape[2] for a in arrays}
    if bands != {like.source.bands}:
        raise DataError(f"--unlabeled images have {sorted(bands)} band(s), the labelled data {like.source.bands}.")
    src = ImageSource(root=str(root), keys=keys, labels=np.zeros(len(keys), dtype=np.int64), class_names=["?"],
                      bands=like.source.bands, dtype=str(arrays[0].dtype), arrays=arrays)
    return SubsetDataset(src, np.arange(len(keys)), like.transform, like.normalize, seed=like.seed, augment=True)
