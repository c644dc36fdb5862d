"""Which process of a data-parallel run this is (core: methods, evaluation and the engine all ask):
rank-aware writing, reductions of metrics, evaluation shards, and gathers that keep the autograd
graph (for losses that relate the samples of a batch). A single process is rank 0 of 1 and every
helper is then a no-op. Joining the process group is the engine's (:mod:`compress.engine.distributed`).
"""
from __future__ import annotations

import os
from typing import Any

import torch


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def active() -> bool:
    return world_size() > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()


def barrier() -> None:
    if active():
        torch.distributed.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (in place on a copy); the tensor itself when single-process."""
    if not active():
        return t
    t = t.clone()
    torch.distributed.all_reduce(t)
    return t


def gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Every rank's ``t`` concatenated along dim 0, differentiable (the gradient flows back to each rank's part)."""
    if not active():
        return t
    if not t.requires_grad:  # labels, detached teacher outputs
        parts = [torch.empty_like(t) for _ in range(world_size())]
        torch.distributed.all_gather(parts, t.contiguous())
        return torch.cat(parts, dim=0)
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(t.contiguous()), dim=0)


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's picklable ``obj`` (e.g. CPU numpy arrays of an evaluation shard), in rank order."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def shard_indices(n: int) -> slice:
    """This rank's contiguous part of ``n`` items (evaluation shards; the last rank may get fewer)."""
    per = -(-n // world_size())
    return slice(rank() * per, min(n, (rank() + 1) * per))
