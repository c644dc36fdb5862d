"""ERKT-Net's weighted ensemble teacher: the members' prediction scores summed with weights.

ERKT-Net §3.1 sums the weighted "prediction scores" of the members; Algorithm 1 feeds the
ensemble's output to the same loss as the student's raw output, and DIST applies softmax(·/τ) to
both, so the scores are the members' logits: ``z = Σ_i w_i · z_i`` (``combine="logits"``, default).
``combine="probs"`` averages softmax probabilities instead and returns ``log Σ_i w_i · softmax(z_i)``,
logits whose softmax is that mixture. Weights must be positive and are normalised to sum to 1 (the
paper's always do: 0.3/0.4/0.3 and Eq. 14), so ``3 4 3`` means the same as ``0.3 0.4 0.3``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from compress.errors import UserInputError

COMBINE = ("logits", "probs")


def normalize_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """Validated weights summing to 1 (``None`` → equal weights)."""
    if n < 1:
        raise UserInputError("A weighted ensemble needs at least one member model.")
    if weights is None or len(weights) == 0:
        return [1.0 / n] * n
    weights = [float(w) for w in weights]
    if len(weights) != n:
        raise UserInputError(f"Got {len(weights)} ensemble weight(s) for {n} member(s); give one weight per "
                             "teacher checkpoint, in the same order.")
    bad = [w for w in weights if not (math.isfinite(w) and w > 0)]
    if bad:
        raise UserInputError(f"Ensemble weights must be positive finite numbers, got {weights}.")
    total = sum(weights)
    return [w / total for w in weights]


class WeightedEnsemble(nn.Module):
    """``forward(x [B, C, H, W]) → [B, K]``: Σ w_i · logits_i (or the log of the weighted probabilities).

    Members must predict the same K classes; they may differ in architecture.
    """

    def __init__(self, models: Sequence[nn.Module], weights: Sequence[float] | None = None,
                 combine: str = "logits") -> None:
        super().__init__()
        if combine not in COMBINE:
            raise UserInputError(f"Ensemble combine must be one of {', '.join(COMBINE)}, got '{combine}'.")
        models = list(models)
        w = normalize_weights(weights, len(models))
        self.members = nn.ModuleList(models)
        self.combine = combine
        self.register_buffer("weights", torch.tensor(w, dtype=torch.float32), persistent=False)

    def member_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [m(x) for m in self.members]
        shapes = {tuple(o.shape) for o in outs}
        if len(shapes) != 1:
            raise UserInputError(f"Ensemble members disagree on the output shape: {sorted(shapes)}; "
                                 "every member must predict the same classes.")
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return combine_outputs(self.member_outputs(x), self.weights, self.combine)


def combine_outputs(outputs: Sequence[torch.Tensor], weights: torch.Tensor | Sequence[float],
                    combine: str = "logits") -> torch.Tensor:
    """Weighted combination of member logits ``[B, K]`` each (weights already normalised)."""
    stacked = torch.stack([o.float() for o in outputs])  # [M, B, K]
    w = torch.as_tensor(weights, dtype=stacked.dtype, device=stacked.device).view(-1, 1, 1)
    if combine == "logits":
        return (w * stacked).sum(0)
    # log Σ w_i p_i computed as logsumexp(log w_i + log p_i): stable for confident members
    return torch.logsumexp(torch.log(w) + torch.log_softmax(stacked, dim=-1), dim=0)
