"""Metric-learning losses on embeddings ``[B, D]``: batch-hard triplet (Hermans et al.), center
loss (Wen et al.), normalized softmax with additive angular margin (Kang et al. HR-S²DML Eq. 3),
normalized softmax (NSL, margin 0) and the high-rankness nuclear-norm term (HR-S²DML Eq. 5)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from compress.errors import UserInputError
from compress.losses.checks import (
    check_choice,
    check_nonnegative,
    check_positive,
    check_tensor,
    class_indices,
    values_checked,
    zero_with_grad,
)

TRIPLET_DISTANCES = ("euclidean", "squared-euclidean", "cosine")
TRIPLET_MINING = ("hard", "random")


def pairwise_distance_matrix(emb: torch.Tensor, distance: str = "euclidean") -> torch.Tensor:
    """``[B, D]`` → ``[B, B]`` distances: Euclidean, squared Euclidean or cosine (1 − cos)."""
    if distance == "cosine":
        e = F.normalize(emb, dim=1)
        return 1.0 - e @ e.t()
    sq = (emb[:, None, :] - emb[None, :, :]).pow(2).sum(-1)
    # sqrt'(0) is infinite: clamp so identical embeddings keep finite gradients
    return sq if distance == "squared-euclidean" else sq.clamp_min(1e-12).sqrt()


def triplet_loss(
    emb: torch.Tensor, target: torch.Tensor, margin: float = 0.3, distance: str = "euclidean", mining: str = "hard"
) -> torch.Tensor:
    """Triplet loss per anchor, ``max(0, d(a, p) − d(a, n) + margin)``, averaged over anchors.

    ``mining="hard"`` (batch-hard, Hermans et al.): p is the farthest same-class sample (not the anchor
    itself), n the closest other-class sample. ``mining="random"``: p and n drawn uniformly among the
    anchor's same-class and other-class samples (torch's generator) — Xiong et al.'s triplets "determined by
    two classes of images sampled randomly"; never above batch-hard, anchor by anchor. Anchors without a
    positive or a negative are skipped; a batch with none gives 0 (still differentiable).
    emb: ``[B, D]``; target: ``[B]`` class indices. Xiong et al. use margin 0.3, Euclidean.
    """
    fn = "triplet_loss"
    emb = check_tensor(emb, "emb", fn, ndim=2)
    y = class_indices(target, emb.shape[0], None, fn)
    margin = check_nonnegative(margin, "margin", fn)
    check_choice(distance, "distance", fn, TRIPLET_DISTANCES)
    check_choice(mining, "mining", fn, TRIPLET_MINING)
    d = pairwise_distance_matrix(emb, distance)
    same = y[:, None] == y[None, :]
    eye = torch.eye(len(y), dtype=torch.bool, device=emb.device)
    pos, neg = same & ~eye, ~same
    valid = pos.any(dim=1) & neg.any(dim=1)
    # anchors without a positive or a negative are masked out (no data-dependent branch: no host sync)
    if mining == "random":
        def draw(mask: torch.Tensor) -> torch.Tensor:  # one index per row among its True entries
            w = mask.float() + (~mask.any(dim=1, keepdim=True)).float()  # an empty row draws anything, masked
            return d.gather(1, torch.multinomial(w, 1)).squeeze(1)

        ap, an = draw(pos), draw(neg)
    else:
        ap = d.masked_fill(~pos, 0.0).amax(dim=1)
        an = d.masked_fill(~neg, float("inf")).amin(dim=1).masked_fill(~neg.any(dim=1), 0.0)
    terms = F.relu(ap - an + margin) * valid
    return terms.sum() / valid.sum().clamp(min=1) + zero_with_grad(emb)


def center_loss(emb: torch.Tensor, target: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Center loss ``½ · mean_i ‖x_i − c_{y_i}‖²`` (Wen et al.; Xiong et al. Eq. 3 sums over the
    batch instead — multiply by B for that form). emb: ``[B, D]``; target: ``[B]``; centers:
    ``[num_classes, D]``. Gradients reach both the embeddings and the centers.
    """
    fn = "center_loss"
    emb = check_tensor(emb, "emb", fn, ndim=2)
    centers = check_tensor(centers, "centers", fn, ndim=2)
    if centers.shape[1] != emb.shape[1]:
        raise UserInputError(
            f"{fn}: centers {tuple(centers.shape)} must have the embedding width D = {emb.shape[1]}."
        )
    y = class_indices(target, emb.shape[0], centers.shape[0], fn)
    return 0.5 * (emb - centers[y]).pow(2).sum(dim=1).mean()


THETA_OVERFLOW = ("none", "arcface")


