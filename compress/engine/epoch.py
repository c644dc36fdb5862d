"""Per-epoch plumbing of the loop: the training loader (the method's sampler or a seeded shuffle) and ``history.csv``."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler

from compress.data.bundle import DataBundle
from compress.engine.config import TrainConfig
from compress.io import write_text_atomic


def loader_seed(seed: int, epoch: int) -> int:
    return (seed * 7919 + epoch * 104729 + 1) % (2**31)


def build_loader(method, data: DataBundle, cfg: TrainConfig, epoch: int, workers: int, device) -> DataLoader:
    """The epoch's training batches: the method's batch sampler if it has one, else a (seed, epoch) shuffle."""
    data.train.set_epoch(epoch)
    batches = method.batch_sampler(data.train.labels, cfg.batch_size, cfg.seed, epoch)
    common = dict(num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=False)
    if batches is not None:
        return DataLoader(data.train, batch_sampler=batches, **common)
    gen = torch.Generator().manual_seed(loader_seed(cfg.seed, epoch))
    drop = cfg.drop_last and len(data.train) > cfg.batch_size
    return DataLoader(data.train, batch_size=cfg.batch_size, sampler=RandomSampler(data.train, generator=gen),
                      drop_last=drop, **common)


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(history)
    write_text_atomic(run_dir / "history.csv", buf.getvalue())
