"""Feature- and relation-based distillation losses: attention transfer (Zagoruyko & Komodakis),
similarity-preserving (Tung & Mori), relational KD (Park et al.) and feature MSE (FitNet, and the
cross-source distillation of Xiong et al.).

The teacher argument is always treated as a constant (detached): gradients reach the student only.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from compress.errors import UserInputError
from compress.losses.checks import (
    check_choice,
    check_nonnegative,
    check_positive,
    check_same_batch,
    check_tensor,
    zero_with_grad,
)


def attention_map(f: torch.Tensor, p: float = 2.0, reduction_over_channels: str = "mean") -> torch.Tensor:
    """Spatial attention ``F(A) = mean_c |A_c|^p`` (or sum): ``[B, C, H, W]`` → ``[B, H, W]``."""
    a = f.abs().pow(p)
    return a.mean(dim=1) if reduction_over_channels == "mean" else a.sum(dim=1)


def at_loss(
    fs: torch.Tensor,
    ft: torch.Tensor,
    p: float = 2.0,
    reduction_over_channels: str = "mean",
    resize: str = "interpolate",
    distance: str = "norm",
) -> torch.Tensor:
    """Attention transfer for one feature pair; fs, ft: ``[B, C_s, H, W]`` / ``[B, C_t, H', W']``.

    Q = vec(F(A)) / ‖vec(F(A))‖₂ per sample, F(A) = mean (or ``"sum"``, identical after the
    L2 normalisation) over channels of |A|^p. Channel counts may differ. If spatial sizes differ,
    ``resize="interpolate"`` bilinearly resizes the student's attention map to the teacher's size;
    ``"raise"`` raises instead. ``distance="norm"`` (default, the paper's Eq. 2 without β/2):
    batch mean of ``‖Q_s − Q_t‖₂``; ``"squared-mean"`` (the authors' public code):
    ``mean((Q_s − Q_t)²)`` over batch and positions.
    """
    fn = "at_loss"
    fs = check_tensor(fs, "student features", fn, ndim=4)
    ft = check_tensor(ft, "teacher features", fn, ndim=4)
    check_same_batch(fs, ft, fn)
    p = check_positive(p, "p", fn)
    check_choice(reduction_over_channels, "reduction_over_channels", fn, ("mean", "sum"))
    check_choice(resize, "resize", fn, ("interpolate", "raise"))
    check_choice(distance, "distance", fn, ("squared-mean", "norm"))
    a_s = attention_map(fs, p, reduction_over_channels)
    a_t = attention_map(ft.detach(), p, reduction_over_channels)
    if a_s.shape[1:] != a_t.shape[1:]:
        if resize == "raise":
            raise UserInputError(
                f"{fn}: student spatial size {tuple(a_s.shape[1:])} differs from teacher "
                f"{tuple(a_t.shape[1:])}; tap layers of equal resolution or use resize='interpolate'."
            )
        a_s = F.interpolate(a_s[:, None], size=a_t.shape[1:], mode="bilinear", align_corners=False)[:, 0]
    q_s = F.normalize(a_s.flatten(1), dim=1)
    q_t = F.normalize(a_t.flatten(1), dim=1)
    if distance == "norm":
        return (q_s - q_t).norm(dim=1).mean()
    return (q_s - q_t).pow(2).mean()


def at_loss_layers(
    fs_list: Sequence[torch.Tensor], ft_list: Sequence[torch.Tensor], p: float = 2.0, **kwargs: str
) -> torch.Tensor:
    """Sum of :func:`at_loss` over matching (student, teacher) feature pairs, as the paper sums
    over the chosen layer pairs. ``kwargs`` go to :func:`at_loss`."""
    return _sum_over_pairs("at_loss_layers", at_loss, fs_list, ft_list, p=p, **kwargs)


def _sum_over_pairs(fn: str, loss, fs_list, ft_list, **kwargs) -> torch.Tensor:
    if isinstance(fs_list, torch.Tensor) or isinstance(ft_list, torch.Tensor):
        raise UserInputError(f"{fn}: pass lists of feature tensors, not a single tensor.")
    fs_list, ft_list = list(fs_list), list(ft_list)
    if not fs_list or len(fs_list) != len(ft_list):
        raise UserInputError(
            f"{fn}: need the same non-zero number of student and teacher features, "
            f"got {len(fs_list)} and {len(ft_list)}."
        )
    return sum((loss(a, b, **kwargs) for a, b in zip(fs_list, ft_list)), start=fs_list[0].new_zeros(()))


def _similarity(f: torch.Tensor) -> torch.Tensor:
    q = f.flatten(1)
    return F.normalize(q @ q.t(), p=2, dim=1)


def sp_loss(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """Similarity-preserving KD: ``‖G_s − G_t‖_F² / B²`` with G = row-L2-normalised ``Q Qᵀ``.

    fs, ft: ``[B, ...]`` activations (flattened per sample, so ``[B, C, H, W]`` or ``[B, D]``);
    only the batch sizes must match.
    """
    fn = "sp_loss"
    fs = check_tensor(fs, "student features", fn, min_ndim=2)
    ft = check_tensor(ft, "teacher features", fn, min_ndim=2)
    check_same_batch(fs, ft, fn)
    b = fs.shape[0]
    return (_similarity(fs) - _similarity(ft.detach())).pow(2).sum() / (b * b)


def sp_loss_layers(fs_list: Sequence[torch.Tensor], ft_list: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum of :func:`sp_loss` over matching (student, teacher) feature pairs."""
    return _sum_over_pairs("sp_loss_layers", sp_loss, fs_list, ft_list)


def _pairwise_distances(e: torch.Tensor) -> torch.Tensor:
    sq = (e[:, None, :] - e[None, :, :]).pow(2).sum(-1)
    # sqrt(0) has an infinite derivative: clamp (the diagonal is excluded from the loss anyway)
    return sq.clamp_min(1e-12).sqrt()


def rkd_loss(
    es: torch.Tensor, et: torch.Tensor, distance_weight: float = 25.0, angle_weight: float = 50.0
) -> torch.Tensor:
    """Relational KD (Park et al., CVPR 2019): ``w_d·L_dist + w_a·L_angle``; es, et: ``[B, D_s]``,
    ``[B, D_t]`` embeddings (higher-rank inputs are flattened per sample).

    L_dist: Huber (smooth-L1, δ = 1) between pairwise distances, each divided by its mean over the
    pairs i ≠ j, averaged over the B(B−1) ordered pairs i ≠ j. L_angle: Huber between the cosines
    ⟨e_ij, e_kj⟩ (e_ij the unit vector t_i − t_j), averaged over triplets of distinct i, j, k.
    The set of pairs/triplets follows the paper (the authors' code also averages over the
    diagonal entries). A term with no pair (B < 2) or triplet (B < 3) is zero.
    """
    fn = "rkd_loss"
    es = check_tensor(es, "student embeddings", fn, min_ndim=2).flatten(1)
    et = check_tensor(et, "teacher embeddings", fn, min_ndim=2).flatten(1).detach()
    check_same_batch(es, et, fn)
    w_d = check_nonnegative(distance_weight, "distance_weight", fn)
    w_a = check_nonnegative(angle_weight, "angle_weight", fn)
    b = es.shape[0]
    loss = zero_with_grad(es)
    if b < 2:
        return loss
    off = ~torch.eye(b, dtype=torch.bool, device=es.device)
    if w_d:
        ds, dt = _pairwise_distances(es)[off], _pairwise_distances(et)[off]
        ds, dt = ds / ds.mean().clamp_min(1e-12), dt / dt.mean().clamp_min(1e-12)
        loss = loss + w_d * F.smooth_l1_loss(ds, dt, reduction="mean")
    if w_a and b >= 3:
        def cosines(e: torch.Tensor) -> torch.Tensor:
            diff = F.normalize(e[:, None, :] - e[None, :, :], p=2, dim=2)  # [j, i, D]: t_i − t_j
            return diff @ diff.transpose(1, 2)  # [j, i, k]: ⟨e_ij, e_kj⟩

        distinct = off[:, :, None] & off[:, None, :] & off[None, :, :]
        loss = loss + w_a * F.smooth_l1_loss(cosines(es)[distinct], cosines(et)[distinct], reduction="mean")
    return loss


MSE_REDUCTIONS = ("mean", "batchmean", "sum")


def feature_mse_loss(fs: torch.Tensor, ft: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error between student and (detached) teacher features of identical shape.

    ``reduction="mean"``: mean over every element (PyTorch ``MSELoss``, default); ``"batchmean"``:
    per-sample ``‖fs − ft‖²`` averaged over the batch; ``"sum"``: summed over the batch, the literal
    form of Xiong et al. Eq. (5). FitNet puts a regressor on the student first so shapes match.
    """
    fn = "feature_mse_loss"
    fs = check_tensor(fs, "student features", fn)
    ft = check_tensor(ft, "teacher features", fn)
    check_choice(reduction, "reduction", fn, MSE_REDUCTIONS)
    if fs.shape != ft.shape:
        raise UserInputError(
            f"{fn}: student features {tuple(fs.shape)} and teacher features {tuple(ft.shape)} must "
            "have the same shape; add a regressor/adapter on the student to match."
        )
    sq = (fs - ft.detach()).pow(2)
    if reduction == "mean":
        return sq.mean()
    per_sample = sq.reshape(sq.shape[0], -1).sum(dim=1)
    return per_sample.mean() if reduction == "batchmean" else per_sample.sum()
