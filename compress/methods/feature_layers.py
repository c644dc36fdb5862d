"""Shared plumbing of the feature methods (AT, SP, FitNet, RKD): which layers to pair, and their shapes."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from compress.errors import UserInputError


def require_single_teacher(teacher: nn.Module | None, method: str) -> nn.Module:
    from compress.models.ensemble import WeightedEnsemble

    if teacher is None:
        raise UserInputError(f"Method '{method}' needs a teacher model.")
    if isinstance(teacher, WeightedEnsemble):
        raise UserInputError(f"Method '{method}' distils intermediate features, which a weighted ensemble of "
                             "teachers does not have; pass one --teacher checkpoint or use a logit method "
                             "(kd, dkd, dist, erkt).")
    return teacher


def resolve_layer_pairs(student: nn.Module, teacher: nn.Module, student_layers: Sequence[str],
                        teacher_layers: Sequence[str], image_size: int, method: str) -> tuple[list[str], list[str]]:
    """Explicit paths (equal counts), or the stage outputs of both nets; unequal stage counts pair the
    deepest stages (the last ``min(n_s, n_t)`` of each)."""
    from compress.models import default_feature_layers

    s = list(student_layers) or default_feature_layers(student, image_size)
    t = list(teacher_layers) or default_feature_layers(teacher, image_size)
    if student_layers and teacher_layers and len(s) != len(t):
        raise UserInputError(f"{method}: {len(s)} student layer(s) but {len(t)} teacher layer(s); list the same "
                             "number so they pair up in order.")
    n = min(len(s), len(t))
    return s[len(s) - n:], t[len(t) - n:]


@torch.no_grad()
def probe_shapes(model: nn.Module, paths: Sequence[str], in_chans: int, image_size: int) -> list[torch.Size]:
    """Output shapes of ``paths`` for a 2-image dummy batch (eval mode, running stats untouched)."""
    p = next(model.parameters(), None)
    x = torch.zeros(2, in_chans, image_size, image_size, device=p.device if p is not None else None,
                    dtype=p.dtype if p is not None else None)
    was_training = model.training
    model.eval()
    try:
        from compress.models import FeatureTaps

        with FeatureTaps(model, paths, detach=True) as taps:
            model(x)
            return [taps[q].shape for q in paths]
    finally:
        model.train(was_training)
