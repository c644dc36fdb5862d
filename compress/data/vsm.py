"""ERKT-Net's variance-suppression module (VSM): a chain of gated functional units (GFUs).

Each unit applies its transform with its own probability and otherwise passes the image through
(ERKT-Net Eq. 1, Table 1). Units work on ``[C, H, W]`` float images in the [0, 1] value scale,
BEFORE normalisation (the data set normalises after the transform), in the paper's order:
colour jitter → rotation → h-flip → v-flip → grayscale → autocontrast → random erasing →
random resized crop; CutMix, the ninth unit, mixes a whole batch (:meth:`VarianceSuppression.mix_batch`).
Randomness comes from the global torch RNG, which the data set seeds per (epoch, sample).

Band counts: brightness and contrast work on any number of bands (contrast around the image's mean
over all bands); saturation and grayscale are defined on RGB only. Their defaults (``None``) mean
the paper's values on 3-band data and off otherwise; setting either above 0 on non-RGB data is an
error raised when the method is built, i.e. before any training.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from compress.data.mixing import MixedBatch, cutmix, sample_beta, unmixed
from compress.data.transforms import resize
from compress.errors import UserInputError

UNITS = ("jitter", "rotation", "hflip", "vflip", "grayscale", "autocontrast", "erasing", "resized_crop")


@dataclass(frozen=True)
class VSMConfig:
    """Probabilities (``*_p``) and settings of the nine GFUs; defaults are ERKT-Net Table 1.

    ``resized_crop_fraction`` is the crop's output side relative to the training size (the paper's
    176 px at 256 px); the crop is then resized back so a batch keeps one size.
    """

    jitter_p: float = 1.0
    brightness: float = 0.5
    contrast: float = 0.5
    saturation: float | None = None  # None: 0.5 on RGB (Table 1), off on other band counts
    rotation_p: float = 1.0
    rotation_degrees: float = 180.0
    hflip_p: float = 0.9
    vflip_p: float = 0.9
    grayscale_p: float | None = None  # None: 0.1 on RGB (Table 1), off on other band counts
    autocontrast_p: float = 0.1
    erasing_p: float = 1.0
    erasing_scale: tuple[float, float] = (0.02, 0.33)
    erasing_ratio: tuple[float, float] = (0.3, 3.3)
    erasing_value: float = 0.0
    resized_crop_p: float = 0.1
    resized_crop_fraction: float = 176 / 256
    resized_crop_scale: tuple[float, float] = (0.08, 1.0)
    cutmix_p: float = 1.0
    cutmix_beta: float = 1.0

    def __post_init__(self) -> None:
        for name in (*(f"{u}_p" for u in UNITS), "cutmix_p"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise UserInputError(f"VSM {name} must be a probability in [0, 1], got {v}.")
        for name in ("brightness", "contrast", "saturation", "rotation_degrees"):
            if (getattr(self, name) or 0) < 0:
                raise UserInputError(f"VSM {name} must be ≥ 0, got {getattr(self, name)}.")
        if not 0.0 < self.resized_crop_fraction <= 1.0:
            raise UserInputError(f"VSM resized_crop_fraction must be in (0, 1], got {self.resized_crop_fraction}.")
        if self.cutmix_beta <= 0:
            raise UserInputError(f"VSM cutmix_beta must be > 0, got {self.cutmix_beta}.")
        lo, hi = self.erasing_scale
        if not 0.0 < lo <= hi < 1.0:
            raise UserInputError(f"VSM erasing_scale must satisfy 0 < lo ≤ hi < 1, got {self.erasing_scale}.")


# ERKT-Net §4.6: the "usual data augmentation" the authors revert the VSM to for their baselines.
USUAL_DA = {"cutmix_p": 0.1, "hflip_p": 0.5, "vflip_p": 0.5, "erasing_p": 0.0, "resized_crop_p": 0.0}


class VarianceSuppression:
    """Per-sample VSM transform ``[C, H, W]`` ([0, 1] scale, any size) → ``[C, size, size]``.

    ``last_fired`` lists the units that fired on the latest call (for tests and diagnostics).
    """

    def __init__(self, cfg: VSMConfig, image_size: int, bands: int) -> None:
        import dataclasses

        from torchvision.transforms import v2

        rgb = bands == 3
        rgb_only = [n for n in ("saturation", "grayscale_p") if not rgb and (getattr(cfg, n) or 0) > 0]
        if rgb_only:
            raise UserInputError(f"The VSM {' and '.join(rgb_only)} need 3-band (RGB) images, the data has {bands} "
                                 "band(s); drop them from the method parameters (on non-RGB data they default to off; "
                                 "brightness and contrast work on any bands).")
        if image_size < 2:
            raise UserInputError(f"VSM image_size must be ≥ 2, got {image_size}.")
        cfg = dataclasses.replace(cfg, saturation=(0.5 if rgb else 0.0) if cfg.saturation is None else cfg.saturation,
                                  grayscale_p=(0.1 if rgb else 0.0) if cfg.grayscale_p is None else cfg.grayscale_p)
        self.cfg, self.size, self.bands = cfg, int(image_size), int(bands)
        crop = max(1, int(round(self.size * cfg.resized_crop_fraction)))
        self._jitter = v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation) if rgb else self._band_jitter
        self._rotate = v2.RandomRotation(cfg.rotation_degrees)  # torchvision defaults: nearest, fill 0
        self._erase = v2.RandomErasing(p=1.0, scale=cfg.erasing_scale, ratio=cfg.erasing_ratio,
                                       value=cfg.erasing_value)
        self._crop = v2.RandomResizedCrop(crop, scale=cfg.resized_crop_scale, antialias=True)
        self.units: list[tuple[str, float, Callable[[torch.Tensor], torch.Tensor]]] = [
            ("jitter", cfg.jitter_p, self._jitter),
            ("rotation", cfg.rotation_p, self._rotate),
            ("hflip", cfg.hflip_p, self._hflip),
            ("vflip", cfg.vflip_p, self._vflip),
            ("grayscale", cfg.grayscale_p, self._grayscale),
            ("autocontrast", cfg.autocontrast_p, self._autocontrast),
            ("erasing", cfg.erasing_p, self._erase),
            ("resized_crop", cfg.resized_crop_p, self._resized_crop),
        ]
        self.last_fired: list[str] = []

    def _band_jitter(self, x: torch.Tensor) -> torch.Tensor:
        """Brightness and contrast for any band count, in random order as ColorJitter does."""
        b = self.cfg.brightness
        c = self.cfg.contrast
        ops = []
        if b > 0:
            factor = float(torch.empty(1).uniform_(max(0.0, 1 - b), 1 + b))
            ops.append(lambda t: (t * factor).clamp(0.0, 1.0))
        if c > 0:
            cfac = float(torch.empty(1).uniform_(max(0.0, 1 - c), 1 + c))
            ops.append(lambda t: ((t - t.mean()) * cfac + t.mean()).clamp(0.0, 1.0))
        for i in torch.randperm(len(ops)).tolist():
            x = ops[i](x)
        return x

    @staticmethod
    def _hflip(x: torch.Tensor) -> torch.Tensor:
        return x.flip(-1)

    @staticmethod
    def _vflip(x: torch.Tensor) -> torch.Tensor:
        return x.flip(-2)

    def _resized_crop(self, x: torch.Tensor) -> torch.Tensor:
        return resize(self._crop(x), self.size)

    @staticmethod
    def _grayscale(x: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as TF

        return TF.rgb_to_grayscale(x, num_output_channels=3)

    @staticmethod
    def _autocontrast(x: torch.Tensor) -> torch.Tensor:
        """Stretch each band to [0, 1] (torchvision's autocontrast for 1 or 3 bands; the same per-band
        stretch for other counts, which torchvision rejects)."""
        from torchvision.transforms.v2 import functional as TF

        x = x.clamp(0.0, 1.0)
        if x.shape[0] in (1, 3):
            return TF.autocontrast(x)
        lo = x.amin(dim=(-2, -1), keepdim=True)
        hi = x.amax(dim=(-2, -1), keepdim=True)
        flat = hi <= lo
        return torch.where(flat, x, (x - lo) / torch.where(flat, torch.ones_like(hi), hi - lo))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[0] != self.bands:
            raise UserInputError(f"VSM expects a [{self.bands}, H, W] image, got shape {tuple(x.shape)}.")
        x = resize(x.to(torch.float32), self.size)
        fired = []
        for name, p, fn in self.units:
            # Eq. 1: the unit runs when its gate fires (probability p), else the shortcut passes x on
            if p > 0 and float(torch.rand(1)) < p:
                x = fn(x)
                fired.append(name)
        self.last_fired = fired
        return x.clamp(0.0, 1.0)  # resampling may overshoot [0, 1] by rounding

    def mix_batch(self, images: torch.Tensor, targets: torch.Tensor) -> MixedBatch:
        """The CutMix GFU on a batch: fires with ``cutmix_p``; partners are a random permutation."""
        import numpy as np

        if self.cfg.cutmix_p <= 0 or np.random.random() >= self.cfg.cutmix_p or images.shape[0] < 2:
            return unmixed(images, targets)
        lam = sample_beta(self.cfg.cutmix_beta)
        index = torch.randperm(images.shape[0], device=images.device)
        return cutmix(images, targets, lam, index)

    def __repr__(self) -> str:
        units = ", ".join(f"{n}@{p:g}" for n, p, _ in self.units)
        return f"VarianceSuppression(size={self.size}, {units}, cutmix@{self.cfg.cutmix_p:g})"
