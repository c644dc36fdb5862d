"""``ce``: plain supervised training (teachers, and the no-teacher baseline student)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.methods.base import METHODS, Method, StepOutput


@dataclass(frozen=True)
class CEParams:
    label_smoothing: float = 0.0


@METHODS.register("ce")
class CrossEntropy(Method):
    """Cross-entropy on the hard labels; no teacher."""

    Params = CEParams

    def training_step(self, images: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        logits = self.student(images)
        loss = F.cross_entropy(logits, targets, label_smoothing=self.params.label_smoothing)
        return StepOutput(losses={"ce": loss}, logits=logits, targets=targets)
