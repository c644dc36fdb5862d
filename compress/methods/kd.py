"""``kd``: Hinton et al. 2015 — (1−α)·CE(y) + α·τ²·KL(p_t^τ ‖ p_s^τ)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.errors import UserInputError
from compress.losses.functional import kd_loss
from compress.methods.base import METHODS, Method, StepOutput


@dataclass(frozen=True)
class KDParams:
    temperature: float = 4.0
    # weight of the distillation term; 1 − alpha weighs the hard-label CE. 0.5 rather than the 0.9 of
    # CIFAR recipes: with a teacher far from perfect, or a few epochs, 0.9 left students below the
    # no-teacher baseline (bench/history/diary.md §Issue 16.4).
    alpha: float = 0.5
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise UserInputError(f"kd temperature must be > 0, got {self.temperature}.")
        if not 0.0 <= self.alpha <= 1.0:
            raise UserInputError(f"kd alpha must be in [0, 1], got {self.alpha}.")


@METHODS.register("kd")
class KnowledgeDistillation(Method):
    """The teacher sees the same augmented batch as the student (inference mode, eval)."""

    requires_teacher = True
    Params = KDParams

    def training_step(self, images: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        t_logits = self.teacher_logits(images)
        logits = self.student(images)
        p = self.params
        losses = {
            "ce": (1.0 - p.alpha) * F.cross_entropy(logits, targets, label_smoothing=p.label_smoothing),
            "kd": p.alpha * kd_loss(logits, t_logits, temperature=p.temperature),
        }
        return StepOutput(losses=losses, logits=logits, targets=targets)
