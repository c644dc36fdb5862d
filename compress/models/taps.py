"""Capture intermediate outputs of any model by module path with forward hooks (as torchdistill does)."""
from __future__ import annotations

import difflib
from typing import Any, Sequence

import torch
from torch import nn

from compress.errors import UserInputError


class FeatureTaps:
    """Forward hooks on ``paths`` (dotted module names, as in ``model.named_modules()``).

    After each forward, ``features`` maps every tapped path that ran to its output (a ``[B, C, H, W]``
    tensor for conv stages). Outputs keep their autograd graph unless ``detach=True`` (use that for a
    frozen teacher). A module called twice in one forward keeps its last output. Use as a context
    manager, or call ``remove()`` when done; ``clear()`` drops the stored tensors between steps.
    """

    def __init__(self, model: nn.Module, paths: Sequence[str], *, detach: bool = False) -> None:
        if isinstance(paths, str):
            paths = [paths]
        paths = list(paths)
        if not paths:
            raise UserInputError("FeatureTaps needs at least one module path (see default_feature_layers(model)).")
        dupes = sorted({p for p in paths if paths.count(p) > 1})
        if dupes:
            raise UserInputError(f"Feature layer path(s) given twice: {', '.join(dupes)}; list each once.")
        modules = dict(model.named_modules())
        for path in paths:
            if path not in modules:
                close = difflib.get_close_matches(path, [m for m in modules if m], n=5, cutoff=0.5)
                hint = f" Close matches: {', '.join(close)}." if close else ""
                raise UserInputError(
                    f"{type(model).__name__} has no module '{path}'.{hint} "
                    "Paths are dotted names from model.named_modules(), e.g. 'layer3' or 'blocks.4'.")
        self.paths: tuple[str, ...] = tuple(paths)
        self.detach = detach
        self._store: dict[str, Any] = {}
        self._handles = [modules[p].register_forward_hook(self._hook(p)) for p in paths]

    def _hook(self, path: str):
        def fn(_module: nn.Module, _inputs: Any, output: Any) -> None:
            self._store[path] = output.detach() if self.detach and hasattr(output, "detach") else output

        return fn

    @property
    def features(self) -> dict[str, Any]:
        """Captured outputs in the order of ``paths`` (paths whose module did not run are absent)."""
        return {p: self._store[p] for p in self.paths if p in self._store}

    def __getitem__(self, path: str) -> Any:
        if path not in self._store:
            raise KeyError(f"no output captured for '{path}' (tapped: {', '.join(self.paths)}; run a forward first)")
        return self._store[path]

    def clear(self) -> None:
        self._store.clear()

    def remove(self) -> None:
        """Detach the hooks (idempotent); features captured so far stay readable until ``clear()``."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @property
    def active(self) -> bool:
        return bool(self._handles)

    def __enter__(self) -> "FeatureTaps":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"FeatureTaps({', '.join(self.paths)}; {'active' if self.active else 'removed'})"


class TappedForward:
    """A forward pass that also returns the outputs of ``paths``. The hooks are registered once, when the
    method is built, and every call clears what they captured after reading it (as NVIDIA Model
    Optimizer's distillation model does), so no step keeps a previous step's features alive.

    ``frozen=True`` is for the teacher: inference mode, features detached, then cloned so the
    student's backward may save them.
    """

    def __init__(self, model: nn.Module, paths: Sequence[str], *, frozen: bool = False) -> None:
        self.model, self.paths, self.frozen = model, list(paths), frozen
        self.taps = FeatureTaps(model, self.paths, detach=frozen)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        try:
            if self.frozen:
                with torch.inference_mode():
                    out = self.model(images)
                    feats = [self.taps[p] for p in self.paths]
                return out.clone(), [f.clone() for f in feats]
            out = self.model(images)
            return out, [self.taps[p] for p in self.paths]
        finally:
            self.taps.clear()

    def remove(self) -> None:
        self.taps.remove()
