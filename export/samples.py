"""The sample arrays an export runs on, preprocessed like the deployed graph's input: the parity samples,
the calibration images and the INT8 budget's images (``[N, C, H, W]`` float32, or ``[N, H, W, C]``
uint8 with ``--embed-preprocess``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from compress.errors import UserInputError

MIN_BUDGET_IMAGES = 1000  # below this, one image is worth more than 0.1 pt of the INT8 budget


def resize_samples(x: np.ndarray, size: int, channels_last: bool) -> np.ndarray:
    """Resize a sample batch when --image-size overrides the manifest's size."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(x)
    if channels_last:
        t = t.permute(0, 3, 1, 2).float()
    t = F.interpolate(t.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    if channels_last:
        return t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    return t.numpy()


def inputs_of(samples: Any, embed_preprocess: bool, size: int, what: str) -> np.ndarray:
    """The images of a sample set as the graph takes them, resized when --image-size differs."""
    if embed_preprocess:
        if samples.raw is None:
            raise UserInputError(f"--embed-preprocess needs 8-bit images but the {what} ({samples.source}) are not "
                                 "8-bit; export without --embed-preprocess.")
        arr = np.asarray(samples.raw)
    else:
        imgs = samples.images
        arr = imgs.numpy() if hasattr(imgs, "numpy") else np.asarray(imgs)
        arr = arr.astype(np.float32)
    have = arr.shape[1] if embed_preprocess else arr.shape[2]
    return resize_samples(arr, size, embed_preprocess) if have != size else arr


def budget_images(path: Path, man: Any, loader: Callable[..., Any], cfg: Any, size: int,
                   notes: list[str]) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """The INT8 budget's images: validation then training images up to ``fallback_images`` for top-1
    agreement (no labels needed), and the validation images with labels for the accuracy drop."""
    held = loader(path, man, "val", cfg.fallback_images)
    val = None
    if held.source.startswith("val") and held.labels is not None:
        val = (inputs_of(held, cfg.embed_preprocess, size, "validation images"), np.asarray(held.labels).astype(np.int64))
    parts = [] if val is None else [val[0]]
    if cfg.fallback_images > sum(len(p) for p in parts):
        train = loader(path, man, "train", cfg.fallback_images - sum(len(p) for p in parts))
        parts.append(inputs_of(train, cfg.embed_preprocess, size, "training images"))
    judge_x = np.concatenate(parts)
    if len(judge_x) < MIN_BUDGET_IMAGES:
        notes.append(f"the INT8 budget was judged on {len(judge_x)} images (the run holds no more): one image is "
                     f"{100 / len(judge_x):.2f} pt.")
    if val is None:
        notes.append("the run has no validation split: the INT8 budget was judged on top-1 agreement alone.")
    return judge_x, val
