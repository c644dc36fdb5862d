"""``at``: attention transfer (Zagoruyko & Komodakis, ICLR 2017) — CE + β/2 · Σ_layers AT(layer).

AT per layer pair compares L2-normalised spatial attention maps (mean over channels of |A|^p);
β = 1000 and the β/2 factor follow the paper and its code (squared-mean distance). Layers are the
stage outputs of both nets unless given as module paths.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.errors import UserInputError
from compress.losses.functional import at_loss
from compress.methods._features import (require_single_teacher, resolve_layer_pairs, student_forward,
                                        teacher_forward)
from compress.methods.base import METHODS, Method, StepOutput


@dataclass(frozen=True)
class ATParams:
    beta: float = 1000.0
    p: float = 2.0
    student_layers: tuple[str, ...] = ()
    teacher_layers: tuple[str, ...] = ()
    ce_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.beta < 0 or self.ce_weight < 0 or self.p <= 0:
            raise UserInputError("at beta and ce_weight must be ≥ 0 and p > 0.")


@METHODS.register("at")
class AttentionTransfer(Method):
    requires_teacher = True
    Params = ATParams

    def __init__(self, student, teacher=None, params=None, **kw) -> None:
        super().__init__(student, teacher, params, **kw)
        t = require_single_teacher(teacher, "at")
        self.s_layers, self.t_layers = resolve_layer_pairs(student, t, self.params.student_layers,
                                                           self.params.teacher_layers, self.image_size, "at")

    def training_step(self, images: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        p = self.params
        _, t_feats = teacher_forward(self.teacher, images, self.t_layers)
        logits, s_feats = student_forward(self.student, images, self.s_layers)
        at = sum(at_loss(fs, ft, p=p.p) for fs, ft in zip(s_feats, t_feats))
        losses = {"ce": p.ce_weight * F.cross_entropy(logits, targets), "at": (p.beta / 2.0) * at}
        return StepOutput(losses=losses, logits=logits, targets=targets)
