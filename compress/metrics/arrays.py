"""Input checks shared by the metric modules: numpy / torch / lists in, validated numpy out."""
from __future__ import annotations

from typing import Any

import numpy as np

from compress.errors import UserInputError


def to_numpy(x: Any, name: str) -> np.ndarray:
    """Torch tensor (any device), numpy array or nested list → numpy array (no copy when possible)."""
    if x is None:
        raise UserInputError(f"{name} is missing; pass a numpy array or a torch tensor.")
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def as_labels(x: Any, name: str) -> np.ndarray:
    """A non-empty 1-D label vector."""
    arr = to_numpy(x, name)
    if arr.ndim != 1:
        raise UserInputError(f"{name} must be 1-D (one label per sample); got shape {tuple(arr.shape)}.")
    if arr.size == 0:
        raise UserInputError(f"{name} is empty; metrics need at least one sample.")
    return arr


def as_int_labels(x: Any, name: str, num_classes: int | None = None) -> np.ndarray:
    """A non-empty 1-D vector of class indices in ``[0, num_classes)``, as int64."""
    arr = as_labels(x, name)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise UserInputError(
                f"{name} must hold integer class indices; got dtype {arr.dtype}. "
                "Map class names to indices first (argmax logits for predictions)."
            )
    arr = arr.astype(np.int64, copy=False)
    if arr.min() < 0:
        raise UserInputError(f"{name} holds a negative class index ({int(arr.min())}); indices start at 0.")
    if num_classes is not None and arr.max() >= num_classes:
        raise UserInputError(
            f"{name} holds class index {int(arr.max())} but only {num_classes} class names were given "
            f"(valid indices 0..{num_classes - 1})."
        )
    return arr


def as_embeddings(x: Any, name: str) -> np.ndarray:
    """A non-empty, finite ``[N, D]`` float matrix (float16/bfloat16 are widened to float32)."""
    arr = to_numpy(x, name)
    if arr.ndim != 2:
        raise UserInputError(f"{name} must be 2-D [N, D] (one embedding per row); got shape {tuple(arr.shape)}.")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UserInputError(f"{name} is empty (shape {tuple(arr.shape)}); need at least one row and one dim.")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    elif arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise UserInputError(f"{name} holds NaN or inf values; check the model output before evaluating.")
    return arr


def check_same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if len(a) != len(b):
        raise UserInputError(
            f"{name_a} has {len(a)} rows but {name_b} has {len(b)}; they must describe the same samples."
        )
