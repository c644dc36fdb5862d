"""From a :class:`DataConfig` to train/val/test data sets, the saved split and the preprocessing."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from compress.checkpoint import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE  # one rule for every command
from compress.data.dataset import SubsetDataset
from compress.data.folder import DIGITS, ImageSource, load_digits_source, scan_folder
from compress.data.images import check_max_pixels, set_max_pixels, value_scale
from compress.data.split import SPLIT_FILE, Split, load_split, save_split, stratified_split
from compress.data.transforms import (AugmentConfig, EvalTransform, Normalize, TrainAugment, compute_mean_std,
                                      resolve_augment)
from compress.errors import DataError
from compress.io import write_text_atomic




def check_image_size(size: int | None, flag: str = "--image-size") -> None:
    """``None`` (the default size) or a square size in [8, 4096] px."""
    if size is not None and not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise DataError(f"{flag} {size} is outside {MIN_IMAGE_SIZE}–{MAX_IMAGE_SIZE} px; give the square input size "
                        "in pixels (e.g. 96, 224), or leave it out for the default.")


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are split and preprocessed."""

    data: str | None = None  # class-per-folder root; None → embedded digits
    train_ratio: float = 0.8
    val_fraction: float = 0.1  # share of each class's training part held out for model selection
    val_dir: str | None = None
    test_dir: str | None = None
    image_size: int | None = None  # None → the source's native size (digits: 8 → 16, folders: 64)
    normalize: str = "auto"  # auto | data | model | none
    cache: bool = True
    cache_limit_gb: float = 4.0
    workers: int | None = None  # loader processes; None → automatic (none on a 2-core machine)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    split: str | None = None  # a saved split.json to reuse (same train/val/test images as that run)
    max_pixels: int | None = None  # largest image read (height × width); None: the default limit

    def __post_init__(self) -> None:
        check_image_size(self.image_size)
        check_max_pixels(self.max_pixels)
        if self.workers is not None and self.workers < 0:
            raise DataError(f"--workers must be ≥ 0 (0 loads in the main process), got {self.workers}.")
        if self.cache_limit_gb < 0:
            raise DataError(f"cache_limit_gb must be ≥ 0, got {self.cache_limit_gb}.")
        if self.split is not None and Path(self.split).is_dir():
            from compress.data.split import find_split_file

            found = find_split_file(self.split)  # a run folder, or a checkpoint below one
            if found is None:
                raise DataError(f"split '{self.split}' is a folder without a split.json in it or above it; pass a "
                                "run folder (every run writes one) or the split.json itself.")
            object.__setattr__(self, "split", str(found))
        if self.split is not None and not Path(self.split).is_file():
            raise DataError(f"split '{self.split}' is not a split.json file or a run folder (every run writes one).")


@dataclass
class DataBundle:
    """Everything the engine needs; ``split`` is saved in the run folder as ``split.json``."""

    train: SubsetDataset
    val: SubsetDataset | None
    test: SubsetDataset
    class_names: list[str]
    in_chans: int
    image_size: int
    mean: list[float]
    std: list[float]
    split: Split
    bad_files: list[tuple[str, str]]
    source_name: str


def _load_source(root: str | None, cfg: DataConfig, progress) -> ImageSource:
    if root is None or root == DIGITS:
        return load_digits_source()
    return scan_folder(root, cache=cfg.cache, cache_limit_gb=cfg.cache_limit_gb, progress=progress)


def _merge_sources(parts: list[tuple[str, ImageSource]]) -> tuple[ImageSource, dict[str, list[str]]]:
    """One source from train/val/test roots, keys prefixed by the part name."""
    base = parts[0][1]
    keys, labels, arrays, assign, bad = [], [], [], {}, []
    for part, src in parts:
        if src.class_names != base.class_names:
            raise DataError(f"--{part}-dir classes {src.class_names[:5]}... differ from the training classes "
                            f"{base.class_names[:5]}...; every folder needs the same class sub-folders.")
        if src.bands != base.bands:
            raise DataError(f"--{part}-dir images have {src.bands} bands, training images {base.bands}.")
        pk = [f"{part}:{k}" for k in src.keys]
        assign[part] = pk
        keys += pk
        labels.append(src.labels)
        arrays += src.arrays if src.arrays is not None else []
        bad += [(f"{part}:{k}", e) for k, e in src.bad_files]
    cached = all(s.arrays is not None for _, s in parts)
    merged = ImageSource(root="|".join(f"{p}={s.root}" for p, s in parts), keys=keys,
                         labels=np.concatenate(labels), class_names=base.class_names, bands=base.bands,
                         dtype=base.dtype, arrays=arrays if cached else None, bad_files=bad)
    if not cached:
        roots = {p: s.root for p, s in parts}
        from compress.data.images import read_image

        merged.load = lambda i: read_image(Path(roots[keys[i].split(":", 1)[0]]) / keys[i].split(":", 1)[1])  # type: ignore[method-assign]
    return merged, assign


