"""How training batches are made (``--data-path``).

* ``cache``: the training images' decoded pixels are held once (:mod:`compress.data.cache`: in memory, or
  a memory-mapped file beside the data when they exceed the in-memory limit), on the GPU when training
  there, and each batch is cropped, flipped and normalised where the model trains
  (:class:`compress.data.batches.BatchAssembler`). No JPEG is decoded after the first pass and no image
  crosses the PCIe bus twice.
* ``loader``: a ``DataLoader`` makes each image in ``--workers`` processes (pinned memory and persistent
  workers on CUDA); for data the cache cannot hold (pixel types torch cannot convert on every device,
  paired multi-source sets) and CPUs with cores to spare for workers.
* ``auto``: ``cache`` wherever it can serve the data set and the batches would be made on a GPU or in the
  main process anyway (no loader workers); ``loader`` otherwise.

Both give the same batches for the same (seed, epoch): the cache path replays the per-image RNG.
"""
from __future__ import annotations

from typing import Iterator

import torch

from compress.data.batches import BatchAssembler, assemblable
from compress.data.bundle import DataBundle
from compress.data.cache import PixelCache, cacheable, subset_cache
from compress.errors import UserInputError
from compress.parallel import active, barrier, is_main

GPU_SHARE = 0.3  # largest share of the GPU's free memory the pixel cache may take


class CachedLoader:
    """Iterates the run's batch sampler, yielding ``(images, labels)`` already on the training device."""

    def __init__(self, batch_sampler, assembler: BatchAssembler, device: torch.device) -> None:
        self.batch_sampler, self.assembler, self.device = batch_sampler, assembler, device

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # A DataLoader without workers draws its base seed from the global RNG at each epoch's start;
        # drawing it too keeps what a method draws in its step (ERKT's CutMix partners, PSKD's mixup)
        # the same on both paths.
        torch.empty((), dtype=torch.int64).random_()
        for keys in self.batch_sampler:
            x, y = self.assembler(keys)
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def can_cache(data: DataBundle) -> bool:
    return assemblable(data.train) and cacheable(data.train.source)


def resolve_data_path(choice: str, data: DataBundle, device: torch.device, workers: int) -> str:
    """``cache`` or ``loader`` for ``--data-path choice``; an explicit ``cache`` the data cannot use is an error."""
    if choice == "loader":
        return "loader"
    if not can_cache(data):
        if choice == "cache":
            raise UserInputError("--data-path cache needs a class-folder data set of 8/16/32-bit integer or float "
                                 f"pixels (this one: {getattr(getattr(data.train, 'source', None), 'dtype', 'paired')}); "
                                 "use --data-path loader.")
        return "loader"
    if choice == "cache" or device.type == "cuda" or workers == 0:
        return "cache"
    return "loader"


def _place(cache: PixelCache, device: torch.device) -> PixelCache:
    """On the GPU when it fits comfortably there, else where it is (batches are then made on the CPU)."""
    if device.type != "cuda":
        return cache
    free, _ = torch.cuda.mem_get_info(device)
    return cache.to(device) if cache.nbytes <= GPU_SHARE * free else cache


def cached_loader(batch_sampler, data: DataBundle, device: torch.device, progress=None) -> CachedLoader:
    """The cache path's loader; the memory-mapped file, when one is needed, is written by rank 0 first."""
    ds = data.train
    report = None
    if progress is not None:
        def report(done: int, total: int) -> None:
            progress.advance(64 if done % 64 == 0 else done % 64)

        progress.start("caching decoded training images", len(ds))
    try:
        if active() and not is_main():
            barrier()  # rank 0 builds the file; the others then open it
        cache = subset_cache(ds.source, ds.indices, progress=report)
        if active() and is_main():
            barrier()
    finally:
        if progress is not None:
            progress.stop()
    if cache is None:
        raise UserInputError("the training images cannot be cached; use --data-path loader.")
    return CachedLoader(batch_sampler, BatchAssembler(ds, _place(cache, device)), device)
