"""``rkd``: relational KD (Park et al., CVPR 2019) on pooled pre-logit embeddings.

CE + w_d·L_distance + w_a·L_angle with the paper's w_d = 25, w_a = 50; the embeddings are the
classifier inputs of student and teacher (their dimensions may differ: RKD compares relations).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.errors import UserInputError
from compress.losses.functional import rkd_loss
from compress.methods.feature_layers import require_single_teacher
from compress.methods.base import METHODS, Method, StepOutput


@dataclass(frozen=True)
class RKDParams:
    distance_weight: float = 25.0
    angle_weight: float = 50.0
    ce_weight: float = 1.0

    def __post_init__(self) -> None:
        if min(self.distance_weight, self.angle_weight, self.ce_weight) < 0:
            raise UserInputError("rkd distance_weight, angle_weight and ce_weight must be ≥ 0.")


@METHODS.register("rkd")
class RelationalKD(Method):
    requires_teacher = True
    relates_batch = True  # distances and angles between the samples of the (gathered) global batch
    Params = RKDParams

    def __init__(self, student, teacher=None, params=None, **kw) -> None:
        super().__init__(student, teacher, params, **kw)
        require_single_teacher(teacher, "rkd")

    @torch.no_grad()
    def _teacher_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        from compress.models import forward_with_pooled

        with torch.inference_mode():
            _, emb = forward_with_pooled(self.teacher, images)
        return emb.clone()

    def training_step(self, images: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        from compress.models import forward_with_pooled

        p = self.params
        t_emb = self._teacher_embeddings(images)
        logits, s_emb = forward_with_pooled(self.student, images)
        losses = {"ce": p.ce_weight * F.cross_entropy(logits, targets),
                  "rkd": rkd_loss(self.gather(s_emb), self.gather(t_emb), distance_weight=p.distance_weight,
                                  angle_weight=p.angle_weight)}
        return StepOutput(losses=losses, logits=logits, targets=targets)