def build_data(cfg: DataConfig, *, seed: int = 0, run_dir: str | Path | None = None, reuse_split: bool = True,
               model_mean_std: tuple[Sequence[float], Sequence[float]] | None = None,
               train_transform: Callable | None = None, progress=None) -> DataBundle:
    """Scan, split (or reuse ``run_dir/split.json``), compute normalisation, build the three data sets."""
    set_max_pixels(cfg.max_pixels)
    is_digits = cfg.data is None or cfg.data == DIGITS
    if cfg.val_dir or cfg.test_dir:
        if not cfg.test_dir or is_digits:
            raise DataError("--val-dir/--test-dir need --data for training images and at least --test-dir.")
        parts = [("train", _load_source(cfg.data, cfg, progress)), ("test", _load_source(cfg.test_dir, cfg, progress))]
        if cfg.val_dir:
            parts.insert(1, ("val", _load_source(cfg.val_dir, cfg, progress)))
        source, assign = _merge_sources(parts)
        split = Split(root=source.root, class_names=tuple(source.class_names), train=tuple(assign["train"]),
                      val=tuple(assign.get("val", ())), test=tuple(assign["test"]), seed=seed, train_ratio=None,
                      val_fraction=0.0)
    else:
        source = _load_source(cfg.data, cfg, progress)
        split_path = Path(run_dir) / SPLIT_FILE if run_dir else None
        if cfg.split and not (reuse_split and split_path is not None and split_path.is_file()):
            split_path, reuse_split = Path(cfg.split), True
        if reuse_split and split_path is not None and split_path.is_file():
            split = load_split(split_path)
            if list(split.class_names) != source.class_names:
                raise DataError(f"The saved split {split_path} has classes {list(split.class_names)[:5]}... but "
                                f"'{cfg.data}' has {source.class_names[:5]}...; use the same data or a new --out.")
        else:
            split = stratified_split(source.keys, source.labels, source.class_names, train_ratio=cfg.train_ratio,
                                     val_fraction=cfg.val_fraction, seed=seed, root=source.root)
    index = {k: i for i, k in enumerate(source.keys)}
    missing = [k for k in (*split.train, *split.val, *split.test) if k not in index]
    if missing:
        raise DataError(f"{len(missing)} file(s) of the saved split are gone or unreadable now, e.g. "
                        f"'{missing[0]}'; restore them or start a new run with a new --out.")
    idx = {part: np.array([index[k] for k in getattr(split, part)], dtype=np.int64) for part in ("train", "val", "test")}

    native = source.load(0).shape[0]
    image_size = cfg.image_size or (16 if is_digits else min(native, 64))
    train_arrays = [source.load(int(i)) for i in idx["train"]] if source.arrays is not None else \
        [source.load(int(i)) for i in idx["train"][:: max(1, len(idx["train"]) // 500)]]
    mode = cfg.normalize
    if mode == "auto":
        mode = "model" if (model_mean_std is not None and source.bands == len(model_mean_std[0])) else "data"
    if mode == "model":
        if model_mean_std is None or len(model_mean_std[0]) != source.bands:
            raise DataError(f"normalize: model needs a model mean/std with {source.bands} values; use 'data'.")
        mean, std = [float(v) for v in model_mean_std[0]], [float(v) for v in model_mean_std[1]]
    elif mode == "data":
        mean, std = compute_mean_std(train_arrays, value_scale(np.dtype(source.dtype)))
    elif mode == "none":
        mean, std = [0.0] * source.bands, [1.0] * source.bands
    else:
        raise DataError(f"normalize must be auto, data, model or none, got '{cfg.normalize}'.")

    norm = Normalize(mean, std)
    aug = train_transform or TrainAugment(resolve_augment(cfg.augment, is_digits), image_size, source.bands)
    ev = EvalTransform(image_size)
    train = SubsetDataset(source, idx["train"], aug, norm, seed=seed, augment=True)
    val = SubsetDataset(source, idx["val"], ev, norm) if len(idx["val"]) else None
    test = SubsetDataset(source, idx["test"], ev, norm)
    from compress.parallel import is_main

    if run_dir is not None and is_main():
        save_split(split, run_dir)
        if source.bad_files:
            lines = [f"{len(source.bad_files)} unreadable image(s) skipped"] + [f"{k}\t{e}" for k, e in source.bad_files]
            write_text_atomic(Path(run_dir) / "bad_files.txt", "\n".join(lines) + "\n")
    return DataBundle(train=train, val=val, test=test, class_names=list(source.class_names), in_chans=source.bands,
                      image_size=image_size, mean=mean, std=std, split=split, bad_files=list(source.bad_files),
                      source_name=DIGITS if is_digits else str(cfg.data))
