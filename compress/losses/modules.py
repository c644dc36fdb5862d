"""``nn.Module`` wrappers of the functional losses, registered in ``LOSSES`` under kebab-case keys.

Hyper-parameters are checked when the module is built, so a bad config fails before training.
``CenterLoss`` and ``AngularMarginLoss`` own learnable parameters (class centers, class weights):
add their parameters to the optimizer.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn

from compress.errors import UserInputError
from compress.losses import functional as LF
from compress.losses.checks import check_choice, check_nonnegative, check_positive
from compress.losses.features import MSE_REDUCTIONS
from compress.losses.metric import NUCLEAR_NORMALIZATIONS, THETA_OVERFLOW, TRIPLET_DISTANCES
from compress.registry import Registry

LOSSES: Registry[type[nn.Module]] = Registry("loss")

Features = Union[torch.Tensor, Sequence[torch.Tensor]]


@LOSSES.register("kd")
class KDLoss(nn.Module):
    """Hinton KD; forward(s, t) with ``[B, C]`` logits."""

    def __init__(self, temperature: float = 4.0) -> None:
        super().__init__()
        self.temperature = check_positive(temperature, "temperature", "KDLoss")

    def forward(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return LF.kd_loss(s, t, self.temperature)


@LOSSES.register("dkd")
class DKDLoss(nn.Module):
    """Decoupled KD; forward(s, t, target), target ``[B]`` indices or ``[B, C]`` soft labels."""

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0) -> None:
        super().__init__()
        self.alpha = check_nonnegative(alpha, "alpha", "DKDLoss")
        self.beta = check_nonnegative(beta, "beta", "DKDLoss")
        self.temperature = check_positive(temperature, "temperature", "DKDLoss")

    def forward(self, s: torch.Tensor, t: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return LF.dkd_loss(s, t, target, self.alpha, self.beta, self.temperature)


@LOSSES.register("dist")
class DISTLoss(nn.Module):
    """DIST (β·inter + γ·intra Pearson distances); ``tau_squared`` adds the code's τ² factor."""

    def __init__(
        self, temperature: float = 1.0, beta: float = 1.0, gamma: float = 1.0, tau_squared: bool = False
    ) -> None:
        super().__init__()
        self.temperature = check_positive(temperature, "temperature", "DISTLoss")
        self.beta = check_nonnegative(beta, "beta", "DISTLoss")
        self.gamma = check_nonnegative(gamma, "gamma", "DISTLoss")
        self.tau_squared = bool(tau_squared)

    def forward(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return LF.dist_loss(s, t, self.temperature, self.beta, self.gamma, self.tau_squared)


@LOSSES.register("at")
class ATLoss(nn.Module):
    """Attention transfer; forward takes one feature pair or equal-length lists (summed)."""

    def __init__(
        self,
        p: float = 2.0,
        reduction_over_channels: str = "mean",
        resize: str = "interpolate",
        distance: str = "norm",
    ) -> None:
        super().__init__()
        self.p = check_positive(p, "p", "ATLoss")
        self.kwargs = {
            "reduction_over_channels": check_choice(
                reduction_over_channels, "reduction_over_channels", "ATLoss", ("mean", "sum")
            ),
            "resize": check_choice(resize, "resize", "ATLoss", ("interpolate", "raise")),
            "distance": check_choice(distance, "distance", "ATLoss", ("squared-mean", "norm")),
        }

    def forward(self, fs: Features, ft: Features) -> torch.Tensor:
        if isinstance(fs, torch.Tensor) and isinstance(ft, torch.Tensor):
            return LF.at_loss(fs, ft, self.p, **self.kwargs)
        return LF.at_loss_layers(fs, ft, self.p, **self.kwargs)


@LOSSES.register("sp")
class SPLoss(nn.Module):
    """Similarity-preserving KD; forward takes one feature pair or equal-length lists (summed)."""

    def forward(self, fs: Features, ft: Features) -> torch.Tensor:
        if isinstance(fs, torch.Tensor) and isinstance(ft, torch.Tensor):
            return LF.sp_loss(fs, ft)
        return LF.sp_loss_layers(fs, ft)


@LOSSES.register("rkd")
class RKDLoss(nn.Module):
    """Relational KD on embeddings (distance- and angle-wise)."""

    def __init__(self, distance_weight: float = 25.0, angle_weight: float = 50.0) -> None:
        super().__init__()
        self.distance_weight = check_nonnegative(distance_weight, "distance_weight", "RKDLoss")
        self.angle_weight = check_nonnegative(angle_weight, "angle_weight", "RKDLoss")

    def forward(self, es: torch.Tensor, et: torch.Tensor) -> torch.Tensor:
        return LF.rkd_loss(es, et, self.distance_weight, self.angle_weight)


@LOSSES.register("feature-mse")
class FeatureMSELoss(nn.Module):
    """MSE between equally shaped student and teacher features."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_choice(reduction, "reduction", "FeatureMSELoss", MSE_REDUCTIONS)

    def forward(self, fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
        return LF.feature_mse_loss(fs, ft, self.reduction)


@LOSSES.register("triplet")
class TripletLoss(nn.Module):
    """Batch-hard triplet loss; forward(emb, target)."""

    def __init__(self, margin: float = 0.3, distance: str = "euclidean") -> None:
        super().__init__()
        self.margin = check_nonnegative(margin, "margin", "TripletLoss")
        self.distance = check_choice(distance, "distance", "TripletLoss", TRIPLET_DISTANCES)

    def forward(self, emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return LF.triplet_loss(emb, target, self.margin, self.distance)


def _check_sizes(num_classes: int, embedding_dim: int, owner: str) -> None:
    for name, value in (("num_classes", num_classes), ("embedding_dim", embedding_dim)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserInputError(f"{owner}: '{name}' must be a positive integer, got {value!r}.")


@LOSSES.register("center")
class CenterLoss(nn.Module):
    """Center loss with learnable centers ``[num_classes, embedding_dim]`` (standard-normal init).

    The centers are learned by the optimizer through the loss gradient, not by Wen et al.'s
    separate update rule with rate α; give them their own learning rate if needed.
    """

    def __init__(self, num_classes: int, embedding_dim: int) -> None:
        super().__init__()
        _check_sizes(num_classes, embedding_dim, "CenterLoss")
        self.centers = nn.Parameter(torch.randn(num_classes, embedding_dim))

    def forward(self, emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return LF.center_loss(emb, target, self.centers)


@LOSSES.register("angular-margin")
class AngularMarginLoss(nn.Module):
    """Normalized softmax with additive angular margin, owning class weights ``[C, D]``."""

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        margin: float = 0.5,
        scale_tau: float = 0.05,
        theta_overflow: str = "none",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        _check_sizes(num_classes, embedding_dim, owner)
        self.margin = check_nonnegative(margin, "margin", owner)
        self.scale_tau = check_positive(scale_tau, "scale_tau", owner)
        self.theta_overflow = check_choice(theta_overflow, "theta_overflow", owner, THETA_OVERFLOW)
        self.class_weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.xavier_uniform_(self.class_weight)

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` → ``[B, C]`` cosines between embeddings and class weights (no margin)."""
        w = nn.functional.normalize(self.class_weight, dim=1)
        return nn.functional.normalize(emb, dim=1) @ w.t()

    def forward(self, emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return LF.angular_margin_loss(
            emb, self.class_weight, target, self.margin, self.scale_tau, self.theta_overflow
        )


@LOSSES.register("normalized-softmax")
class NormalizedSoftmaxLoss(AngularMarginLoss):
    """NSL: :class:`AngularMarginLoss` with margin 0."""

    def __init__(self, num_classes: int, embedding_dim: int, scale_tau: float = 0.05) -> None:
        super().__init__(num_classes, embedding_dim, margin=0.0, scale_tau=scale_tau)


@LOSSES.register("nuclear-norm")
class NuclearNormLoss(nn.Module):
    """High-rankness term ``−‖P‖_*`` on class probabilities ``[B, C]``."""

    def __init__(self, normalization: str = "none") -> None:
        super().__init__()
        self.normalization = check_choice(
            normalization, "normalization", "NuclearNormLoss", NUCLEAR_NORMALIZATIONS
        )

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return LF.nuclear_norm_loss(probs, self.normalization)
