"""``at``: attention transfer (Zagoruyko & Komodakis, ICLR 2017) — CE + β/2 · Σ_layers AT(layer).

AT per layer pair compares L2-normalised spatial attention maps (mean over channels of |A|^p). Default
``distance="norm"`` is the paper's Eq. 2, ‖Q_s/‖Q_s‖ − Q_t/‖Q_t‖‖₂ averaged over the batch, with the
paper's β = 1000 "divided by the number of elements in the attention map and batch size" (§4.1);
``distance="squared-mean"`` is the authors' public code, mean((Q_s − Q_t)²), where that division is
already the mean. Layers are the stage outputs of both nets unless given as module paths.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.errors import UserInputError
from compress.losses.functional import at_loss
from compress.methods.feature_layers import require_single_teacher, resolve_layer_pairs
from compress.methods.base import METHODS, Method, StepOutput


@dataclass(frozen=True)
class ATParams:
    beta: float = 1000.0
    p: float = 2.0
    student_layers: tuple[str, ...] = ()
    teacher_layers: tuple[str, ...] = ()
    ce_weight: float = 1.0
    distance: str = "norm"  # "norm" (paper Eq. 2) | "squared-mean" (authors' code)

    def __post_init__(self) -> None:
        if self.beta < 0 or self.ce_weight < 0 or self.p <= 0:
            raise UserInputError("at beta and ce_weight must be ≥ 0 and p > 0.")
        if self.distance not in ("norm", "squared-mean"):
            raise UserInputError(f"at distance must be 'norm' or 'squared-mean', got '{self.distance}'.")


def _map_size(ft: torch.Tensor, distance: str) -> int:
    """The paper divides β by the attention map's H·W; the squared mean already averages over it."""
    return ft.shape[-2] * ft.shape[-1] if distance == "norm" else 1


@METHODS.register("at")
class AttentionTransfer(Method):
    requires_teacher = True
    Params = ATParams

    def __init__(self, student, teacher=None, params=None, **kw) -> None:
        super().__init__(student, teacher, params, **kw)
        t = require_single_teacher(teacher, "at")
        self.s_layers, self.t_layers = resolve_layer_pairs(student, t, self.params.student_layers,
                                                           self.params.teacher_layers, self.image_size, "at")
        self.student_taps = self.tap(student, self.s_layers)
        self.teacher_taps = self.tap(t, self.t_layers, frozen=True)

    def training_step(self, images: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        p = self.params
        _, t_feats = self.teacher_taps(images)
        logits, s_feats = self.student_taps(images)
        at = sum(at_loss(fs, ft, p=p.p, distance=p.distance) / _map_size(ft, p.distance)
                 for fs, ft in zip(s_feats, t_feats))
        losses = {"ce": p.ce_weight * F.cross_entropy(logits, targets), "at": (p.beta / 2.0) * at}
        return StepOutput(losses=losses, logits=logits, targets=targets)
