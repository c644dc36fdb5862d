"""Input checks shared by the loss functions: every bad shape or value becomes a one-line
``UserInputError`` naming the loss, the argument, what was given and what is expected."""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Iterator

import torch

from compress.errors import UserInputError

_VALUES = contextvars.ContextVar("compress_loss_value_checks", default=True)


@contextmanager
def trusted_values() -> Iterator[None]:
    """Skip the checks that read tensor VALUES (a host sync each) for inputs the pipeline itself made.

    The training loop runs under it; direct calls of the losses keep every check.
    """
    token = _VALUES.set(False)
    try:
        yield
    finally:
        _VALUES.reset(token)


def values_checked() -> bool:
    return _VALUES.get()


def check_tensor(
    x: object, name: str, fn: str, ndim: int | None = None, min_ndim: int = 1
) -> torch.Tensor:
    """``x`` must be a floating tensor with ``ndim`` (or at least ``min_ndim``) dimensions."""
    if not isinstance(x, torch.Tensor):
        raise UserInputError(f"{fn}: '{name}' must be a torch.Tensor, got {type(x).__name__}.")
    if not torch.is_floating_point(x):
        raise UserInputError(
            f"{fn}: '{name}' must be a floating-point tensor, got dtype {x.dtype}; cast it with .float()."
        )
    if ndim is not None and x.dim() != ndim:
        raise UserInputError(
            f"{fn}: '{name}' must have {ndim} dimensions, got shape {tuple(x.shape)}."
        )
    if x.dim() < min_ndim:
        raise UserInputError(
            f"{fn}: '{name}' must have at least {min_ndim} dimensions, got shape {tuple(x.shape)}."
        )
    if x.shape[0] == 0:
        raise UserInputError(f"{fn}: '{name}' has an empty batch (shape {tuple(x.shape)}).")
    return x


def check_logit_pair(s: object, t: object, fn: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Student and teacher logits: both ``[B, C]`` with the same shape."""
    s = check_tensor(s, "student logits", fn, ndim=2)
    t = check_tensor(t, "teacher logits", fn, ndim=2)
    if s.shape != t.shape:
        raise UserInputError(
            f"{fn}: student logits {tuple(s.shape)} and teacher logits {tuple(t.shape)} must have "
            "the same [B, C] shape; the two models must predict the same classes for the same batch."
        )
    return s, t


def check_same_batch(a: torch.Tensor, b: torch.Tensor, fn: str, what: str = "student and teacher") -> None:
    if a.shape[0] != b.shape[0]:
        raise UserInputError(
            f"{fn}: {what} batch sizes differ ({a.shape[0]} vs {b.shape[0]}); pass the same batch to both."
        )


def check_positive(value: float, name: str, fn: str) -> float:
    if not (isinstance(value, (int, float)) and value > 0):
        raise UserInputError(f"{fn}: '{name}' must be a number > 0, got {value!r}.")
    return float(value)


def check_nonnegative(value: float, name: str, fn: str) -> float:
    if not (isinstance(value, (int, float)) and value >= 0):
        raise UserInputError(f"{fn}: '{name}' must be a number >= 0, got {value!r}.")
    return float(value)


def check_choice(value: str, name: str, fn: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise UserInputError(f"{fn}: '{name}' must be one of {', '.join(choices)}; got {value!r}.")
    return value


def class_indices(
    target: object, batch: int, num_classes: int | None, fn: str, allow_soft: bool = False
) -> torch.Tensor:
    """Class indices ``[B]`` (int64) from ``target``.

    ``target`` is ``[B]`` integer class indices or, when ``allow_soft``, a ``[B, C]`` soft/mixed
    label matrix (mixup, CutMix, label smoothing) reduced to each row's dominant class (argmax).
    """
    if not isinstance(target, torch.Tensor):
        raise UserInputError(f"{fn}: 'target' must be a torch.Tensor, got {type(target).__name__}.")
    if target.dim() == 2 and allow_soft:
        if target.shape[0] != batch or (num_classes is not None and target.shape[1] != num_classes):
            raise UserInputError(
                f"{fn}: soft target {tuple(target.shape)} must be [B, C] = [{batch}, {num_classes}]."
            )
        return target.argmax(dim=1)
    if target.dim() != 1 or target.shape[0] != batch:
        soft = f" or [{batch}, {num_classes}] soft labels" if allow_soft else ""
        expected = f"[{batch}] class indices{soft}"
        raise UserInputError(f"{fn}: 'target' has shape {tuple(target.shape)}; expected {expected}.")
    if torch.is_floating_point(target) or target.dtype == torch.bool:
        raise UserInputError(
            f"{fn}: class-index 'target' must be an integer tensor, got dtype {target.dtype}."
        )
    target = target.long()
    if num_classes is not None and target.numel() and values_checked() and \
            (target.min() < 0 or target.max() >= num_classes):
        raise UserInputError(
            f"{fn}: 'target' holds class indices outside [0, {num_classes - 1}] "
            f"(min {int(target.min())}, max {int(target.max())})."
        )
    return target


def zero_with_grad(*tensors: torch.Tensor) -> torch.Tensor:
    """A scalar 0 that stays connected to the graph, so ``backward()`` works on degenerate batches."""
    total = tensors[0].new_zeros(())
    for x in tensors:
        total = total + x.sum() * 0.0
    return total
