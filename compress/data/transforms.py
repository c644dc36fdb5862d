"""Augmentations and preprocessing on ``[bands, H, W]`` float tensors (any number of bands)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from compress.errors import UserInputError

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation; ``None`` values are filled per data source by :func:`resolve_augment`.

    Overhead imagery has no 'up', so flips and 90° turns are label-preserving there; digits are not.
    """

    random_resized_crop: bool = True
    crop_scale: tuple[float, float] | None = None
    hflip: float | None = None
    vflip: float | None = None
    rot90: float | None = None
    rotation: float | None = None  # max degrees of a random rotation
    color_jitter: float = 0.0  # brightness/contrast/saturation strength (3-band data only)


def resolve_augment(cfg: AugmentConfig, source_is_digits: bool) -> AugmentConfig:
    from dataclasses import replace

    if source_is_digits:
        auto = dict(crop_scale=(0.8, 1.0), hflip=0.0, vflip=0.0, rot90=0.0, rotation=10.0)
    else:
        auto = dict(crop_scale=(0.5, 1.0), hflip=0.5, vflip=0.5, rot90=0.5, rotation=0.0)
    return replace(cfg, **{k: (getattr(cfg, k) if getattr(cfg, k) is not None else v) for k, v in auto.items()})


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """``[C, H, W]`` → ``[C, size, size]`` (bilinear, antialiased when shrinking)."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False,
                         antialias=bool(x.shape[-1] > size or x.shape[-2] > size))[0]


@dataclass(frozen=True)
class AugmentDraw:
    """One sample's random choices (crop box in source pixels, flips, quarter turns, angle, jitter
    factors): drawn once, applied to one image or, batched, on the device (:mod:`compress.data.batches`)."""

    box: tuple[int, int, int, int] | None  # top, left, height, width
    hflip: bool
    vflip: bool
    rot90: int  # quarter turns, 0 for none
    angle: float | None
    jitter: tuple[float, float, float] | None  # brightness, contrast, saturation factors


class TrainAugment:
    """Random resized crop → flips/rot90 → rotation → colour jitter, drawing from the global torch RNG.

    The data set seeds that RNG per (epoch, sample) so runs and resumed runs see identical batches.
    ``draw`` makes the choices and ``apply`` carries them out: the per-sample path and the batched
    device path (:mod:`compress.data.batches`) share both, so they produce the same tensors.
    """

    def __init__(self, cfg: AugmentConfig, image_size: int, bands: int) -> None:
        if cfg.color_jitter and bands != 3:
            raise UserInputError(f"color_jitter needs 3-band (RGB) images but the data has {bands} band(s); "
                                 "set color_jitter: 0.")
        self.cfg, self.size, self.bands = cfg, image_size, bands

    def draw(self, h: int, w: int) -> AugmentDraw:
        """The random choices for an ``h × w`` image (consumes the global torch RNG)."""
        c = self.cfg
        box = None
        if c.random_resized_crop:
            lo, hi = c.crop_scale or (0.5, 1.0)
            area = h * w * float(torch.empty(1).uniform_(lo, hi))
            ratio = float(torch.exp(torch.empty(1).uniform_(torch.log(torch.tensor(3 / 4)), torch.log(torch.tensor(4 / 3)))))
            ch = int(round(min(h, (area / ratio) ** 0.5)))
            cw = int(round(min(w, (area * ratio) ** 0.5)))
            ch, cw = max(1, ch), max(1, cw)
            top = int(torch.randint(0, h - ch + 1, (1,)))
            left = int(torch.randint(0, w - cw + 1, (1,)))
            box = (top, left, ch, cw)
        hflip = bool(c.hflip and float(torch.rand(1)) < c.hflip)
        vflip = bool(c.vflip and float(torch.rand(1)) < c.vflip)
        rot = int(torch.randint(1, 4, (1,))) if c.rot90 and float(torch.rand(1)) < c.rot90 else 0
        angle = float(torch.empty(1).uniform_(-c.rotation, c.rotation)) if c.rotation else None
        jitter = None
        if c.color_jitter:
            s = c.color_jitter
            jitter = tuple(float(torch.empty(1).uniform_(max(0, 1 - s), 1 + s)) for _ in range(3))
        return AugmentDraw(box, hflip, vflip, rot, angle, jitter)  # type: ignore[arg-type]

    def crop_resize(self, x: torch.Tensor, d: AugmentDraw) -> torch.Tensor:
        """``[C, H, W]`` → the drawn crop resized to ``[C, size, size]``."""
        if d.box is not None:
            top, left, ch, cw = d.box
            x = x[:, top:top + ch, left:left + cw]
        return resize(x, self.size)

    @staticmethod
    def finish(x: torch.Tensor, d: AugmentDraw) -> torch.Tensor:
        """Flips, quarter turns, rotation and jitter of a resized ``[C, S, S]`` image."""
        from torchvision.transforms.v2 import functional as TF

        if d.hflip:
            x = x.flip(-1)
        if d.vflip:
            x = x.flip(-2)
        if d.rot90:
            x = torch.rot90(x, d.rot90, dims=(-2, -1))
        if d.angle is not None:
            x = TF.rotate(x, d.angle, interpolation=TF.InterpolationMode.BILINEAR)
        if d.jitter is not None:
            x = TF.adjust_brightness(x, d.jitter[0])
            x = TF.adjust_contrast(x, d.jitter[1])
            x = TF.adjust_saturation(x, d.jitter[2])
        return x

    def apply(self, x: torch.Tensor, d: AugmentDraw) -> torch.Tensor:
        return self.finish(self.crop_resize(x, d), d)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(x, self.draw(*x.shape[-2:]))


class EvalTransform:
    """Plain resize to the model's input size (whole scene kept: remote-sensing scenes have no border)."""

    def __init__(self, image_size: int) -> None:
        self.size = image_size

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return resize(x, self.size)


class Normalize:
    """``(x − mean) / std`` per band; mean/std in the [0, 1] value scale."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.tensor(list(mean), dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(list(std), dtype=torch.float32)[:, None, None]
        if (self.std <= 0).any():
            raise UserInputError(f"std must be positive for every band, got {list(std)}.")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def compute_mean_std(arrays: Sequence, scale: float, max_images: int = 2000) -> tuple[list[float], list[float]]:
    """Per-band mean/std over (up to ``max_images``) training images in the [0, 1] value scale."""
    import numpy as np

    step = max(1, len(arrays) // max_images)
    s = s2 = n = 0.0
    for a in arrays[::step]:
        v = a.reshape(-1, a.shape[-1]).astype(np.float64) * scale
        s = s + v.sum(0)
        s2 = s2 + (v * v).sum(0)
        n += v.shape[0]
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean * mean, 1e-12))
    return [float(m) for m in mean], [float(max(sd, 1e-6)) for sd in std]
