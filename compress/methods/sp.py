"""``sp``: similarity-preserving KD (Tung & Mori, ICCV 2019) — CE + γ · Σ_layers ‖G_s − G_t‖²_F / B².

G is the row-normalised batch similarity of a layer's activations; γ = 3000 as in the paper.
Default layers: the last stage output of each net (the paper's choice for its ResNet/WRN results).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.errors import UserInputError
from compress.losses.functional import sp_loss
from compress.methods.feature_layers import require_single_teacher, resolve_layer_pairs
from compress.methods.base import METHODS, Method, StepOutput


@dataclass(frozen=True)
class SPParams:
    gamma: float = 3000.0
    student_layers: tuple[str, ...] = ()
    teacher_layers: tuple[str, ...] = ()
    ce_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.gamma < 0 or self.ce_weight < 0:
            raise UserInputError("sp gamma and ce_weight must be ≥ 0.")


@METHODS.register("sp")
class SimilarityPreserving(Method):
    requires_teacher = True
    relates_batch = True  # similarities between the samples of the (gathered) global batch
    Params = SPParams

    def __init__(self, student, teacher=None, params=None, **kw) -> None:
        super().__init__(student, teacher, params, **kw)
        t = require_single_teacher(teacher, "sp")
        s_l, t_l = resolve_layer_pairs(student, t, self.params.student_layers, self.params.teacher_layers,
                                       self.image_size, "sp")
        explicit = bool(self.params.student_layers or self.params.teacher_layers)
        self.s_layers, self.t_layers = (s_l, t_l) if explicit else (s_l[-1:], t_l[-1:])
        self.student_taps = self.tap(student, self.s_layers)
        self.teacher_taps = self.tap(t, self.t_layers, frozen=True)

    def training_step(self, images: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        p = self.params
        _, t_feats = self.teacher_taps(images)
        logits, s_feats = self.student_taps(images)
        sp = sum(sp_loss(self.gather(fs), self.gather(ft)) for fs, ft in zip(s_feats, t_feats))
        losses = {"ce": p.ce_weight * F.cross_entropy(logits, targets), "sp": p.gamma * sp}
        return StepOutput(losses=losses, logits=logits, targets=targets)
