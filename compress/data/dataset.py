"""A torch ``Dataset`` over an :class:`ImageSource` subset with per-(epoch, sample) seeded augmentation."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from compress.data.folder import ImageSource
from compress.data.images import value_scale

Transform = Callable[[torch.Tensor], torch.Tensor]


def to_tensor(arr: np.ndarray, scale: float) -> torch.Tensor:
    """``[H, W, bands]`` array → ``[bands, H, W]`` float32 in the [0, 1] value scale."""
    a = np.ascontiguousarray(arr.transpose(2, 0, 1))
    if not a.flags.writeable:  # images decoded read-only (PIL buffers): torch wants a writable array
        a = a.copy()
    return torch.from_numpy(a).to(torch.float32).mul_(scale)


def sample_seed(seed: int, epoch: int, src: int) -> int:
    """The RNG seed of source image ``src``'s augmentation in ``epoch`` of a run seeded ``seed``."""
    return (seed * 1_000_003 + epoch * 100_003 + src) % (2**63 - 1)


class SubsetDataset(Dataset):
    """Images ``indices`` of ``source``; returns ``(image [C,H,W] float32 normalised, label int)``.

    Augmentation draws from the global torch RNG seeded from (seed, epoch, index), so the batches
    are identical whatever the worker count and after a resume.
    """

    def __init__(self, source: ImageSource, indices: np.ndarray, transform: Transform,
                 normalize: Transform | None, seed: int = 0, augment: bool = False) -> None:
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self.normalize = normalize
        self.seed = int(seed)
        self.augment = augment
        self.epoch = 0
        self.scale = value_scale(np.dtype(source.dtype))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def labels(self) -> np.ndarray:
        return self.source.labels[self.indices]

    @property
    def keys(self) -> list[str]:
        return [self.source.keys[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def raw(self, i: int) -> torch.Tensor:
        """The un-augmented, un-normalised image ``[C, H, W]`` in [0, 1] scale."""
        return to_tensor(self.source.load(int(self.indices[i])), self.scale)

    def __getitem__(self, i: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        """Item ``i``; a key ``(i, epoch)`` (the training loader's) augments for that epoch."""
        i, epoch = i if isinstance(i, tuple) else (i, self.epoch)
        src = int(self.indices[i])
        x = to_tensor(self.source.load(src), self.scale)
        if self.augment:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(sample_seed(self.seed, epoch, src))
                x = self.transform(x)
        else:
            x = self.transform(x)
        if self.normalize is not None:
            x = self.normalize(x)
        return x, int(self.source.labels[src])
