"""``pskd``: pair-wise similarity KD (Zhao, Sun, Gao, Dong — Remote Sensing 2022, 14, 2483).

Batches come from :class:`SameClassPairSampler`: ``n`` anchors x then one same-class partner x'
each. Total loss, Eq. (9): ``α·L_pair + β·L_mix + γ·CE(S(x), y)`` with

* L_pair, Eq. (5): ``τ²·KL(P(y|x'; θ̃) ‖ P(y|x; θ))`` — the student itself on the partners, gradient
  stopped (θ̃ is a fixed copy of θ), self-distillation that shrinks within-class variation;
* L_mix, Eq. (8): mixup of each anchor with an anchor of a DIFFERENT class, ``x̂ = λ·x_i + (1−λ)·x_j``,
  ``λ ~ Beta(a, a)`` once per batch: ``λ·CE(S(x̂), y_i) + (1−λ)·CE(S(x̂), y_j) + τ²·KL(T(x̂) ‖ S(x̂))``.
  Anchors without a different-class anchor in the batch are masked out of L_mix.

Defaults α = 0.1, β = 1, γ = 0.8, τ = 4 (paper §4.2 and Table 6). The paper writes the mixup Beta
parameter with the same symbol α and gives only "α = 0.1", so ``mixup_alpha`` defaults to 0.1.
``batch_size`` counts anchors: a step sees ``2·batch_size`` images (anchors + partners).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.data.mixing import different_class_partners, mixup, sample_beta
from compress.data.samplers import SameClassPairSampler
from compress.errors import UserInputError
from compress.losses.functional import pair_consistency_loss
from compress.methods.base import METHODS, Method, StepOutput


@dataclass(frozen=True)
class PSKDParams:
    alpha: float = 0.1  # weight of the pair-consistency term L_pair (Eq. 5)
    beta: float = 1.0  # weight of the mixup term L_mix (Eq. 8)
    gamma: float = 0.8  # weight of the hard-label CE on the anchors
    temperature: float = 4.0
    mixup_alpha: float = 0.1  # λ ~ Beta(mixup_alpha, mixup_alpha)

    def __post_init__(self) -> None:
        if self.temperature <= 0 or self.mixup_alpha <= 0:
            raise UserInputError("pskd temperature and mixup_alpha must be > 0.")
        if min(self.alpha, self.beta, self.gamma) < 0:
            raise UserInputError("pskd alpha, beta and gamma must be ≥ 0.")


@METHODS.register("pskd")
class PairwiseSimilarityKD(Method):
    requires_teacher = True
    relates_batch = True  # pairs stay together on one rank; mixup partners are drawn within each rank's share
    Params = PSKDParams

    def batch_sampler(self, labels, batch_size: int, seed: int, epoch: int):
        return SameClassPairSampler(labels, batch_size, seed=seed, epoch=epoch)

    @staticmethod
    def split_pairs(images: torch.Tensor, targets: torch.Tensor):
        b = images.shape[0]
        n = b // 2
        if b % 2 or n == 0 or not torch.equal(targets[:n], targets[n:]):
            raise UserInputError("pskd needs batches of anchors followed by same-class partners, as its "
                                 "SameClassPairSampler yields; the engine must use method.batch_sampler().")
        return images[:n], images[n:], targets[:n]

    def training_step(self, images: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        p = self.params
        x, x_pair, y = self.split_pairs(images, targets)
        logits = self.student(x)
        with torch.no_grad():  # θ̃: the same student, no gradient through the partner's prediction
            pair_logits = self.student(x_pair)
        losses = {"ce": p.gamma * F.cross_entropy(logits, y),
                  "pair": p.alpha * pair_consistency_loss(pair_logits, logits, temperature=p.temperature)}
        index, valid = different_class_partners(y)
        # Anchors without a different-class anchor in the batch mix with themselves and are masked out of
        # L_mix: no data-dependent branch, so the step reads nothing back from the device.
        lam = sample_beta(p.mixup_alpha)
        mb = mixup(x, y, lam, index)
        t_mix = self.teacher_logits(mb.images)
        s_mix = self.student(mb.images)
        w = valid.to(s_mix.dtype)
        n = w.sum().clamp(min=1.0)
        ce = lam * F.cross_entropy(s_mix, mb.targets_a, reduction="none") + \
            (1 - lam) * F.cross_entropy(s_mix, mb.targets_b, reduction="none")
        kl = F.kl_div(F.log_softmax(s_mix / p.temperature, dim=1), F.log_softmax(t_mix.detach() / p.temperature, dim=1),
                      reduction="none", log_target=True).sum(dim=1) * p.temperature ** 2
        losses["mix_ce"] = p.beta * (ce * w).sum() / n
        losses["mix_kd"] = p.beta * (kl * w).sum() / n
        return StepOutput(losses=losses, logits=logits, targets=y)
