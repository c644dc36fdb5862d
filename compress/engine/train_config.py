"""Typed training configuration shared by ``compress train`` and ``compress distill``."""
from __future__ import annotations

from dataclasses import dataclass, replace

from compress.errors import UserInputError

# Peak learning rate per 64 images of batch when --lr is not given (linear scaling, Goyal et al. 2017):
# lower when the model starts from trained weights (fine-tuning) than from a random initialisation.
AUTO_LR = {("sgd", False): 0.05, ("sgd", True): 0.01, ("adamw", False): 1e-3, ("adamw", True): 3e-4}
AUTO_LR_BATCH = 64
AUTO_LR_TEXT = "0.05 × batch/64 from scratch, 0.01 × batch/64 from trained weights (adamw: 1e-3, 3e-4)"
AUTO_WARMUP_TEXT = "min(1, epochs/10)"
# Epochs when --epochs is not given: 10, or more on a small training set so that every run takes at least
# AUTO_MIN_STEPS optimizer steps (a few hundred images in batches of 64 are 5 steps an epoch: 10 epochs
# left teachers and students far from converged; bench/history/diary.md §Issue 28 "auto epochs").
AUTO_EPOCHS, AUTO_MIN_STEPS, AUTO_MAX_EPOCHS = 10, 300, 100
AUTO_EPOCHS_TEXT = f"{AUTO_EPOCHS}, or enough for {AUTO_MIN_STEPS} optimizer steps on a small set (≤ {AUTO_MAX_EPOCHS})"


def auto_epochs(train_images: int, batch_size: int, world: int = 1) -> int:
    """Epochs for a run left automatic: ``AUTO_EPOCHS``, raised until ``AUTO_MIN_STEPS`` steps of
    ``batch_size`` images per rank × ``world`` ranks (last partial batch dropped), capped."""
    per_epoch = max(1, train_images // max(1, batch_size * world))
    return int(min(AUTO_MAX_EPOCHS, max(AUTO_EPOCHS, -(-AUTO_MIN_STEPS // per_epoch))))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and loop settings (units: epochs, images per batch, learning rate per step)."""

    epochs: int | None = None  # None: auto_epochs(training images, batch) — 10, more on small sets
    batch_size: int = 64
    lr: float | None = None  # None: AUTO_LR scaled to the batch, by initialisation (see ``resolved``)
    optimizer: str = "sgd"  # sgd | adamw
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine | step | multistep | constant
    milestones: tuple[int, ...] = ()  # epochs for 'multistep'
    step_size: int = 30  # epochs for 'step'
    gamma: float = 0.1
    warmup_epochs: float | None = None  # None: min(1, epochs / 10)
    min_lr: float = 0.0
    label_smoothing: float = 0.0
    grad_clip: float = 0.0  # max global grad norm; 0 = off
    amp: str = "auto"  # auto (bf16/fp16 on CUDA, bf16 on CPUs with native bf16, else fp32) | off | bf16 | fp16
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0
    eval_every: int = 1
    log_every: int = 50  # steps between host reads of the running loss (the non-finite check rides on it)
    drop_last: bool = True
    memory_format: str = "auto"  # auto | channels_last | contiguous
    data_path: str = "auto"  # auto | cache | loader: how training batches are made (compress.engine.feed)
    compile: bool = False  # torch.compile the student and the teacher
    sync_bn: bool = False  # BatchNorm statistics over the global batch under data-parallel training
    log: str = "none"  # none | tensorboard (per-epoch scalars; training_curves.png is always written)

    def __post_init__(self) -> None:
        checks = [
            (self.epochs is None or self.epochs >= 1, f"epochs must be ≥ 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be ≥ 1, got {self.batch_size}"),
            (self.lr is None or self.lr > 0, f"learning rate must be > 0, got {self.lr}"),
            (self.optimizer in ("sgd", "adamw"), f"optimizer must be sgd or adamw, got '{self.optimizer}'"),
            (self.schedule in ("cosine", "step", "multistep", "constant"),
             f"schedule must be cosine, step, multistep or constant, got '{self.schedule}'"),
            (self.amp in ("auto", "off", "bf16", "fp16"), f"amp must be auto, off, bf16 or fp16, got '{self.amp}'"),
            (self.grad_clip >= 0, f"grad_clip must be ≥ 0, got {self.grad_clip}"),
            (0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            (self.warmup_epochs is None or self.warmup_epochs >= 0,
             f"warmup_epochs must be ≥ 0, got {self.warmup_epochs}"),
            (0 <= self.seed < 2**32, f"seed must be in 0…2^32−1, got {self.seed}"),
            (self.eval_every >= 1, f"eval_every must be ≥ 1, got {self.eval_every}"),
            (self.log_every >= 1, f"log_every must be ≥ 1, got {self.log_every}"),
            (self.log in ("none", "tensorboard"), f"log must be none or tensorboard, got '{self.log}'"),
            (self.memory_format in ("auto", "channels_last", "contiguous"),
             f"memory_format must be auto, channels_last or contiguous, got '{self.memory_format}'"),
            (self.data_path in ("auto", "cache", "loader"),
             f"data_path must be auto, cache or loader, got '{self.data_path}'"),
            (self.weight_decay >= 0 and self.momentum >= 0, "weight_decay and momentum must be ≥ 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserInputError(msg + ".")
        if self.log == "tensorboard":  # its package is checked with the rest, before any training
            from compress.engine.run_log import check_logger

            check_logger(self.log)

    def with_epochs(self, train_images: int, world: int = 1) -> "TrainConfig":
        """The config with ``epochs`` filled in (:func:`auto_epochs`) where it was left automatic."""
        if self.epochs is not None:
            return self
        return replace(self, epochs=auto_epochs(train_images, self.batch_size, world))

    def resolved(self, pretrained: bool, train_images: int | None = None) -> "TrainConfig":
        """The config with ``epochs``, ``lr`` and ``warmup_epochs`` filled in where they were left automatic.

        ``pretrained``: the model starts from trained weights (``--weights``, ``--pretrained``, a pruned
        or given checkpoint), which wants a gentler step than a random initialisation. ``train_images``
        sizes automatic epochs (unknown: ``AUTO_EPOCHS``)."""
        cfg = self.with_epochs(train_images) if train_images is not None else self
        epochs = cfg.epochs if cfg.epochs is not None else AUTO_EPOCHS
        lr = self.lr if self.lr is not None else round(
            AUTO_LR[(self.optimizer, pretrained)] * self.batch_size / AUTO_LR_BATCH, 8)
        warmup = self.warmup_epochs if self.warmup_epochs is not None else min(1.0, epochs / 10)
        return replace(self, epochs=epochs, lr=lr, warmup_epochs=warmup)
