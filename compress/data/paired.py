"""Paired multi-source data: two class-per-folder roots holding the same scenes under the same relative paths.

Pairs are matched by relative path without the file extension (``Airport/a.tif`` ↔ ``Airport/a.png``)
and checked up front: an image without a partner is an error naming it. Each source keeps its own
bands, input size and normalisation; items are ``((x1 [C1,H1,W1], x2 [C2,H2,W2]), label)``.
Training augmentation is flips and 90° turns only, drawn once per pair so both sources see the same
geometry (a random crop could not cover the same ground at two resolutions).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from compress.data.dataset import to_tensor
from compress.data.folder import ImageSource, scan_folder
from compress.data.images import value_scale
from compress.data.split import Split, stratified_split
from compress.data.transforms import AugmentConfig, EvalTransform, Normalize, TrainAugment, compute_mean_std
from compress.errors import DataError

PAIR_AUGMENT = AugmentConfig(random_resized_crop=False, hflip=0.5, vflip=0.5, rot90=0.5, rotation=0.0)


def pair_stem(key: str) -> str:
    """The pairing key: the relative path without its extension."""
    return str(Path(key).with_suffix(""))


def _subset(src: ImageSource, order: list[int]) -> ImageSource:
    out = copy.copy(src)
    out.keys = [src.keys[i] for i in order]
    out.labels = src.labels[order]
    out.arrays = [src.arrays[i] for i in order] if src.arrays is not None else None
    return out


def scan_pairs(source1: str | Path, source2: str | Path, *, cache: bool = True,
               progress=None) -> tuple[ImageSource, ImageSource]:
    """Both roots scanned and aligned index by index (source 1's order); a missing partner is a DataError."""
    s1 = scan_folder(source1, cache=cache, progress=progress)
    s2 = scan_folder(source2, cache=cache, progress=progress)
    if s1.class_names != s2.class_names:
        raise DataError(f"--source1 classes {s1.class_names[:5]}... differ from --source2 classes "
                        f"{s2.class_names[:5]}...; both roots need the same class sub-folders.")
    pos2 = {pair_stem(k): i for i, k in enumerate(s2.keys)}
    pos1 = {pair_stem(k): i for i, k in enumerate(s1.keys)}
    for a, b, pos, name_b in ((s1, source2, pos2, "--source2"), (s2, source1, pos1, "--source1")):
        lost = [k for k in a.keys if pair_stem(k) not in pos]
        if lost:
            raise DataError(f"{len(lost)} image(s) have no partner under {name_b} '{b}' (missing or unreadable), "
                            f"e.g. '{lost[0]}'; every image needs its pair at the same relative path.")
    order2 = [pos2[pair_stem(k)] for k in s1.keys]
    return s1, _subset(s2, order2)


@dataclass(frozen=True)
class SourcePrep:
    """How one source is fed to its network: bands, square input size (px), per-band mean/std in [0, 1] scale."""

    bands: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def source_prep(src: ImageSource, train_idx: np.ndarray, image_size: int | None) -> SourcePrep:
    """Native size (or ``image_size``) and mean/std over the training images of ``src``."""
    scale = value_scale(np.dtype(src.dtype))
    step = max(1, len(train_idx) // 500)
    mean, std = compute_mean_std([src.load(int(i)) for i in train_idx[::step]], scale)
    size = int(image_size or src.load(0).shape[0])
    return SourcePrep(src.bands, size, tuple(mean), tuple(std))


class PairedDataset(Dataset):
    """Pairs ``indices`` of two aligned sources → ``((x1, x2), label)``, each source preprocessed its own way."""

    def __init__(self, s1: ImageSource, s2: ImageSource, indices: np.ndarray, prep1: SourcePrep, prep2: SourcePrep,
                 *, augment: bool = False, seed: int = 0) -> None:
        self.sources, self.preps = (s1, s2), (prep1, prep2)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.augment, self.seed, self.epoch = augment, int(seed), 0
        self.transforms = tuple((TrainAugment(PAIR_AUGMENT, p.image_size, p.bands) if augment
                                 else EvalTransform(p.image_size)) for p in (prep1, prep2))
        self.norms = tuple(Normalize(p.mean, p.std) for p in (prep1, prep2))
        self.scales = tuple(value_scale(np.dtype(s.dtype)) for s in (s1, s2))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def labels(self) -> np.ndarray:
        return self.sources[0].labels[self.indices]

    @property
    def keys(self) -> list[str]:
        return [self.sources[0].keys[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def eval_view(self) -> "PairedDataset":
        return PairedDataset(*self.sources, self.indices, *self.preps, augment=False, seed=self.seed)

    def _one(self, part: int, src_index: int, epoch: int) -> torch.Tensor:
        x = to_tensor(self.sources[part].load(src_index), self.scales[part])
        if self.augment:
            # the same seed for both sources → the same flips/turns for the pair
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed((self.seed * 1_000_003 + epoch * 100_003 + src_index) % (2**63 - 1))
                x = self.transforms[part](x)
        else:
            x = self.transforms[part](x)
        return self.norms[part](x)

    def __getitem__(self, i: int | tuple[int, int]):
        i, epoch = i if isinstance(i, tuple) else (i, self.epoch)
        src = int(self.indices[i])
        return (self._one(0, src, epoch), self._one(1, src, epoch)), int(self.sources[0].labels[src])


@dataclass
class PairedData:
    """Train/val/test paired sets; ``split`` names source 2 (G's input) as root with source-2 keys,
    ``split1`` the same split with source-1 keys; each source's preprocessing."""

    train: PairedDataset
    val: PairedDataset | None
    test: PairedDataset
    class_names: list[str]
    split: Split
    split1: Split
    source1: SourcePrep
    source2: SourcePrep
    roots: tuple[str, str]
    sources: tuple[ImageSource, ImageSource]
    indices: dict[str, np.ndarray]
    seed: int = 0

    def with_source1(self, prep1: SourcePrep) -> "PairedData":
        """The same pairs with source 1 preprocessed as ``prep1`` says (the stage-1 network's manifest)."""
        if prep1.bands != self.sources[0].bands:
            raise DataError(f"--source1 images have {self.sources[0].bands} band(s) but the stage-1 network "
                            f"takes {prep1.bands}; pass the source it was trained on.")
        mk = lambda part, aug: PairedDataset(*self.sources, self.indices[part], prep1, self.source2,  # noqa: E731
                                             augment=aug, seed=self.seed)
        return replace(self, train=mk("train", True), val=mk("val", False) if self.val is not None else None,
                       test=mk("test", False), source1=prep1)


def build_paired_data(source1: str | Path, source2: str | Path, *, train_ratio: float = 0.8, val_fraction: float = 0.0,
                      seed: int = 0, split: Split | None = None, prep1: SourcePrep | None = None,
                      image_size1: int | None = None, image_size2: int | None = None, cache: bool = True,
                      progress=None) -> PairedData:
    """Scan and pair both roots, split them (or use ``split``, keys = source-1 relative paths) and set up
    preprocessing: source 1 as ``prep1`` says (the stage-1 network's manifest) or from its data."""
    s1, s2 = scan_pairs(source1, source2, cache=cache, progress=progress)
    if split is None:
        split = stratified_split(s1.keys, s1.labels, s1.class_names, train_ratio=train_ratio,
                                 val_fraction=val_fraction, seed=seed, root=str(source1))
    index = {k: i for i, k in enumerate(s1.keys)}
    missing = [k for k in (*split.train, *split.val, *split.test) if k not in index]
    if missing:
        raise DataError(f"{len(missing)} image(s) of the split are not paired images of '{source1}', "
                        f"e.g. '{missing[0]}'; use the split made on these folders.")
    idx = {p: np.array([index[k] for k in getattr(split, p)], dtype=np.int64) for p in ("train", "val", "test")}
    prep2 = source_prep(s2, idx["train"], image_size2)
    # G's split names source 2 as root: export calibration then reads G's own input images
    to2 = lambda keys: tuple(sorted(s2.keys[index[k]] for k in keys))  # noqa: E731
    split2 = Split(root=str(source2), class_names=split.class_names, train=to2(split.train), val=to2(split.val),
                   test=to2(split.test), seed=split.seed, train_ratio=split.train_ratio, val_fraction=split.val_fraction)
    split1 = replace(split, root=str(source1))
    base = PairedData(train=None, val=None if not len(idx["val"]) else True, test=None,  # type: ignore[arg-type]
                      class_names=list(s1.class_names), split=split2, split1=split1,
                      source1=prep1 or source_prep(s1, idx["train"], image_size1), source2=prep2,
                      roots=(str(source1), str(source2)), sources=(s1, s2), indices=idx, seed=seed)
    return base.with_source1(base.source1)
