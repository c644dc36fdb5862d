"""Optimizers and a stateless learning-rate schedule (a pure function of the step: resume-safe)."""
from __future__ import annotations

import math
from typing import Iterable

import torch

from compress.engine.train_config import TrainConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig,
                    device: torch.device | None = None) -> torch.optim.Optimizer:
    """SGD or AdamW; fused kernels on CUDA (one launch for all parameters instead of one per tensor)."""
    # No weight decay on biases and norm parameters, the usual practice for both SGD and AdamW.
    params = list(params)
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = {"fused": True} if device is not None and device.type == "cuda" else {}
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, **fused)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                           **fused)


def lr_at(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Learning rate at global ``step`` (0-based): linear warm-up, then the schedule per epoch fraction.
    ``cfg`` should be resolved (``TrainConfig.resolved``); automatic values are read as from scratch."""
    if cfg.lr is None or cfg.warmup_epochs is None:  # called every step: resolve only when needed
        cfg = cfg.resolved(pretrained=False)
    epoch = step / max(1, steps_per_epoch)
    if cfg.warmup_epochs > 0 and epoch < cfg.warmup_epochs:
        # a warm-up shorter than one step (a few steps in all) must not overshoot the peak
        return cfg.lr * min(1.0, (step + 1) / (cfg.warmup_epochs * max(1, steps_per_epoch)))
    if cfg.schedule == "cosine":
        span = max(1e-9, cfg.epochs - cfg.warmup_epochs)
        t = min(1.0, (epoch - cfg.warmup_epochs) / span)
        return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** int(epoch // cfg.step_size)
    if cfg.schedule == "multistep":
        return cfg.lr * cfg.gamma ** sum(1 for m in cfg.milestones if int(epoch) >= m)
    return cfg.lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr
