"""The method interface: a method turns a batch into named loss terms; the engine sums them.

Adding a method is adding a file with a ``Method`` subclass decorated ``@METHODS.register("name")``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Mapping

import torch
from torch import nn

from compress.config import build_config
from compress.registry import Registry

METHODS: Registry[type["Method"]] = Registry("method")


@dataclass(frozen=True)
class NoParams:
    """Methods without hyper-parameters."""


@dataclass
class StepOutput:
    """``losses``: name → scalar (already weighted); ``logits``/``targets`` for the running train accuracy.

    ``targets`` are hard labels ``[B]``; leave ``logits`` None when the batch has no single label
    (mixed images), then the engine skips train accuracy for it.
    """

    losses: dict[str, torch.Tensor]
    logits: torch.Tensor | None = None
    targets: torch.Tensor | None = None


class TeacherRef:
    """How a method holds its teacher: a plain object, NOT an ``nn.Module``, so PyTorch never registers
    the teacher as a submodule of the method. The teacher is therefore outside the method's
    ``parameters()``, ``state_dict()`` (nothing of it is saved with the student or for resume) and
    ``train()``/``eval()``; :meth:`Method.to` moves it explicitly. It is frozen on construction."""

    __slots__ = ("module",)

    def __init__(self, module: nn.Module) -> None:
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        self.module = module


class Method(nn.Module, ABC):
    """Base class. ``self.student`` is trained; the teacher is frozen and held by a :class:`TeacherRef`.

    The contract the engine relies on (all declared here, never probed):

    * ``requires_teacher`` — distill needs a teacher checkpoint or trains one first;
    * ``Params`` — frozen dataclass of hyper-parameters, filled from the config's ``method_params``;
    * ``relates_batch`` — its losses relate the samples of a batch to each other (similarities,
      pairs, mixing partners, batch statistics); under data-parallel training such a loss sees only
      the local batch unless the method gathers across ranks, so the engine records it with the run;
    * ``needs_unlabeled`` / :meth:`attach_unlabeled` — an unlabelled pool the method draws from;
    * :meth:`training_step`, :meth:`batch_sampler`, :meth:`train_transform`, :meth:`evaluate`.
    """

    requires_teacher: ClassVar[bool] = False
    relates_batch: ClassVar[bool] = False
    needs_unlabeled: ClassVar[bool] = False
    Params: ClassVar[type] = NoParams

    def __init__(self, student: nn.Module, teacher: nn.Module | None = None, params: Any = None, *,
                 num_classes: int, image_size: int, in_chans: int) -> None:
        super().__init__()
        self.student = student
        self.params = params if params is not None else self.Params()
        self.num_classes, self.image_size, self.in_chans = num_classes, image_size, in_chans
        self._teacher = TeacherRef(teacher) if teacher is not None else None
        self.epoch, self.epochs = 0, 1

    @property
    def teacher(self) -> nn.Module | None:
        """The frozen teacher model (eval mode, no gradients), or None."""
        return self._teacher.module if self._teacher is not None else None

    def forward(self, images, targets) -> StepOutput:
        """``training_step`` as the module's forward, so data-parallel training can wrap the method in DDP."""
        return self.training_step(images, targets)

    @staticmethod
    def gather(t: torch.Tensor) -> torch.Tensor:
        """The whole global batch of ``t`` under data-parallel training (differentiable), else ``t``.

        ``relates_batch`` methods compute their batch-relating terms on gathered tensors, so N ranks
        see the relations of the one global batch a single process would.
        """
        from compress.parallel import gather_cat

        return gather_cat(t)

    def tap(self, model: nn.Module, paths, *, frozen: bool = False):
        """A :class:`~compress.models.taps.TappedForward` on ``model`` for this method's lifetime: hooks are
        registered once here and removed by :meth:`release`; each call clears what it captured."""
        from compress.models.taps import TappedForward

        tapped = TappedForward(model, paths, frozen=frozen)
        self.__dict__.setdefault("_tapped", []).append(tapped)
        return tapped

    def release(self) -> None:
        """Remove every hook this method put on its student and teacher (the models outlive the method)."""
        for tapped in self.__dict__.pop("_tapped", []):
            tapped.remove()

    def attach_unlabeled(self, dataset, batch_size: int, seed: int = 0) -> None:
        """Give the method its unlabelled pool (items ``(image, ignored)``); only for ``needs_unlabeled``."""
        from compress.errors import UserInputError

        raise UserInputError(f"Method '{type(self).__name__}' does not use unlabelled images.")

    def unlabeled_batch_size(self, labelled_batch_size: int) -> int:
        """Images per unlabelled batch: the method's ``unlabeled_batch_size`` param, else the labelled batch size."""
        return int(getattr(self.params, "unlabeled_batch_size", None) or labelled_batch_size)

    # ---- hooks the engine calls -------------------------------------------------------------
    @abstractmethod
    def training_step(self, images: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        """Loss terms for one batch ``images [B, C, H, W]``, ``targets [B]`` (class indices)."""

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        self.epoch, self.epochs = epoch, epochs

    def train_transform(self, image_size: int, bands: int):
        """A per-sample training transform replacing the data config's augmentation (None: keep it)."""
        return None

    def batch_sampler(self, labels, batch_size: int, seed: int, epoch: int):
        """An iterable of index batches replacing the shuffled loader (None: plain shuffling)."""
        return None

    def evaluate(self, dataset, class_names: list[str], device: torch.device,
                 amp: torch.dtype | None = None) -> tuple[float, dict[str, Any], Any]:
        """Model-selection score (higher is better), JSON metrics, and the raw metrics object.

        Default: classification of ``self.student`` (score = OA). Embedding methods override it to
        add retrieval metrics; the raw object is passed to confusion-matrix writing when it has one.
        """
        from compress.evaluation.classifier import evaluate_classifier

        m = evaluate_classifier(self.student, dataset, class_names, device, amp=amp)
        return m.oa, m.to_dict(), m

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Student parameters plus the method's own (e.g. a FitNet regressor); never the teacher's."""
        return (p for p in self.parameters() if p.requires_grad)

    def extra_state_dict(self) -> dict[str, torch.Tensor]:
        """The method's own learnable state (saved for resume), without the student's weights."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("student.")}

    def to(self, *args, **kwargs):  # noqa: D102 - the teacher travels with the method
        out = super().to(*args, **kwargs)
        if self.teacher is not None:
            self.teacher.to(*args, **kwargs)
        return out

    # ---- helpers for subclasses -------------------------------------------------------------
    @torch.no_grad()
    def teacher_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Teacher outputs on the SAME (augmented) batch; never part of the autograd graph."""
        with torch.inference_mode():
            out = self.teacher(images)
        return out.clone()  # an inference tensor cannot be saved for the student's backward


def build_method_params(name: str, params: Mapping[str, Any] | None) -> Any:
    """The typed ``Params`` of method ``name`` from a mapping (unknown keys and bad values rejected)."""
    return build_config(METHODS.get(name).Params, params or {}, section=f"method_params ({name})")


def build_method(name: str, student: nn.Module, teacher: nn.Module | None, params: Mapping[str, Any] | None, *,
                 num_classes: int, image_size: int, in_chans: int) -> Method:
    """Instantiate a registered method with its typed params (unknown keys rejected)."""
    return METHODS.get(name)(student, teacher, build_method_params(name, params), num_classes=num_classes,
                             image_size=image_size, in_chans=in_chans)


