"""``hr-s2dml``: Kang et al.'s semi-supervised deep metric learning (Remote Sensing 2020), with baselines.

Each step draws a labelled mini-batch (from the engine) and an unlabelled one (from the method's
own pool, attached with :meth:`UnlabeledPool.attach_unlabeled`), as in Algorithm 1:
L = L_s-m(labelled; cos(θ+m)/τ, m = 0.5, τ = 0.05) + λ·L_HR(unlabelled; −‖softmax(cos/τ)‖_*), λ = 1.

Baselines: ``nsl`` (normalised softmax, m = 0, no HR term) and ``triplet-ml`` (batch-hard triplet on
the unit embeddings, margin 0.2 as in the paper's comparison, P×K batches). ``kd-hr`` offers the
regulariser to distillation (not in the paper): KD on labelled and unlabelled images plus the HR
term on the student's unlabelled predictions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, RandomSampler

from compress.errors import UserInputError
from compress.losses.functional import angular_margin_loss, kd_loss, nuclear_norm_loss, triplet_loss
from compress.methods.base import METHODS, Method, StepOutput


class UnlabeledPool:
    """Mixin: a seeded, endless iterator of unlabelled batches, re-shuffled per epoch (resume-safe)."""

    needs_unlabeled: ClassVar[bool] = True
    _pool: Dataset | None = None

    def attach_unlabeled(self, dataset: Dataset, batch_size: int, seed: int = 0) -> None:
        """Use ``dataset`` (items ``(image, ignored label)``, augmenting) as the unlabelled pool."""
        if len(dataset) == 0:
            raise UserInputError("The unlabelled pool is empty; give images for the high-rankness term.")
        if batch_size < 2:
            raise UserInputError(f"The unlabelled batch needs ≥ 2 images (nuclear norm of a matrix), got {batch_size}.")
        self.__dict__.update(_pool=dataset, _pool_bs=int(batch_size), _pool_seed=int(seed), _pool_iter=None,
                             _pool_round=0)

    def _start_round(self) -> Iterator:
        ds = self._pool
        epoch = getattr(self, "epoch", 0)
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(epoch * 1000 + self._pool_round)
        gen = torch.Generator().manual_seed((self._pool_seed * 7919 + epoch * 104729 + self._pool_round * 31 + 5) % 2**31)
        bs = min(self._pool_bs, len(ds))
        self._pool_round += 1
        return iter(DataLoader(ds, batch_size=bs, sampler=RandomSampler(ds, generator=gen), drop_last=True))

    def reset_unlabeled(self) -> None:
        if self._pool is not None:
            self.__dict__.update(_pool_iter=None, _pool_round=0)

    def next_unlabeled(self, device: torch.device) -> torch.Tensor:
        if self._pool is None:
            raise UserInputError(f"Method '{type(self).__name__}' needs unlabelled images: pass --labeled-ratio "
                                 "(the unlabelled remainder is the pool) or --unlabeled DIR.")
        if self._pool_iter is None:
            self._pool_iter = self._start_round()
        try:
            x, _ = next(self._pool_iter)
        except StopIteration:
            self._pool_iter = self._start_round()
            x, _ = next(self._pool_iter)
        return x.to(device, non_blocking=True)


def require_cosine(student: torch.nn.Module, method: str) -> None:
    if not (callable(getattr(student, "embed", None)) and callable(getattr(student, "cosine", None))):
        raise UserInputError(f"Method '{method}' trains a cosine-prototype embedding model; build the student "
                             "as 'embed-cosine' (model kwargs backbone=NAME, embedding_dim=128).")


@dataclass(frozen=True)
class HRParams:
    margin: float = 0.5  # angular margin m (radians)
    scale_tau: float | None = None  # τ; None → the model's own (embed-cosine default 0.05)
    hr_weight: float = 1.0  # λ of Eq. 7
    # batch: −‖P‖_*/B, whose balance with the margin term does not change with the batch size; the paper's
    # Eq. 5 as printed (none) swamps the margin term at B = 64 (bench/history/diary.md §4, §16.7); preset hr-s2dml keeps it
    hr_normalization: str = "batch"  # batch | none (paper Eq. 5) | singular-mean
    theta_overflow: str = "none"
    unlabeled_batch_size: int | None = None  # None → the labelled batch size

    def __post_init__(self) -> None:
        if self.margin < 0 or self.hr_weight < 0:
            raise UserInputError(f"margin and hr_weight must be ≥ 0, got {self.margin}, {self.hr_weight}.")


class _CosineMethod(UnlabeledPool, Method):
    relates_batch = True

    def __init__(self, student, teacher=None, params: Any = None, **kw) -> None:
        super().__init__(student, teacher, params, **kw)
        require_cosine(student, type(self).__name__)

    @property
    def tau(self) -> float:
        return float(self.params.scale_tau or self.student.scale_tau)

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        super().on_epoch_start(epoch, epochs)
        self.reset_unlabeled()

    def evaluate(self, dataset, class_names, device, amp=None):
        from compress.evaluation.embedding import within_set_scores

        score, metrics = within_set_scores(self.student, dataset, device, amp)
        return score, metrics, metrics


@METHODS.register("hr-s2dml")
class HRS2DML(_CosineMethod):
    """Normalised softmax with angular margin on labelled + λ·(−‖P‖_*) on unlabelled batches."""

    Params: ClassVar[type] = HRParams

    @property
    def needs_unlabeled(self) -> bool:  # type: ignore[override]
        return self.params.hr_weight > 0

    def training_step(self, images: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        p, n = self.params, images.shape[0]
        use_hr = p.hr_weight > 0
        x = torch.cat([images, self.next_unlabeled(images.device)]) if use_hr else images
        # one forward for both batches: BatchNorm sees labelled and unlabelled images together
        emb = self.student.embed(x).float()
        emb_l = emb[:n]
        losses = {"margin": angular_margin_loss(emb_l, self.student.prototypes.float(), targets, p.margin, self.tau,
                                                p.theta_overflow)}
        if use_hr:
            probs = torch.softmax(self.student.cosine(emb[n:]) / self.tau, dim=1)
            losses["hr"] = p.hr_weight * nuclear_norm_loss(self.gather(probs), p.hr_normalization)
        logits = self.student.cosine(emb_l.detach()) / self.tau
        return StepOutput(losses=losses, logits=logits, targets=targets)


@dataclass(frozen=True)
class NSLParams(HRParams):
    margin: float = 0.0
    hr_weight: float = 0.0


@METHODS.register("nsl")
class NormalizedSoftmax(HRS2DML):
    """Baseline NSL: normalised softmax without margin and without the HR term (Zhai & Wu)."""

    Params: ClassVar[type] = NSLParams


@dataclass(frozen=True)
class TripletMLParams:
    margin: float = 0.2  # Kang et al.'s setting for the triplet baseline
    distance: str = "euclidean"
    images_per_class: int = 4


@METHODS.register("triplet-ml")
class TripletMetricLearning(_CosineMethod):
    """Baseline: batch-hard triplet loss on the unit embeddings, P×K batches, no unlabelled term."""

    Params: ClassVar[type] = TripletMLParams
    needs_unlabeled = False

    @property
    def tau(self) -> float:
        return float(self.student.scale_tau)

    def batch_sampler(self, labels, batch_size: int, seed: int, epoch: int):
        from compress.methods.joc import pk_batches

        return pk_batches(labels, batch_size, self.params.images_per_class, seed, epoch)

    def training_step(self, images: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        emb = self.student.embed(images).float()
        return StepOutput(losses={"triplet": triplet_loss(self.gather(emb), self.gather(targets), self.params.margin,
                                                          self.params.distance)})


@dataclass(frozen=True)
class KDHRParams:
    temperature: float = 4.0
    alpha: float = 0.9  # weight of KD; 1 − alpha weighs CE on the labelled batch
    hr_weight: float = 1.0
    hr_normalization: str = "batch"  # as hr-s2dml's; none let the term swamp KD (−14.8 pt, diary §4)
    kd_on_unlabeled: bool = True
    unlabeled_batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.temperature <= 0 or not 0 <= self.alpha <= 1 or self.hr_weight < 0:
            raise UserInputError("kd-hr needs temperature > 0, alpha in [0, 1] and hr_weight ≥ 0; got "
                                 f"{self.temperature}, {self.alpha}, {self.hr_weight}.")


@METHODS.register("kd-hr")
class KDWithHighRankness(UnlabeledPool, Method):
    """KD (Hinton) on labelled images, plus on unlabelled images α·KD + λ·(−‖softmax(student)‖_*)."""

    requires_teacher = True
    relates_batch = True
    Params: ClassVar[type] = KDHRParams

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        super().on_epoch_start(epoch, epochs)
        self.reset_unlabeled()

    def training_step(self, images: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        p, n = self.params, images.shape[0]
        xu = self.next_unlabeled(images.device)
        x = torch.cat([images, xu])
        logits = self.student(x).float()
        t_logits = self.teacher_logits(x if p.kd_on_unlabeled else images).float()
        ls, lu = logits[:n], logits[n:]
        kd_student = logits if p.kd_on_unlabeled else ls
        losses = {"ce": (1 - p.alpha) * F.cross_entropy(ls, targets),
                  "kd": p.alpha * kd_loss(kd_student, t_logits, temperature=p.temperature)}
        if p.hr_weight > 0:
            losses["hr"] = p.hr_weight * nuclear_norm_loss(self.gather(torch.softmax(lu, dim=1)), p.hr_normalization)
        return StepOutput(losses=losses, logits=ls, targets=targets)
