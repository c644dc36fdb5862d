"""Real, preprocessed samples of a checkpoint's own data (for export parity and INT8 calibration)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from compress.data.dataset import to_tensor
from compress.data.folder import DIGITS, load_digits_source
from compress.data.images import read_image, value_scale
from compress.data.split import find_split_file, load_split
from compress.data.transforms import EvalTransform, Normalize
from compress.errors import DataError


@dataclass
class SampleSet:
    """``images`` float32 ``[N, C, H, W]`` normalised; ``labels`` int64 ``[N]``; ``raw`` uint8 ``[N, H, W, C]``."""

    images: torch.Tensor
    labels: torch.Tensor
    raw: np.ndarray | None
    source: str


def _roots(split_root: str) -> dict[str, Path]:
    if "=" in split_root and "|" in split_root or split_root.startswith("train="):
        return {p.split("=", 1)[0]: Path(p.split("=", 1)[1]) for p in split_root.split("|")}
    return {"": Path(split_root)}


def _pick(keys: tuple[str, ...], limit: int) -> list[str]:
    """Evenly spaced keys (keys are sorted by class folder, so every class is represented)."""
    if len(keys) <= limit:
        return list(keys)
    pos = np.linspace(0, len(keys) - 1, limit).round().astype(int)
    return [keys[i] for i in pos]


def load_samples(checkpoint_dir: str | Path, manifest, split: str = "test", limit: int = 256) -> SampleSet:
    """Up to ``limit`` images of the run's ``split`` part, preprocessed as the manifest says.

    Falls back to the embedded digits when the checkpoint was trained on them and has no run folder.
    """
    if split not in ("train", "val", "test"):
        raise DataError(f"split must be train, val or test, got '{split}'.")
    split_file = find_split_file(checkpoint_dir)
    if split_file is None:
        if manifest.in_chans == 1 and len(manifest.class_names) == 10 and list(manifest.class_names) == [str(i) for i in range(10)]:
            src = load_digits_source()
            keys = _pick(tuple(src.keys[-360:]), limit)
            arrays = [src.arrays[src.keys.index(k)] for k in keys]
            labels = [int(src.labels[src.keys.index(k)]) for k in keys]
            return _prepare(arrays, labels, manifest, "embedded digits (last 360 images)")
        raise DataError(f"No split.json found above '{checkpoint_dir}' to take real samples from; keep the checkpoint "
                        "inside its run folder (runs/<name>/...).")
    sp = load_split(split_file)
    keys = getattr(sp, split) or sp.test
    keys = _pick(keys, limit)
    names = list(sp.class_names)
    arrays, labels = [], []
    if sp.root == DIGITS:
        src = load_digits_source()
        pos = {k: i for i, k in enumerate(src.keys)}
        arrays = [src.arrays[pos[k]] for k in keys]
        labels = [int(src.labels[pos[k]]) for k in keys]
    else:
        roots = _roots(sp.root)
        for k in keys:
            part, rel = (k.split(":", 1) if ":" in k and "" not in roots else ("", k))
            path = roots[part] / rel
            try:
                arrays.append(read_image(path))
            except Exception as exc:
                raise DataError(f"Sample '{path}' of the saved split cannot be read ({exc}); restore the data.") from exc
            labels.append(names.index(Path(rel).parts[0]))
    return _prepare(arrays, labels, manifest, f"{split} split of {sp.root} ({len(keys)} images)")


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
