"""``fitnet``: FitNets hints (Romero et al., ICLR 2015) — CE + w · MSE(r(F_s), F_t).

A learned 1×1 conv regressor ``r`` (a method-owned parameter, trained with the student and saved
for resume, not exported) maps the student's guided layer to the teacher's hint channels; as in
the CRD benchmark code it is conv 1×1 → BatchNorm → ReLU (the hints are post-ReLU stage outputs;
without the normalisation the ×100 hint term diverges at usual SGD rates). The student map is
bilinearly resized when the resolutions differ. Trained in one stage, CE + hint, as
in the common benchmarks (CRD, torchdistill) rather than the paper's two stages; w = 100 is their
weight for the element-mean MSE. Default layers: the middle stage output of each net.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from compress.errors import UserInputError
from compress.losses.functional import feature_mse_loss
from compress.methods.feature_layers import probe_shapes, require_single_teacher
from compress.methods.base import METHODS, Method, StepOutput


@dataclass(frozen=True)
class FitNetParams:
    hint_weight: float = 100.0
    student_layer: str = ""  # "" → the middle stage output
    teacher_layer: str = ""
    ce_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.hint_weight < 0 or self.ce_weight < 0:
            raise UserInputError("fitnet hint_weight and ce_weight must be ≥ 0.")


def _middle_stage(model: nn.Module, image_size: int) -> str:
    from compress.models import default_feature_layers

    layers = default_feature_layers(model, image_size)
    return layers[len(layers) // 2] if len(layers) > 1 else layers[0]


@METHODS.register("fitnet")
class FitNet(Method):
    requires_teacher = True
    Params = FitNetParams

    def __init__(self, student, teacher=None, params=None, **kw) -> None:
        super().__init__(student, teacher, params, **kw)
        t = require_single_teacher(teacher, "fitnet")
        self.s_layer = self.params.student_layer or _middle_stage(student, self.image_size)
        self.t_layer = self.params.teacher_layer or _middle_stage(t, self.image_size)
        (s_shape,) = probe_shapes(student, [self.s_layer], self.in_chans, self.image_size)
        (t_shape,) = probe_shapes(t, [self.t_layer], self.in_chans, self.image_size)
        if len(s_shape) != 4 or len(t_shape) != 4:
            raise UserInputError(f"fitnet needs [B, C, H, W] feature maps; '{self.s_layer}' gives {tuple(s_shape)} "
                                 f"and '{self.t_layer}' {tuple(t_shape)}. Pick convolutional stages.")
        self.regressor = nn.Sequential(nn.Conv2d(s_shape[1], t_shape[1], kernel_size=1, bias=False),
                                       nn.BatchNorm2d(t_shape[1]), nn.ReLU(inplace=True))
        p = next(student.parameters(), None)
        if p is not None:
            self.regressor.to(p.device)
        self.student_taps = self.tap(student, [self.s_layer])
        self.teacher_taps = self.tap(t, [self.t_layer], frozen=True)

    def training_step(self, images: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        p = self.params
        _, (ft,) = self.teacher_taps(images)
        logits, (fs,) = self.student_taps(images)
        hint = self.regressor(fs)
        if hint.shape[-2:] != ft.shape[-2:]:
            hint = F.interpolate(hint, size=ft.shape[-2:], mode="bilinear", align_corners=False)
        losses = {"ce": p.ce_weight * F.cross_entropy(logits, targets),
                  "hint": p.hint_weight * feature_mse_loss(hint, ft)}
        return StepOutput(losses=losses, logits=logits, targets=targets)
