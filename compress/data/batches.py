"""Training batches assembled where the model trains: pixels from a :class:`PixelCache` (on the GPU when
training there), augmented and normalised there, a batch at a time.

The choices are those of the per-sample path (``SubsetDataset.__getitem__``): the same RNG, seeded the
same way per (seed, epoch, image), drawn in the same order, so a run gives the same batches whichever path
feeds it (to float rounding of the resampling kernels on another device). The default augmentation
(:class:`TrainAugment`) crops and resizes each image, then flips and turns the whole batch at once;
any other transform (a method's own, e.g. ERKT's VSM) runs per image on the device.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from compress.data.cache import PixelCache
from compress.data.dataset import SubsetDataset, sample_seed
from compress.data.images import value_scale
from compress.data.transforms import AugmentDraw, Normalize, TrainAugment


def assemblable(dataset: object) -> bool:
    """Whether :class:`BatchAssembler` can stand in for ``dataset``'s per-sample loading."""
    return isinstance(dataset, SubsetDataset) and (dataset.normalize is None or isinstance(dataset.normalize, Normalize))


class BatchAssembler:
    """``keys [(position, epoch), ...]`` → ``(images [B, C, S, S] float32, labels [B] int64)`` on the cache's
    device; position ``i`` of ``dataset`` is image ``i`` of ``cache``."""

    def __init__(self, dataset: SubsetDataset, cache: PixelCache) -> None:
        if len(cache) != len(dataset):
            raise ValueError(f"the cache holds {len(cache)} images, the data set {len(dataset)}")
        self.ds, self.cache, self.device = dataset, cache, cache.device
        self.scale = value_scale(np.dtype(dataset.source.dtype))
        self.labels = torch.as_tensor(dataset.labels, dtype=torch.int64).to(self.device)
        norm = dataset.normalize
        self.mean = norm.mean.to(self.device) if norm is not None else None
        self.std = norm.std.to(self.device) if norm is not None else None
        self.fast = isinstance(dataset.transform, TrainAugment)

    def _float(self, hwc: torch.Tensor) -> torch.Tensor:
        """``[H, W, C]`` source dtype → ``[C, H, W]`` float32 in [0, 1] scale (as ``to_tensor``)."""
        return hwc.permute(2, 0, 1).contiguous().to(torch.float32).mul_(self.scale)

    def _one(self, i: int, epoch: int) -> tuple[torch.Tensor, AugmentDraw | None]:
        img = self.cache.image(i)
        ds = self.ds
        if not ds.augment:
            return ds.transform(self._float(img)), None
        torch.default_generator.manual_seed(sample_seed(ds.seed, epoch, int(ds.indices[i])))
        if not self.fast:
            return ds.transform(self._float(img)), None
        aug: TrainAugment = ds.transform
        d = aug.draw(int(img.shape[0]), int(img.shape[1]))
        if d.box is not None:  # crop the source pixels first: only the crop is converted
            top, left, ch, cw = d.box
            img = img[top:top + ch, left:left + cw]
            d = AugmentDraw(None, d.hflip, d.vflip, d.rot90, d.angle, d.jitter)
        return aug.crop_resize(self._float(img), d), d

    def _finish(self, x: torch.Tensor, draws: Sequence[AugmentDraw]) -> torch.Tensor:
        """Flips and quarter turns of the whole batch (exact permutations, so the same values as one by one)."""
        dev = x.device
        hflip = torch.tensor([d.hflip for d in draws]).to(dev, non_blocking=True)
        vflip = torch.tensor([d.vflip for d in draws]).to(dev, non_blocking=True)
        rot = torch.tensor([d.rot90 for d in draws]).to(dev, non_blocking=True)
        x = torch.where(hflip[:, None, None, None], x.flip(-1), x)
        x = torch.where(vflip[:, None, None, None], x.flip(-2), x)
        for k in {d.rot90 for d in draws} - {0}:
            x = torch.where((rot == k)[:, None, None, None], torch.rot90(x, k, dims=(-2, -1)), x)
        return x

    def __call__(self, keys: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        state = torch.get_rng_state()
        try:
            items = [self._one(int(i), int(e)) for i, e in keys]
        finally:
            torch.set_rng_state(state)  # the per-image seeds must not leak into the caller's stream
        draws = [d for _, d in items]
        batched = self.device.type != "cpu" and all(d is not None and d.angle is None and d.jitter is None
                                                      for d in draws)
        if batched:
            x = self._finish(torch.stack([x for x, _ in items]), draws)  # type: ignore[arg-type]
        else:  # on the CPU only the images that flip or turn are touched
            x = torch.stack([TrainAugment.finish(x, d) if d is not None else x for x, d in items])
        if self.mean is not None:
            x = (x - self.mean) / self.std
        pos = torch.as_tensor([int(i) for i, _ in keys], dtype=torch.int64).to(self.device, non_blocking=True)
        return x, self.labels[pos]