def angular_margin_logits(
    emb: torch.Tensor,
    class_weight: torch.Tensor,
    target: torch.Tensor,
    margin: float = 0.5,
    scale_tau: float = 0.05,
    theta_overflow: str = "none",
) -> torch.Tensor:
    """``[B, C]`` logits ``cos θ_j / τ`` for j ≠ y and ``cos(θ_y + m) / τ`` for the target class,
    θ the angle between the L2-normalised embedding and class-weight rows."""
    fn = "angular_margin_loss"
    emb = check_tensor(emb, "emb", fn, ndim=2)
    class_weight = check_tensor(class_weight, "class_weight", fn, ndim=2)
    if class_weight.shape[1] != emb.shape[1]:
        raise UserInputError(
            f"{fn}: class_weight {tuple(class_weight.shape)} must be [num_classes, D] with "
            f"D = {emb.shape[1]} (the embedding width)."
        )
    margin = check_nonnegative(margin, "margin", fn)
    tau = check_positive(scale_tau, "scale_tau", fn)
    check_choice(theta_overflow, "theta_overflow", fn, THETA_OVERFLOW)
    y = class_indices(target, emb.shape[0], class_weight.shape[0], fn)
    cos = F.normalize(emb, dim=1) @ F.normalize(class_weight, dim=1).t()
    cos = cos.clamp(-1.0, 1.0)
    if margin == 0.0:
        return cos / tau
    cos_y = cos.gather(1, y[:, None])
    # cos(θ + m) = cos θ cos m − sin θ sin m, θ ∈ [0, π] so sin θ ≥ 0; clamp keeps sqrt' finite
    sin_y = (1.0 - cos_y.pow(2)).clamp_min(1e-12).sqrt()
    cos_y_m = cos_y * math.cos(margin) - sin_y * math.sin(margin)
    if theta_overflow == "arcface":
        # past θ = π − m, cos(θ + m) rises again; ArcFace's code switches to cos θ − m·sin m there
        cos_y_m = torch.where(cos_y > math.cos(math.pi - margin), cos_y_m, cos_y - margin * math.sin(margin))
    return cos.scatter(1, y[:, None], cos_y_m) / tau


def angular_margin_loss(
    emb: torch.Tensor,
    class_weight: torch.Tensor,
    target: torch.Tensor,
    margin: float = 0.5,
    scale_tau: float = 0.05,
    theta_overflow: str = "none",
) -> torch.Tensor:
    """Normalized softmax loss with additive angular margin (HR-S²DML Eq. 3), batch mean.

    ``−log( e^{cos(θ_y+m)/τ} / (e^{cos(θ_y+m)/τ} + Σ_{k≠y} e^{cos θ_k/τ}) )``, with embedding and
    class-weight rows L2-normalised, θ = arccos(w_cᵀ f). emb: ``[B, D]``; class_weight: ``[C, D]``;
    target: ``[B]`` class indices; margin m in radians; scale_tau τ (paper: m = 0.5, τ = 0.05).
    The paper applies cos(θ + m) as written for every θ (``theta_overflow="none"``, default);
    ``"arcface"`` uses ArcFace's fallback ``cos θ − m·sin m`` when θ + m > π. m = 0 gives NSL.
    """
    logits = angular_margin_logits(emb, class_weight, target, margin, scale_tau, theta_overflow)
    y = class_indices(target, emb.shape[0], class_weight.shape[0], "angular_margin_loss")
    return F.cross_entropy(logits, y)


def normalized_softmax_loss(
    emb: torch.Tensor, class_weight: torch.Tensor, target: torch.Tensor, scale_tau: float = 0.05
) -> torch.Tensor:
    """Normalized softmax loss (NSL, Zhai & Wu): cross-entropy on ``cos θ / τ``; the m = 0 case of
    :func:`angular_margin_loss`. Shapes as there."""
    return angular_margin_loss(emb, class_weight, target, margin=0.0, scale_tau=scale_tau)


NUCLEAR_NORMALIZATIONS = ("none", "batch", "singular-mean")


def nuclear_norm_loss(probs: torch.Tensor, normalization: str = "none") -> torch.Tensor:
    """High-rankness regularisation ``−‖P‖_*`` (HR-S²DML Eq. 5), P: ``[B, C]`` class probabilities.

    ``normalization="none"`` (default) is the paper's formula; ``"batch"`` divides by B (BNM paper,
    Cui et al. 2020); ``"singular-mean"`` divides by min(B, C), i.e. the mean singular value, as the
    BNM code does. Half precision is promoted to float32 (SVD has no half kernel).
    """
    fn = "nuclear_norm_loss"
    probs = check_tensor(probs, "probs", fn, ndim=2)
    check_choice(normalization, "normalization", fn, NUCLEAR_NORMALIZATIONS)
    if values_checked() and (bool((probs.detach() < -1e-6).any()) or bool((probs.detach() > 1 + 1e-6).any())):
        raise UserInputError(
            f"{fn}: 'probs' must hold probabilities in [0, 1]; apply softmax to the logits first."
        )
    wide = probs if probs.dtype in (torch.float32, torch.float64) else probs.float()
    nuc = torch.linalg.svdvals(wide).sum()
    if normalization == "batch":
        nuc = nuc / probs.shape[0]
    elif normalization == "singular-mean":
        nuc = nuc / min(probs.shape)
    return -nuc
