"""``erkt``: ERKT-Net (Song et al., EAI 2024) — DIST from a weighted-ensemble teacher; usual DA (VSM: --config erkt).

Per sample, the variance-suppression module (:mod:`compress.data.vsm`) replaces the data's usual
augmentation; per batch, its CutMix unit mixes the images, and the SAME mixed batch goes to teacher
and student (Algorithm 1, lines 4–5). Loss, Eq. (15): ``R·L_cross + (2 − R)·L_DIST`` with
``L_cross = (1 − α)·L_A + α·L_B`` (α the exact pasted-area ratio, Eq. 11) and
``L_DIST = 2·L_inter + 2·L_intra`` at τ = 2 (Eqs. 8–10, 12; no τ² factor). R = 1 gives Eq. (12).
All VSM units are parameters here too (``jitter_p``, ``hflip_p`` … ``cutmix_p``). By default five of
them are at the paper's "usual DA" (§4.6: ``cutmix_p 0.1, hflip_p 0.5, vflip_p 0.5, erasing_p 0,
resized_crop_p 0``), not the full VSM of Table 1, which ``--config erkt`` keeps: from the toolkit's
pruned student on class-disjoint thirds of AID (64 px, seed 0; bench/RESULTS.md) the full VSM ended
3–13 pt under the no-teacher baseline at 10 % and 20 %, the usual DA within 0.2 pt of its teacher
or above, and from scratch 18 % against 46 %. The paper trains 600 epochs at 256 px, where the VSM
pays; we cannot.
On 1-band and multispectral data the VSM keeps brightness/contrast (any bands) and switches its
RGB-only saturation and grayscale units off (:mod:`compress.data.vsm`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from compress.data.vsm import USUAL_DA, VSMConfig
from compress.errors import UserInputError
from compress.losses.functional import dist_loss
from compress.methods.base import METHODS, StepOutput
from compress.methods.ce_vsm import VSMViews


@dataclass(frozen=True)
class ERKTParams(VSMConfig):
    # the usual DA (USUAL_DA); the full VSM is VSMConfig's defaults, i.e. --config erkt
    hflip_p: float = USUAL_DA["hflip_p"]
    vflip_p: float = USUAL_DA["vflip_p"]
    erasing_p: float = USUAL_DA["erasing_p"]
    resized_crop_p: float = USUAL_DA["resized_crop_p"]
    cutmix_p: float = USUAL_DA["cutmix_p"]
    ratio: float = 1.0  # R in Eq. (15), in [0, 2]
    temperature: float = 2.0
    inter_weight: float = 2.0
    intra_weight: float = 2.0
    tau_squared: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.ratio <= 2.0:
            raise UserInputError(f"erkt ratio R must be in [0, 2], got {self.ratio}.")
        if self.temperature <= 0 or self.inter_weight < 0 or self.intra_weight < 0:
            raise UserInputError("erkt temperature must be > 0 and inter/intra weights ≥ 0.")


@METHODS.register("erkt")
class ERKTNet(VSMViews):
    requires_teacher = True
    relates_batch = True  # DIST over the gathered global batch; CutMix partners are drawn per rank
    Params = ERKTParams

    def training_step(self, images: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        p = self.params
        mb = self.vsm.mix_batch(images, targets)
        t_logits = self.teacher_logits(mb.images)
        logits = self.student(mb.images)
        l_dist = dist_loss(self.gather(logits), self.gather(t_logits), temperature=p.temperature, beta=p.inter_weight,
                           gamma=p.intra_weight, tau_squared=p.tau_squared)
        losses = {"ce": p.ratio * mb.cross_entropy(logits), "dist": (2.0 - p.ratio) * l_dist}
        mixed = mb.mixed
        return StepOutput(losses=losses, logits=None if mixed else logits, targets=None if mixed else targets)
