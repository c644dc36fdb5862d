"""``ce-vsm``: cross-entropy on ERKT-Net's variance-suppression views — a teacher that has seen what it must label.

ERKT's Algorithm 1 feeds the VSM + CutMix views to the teacher, whose job is to label them; the paper's
teachers come from recipes with colour jitter and 180° rotation. A teacher trained on the usual
augmentation labels those views badly (issue 30: a linear probe on frozen ImageNet Lite0 features, 67.3 %
on clean test images, 19.0 % on full VSM views), so DIST then distils a near-chance target. Training the
ensemble members with ``compress train --method ce-vsm`` (CE on the same per-sample VSM units and the same
CutMix, mixed labels weighted by the exact pasted area, Eq. 11) gives them those views; the VSM units are
parameters as in ``erkt`` (``-p cutmix_p=0`` for per-sample units only).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from compress.data.vsm import VarianceSuppression, VSMConfig
from compress.methods.base import METHODS, Method, StepOutput


@dataclass(frozen=True)
class CEVSMParams(VSMConfig):
    """The VSM units of ERKT-Net Table 1 (see :class:`compress.data.vsm.VSMConfig`)."""


class VSMViews(Method):
    """A method whose params are a ``VSMConfig``: its training images are the VSM's per-sample views
    (``train_transform``) and ``self.vsm`` mixes its batches (CutMix); shared by ``ce-vsm`` and ``erkt``."""

    def __init__(self, student, teacher=None, params=None, **kw) -> None:
        super().__init__(student, teacher, params, **kw)
        self.vsm = VarianceSuppression(self.params, self.image_size, self.in_chans)

    def train_transform(self, image_size: int, bands: int):
        return VarianceSuppression(self.params, image_size, bands)


@METHODS.register("ce-vsm")
class CrossEntropyVSM(VSMViews):
    """Cross-entropy on VSM + CutMix views of the batch; no teacher."""

    Params = CEVSMParams

    def training_step(self, images: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        mb = self.vsm.mix_batch(images, targets)
        logits = self.student(mb.images)
        mixed = mb.mixed  # a mixed batch has no single label per image: no training accuracy from it
        return StepOutput(losses={"ce": mb.cross_entropy(logits)}, logits=None if mixed else logits,
                          targets=None if mixed else targets)
