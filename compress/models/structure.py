"""The structure of a pruned model, recorded so the model is rebuilt from its zoo name without pickles:
for every module whose tensors changed shape, its channel attributes and the shapes of its parameters
and buffers. ``create_model(name, ..., pruned=STRUCTURE)`` builds the zoo model and applies it; the
weights then load from safetensors as for any checkpoint."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from compress.errors import CheckpointError

ATTRS = ("in_channels", "out_channels", "groups", "num_features", "in_features", "out_features")


def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    out = {n: p for n, p in module.named_parameters(recurse=False)}
    out.update({n: b for n, b in module.named_buffers(recurse=False) if b is not None})
    return out


def structure_of(model: nn.Module, reference: nn.Module) -> dict[str, Any]:
    """``{module path: {"attrs": {...}, "shapes": {tensor: [dims]}}}`` for modules that differ from ``reference``."""
    ref = dict(reference.named_modules())
    out: dict[str, Any] = {}
    for path, mod in model.named_modules():
        mine, theirs = _tensors(mod), _tensors(ref[path]) if path in ref else {}
        shapes = {n: list(t.shape) for n, t in mine.items() if n not in theirs or tuple(theirs[n].shape) != t.shape}
        if shapes:
            out[path] = {"attrs": {a: getattr(mod, a) for a in ATTRS if hasattr(mod, a)},
                         "shapes": {n: list(t.shape) for n, t in mine.items()}}
    return out


def apply_structure(model: nn.Module, structure: dict[str, Any]) -> nn.Module:
    """Resize the recorded modules of a freshly built ``model`` in place (values are placeholders until the
    checkpoint's weights load)."""
    modules = dict(model.named_modules())
    for path, spec in structure.items():
        mod = modules.get(path)
        if mod is None:
            raise CheckpointError(f"the pruned structure names module '{path}', which this architecture does not "
                                  "have; the checkpoint was pruned from another model.")
        for attr, value in spec.get("attrs", {}).items():
            setattr(mod, attr, value)
        params = dict(mod.named_parameters(recurse=False))
        for name, shape in spec.get("shapes", {}).items():
            current = getattr(mod, name, None)
            if current is None:
                continue
            empty = torch.zeros(shape, dtype=current.dtype, device=current.device)
            if name in params:
                setattr(mod, name, nn.Parameter(empty, requires_grad=current.requires_grad))
            else:
                mod.register_buffer(name, empty)
    return model
