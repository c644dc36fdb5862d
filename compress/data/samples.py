"""Real, preprocessed samples of a checkpoint's own data (for export parity and INT8 calibration)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from compress.data.dataset import to_tensor
from compress.data.images import value_scale
from compress.data.sources import EmptyPartError, checkpoint_dataset
from compress.data.transforms import EvalTransform, Normalize
from compress.errors import DataError


@dataclass
class SampleSet:
    """``images`` float32 ``[N, C, H, W]`` normalised; ``labels`` int64 ``[N]``; ``raw`` uint8 ``[N, H, W, C]``."""

    images: torch.Tensor
    labels: torch.Tensor
    raw: np.ndarray | None
    source: str


def evenly_spaced(n: int, limit: int) -> np.ndarray:
    """``limit`` evenly spaced positions of ``n`` (keys are sorted by class folder: every class is represented)."""
    if n <= limit:
        return np.arange(n)
    return np.linspace(0, n - 1, limit).round().astype(int)


def load_samples(checkpoint_dir: str | Path, manifest, split: str = "test", limit: int = 256) -> SampleSet:
    """Up to ``limit`` images of the run's ``split`` part (the test part when it is empty), preprocessed as
    the manifest says; see :func:`compress.data.sources.checkpoint_dataset` for where they come from."""
    if split not in ("train", "val", "test"):
        raise DataError(f"split must be train, val or test, got '{split}'.")
    try:
        found = checkpoint_dataset(checkpoint_dir, manifest, part=split)
    except EmptyPartError:
        found = checkpoint_dataset(checkpoint_dir, manifest, part="test")
    ds = found.dataset
    pos = evenly_spaced(len(ds), limit)
    arrays = [ds.source.load(int(ds.indices[i])) for i in pos]
    labels = [int(ds.source.labels[ds.indices[i]]) for i in pos]
    source = found.description if found.part is None else f"{found.part} split of {found.split.root} ({len(pos)} images)"
    return _prepare(arrays, labels, manifest, source)


def _prepare(arrays: list[np.ndarray], labels: list[int], manifest, source: str) -> SampleSet:
    if not arrays:
        raise DataError("No samples to take; the split part is empty.")
    scale = value_scale(arrays[0].dtype)
    ev = EvalTransform(int(manifest.image_size))
    resized = torch.stack([ev(to_tensor(a, scale)) for a in arrays])
    raw = None
    if arrays[0].dtype == np.uint8:
        # The deployed graph sees uint8 camera bytes: quantise the resized image the same way.
        raw_t = (resized * 255.0).round().clamp(0, 255).to(torch.uint8)
        resized = raw_t.to(torch.float32) / 255.0
        raw = raw_t.permute(0, 2, 3, 1).contiguous().numpy()
    norm = Normalize(manifest.mean, manifest.std)
    images = torch.stack([norm(x) for x in resized])
    return SampleSet(images=images, labels=torch.tensor(labels, dtype=torch.int64), raw=raw, source=source)
