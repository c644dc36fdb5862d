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
                  notes: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """The INT8 budget's images ``[N, ...]``: validation then training images up to ``fallback_images``,
    and their labels ``[N]`` when every one has a label (``None``: judged on top-1 agreement alone)."""
    held = loader(path, man, "val", cfg.fallback_images)
    parts, labels = [], []
    if held.source.startswith("val"):
        parts.append(inputs_of(held, cfg.embed_preprocess, size, "validation images"))
        labels.append(held.labels)
    if cfg.fallback_images > sum(len(p) for p in parts):
        train = loader(path, man, "train", cfg.fallback_images - sum(len(p) for p in parts))
        parts.append(inputs_of(train, cfg.embed_preprocess, size, "training images"))
        labels.append(train.labels)
    judge_x = np.concatenate(parts)
    if len(judge_x) < MIN_BUDGET_IMAGES:
        notes.append(f"the INT8 budget was judged on {len(judge_x)} images (the run holds no more): one image is "
                     f"{100 / len(judge_x):.2f} pt.")
    if any(lab is None for lab in labels):
        notes.append("the INT8 budget's images have no labels: it was judged on top-1 agreement alone.")
        return judge_x, None
    return judge_x, np.concatenate([np.asarray(lab) for lab in labels]).astype(np.int64)
