"""Batch-level image mixing: mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019).

Both work on whole batches ``[B, C, H, W]`` (normalised or not: mixing is affine, so mixing before
or after per-band normalisation gives the same image). The label weight of CutMix is the exact
pasted area, recomputed after the box is clipped to the image, as in the reference code.
Randomness comes from the global torch RNG (seeded by the engine) unless a generator is given.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.errors import UserInputError


@dataclass
class MixedBatch:
    """Mixed images and their two label sets.

    ``lam [B]`` is the weight of ``targets_a`` (the original sample), ``1 − lam`` that of
    ``targets_b`` (the partner ``images[index]``).
    """

    images: torch.Tensor
    targets_a: torch.Tensor
    targets_b: torch.Tensor
    lam: torch.Tensor
    index: torch.Tensor
    mixed: bool = True  # known on the host: whether any image was mixed (no device read needed)

    def soft_targets(self, num_classes: int) -> torch.Tensor:
        """``[B, num_classes]`` label weights ``lam·onehot(a) + (1 − lam)·onehot(b)``."""
        lam = self.lam[:, None].to(torch.float32)
        a = F.one_hot(self.targets_a, num_classes).to(torch.float32)
        b = F.one_hot(self.targets_b, num_classes).to(torch.float32)
        return lam * a + (1.0 - lam) * b

    def cross_entropy(self, logits: torch.Tensor) -> torch.Tensor:
        """Batch mean of ``lam·CE(z, a) + (1 − lam)·CE(z, b)`` (ERKT-Net Eq. 11, PSKD Eq. 8)."""
        ce_a = F.cross_entropy(logits, self.targets_a, reduction="none")
        ce_b = F.cross_entropy(logits, self.targets_b, reduction="none")
        lam = self.lam.to(ce_a.dtype)
        return (lam * ce_a + (1.0 - lam) * ce_b).mean()


def sample_beta(alpha: float) -> float:
    """One draw of ``λ ~ Beta(alpha, alpha)`` from NumPy's global RNG (seeded per epoch by the engine):
    a host-side scalar, so a training step reads nothing back from the device to mix a batch."""
    import numpy as np

    if not alpha > 0:
        raise UserInputError(f"The Beta(α, α) parameter must be > 0, got {alpha}.")
    return float(np.random.beta(alpha, alpha))


def _check_batch(images: torch.Tensor, targets: torch.Tensor, index: torch.Tensor, fn: str) -> None:
    if images.dim() != 4:
        raise UserInputError(f"{fn}: images must be [B, C, H, W], got shape {tuple(images.shape)}.")
    b = images.shape[0]
    if targets.shape != (b,) or index.shape != (b,):
        raise UserInputError(f"{fn}: targets and index must be [B]={b} class indices, got "
                             f"{tuple(targets.shape)} and {tuple(index.shape)}.")


def mixup(images: torch.Tensor, targets: torch.Tensor, lam: float, index: torch.Tensor) -> MixedBatch:
    """``x̂ = lam·x + (1 − lam)·x[index]``; the label weights equal the pixel weights."""
    _check_batch(images, targets, index, "mixup")
    if not 0.0 <= lam <= 1.0:
        raise UserInputError(f"mixup: lam must be in [0, 1], got {lam}.")
    mixed = lam * images + (1.0 - lam) * images[index]
    lam_t = torch.full((images.shape[0],), float(lam), device=images.device)
    return MixedBatch(mixed, targets, targets[index], lam_t, index, mixed=lam < 1.0)


def cutmix_box(height: int, width: int, lam: float,
               generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """The CutMix box ``(top, left, bottom, right)`` (exclusive ends) for a target ratio ``lam``.

    Side lengths ``int(H·√(1−lam))`` × ``int(W·√(1−lam))`` around a uniform centre, clipped to the image.
    """
    if not 0.0 <= lam <= 1.0:
        raise UserInputError(f"cutmix: lam must be in [0, 1], got {lam}.")
    cut = (1.0 - lam) ** 0.5
    ch, cw = int(height * cut), int(width * cut)
    if generator is None:  # host-side draws (NumPy's global RNG, seeded per epoch)
        import numpy as np

        cy, cx = int(np.random.randint(0, height)), int(np.random.randint(0, width))
    else:
        cy = int(torch.randint(0, height, (1,), generator=generator))
        cx = int(torch.randint(0, width, (1,), generator=generator))
    top, bottom = max(cy - ch // 2, 0), min(cy + ch // 2, height)
    left, right = max(cx - cw // 2, 0), min(cx + cw // 2, width)
    return top, left, bottom, right


def cutmix(images: torch.Tensor, targets: torch.Tensor, lam: float, index: torch.Tensor,
           generator: torch.Generator | None = None,
           box: tuple[int, int, int, int] | None = None) -> MixedBatch:
    """Paste the box of ``images[index]`` into ``images``; label weight = exact kept area.

    ``lam`` only sets the box size; the returned ``lam`` is ``1 − box_area / (H·W)`` after clipping.
    ``box`` (top, left, bottom, right) overrides the random box (tests, replay).
    """
    _check_batch(images, targets, index, "cutmix")
    h, w = images.shape[-2:]
    top, left, bottom, right = box if box is not None else cutmix_box(h, w, lam, generator)
    if not (0 <= top <= bottom <= h and 0 <= left <= right <= w):
        raise UserInputError(f"cutmix: box {(top, left, bottom, right)} is outside the {h}×{w} image.")
    mixed = images.clone()
    mixed[:, :, top:bottom, left:right] = images[index][:, :, top:bottom, left:right]
    exact = 1.0 - (bottom - top) * (right - left) / float(h * w)
    lam_t = torch.full((images.shape[0],), exact, device=images.device)
    return MixedBatch(mixed, targets, targets[index], lam_t, index, mixed=exact < 1.0)


def unmixed(images: torch.Tensor, targets: torch.Tensor) -> MixedBatch:
    """The identity 'mix' (``lam = 1``), for a gate that did not fire."""
    b = images.shape[0]
    return MixedBatch(images, targets, targets, torch.ones(b, device=images.device),
                      torch.arange(b, device=images.device), mixed=False)


def different_class_partners(targets: torch.Tensor,
                             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each sample a uniformly drawn partner of ANOTHER class in the batch.

    Returns ``(index [B], valid [B] bool)``; ``valid`` is False where the batch holds no sample of
    another class (then ``index`` points at the sample itself).
    """
    b = targets.shape[0]
    scores = torch.rand((b, b), generator=generator, device=targets.device)
    other = targets[:, None] != targets[None, :]
    scores = torch.where(other, scores, torch.full_like(scores, -1.0))
    index = scores.argmax(dim=1)
    valid = other.any(dim=1)
    index = torch.where(valid, index, torch.arange(b, device=targets.device))
    return index, valid
