"""Per-epoch plumbing of the loop: the training batches (the method's sampler or a seeded shuffle, each
global batch split across data-parallel ranks) behind ONE persistent loader, and ``history.csv``.

Batches carry ``(index, epoch)`` keys, so persistent loader workers augment each image for the epoch
the sampler says (per-(seed, epoch, image) seeds) without being rebuilt every epoch.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader

from compress.data.bundle import DataBundle
from compress.engine.train_config import TrainConfig
from compress.errors import UserInputError
from compress.io import write_text_atomic
from compress.parallel import rank, world_size


def loader_seed(seed: int, epoch: int) -> int:
    return (seed * 7919 + epoch * 104729 + 1) % (2**31)


def auto_workers(device: torch.device) -> int:
    """Loader worker processes when ``--workers`` is not given: none on a 2-core machine (they would
    compete with the model for the cores; measured in bench/history/diary.md), else the cores left per rank."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(8, max(0, cores // max(1, world_size()) - 1))


def shard(batch: list[int], layout: Any, r: int, w: int) -> list[int]:
    """Rank ``r``'s share of a global batch; ``layout`` keeps what belongs together on one rank:
    ``"pairs"`` (anchors then their partners), ``("groups", k)`` (P×K identity groups), or flat."""
    if w == 1:
        return batch
    if layout == "pairs":
        n = len(batch) // 2
        per = n // w
        return batch[r * per:(r + 1) * per] + batch[n + r * per:n + (r + 1) * per]
    if isinstance(layout, tuple) and layout[0] == "groups":
        k = layout[1]
        groups = [batch[i:i + k] for i in range(0, len(batch), k)]
        per = len(groups) // w
        return [i for g in groups[r * per:(r + 1) * per] for i in g]
    per = len(batch) // w
    return batch[r * per:(r + 1) * per]


class EpochBatches:
    """The batch sampler of the whole run: ``set_epoch`` then iterate; every rank draws the same global
    batches (seeded by seed and epoch) and keeps its share. Incomplete global batches that cannot be
    split evenly are dropped under data-parallel training."""

    def __init__(self, method, labels, cfg: TrainConfig) -> None:
        self.method, self.labels, self.cfg, self.epoch = method, labels, cfg, 0
        self.rank, self.world = rank(), world_size()
        if cfg.batch_size % self.world:
            raise UserInputError(f"--batch-size {cfg.batch_size} is the global batch; it must divide evenly over "
                                 f"{self.world} ranks.")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _global(self) -> tuple[list[list[int]], Any]:
        cfg = self.cfg
        sampler = self.method.batch_sampler(self.labels, cfg.batch_size, cfg.seed, self.epoch)
        if sampler is not None:
            return [list(b) for b in sampler], getattr(sampler, "layout", "flat")
        n = len(self.labels)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(loader_seed(cfg.seed, self.epoch))).tolist()
        batches = [order[i:i + cfg.batch_size] for i in range(0, n, cfg.batch_size)]
        short = len(batches[-1]) < (cfg.batch_size if cfg.drop_last else min_last_batch(cfg.batch_size))
        if n > cfg.batch_size and short:  # drop_last: false keeps a short last batch, not a one-image BN step
            batches.pop()
        return batches, "flat"

    def _batches(self) -> list[list[int]]:
        batches, layout = self._global()
        out = [shard(b, layout, self.rank, self.world) for b in batches]
        # a share that is empty, or that leaves part of its global batch on no rank, is not trained
        return [b for b, g in zip(out, batches) if b and len(b) * self.world == len(g)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for b in self._batches():
            yield [(i, self.epoch) for i in b]

    def __len__(self) -> int:
        return len(self._batches())


def min_last_batch(batch_size: int) -> int:
    """The smallest last batch kept when ``drop_last`` is off: a quarter of the batch, at least 2 — a batch of
    one image (ERKT's preset on AID 20 %: batch 30) is a full optimizer step and a BatchNorm update from it."""
    return max(2, batch_size // 4)


def build_loader(method, data: DataBundle, cfg: TrainConfig, workers: int | None, device, progress=None):
    """One loader for the whole run: the pixel-cache path or a ``DataLoader`` (persistent workers,
    prefetch, pinned memory on CUDA), as ``cfg.data_path`` resolves (:mod:`compress.engine.feed`)."""
    from compress.engine.feed import cached_loader, resolve_data_path

    workers = auto_workers(device) if workers is None else workers
    sampler = EpochBatches(method, data.train.labels, cfg)
    if resolve_data_path(cfg.data_path, data, device, workers) == "cache":
        return cached_loader(sampler, data, device, progress)
    extra = dict(persistent_workers=True, prefetch_factor=4) if workers > 0 else {}
    return DataLoader(data.train, batch_sampler=sampler, num_workers=workers, pin_memory=device.type == "cuda",
                      **extra)


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(history)
    write_text_atomic(run_dir / "history.csv", buf.getvalue())
