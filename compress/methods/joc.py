"""``joc``: Xiong et al.'s joint optimization configuration (JSTARS 2020, Eq. 4), stage 1 of cross-source retrieval.

L = L_softmax(classifier(BN(F_t))) + L_triplet(F_t; random or batch-hard (`mining`), margin 0.3, Euclidean) + λ·L_center(F_t), λ = 0.0005,
on P×K identity-balanced batches so every anchor has positives. The ablation variants of the
paper's Tables II–V are ``joc-softmax``, ``joc-triplet`` and ``joc-triplet-softmax`` (or
``variant`` in the params). All terms are batch means: the paper's Eqs. 1–3 all sum over the
mini-batch, so the means keep the same relative weights (the factor B is absorbed in the LR).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from compress.errors import UserInputError
from compress.losses.functional import center_loss, triplet_loss
from compress.methods.base import METHODS, Method, StepOutput

VARIANTS = {  # which of softmax / triplet / center each variant uses
    "joc": ("softmax", "triplet", "center"),
    "softmax": ("softmax",),
    "triplet": ("triplet",),
    "triplet-softmax": ("softmax", "triplet"),
}


@dataclass(frozen=True)
class JOCParams:
    variant: str = "joc"  # joc | softmax | triplet | triplet-softmax
    margin: float = 0.3  # triplet margin α (paper: 0.3)
    center_weight: float = 0.0005  # λ of Eq. 4
    distance: str = "euclidean"  # triplet distance (paper: Euclidean)
    # random: the paper's triplets "determined by two classes of images sampled randomly" (the default since
    # batch-hard lost in every retrieval direction on two class-disjoint AID sets: MS→MS mAP 0.115 vs 0.183 on
    # all 30 classes, 0.222 vs 0.254 on 15; bench/history/diary.md §Issue 30) | hard (batch-hard, Hermans et al.)
    mining: str = "random"
    images_per_class: int = 4  # K of the P×K sampler; P = batch size // K
    balanced_sampler: bool = True
    # Centers move at their own rate as in Wen et al. / the BNNeck code: their gradient is divided by λ
    center_grad_unscaled: bool = True
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise UserInputError(f"joc variant must be one of {', '.join(VARIANTS)}, got '{self.variant}'.")
        if self.margin < 0 or self.center_weight < 0:
            raise UserInputError(f"joc margin and center_weight must be ≥ 0, got {self.margin}, {self.center_weight}.")
        if self.mining not in ("hard", "random"):
            raise UserInputError(f"joc mining must be hard or random, got '{self.mining}'.")
        if self.images_per_class < 2:
            raise UserInputError(f"images_per_class (K) must be ≥ 2 so each anchor has a positive, "
                                 f"got {self.images_per_class}.")


def pk_batches(labels, batch_size: int, k: int, seed: int, epoch: int):
    """P×K batches (P = batch_size // k, at most the number of classes) from ``compress.data.samplers``."""
    import numpy as np

    from compress.data.samplers import PKSampler

    n_classes = len(np.unique(np.asarray(labels)))
    p = min(batch_size // k, n_classes)
    if p < 2:
        raise UserInputError(f"A P×K batch needs ≥ 2 classes: batch size {batch_size} with K={k} gives P={p}; "
                             f"raise --batch-size to at least {2 * k}.")
    return PKSampler(labels, p=p, k=k, seed=seed, epoch=epoch)


def require_bnneck(student: torch.nn.Module, method: str) -> None:
    if not callable(getattr(student, "neck_outputs", None)):
        raise UserInputError(f"Method '{method}' trains a BN-neck embedding model; build the student as "
                             "'embed-bnneck' (model kwarg backbone=NAME), e.g. with `compress metric-learn`.")


@METHODS.register("joc")
class JointOptimization(Method):
    """Softmax on BN(F_t) + triplet (random or batch-hard) on F_t + λ·center on F_t (terms per ``variant``)."""

    Params: ClassVar[type] = JOCParams
    relates_batch = True

    def __init__(self, student, teacher=None, params: Any = None, **kw) -> None:
        super().__init__(student, teacher, params, **kw)
        require_bnneck(student, "joc")
        self.terms = VARIANTS[self.params.variant]
        if "center" in self.terms:
            self.centers = torch.nn.Parameter(torch.randn(self.num_classes, student.embedding_dim))
            lam = self.params.center_weight
            if self.params.center_grad_unscaled and lam > 0:
                self.centers.register_hook(lambda g: g / lam)

    def batch_sampler(self, labels, batch_size: int, seed: int, epoch: int):
        if not self.params.balanced_sampler:
            return None
        return pk_batches(labels, batch_size, self.params.images_per_class, seed, epoch)

    def training_step(self, images: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        p = self.params
        f_t, logits = self.student.neck_outputs(images)
        losses: dict[str, torch.Tensor] = {}
        if "softmax" in self.terms:
            losses["softmax"] = F.cross_entropy(logits, targets, label_smoothing=p.label_smoothing)
        if "triplet" in self.terms:
            losses["triplet"] = triplet_loss(self.gather(f_t.float()), self.gather(targets), p.margin, p.distance,
                                             p.mining)
        if "center" in self.terms:
            losses["center"] = p.center_weight * center_loss(f_t.float(), targets, self.centers)
        # the classifier is not trained by triplet alone: its accuracy would be noise
        shown = logits if "softmax" in self.terms else None
        return StepOutput(losses=losses, logits=shown, targets=targets)

    def evaluate(self, dataset, class_names, device, amp=None):
        from compress.evaluation.embedding import within_set_scores

        score, metrics = within_set_scores(self.student, dataset, device, amp, metric=self.params.distance
                                           if self.params.distance != "squared-euclidean" else "euclidean")
        return score, metrics, metrics


def _variant(name: str, variant: str) -> type[JointOptimization]:
    params = dataclass(frozen=True)(type(f"JOC{variant.title().replace('-', '')}Params", (JOCParams,),
                                         {"__annotations__": {"variant": str}, "variant": variant}))
    cls = type(f"JOC{variant.title().replace('-', '')}", (JointOptimization,),
               {"Params": params, "__doc__": f"JOC ablation: {' + '.join(VARIANTS[variant])} only."})
    return METHODS.register(name)(cls)


for _name, _variant_name in (("joc-softmax", "softmax"), ("joc-triplet", "triplet"),
                             ("joc-triplet-softmax", "triplet-softmax")):
    _variant(_name, _variant_name)
