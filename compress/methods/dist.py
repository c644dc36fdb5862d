"""``dist``: DIST (Huang et al., NeurIPS 2022) — CE + β·L_inter + γ·L_intra (Pearson on softmax(·/τ)).

Defaults are the paper's ImageNet setting (β = γ = 1, τ = 1, no τ² factor); its CIFAR setting is
β = γ = 2, τ = 4. ``tau_squared`` multiplies the DIST terms by τ² as the authors' code does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.errors import UserInputError
from compress.losses.functional import dist_loss
from compress.methods.base import METHODS, Method, StepOutput


@dataclass(frozen=True)
class DISTParams:
    beta: float = 1.0  # inter-class (per sample, across classes)
    gamma: float = 1.0  # intra-class (per class, across the batch)
    temperature: float = 1.0
    tau_squared: bool = False
    ce_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise UserInputError(f"dist temperature must be > 0, got {self.temperature}.")
        if min(self.beta, self.gamma, self.ce_weight) < 0:
            raise UserInputError("dist beta, gamma and ce_weight must be ≥ 0.")


@METHODS.register("dist")
class DIST(Method):
    requires_teacher = True
    relates_batch = True  # the intra-class term correlates predictions across the (gathered) global batch
    Params = DISTParams

    def training_step(self, images: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        p = self.params
        t_logits = self.teacher_logits(images)
        logits = self.student(images)
        losses = {"ce": p.ce_weight * F.cross_entropy(logits, targets),
                  "dist": dist_loss(self.gather(logits), self.gather(t_logits), temperature=p.temperature, beta=p.beta,
                                    gamma=p.gamma, tau_squared=p.tau_squared)}
        return StepOutput(losses=losses, logits=logits, targets=targets)
