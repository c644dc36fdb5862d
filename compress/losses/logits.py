"""Logit-based distillation losses: KD (Hinton), DKD (Zhao et al.), DIST (Huang et al.), the PSKD
pair-consistency term and soft-label cross-entropy.

Logits are ``[B, C]``. Teacher logits (and PSKD's paired logits) are treated as constants: they are
detached here, so gradients reach the student only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from compress.errors import UserInputError
from compress.losses.checks import (
    check_logit_pair,
    check_nonnegative,
    check_positive,
    check_tensor,
    class_indices,
    values_checked,
)


def kd_loss(s: torch.Tensor, t: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """Hinton KD: ``τ² · KL(softmax(t/τ) ‖ softmax(s/τ))``, summed over classes, mean over the batch.

    s, t: ``[B, C]`` student / teacher logits. Returns a scalar (nats).
    """
    s, t = check_logit_pair(s, t, "kd_loss")
    tau = check_positive(temperature, "temperature", "kd_loss")
    log_ps = F.log_softmax(s / tau, dim=1)
    log_pt = F.log_softmax(t.detach() / tau, dim=1)
    return F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True) * tau**2


def pair_consistency_loss(
    s_pair_logits_detached: torch.Tensor, s_logits: torch.Tensor, temperature: float = 4.0
) -> torch.Tensor:
    """PSKD Eq. (5): ``τ² · KL(p(x'; θ̃) ‖ p(x; θ))``, batch mean.

    s_pair_logits_detached: ``[B, C]`` logits of the paired same-class samples x' from the fixed copy
    θ̃ of the student (detached here in any case); s_logits: ``[B, C]`` logits of x from θ.
    """
    return kd_loss(s_logits, s_pair_logits_detached.detach(), temperature)


def soft_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
    """``−Σ_c y_c · log softmax(z)_c``, mean over the batch; for mixup/CutMix or smoothed labels.

    logits, soft_targets: ``[B, C]``; rows of ``soft_targets`` are non-negative label weights
    (normally summing to 1).
    """
    fn = "soft_cross_entropy"
    logits = check_tensor(logits, "logits", fn, ndim=2)
    soft_targets = check_tensor(soft_targets, "soft_targets", fn, ndim=2)
    if logits.shape != soft_targets.shape:
        raise UserInputError(
            f"{fn}: logits {tuple(logits.shape)} and soft_targets {tuple(soft_targets.shape)} must "
            "have the same [B, C] shape; one-hot encode class indices first."
        )
    if values_checked() and bool((soft_targets < 0).any()):
        raise UserInputError(f"{fn}: soft_targets must be >= 0 (label weights), got negative entries.")
    return -(soft_targets.detach() * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def dkd_loss(
    s: torch.Tensor,
    t: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 8.0,
    temperature: float = 4.0,
) -> torch.Tensor:
    """Decoupled KD (Zhao et al., CVPR 2022): ``α·TCKD + β·NCKD``, each scaled by τ², batch mean.

    TCKD = KL(b_t ‖ b_s) on the binary (target, all-other) probabilities; NCKD = KL(p̂_t ‖ p̂_s) on
    the softmax over the non-target classes only.
    s, t: ``[B, C]`` logits; target: ``[B]`` class indices, or a ``[B, C]`` soft/mixed label matrix
    (mixup, CutMix, smoothing), in which case each row's dominant class (argmax) is the target class.
    Log-probabilities are computed with log-sum-exp and the target class is masked with −inf (not
    the authors' ``−1000`` offset), so the loss stays finite for two classes and logits of ±1e4.
    """
    fn = "dkd_loss"
    s, t = check_logit_pair(s, t, fn)
    if s.shape[1] < 2:
        raise UserInputError(f"{fn}: needs at least 2 classes, got logits of shape {tuple(s.shape)}.")
    tau = check_positive(temperature, "temperature", fn)
    alpha = check_nonnegative(alpha, "alpha", fn)
    beta = check_nonnegative(beta, "beta", fn)
    y = class_indices(target, s.shape[0], s.shape[1], fn, allow_soft=True)
    gt = F.one_hot(y, s.shape[1]).bool()
    zs, zt = s / tau, t.detach() / tau

    def binary_log_probs(z: torch.Tensor) -> torch.Tensor:
        # log p_target and log(1 − p_target), both from log-sum-exp: no log(0) at extreme logits
        lse = torch.logsumexp(z, dim=1)
        log_p_gt = z.gather(1, y[:, None]).squeeze(1) - lse
        log_p_rest = torch.logsumexp(z.masked_fill(gt, float("-inf")), dim=1) - lse
        return torch.stack([log_p_gt, log_p_rest], dim=1)

    log_bs, log_bt = binary_log_probs(zs), binary_log_probs(zt)
    tckd = (log_bt.exp() * (log_bt - log_bs)).sum(dim=1).mean()

    log_qs = F.log_softmax(zs.masked_fill(gt, float("-inf")), dim=1)
    log_qt = F.log_softmax(zt.masked_fill(gt, float("-inf")), dim=1)
    # the masked target column is (−inf) − (−inf): select 0 there instead of NaN
    terms = torch.where(gt, torch.zeros_like(log_qs), log_qt.exp() * (log_qt - log_qs))
    nckd = terms.sum(dim=1).mean()
    return (alpha * tckd + beta * nckd) * tau**2


def _pearson_distance(a: torch.Tensor, b: torch.Tensor, dim: int, eps: float = 1e-8) -> torch.Tensor:
    """``1 − Pearson(a, b)`` along ``dim``; a constant vector has correlation 0 (distance 1)."""
    a_c = a - a.mean(dim=dim, keepdim=True)
    b_c = b - b.mean(dim=dim, keepdim=True)
    return 1.0 - F.cosine_similarity(a_c, b_c, dim=dim, eps=eps)


def dist_loss(
    s: torch.Tensor,
    t: torch.Tensor,
    temperature: float = 1.0,
    beta: float = 1.0,
    gamma: float = 1.0,
    tau_squared: bool = False,
) -> torch.Tensor:
    """DIST (Huang et al., NeurIPS 2022): ``β·L_inter + γ·L_intra`` on ``softmax(·/τ)``.

    L_inter = mean over the B samples of 1 − Pearson(p_s[i, :], p_t[i, :]) (across classes);
    L_intra = mean over the C classes of 1 − Pearson(p_s[:, j], p_t[:, j]) (across the batch).
    Default (``tau_squared=False``) is the paper formula — ERKT-Net Eqs. (8)–(10), (12) and Huang
    et al. have no τ² factor; ``tau_squared=True`` multiplies both terms by τ² as the authors' public
    code does. ERKT-Net uses τ = 2, β = γ = 2. s, t: ``[B, C]`` logits; returns a scalar.
    """
    fn = "dist_loss"
    s, t = check_logit_pair(s, t, fn)
    tau = check_positive(temperature, "temperature", fn)
    beta = check_nonnegative(beta, "beta", fn)
    gamma = check_nonnegative(gamma, "gamma", fn)
    ps = F.softmax(s / tau, dim=1)
    pt = F.softmax(t.detach() / tau, dim=1)
    inter = _pearson_distance(ps, pt, dim=1).mean()
    intra = _pearson_distance(ps, pt, dim=0).mean()
    loss = beta * inter + gamma * intra
    return loss * tau**2 if tau_squared else loss
