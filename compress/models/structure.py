"""The structure of a pruned model, recorded so the model is rebuilt from its zoo name without pickles:
for every module whose tensors changed shape, its channel attributes and the shapes of its parameters
and buffers; for every residual block removed by depth pruning, ``{"identity": true}``.
``create_model(name, ..., pruned=STRUCTURE)`` builds the zoo model and applies it; the weights then load
from safetensors as for any checkpoint."""
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
        if isinstance(mod, nn.Identity) and path in ref and not isinstance(ref[path], nn.Identity):
            out[path] = {"identity": True}
            continue
        mine, theirs = _tensors(mod), _tensors(ref[path]) if path in ref else {}
        shapes = {n: list(t.shape) for n, t in mine.items() if n not in theirs or tuple(theirs[n].shape) != t.shape}
        if shapes:
            out[path] = {"attrs": {a: getattr(mod, a) for a in ATTRS if hasattr(mod, a)},
                         "shapes": {n: list(t.shape) for n, t in mine.items()}}
    return out


MAX_DIM = 1 << 20  # no layer of an edge model has a million channels: a larger number is an edited file


def _dim(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIM:
        raise CheckpointError(f"the pruned structure gives {where} = {value!r}; expected a whole number in "
                              f"1…{MAX_DIM}: the manifest was edited or is corrupt, re-export it from the pruning run.")
    return value


def apply_structure(model: nn.Module, structure: dict[str, Any]) -> nn.Module:
    """Resize the recorded modules of a freshly built ``model`` in place (values are placeholders until the
    checkpoint's weights load). Only a pruned layer's channel counts (``ATTRS``) and the shapes of tensors the
    module has are accepted: the manifest is data, never a way to set arbitrary attributes."""
    if not isinstance(structure, dict):
        raise CheckpointError(f"the pruned structure is a {type(structure).__name__}, not a mapping of module paths; "
                              "the manifest was edited or is corrupt.")
    dropped = [p for p, spec in structure.items() if spec == {"identity": True}]
    if dropped:
        from compress.models.depth import drop_blocks, removable_blocks

        bad = sorted(set(dropped) - set(removable_blocks(model)))
        if bad:
            raise CheckpointError(f"the pruned structure removes '{bad[0]}', which is not a residual block with an "
                                  "identity shortcut in this architecture; the manifest was edited or is corrupt.")
        drop_blocks(model, dropped)
    modules = dict(model.named_modules())
    for path, spec in structure.items():
        if path in dropped:
            continue
        mod = modules.get(path)
        if mod is None:
            raise CheckpointError(f"the pruned structure names module '{path}', which this architecture does not "
                                  "have; the checkpoint was pruned from another model.")
        if not isinstance(spec, dict) or not isinstance(spec.get("attrs", {}), dict) or \
                not isinstance(spec.get("shapes", {}), dict):
            raise CheckpointError(f"the pruned structure of '{path}' is not {{attrs: {{...}}, shapes: {{...}}}}; the "
                                  "manifest was edited or is corrupt.")
        for attr, value in spec.get("attrs", {}).items():
            if attr not in ATTRS or not hasattr(mod, attr):
                raise CheckpointError(f"the pruned structure sets '{attr}' on '{path}'; only {', '.join(ATTRS)} of "
                                      "a layer that has them may be set.")
            setattr(mod, attr, _dim(value, f"{path}.{attr}"))
        params = dict(mod.named_parameters(recurse=False))
        tensors = _tensors(mod)
        for name, shape in spec.get("shapes", {}).items():
            if name not in tensors:
                continue
            if not isinstance(shape, list) or len(shape) != tensors[name].dim():
                raise CheckpointError(f"the pruned structure gives {path}.{name} the shape {shape!r}; expected "
                                      f"{tensors[name].dim()} dimension(s).")
            dims = [_dim(d, f"{path}.{name} shape") for d in shape]
            current = tensors[name]
            empty = torch.zeros(dims, dtype=current.dtype, device=current.device)
            if name in params:
                setattr(mod, name, nn.Parameter(empty, requires_grad=current.requires_grad))
            else:
                mod.register_buffer(name, empty)
    return model
