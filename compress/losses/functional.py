"""The pure loss functions of the DESIGN contract, in one namespace.

Inputs: logits ``[B, C]``, features ``[B, C, H, W]``, embeddings ``[B, D]``. Every function returns
a scalar tensor averaged over the batch unless its docstring says otherwise, treats teacher
arguments as constants (detached) and raises ``UserInputError`` on bad shapes or values.
"""
from __future__ import annotations

from compress.losses.features import (
    at_loss,
    at_loss_layers,
    attention_map,
    feature_mse_loss,
    rkd_loss,
    sp_loss,
    sp_loss_layers,
)
from compress.losses.logits import dist_loss, dkd_loss, kd_loss, pair_consistency_loss, soft_cross_entropy
from compress.losses.metric import (
    angular_margin_logits,
    angular_margin_loss,
    center_loss,
    normalized_softmax_loss,
    nuclear_norm_loss,
    pairwise_distance_matrix,
    triplet_loss,
)

__all__ = [
    "angular_margin_logits",
    "angular_margin_loss",
    "at_loss",
    "at_loss_layers",
    "attention_map",
    "center_loss",
    "dist_loss",
    "dkd_loss",
    "feature_mse_loss",
    "kd_loss",
    "normalized_softmax_loss",
    "nuclear_norm_loss",
    "pair_consistency_loss",
    "pairwise_distance_matrix",
    "rkd_loss",
    "soft_cross_entropy",
    "sp_loss",
    "sp_loss_layers",
    "triplet_loss",
]
